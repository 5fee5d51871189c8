"""The recipes ship inside the package and commands find them by name, a user's file first."""

from __future__ import annotations

import pytest

from spin_diff.errors import MissingInputError
from spin_diff.recipes import RECIPE_DIR, find_config, recipe_names, recipe_path


def test_every_recipe_a_command_names_is_shipped():
    assert {"default", "fit_cold_start", "fit_from_regressor", "train_spin", "train_keypoints_cpu"} <= set(
        recipe_names()
    )
    assert recipe_path("train_spin") == recipe_path("train_spin.yaml") == RECIPE_DIR / "train_spin.yaml"


def test_a_file_that_exists_wins_over_a_shipped_recipe_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train_spin.yaml").write_text("seed: 3\n")
    assert find_config("train_spin.yaml") == tmp_path.joinpath("train_spin.yaml").relative_to(tmp_path)
    assert find_config("train_spin") == RECIPE_DIR / "train_spin.yaml"


def test_an_unknown_name_lists_the_shipped_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingInputError, match="train_spin"):
        find_config("train_spn")
    with pytest.raises(MissingInputError, match="shipped"):
        recipe_path("nonesuch")
    # a path with folders is a path, never a recipe name
    with pytest.raises(MissingInputError, match="not found"):
        find_config("elsewhere/train_spin.yaml")


def test_commands_take_a_recipe_name_for_config(tmp_path, capsys):
    from spin_diff.cli.main import main

    assert main(["train", "--config", "no_such_recipe", "--dataset", str(tmp_path / "d.npz"), "--out",
                 str(tmp_path / "run")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train_keypoints_cpu" in err
