"""torchrun with two CPU ranks (gloo): every rank's fits land, weights stay equal, resume works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import REPO_ROOT, make_keypoint_dataset, read_log

from spin_diff.cache.records import Source
from spin_diff.cache.store import FitStore

WORKER = Path(__file__).with_name("ddp_worker.py")


def _torchrun(dataset, run_dir, epochs, mode):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(WORKER), str(dataset), str(run_dir), str(epochs), mode]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _rank_indices(run_dir, rank):
    lines = (run_dir / f"indices_rank{rank}.csv").read_text().splitlines()
    return {int(line.split(",")[0]): [int(x.split(":")[1]) for x in line.split(",", 3)[3].split()] for line in lines}


@pytest.mark.slow
def test_two_gloo_ranks(body_model, tmp_path):
    dataset = make_keypoint_dataset(body_model, tmp_path / "ddp.npz", 16, seed=11)
    run_dir = tmp_path / "run"
    _torchrun(dataset, run_dir, epochs=1, mode="fresh")  # 16 / (4 x 2 ranks) = 2 steps

    weights = [torch.load(run_dir / f"weights_rank{r}.pt") for r in range(2)]
    assert weights[0]["step"] == weights[1]["step"] == 2
    for name, value in weights[0]["state"].items():
        assert torch.equal(value, weights[1]["state"][name]), name
    initial = torch.load(run_dir / "last.pt", weights_only=False)
    assert initial["step"] == 2

    seen = [_rank_indices(run_dir, r) for r in range(2)]
    rank0 = sorted(i for rows in seen[0].values() for i in rows)
    rank1 = sorted(i for rows in seen[1].values() for i in rows)
    assert sorted(rank0 + rank1) == list(range(16))  # the ranks split the epoch
    fits = FitStore(run_dir / "fits", readonly=True).get_many("ddp", np.arange(16))
    in_loop = fits.found & (fits.source == int(Source.IN_LOOP))
    assert in_loop[rank0].all() and in_loop[rank1].all()  # both ranks' fits landed
    logged = read_log(run_dir)
    assert sum(row["improved_fits"] for row in logged[:2]) == 16  # the log sums both ranks' batches

    _torchrun(dataset, run_dir, epochs=2, mode="resume")
    weights = [torch.load(run_dir / f"weights_rank{r}.pt") for r in range(2)]
    assert weights[0]["step"] == weights[1]["step"] == 4
    for name, value in weights[0]["state"].items():
        assert torch.equal(value, weights[1]["state"][name]), name
    assert not all(torch.equal(v, initial["model"][k]) for k, v in weights[0]["state"].items())
    seen = [_rank_indices(run_dir, r) for r in range(2)]
    assert sorted(seen[0]) == sorted(seen[1]) == [0, 1, 2, 3]


@pytest.mark.slow
def test_every_node_store_receives_every_fit(body_model, tmp_path):
    """Two single-process "nodes" (torchrun's static rendezvous on this machine), each with its
    own store: both stores end up with the fits of both nodes, identical."""
    import socket

    dataset = make_keypoint_dataset(body_model, tmp_path / "nodes.npz", 16, seed=12)
    run_dir = tmp_path / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
                          "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
                          str(WORKER), str(dataset), str(run_dir), "1", "nodes"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in range(2)
    ]  # fmt: skip
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    stores = [FitStore(run_dir / f"fits_node{n}", readonly=True).get_many("nodes", np.arange(16)) for n in range(2)]
    for fits in stores:
        assert fits.found.all() and np.all(fits.source == int(Source.IN_LOOP))
    assert np.array_equal(stores[0].score, stores[1].score) and np.array_equal(stores[0].pose, stores[1].pose)
