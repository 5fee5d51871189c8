"""`spin-diff cache ...`: the command line end to end, and its errors on bad input."""

from __future__ import annotations

import lmdb
import numpy as np
import pytest

from spin_diff.cache.store import FitStore
from spin_diff.cli.cache import main


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory, fitcache):
    return fitcache.write_fast_config(tmp_path_factory.mktemp("config") / "fit.yaml")


def test_build_stats_export_import_merge(tmp_path, tiny_dataset, fast_config, capsys):
    cache = tmp_path / "cache"
    common = ["--config", str(fast_config), "--quiet"]
    build = ["build", "--dataset", str(tiny_dataset), "--cache", str(cache), *common]
    assert main([*build, "--limit", "10", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "tiny: 10 examples; 0 already fitted" in out
    assert "fitted 10: 10 written" in out and "failed 0" in out

    assert main([*build, "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "tiny: 16 examples; 10 already fitted" in out and "6 fitted in" in out

    assert main(["stats", str(cache), "--data", str(tiny_dataset), "--data", f"other={tiny_dataset}"]) == 0
    out = capsys.readouterr().out
    assert "dataset tiny: 16 records, coverage 16/16 = 100.0%" in out
    assert "dataset other: 0 records, coverage 0/16" in out and "by source: offline 16" in out

    fits = tmp_path / "fits.npz"
    assert main(["export", str(cache), "--out", str(fits)]) == 0
    assert "exported 16 records" in capsys.readouterr().out
    assert main(["import", str(fits), "--cache", str(tmp_path / "copy")]) == 0
    assert "16 records read: 16 written" in capsys.readouterr().out
    assert main(["merge", str(tmp_path / "merged"), str(cache), str(tmp_path / "copy")]) == 0
    assert "32 records read: 16 written, 16 kept" in capsys.readouterr().out
    a = FitStore.open(cache).get_many("tiny", np.arange(16))
    b = FitStore.open(tmp_path / "merged").get_many("tiny", np.arange(16))
    assert np.array_equal(a.pose, b.pose) and np.array_equal(a.time, b.time)


def test_import_spin_fits_from_the_command_line(tmp_path, tiny_dataset, fast_config, capsys):
    from spin_diff.data.spin_npz import read_spin_npz

    data = read_spin_npz(tiny_dataset)
    path = tmp_path / "tiny_fits.npy"
    np.save(path, np.c_[data["pose"], data["shape"]])
    cache = tmp_path / "cache"
    command = ["import-spin", str(path), "--dataset", "tiny", "--data", str(tiny_dataset)]
    assert main([*command, "--cache", str(cache), "--config", str(fast_config)]) == 0
    assert "scored against" in capsys.readouterr().out
    fits = FitStore.open(cache).get_many("tiny", np.arange(16))
    assert fits.found.all() and set(fits.source_labels()) == {"static"}
    assert (fits.score < 1.0).all()  # the exact parameters of the projected keypoints
    stats_ok = main(["stats", str(cache)])
    assert stats_ok == 0 and "static fits imported from tiny_fits.npy" in capsys.readouterr().out



def test_export_as_spin_static_fits_round_trips_through_import_spin(tmp_path, tiny_dataset, fast_config, capsys):
    """SPIN's format both ways: fits imported from an (N, 82) file come back out equal, a
    missing example is a NaN row, and import-spin of the export restores the same records."""
    from spin_diff.data.spin_npz import read_spin_npz

    data = read_spin_npz(tiny_dataset)
    original = np.c_[data["pose"], data["shape"]].astype(np.float32)
    original[5] = np.nan  # SPIN's files mark a missing fit so; import-spin refuses the row
    path = tmp_path / "tiny_fits.npy"
    np.save(path, original)
    cache = tmp_path / "cache"
    assert main(["import-spin", str(path), "--dataset", "tiny", "--data", str(tiny_dataset), "--cache", str(cache),
                 "--config", str(fast_config)]) == 0  # fmt: skip
    exported = tmp_path / "out" / "tiny_fits.npy"
    assert main(["export", str(cache), "--format", "spin", "--dataset", "tiny", "--data", str(tiny_dataset),
                 "--out", str(exported)]) == 0  # fmt: skip
    assert "exported 15 fits of 16 examples" in capsys.readouterr().out
    back = np.load(exported)
    assert back.shape == (16, 82) and back.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(back).all(1), np.arange(16) == 5)
    np.testing.assert_allclose(np.delete(back, 5, 0), np.delete(original, 5, 0), atol=1e-6)

    again = tmp_path / "again"
    assert main(["import-spin", str(exported), "--dataset", "tiny", "--data", str(tiny_dataset), "--cache",
                 str(again), "--config", str(fast_config)]) == 0  # fmt: skip
    first, second = (FitStore.open(c).get_many("tiny", np.arange(16)) for c in (cache, again))
    np.testing.assert_array_equal(first.found, second.found)
    np.testing.assert_allclose(second.pose[second.found], first.pose[first.found], atol=1e-6)

    # without --data the rows end at the last record; without --dataset it is refused
    assert main(["export", str(cache), "--format", "spin", "--dataset", "tiny", "--out", str(tmp_path / "b.npy")]) == 0
    assert np.load(tmp_path / "b.npy").shape == (16, 82)
    assert main(["export", str(cache), "--format", "spin", "--out", str(tmp_path / "c.npy")]) == 2
    assert "pass --dataset" in capsys.readouterr().err and not (tmp_path / "c.npy").exists()


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_keys", "missing required key(s) ['center', 'scale']"),
        ("no_keypoints", "no 2D keypoints"),
        ("checkpoint", "truncated or not a torch checkpoint"),
        ("no_checkpoint", "not 'mean', 'stored' or 'regressor', and no checkpoint file there"),
        ("foreign_cache", "not a spin_diff fit cache"),
        ("other_body_model", "holds fits of another body model"),
    ],
)
def test_build_errors_say_what_is_wrong(tmp_path, tiny_dataset, fast_config, capsys, case, message):
    dataset, cache, extra = tiny_dataset, tmp_path / "cache", []
    if case == "missing_keys":
        dataset = write_npz(tmp_path / "bad.npz", part=np.zeros((3, 24, 3)), openpose=np.zeros((3, 25, 3)))
    elif case == "no_keypoints":
        dataset = write_npz(tmp_path / "bad.npz", center=np.zeros((3, 2)), scale=np.ones(3))
    elif case == "checkpoint":
        (tmp_path / "model.pt").write_bytes(b"weights")
        extra = ["--init", str(tmp_path / "model.pt")]
    elif case == "no_checkpoint":
        extra = ["--init", str(tmp_path / "missing.pt")]
    elif case == "foreign_cache":
        env = lmdb.open(str(cache), map_size=1 << 20)
        with env.begin(write=True) as txn:
            txn.put(b"key", b"value")
        env.close()
    elif case == "other_body_model":
        FitStore.open_or_create(cache, "sha-of-another-model", "SMPL_FEMALE.pkl").close()
    common = ["--config", str(fast_config), "--quiet"]
    code = main(["build", "--dataset", str(dataset), "--cache", str(cache), *common, *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_other_commands_report_bad_input(tmp_path, tiny_dataset, capsys):
    assert main(["stats", str(tmp_path / "nowhere")]) == 2
    assert "no fit cache at" in capsys.readouterr().err
    bad = tmp_path / "fits.npy"
    np.save(bad, np.zeros((5, 72)))
    data = ["--data", str(tiny_dataset)]
    assert main(["import-spin", str(bad), "--dataset", "lsp", "--cache", str(tmp_path / "c"), *data]) == 2
    assert "(N, 82)" in capsys.readouterr().err
    assert main(["import-spin", str(bad), "--dataset", "no/slash", "--cache", str(tmp_path / "c"), *data]) == 2
    assert "cannot key a fit cache" in capsys.readouterr().err
    assert main(["import", str(bad), "--cache", str(tmp_path / "c")]) == 2
    assert "not an .npz archive" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "absent.npz"), "--cache", str(tmp_path / "c")]) == 2
    assert "fits file not found" in capsys.readouterr().err


def test_cache_is_a_spin_diff_subcommand():
    from spin_diff.cli import main as cli_main

    parser = cli_main.build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    assert "cache" in subcommands
    args = parser.parse_args(["cache", "stats", "somewhere"])
    assert args.handler.__name__ == "run_stats"


def test_import_spin_needs_the_dataset_and_refuses_archives(tmp_path, tiny_dataset, capsys):
    """Without the dataset, the rows of a fits file cannot be checked against real examples."""
    fits = np.zeros((16, 82), dtype=np.float32)
    np.save(tmp_path / "fits.npy", fits)
    cache = tmp_path / "c"
    with pytest.raises(SystemExit) as info:
        main(["import-spin", str(tmp_path / "fits.npy"), "--dataset", "tiny", "--cache", str(cache)])
    assert info.value.code == 2 and "--data" in capsys.readouterr().err
    np.savez(tmp_path / "fits.npz", fits=fits)
    command = ["import-spin", str(tmp_path / "fits.npz"), "--dataset", "tiny", "--data", str(tiny_dataset)]
    assert main([*command, "--cache", str(cache)]) == 2
    assert "is an .npz archive (arrays ['fits'])" in capsys.readouterr().err
    np.save(tmp_path / "long.npy", np.zeros((20, 82), dtype=np.float32))
    command = ["import-spin", str(tmp_path / "long.npy"), "--dataset", "tiny", "--data", str(tiny_dataset)]
    assert main([*command, "--cache", str(cache)]) == 2
    assert "has 20 rows but" in capsys.readouterr().err
    assert not cache.exists()


def test_build_on_a_dataset_without_keypoints_leaves_no_store(tmp_path, fast_config, capsys):
    dataset = tmp_path / "boxes_only.npz"
    np.savez(dataset, center=np.full((3, 2), 112.0), scale=np.full(3, 1.12), imgname=np.array(["a", "b", "c"]))
    cache = tmp_path / "cache"
    code = main(["build", "--dataset", str(dataset), "--cache", str(cache), "--config", str(fast_config), "--quiet"])
    assert code == 2 and "no 2D keypoints" in capsys.readouterr().err
    assert not cache.exists()


def test_build_quiet_hides_the_bar_but_prints_the_summary(tmp_path, tiny_dataset, fast_config, capsys):
    cache = tmp_path / "cache"
    build = ["build", "--dataset", str(tiny_dataset), "--cache", str(cache), "--config", str(fast_config)]
    assert main([*build, "--limit", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "fitting tiny" not in captured.err  # the tqdm bar's description
    assert "tiny: 2 examples; 0 already fitted" in captured.out
    assert "fitted 2: 2 written" in captured.out and "failed 0" in captured.out
    assert f"cache: {cache}" in captured.out
    assert main([*build, "--limit", "3"]) == 0  # without --quiet: the bar, and the same summary
    captured = capsys.readouterr()
    assert "fitting tiny" in captured.err and "tiny: 3 examples; 2 already fitted" in captured.out
