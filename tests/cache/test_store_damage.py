"""Damage at every page of a small store, and cuts at several sizes: no command is killed.

Each copy gets one page zeroed or filled with random bytes, or its data.mdb cut short. On
every copy the commands' store paths (stats, export, merge, the training run's opening and
reads, build writing into it) either answer exactly as on the intact store (the page was not
in use) or raise one error naming the store, ``cache verify`` and ``cache salvage``; verify
agrees; salvage recovers every record but those of the damaged page. They run in one child
process, so an LMDB abort (exit status 134) or bus error (135) fails the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spin_diff.body.files import body_model_hash, body_model_label
from spin_diff.cache.pages import check_tree
from spin_diff.cache.store import FitStore

N = 96
PAGE = 4096
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def intact(tmp_path_factory, body_model, fitcache):
    """N records, every other one improved (freed pages hold old copies), of the real body model."""
    path = tmp_path_factory.mktemp("damage") / "intact"
    store = FitStore.open_or_create(path, body_model_hash(body_model), body_model_label(body_model))
    index = np.arange(N)
    store.update_if_better(fitcache.fit_batch("tiny", index, 10.0 + index / N))
    store.update_if_better(fitcache.fit_batch("tiny", index[::2], 1.0 + index[::2] / N))
    store.close()
    return path


def damaged_copies(intact: Path, root: Path) -> dict[str, Path]:
    size = (intact / "data.mdb").stat().st_size
    rng = np.random.default_rng(0)
    copies = {}
    for page in range(size // PAGE):
        for kind in ("zero", "random"):
            copy = root / f"{kind}{page}"
            shutil.copytree(intact, copy)
            with open(copy / "data.mdb", "r+b") as handle:
                handle.seek(page * PAGE)
                handle.write(bytes(PAGE) if kind == "zero" else rng.integers(0, 256, PAGE, dtype=np.uint8).tobytes())
            copies[copy.name] = copy
    for cut in (8192, size // 2, size - PAGE, size - 100):
        copy = root / f"cut{cut}"
        shutil.copytree(intact, copy)
        os.truncate(copy / "data.mdb", cut)
        copies[copy.name] = copy
    return copies


def run_worker(tmp_path, copies, dataset):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"work": str(tmp_path / "work"), "copies": [str(c) for c in copies], "records": N,
                                "dataset": str(dataset), "dataset_name": "tiny"}))  # fmt: skip
    (tmp_path / "work").mkdir()
    done = subprocess.run(
        [sys.executable, str(HERE / "store_damage_worker.py"), str(spec)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    assert done.returncode == 0, (done.returncode, started[-1:], done.stderr[-2000:])
    return lines


def test_no_damaged_page_or_cut_kills_a_command(tmp_path, intact, tiny_dataset):
    copies = damaged_copies(intact, tmp_path)
    meta = check_tree(intact / "data.mdb")
    lines = run_worker(tmp_path, [shutil.copytree(intact, tmp_path / "intact"), *copies.values()], tiny_dataset)
    results = {Path(line["copy"]).name: line for line in lines if "stats" in line}
    leftovers = {Path(line["copy"]).name: line["merge_left"] for line in lines if "merge_left" in line}
    reference = results.pop("intact")
    assert all(reference[c][0] == "ok" for c in ("stats", "export", "merge", "train", "salvage", "build"))
    assert reference["verify"][1] == [True, None]
    assert len(results) == len(copies)

    intact_scores = {int(i): s for i, s in reference["salvage"][1].items()}
    genuine = {i: {float(np.float32(10.0 + i / N)), float(np.float32(1.0 + i / N))} for i in range(N)}  # every version
    in_use = 2 + sum(t.branch_pages + t.leaf_pages + t.overflow_pages for t in (meta.main, meta.free))
    detected = []
    for name, result in results.items():
        copy = copies[name]
        reads = [result[c] for c in ("stats", "export", "merge", "train", "build")]
        if all(r[0] == "ok" for r in reads):  # a page not in use: the same answers as the intact store
            assert [r[1] for r in reads[:4]] == [reference[c][1] for c in ("stats", "export", "merge", "train")], name
            assert result["verify"][1] == [True, None], name
            assert result["salvage"][0] == "ok", name
            continue
        detected.append(name)
        for command, r in zip(("stats", "export", "merge", "train", "build"), reads):
            assert r[0] == "error", (name, command)
            assert f"the fit cache {copy} is damaged" in r[2], (name, command, r)
            assert f"spin-diff cache verify {copy}" in r[2] and f"spin-diff cache salvage {copy}" in r[2]
            assert "\n" not in r[2]
        assert leftovers[name] == [], (name, leftovers[name])  # an aborted merge leaves nothing
        assert result["verify"][1][0] is False and result["verify"][1][1], name
        if result["salvage"][0] == "error":  # only when the header itself is gone
            assert "header record" in result["salvage"][2], (name, result["salvage"])
            continue
        salvaged = {int(i): s for i, s in result["salvage"][1].items()}
        assert all(s in genuine[i] for i, s in salvaged.items()), name  # nothing made up
        lost = [i for i in range(N) if salvaged.get(i) != intact_scores[i]]
        if not name.startswith("cut"):
            assert len(lost) <= PAGE // 470, (name, lost)  # at most one page's records
    # every page in use, zeroed or overwritten, is detected; every cut is
    assert sum(name.startswith("zero") for name in detected) == in_use
    assert sum(name.startswith("random") for name in detected) == in_use
    assert all(name in detected for name in copies if name.startswith("cut"))


@pytest.mark.slow
def test_the_commands_answer_a_damaged_store_with_one_line(tmp_path, intact, tiny_dataset):
    """The real commands, as subprocesses: the zeroed root page that made LMDB abort (134) and
    the cut that made it fault (135) get exit status 2 and one line."""
    size = (intact / "data.mdb").stat().st_size
    zeroed, cut = shutil.copytree(intact, tmp_path / "zeroed"), shutil.copytree(intact, tmp_path / "cut")
    root = check_tree(intact / "data.mdb").main.root
    with open(zeroed / "data.mdb", "r+b") as handle:
        handle.seek(root * PAGE), handle.write(bytes(PAGE))
    os.truncate(cut / "data.mdb", size // 2)
    commands = [
        (zeroed, ["cache", "stats", zeroed]),
        (zeroed, ["cache", "export", zeroed, "--out", tmp_path / "x.npz"]),
        (zeroed, ["cache", "merge", tmp_path / "merged", zeroed]),
        (cut, ["cache", "build", "--dataset", tiny_dataset, "--cache", cut, "--limit", "0", "--init", "mean", "--quiet"]),
        (cut, ["train", "--dataset", tiny_dataset, "--cache", cut, "--out", tmp_path / "run", "--threads", "1",
               "--quiet", "--set", "max_steps=1", "--set", "model.input=keypoints"]),
    ]  # fmt: skip
    for store, command in commands:
        done = subprocess.run([sys.executable, "-m", "spin_diff.cli.main", *map(str, command)], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (command, done.returncode, done.stderr[-1000:])
        assert f"the fit cache {store} is damaged" in lines[0] and "cache salvage" in lines[0]
    assert not (tmp_path / "merged").exists() and not (tmp_path / "x.npz").exists()
