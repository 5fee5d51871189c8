"""A regular (non-editable) install into a clean virtualenv works from any folder.

The package must carry everything a command reads (recipes, the bundled body model, priors,
regressor and pose sets) as package data: a source checkout is not there for a user who ran
``pip install spin_diff``. The repository's tracked files are copied first so the build sees
exactly what a clone holds (and leaves no build/ or egg-info in the working tree).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")


def _run(args, cwd, timeout=900):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})  # fmt: skip
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _copy_tracked_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


@pytest.mark.slow
def test_a_regular_install_runs_fit_demo_and_train_from_another_folder(tmp_path):
    source = tmp_path / "source"
    _copy_tracked_tree(source)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    index = os.environ.get("TORCH_INDEX_URL")  # as scripts/setup.sh: keeps a CUDA wheel off a CPU machine
    _run(pip + [TORCH_SPEC] + (["--index-url", index] if index else []), tmp_path)
    _run(pip + [str(source)], tmp_path)
    shutil.rmtree(source)  # nothing may be read from the source tree after the install
    spin_diff = str(venv / "bin" / "spin-diff")
    work = tmp_path / "elsewhere"
    work.mkdir()

    location = _run([str(venv / "bin" / "python"), "-c", "import spin_diff; print(spin_diff.__file__)"], work)
    assert str(venv) in location

    assert "--dataset" in _run([spin_diff, "train", "--help"], work)
    _run([spin_diff, "synth", "--out", "people", "--n", "1", "--image-size", "160x160", "--corrupt", "none",
          "--quiet"], work)  # fmt: skip
    _run([spin_diff, "fit", "people/images", "--keypoints", "people/keypoints", "--out", "fits", "--quiet",
          "--threads", "1"], work)  # fmt: skip
    assert list((work / "fits").rglob("*.json")), "spin-diff fit wrote no result"
    _run([spin_diff, "demo", "--quick", "--out", "demo", "--threads", "1"], work)
    assert (work / "demo" / "summary.json").is_file()
