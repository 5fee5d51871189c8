"""Run by torchrun in tests/training/test_distributed.py: train, then save this rank's weights."""

import os
import sys
from pathlib import Path

import torch
from training_helpers import (
    tiny_config,  # found beside this script: Python puts a script's folder first on its path
)

from spin_diff.training.run import train


def main() -> None:
    dataset, run_dir, epochs, mode = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.set_num_threads(1)
    config = tiny_config(batch=4, iterations=6, epochs=epochs, log_indices="true")
    rank = int(os.environ["RANK"])
    # "nodes": each node (torchrun's GROUP_RANK) keeps its own store, as on machines without a shared disk
    cache = run_dir / f"fits_node{os.environ['GROUP_RANK']}" if mode == "nodes" else None
    report = train(config, [(dataset, None)], run_dir, cache=cache, resume=mode == "resume", progress=False)
    torch.save({"step": report.step, "state": report.model.state_dict()}, run_dir / f"weights_rank{rank}.pt")


if __name__ == "__main__":
    main()
