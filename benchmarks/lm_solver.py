"""Time to objective: the per-sample damped Newton solver (``optimizer: lm``) against Adam.

SPIN's recipe (``spin_stages``: camera stage then body stage; the project's own objective,
SPIN's SMPLify code is not in the repository) on the synthetic batch of
``fit_throughput.py`` (sampled people, mean-pose start). The target of each problem is the
final body-stage objective of 2 x 100 Adam iterations. Each solver is run with growing
iteration counts per stage; a problem's time to objective is the wall time of the batched fit
at the smallest count whose objective is within 0.1% of the target (the batch's wall time:
every problem in a batched fit finishes when the batch does). Reported per solver: median
time to objective over the problems that reach it, iterations needed, the share that never
reaches it, and, at the largest count, the share ending lower / higher / more than 0.5% above
Adam.

    OMP_NUM_THREADS=1 python benchmarks/lm_solver.py [--batches 64] [--lm-iterations 5,10,20,40]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_throughput import synthetic_batch  # noqa: E402

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.fitting.config import FittingConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify  # noqa: E402


def run(model, optimizer, iterations, problem):
    keypoints, pose, betas, transl = problem
    fitter = SMPLify(model, FittingConfig(optimizer=optimizer, stages=spin_stages(iterations)))
    t0 = time.perf_counter()
    result = fitter.fit(keypoints, pose, betas, transl)
    return time.perf_counter() - t0, result.stage_losses["body"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64")
    parser.add_argument("--adam-iterations", default="25,50,75,100")
    parser.add_argument("--lm-iterations", default="5,10,20,40")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_body_model()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    for batch in [int(b) for b in args.batches.split(",")]:
        problem = synthetic_batch(model, batch, seed=0)
        runs = {}
        for name, counts in (("adam", args.adam_iterations), ("lm", args.lm_iterations)):
            runs[name] = [(n, *run(model, name, n, problem)) for n in (int(c) for c in counts.split(","))]
        target = runs["adam"][-1][2] if runs["adam"][-1][0] == 100 else run(model, "adam", 100, problem)[1]
        print(f"\nbatch {batch}: target = body-stage objective of 2 x 100 Adam (median {target.median():.1f})")
        print("solver  iters/stage  wall_s   reached(<=+0.1%)  lower  higher  >0.5%above")
        for name, rows in runs.items():
            for n, wall, loss in rows:
                rel = (loss - target) / target.abs()
                print(f"{name:6s}  {n:11d}  {wall:6.2f}   {(rel <= 1e-3).float().mean():16.2f}  "
                      f"{(rel < 0).float().mean():5.2f}  {(rel > 0).float().mean():6.2f}  {(rel > 5e-3).float().mean():10.2f}")
        for name, rows in runs.items():
            walls = torch.tensor([w for _, w, _ in rows])
            reached = torch.stack([(loss - target) / target.abs() <= 1e-3 for _, _, loss in rows])  # (runs, B)
            first = torch.where(reached.any(0), reached.float().argmax(0), torch.full((batch,), -1))
            ok = first >= 0
            iters = torch.tensor([n for n, _, _ in rows])
            med_t = walls[first[ok]].median().item() if ok.any() else float("nan")
            med_i = iters[first[ok]].float().median().item() if ok.any() else float("nan")
            print(f"{name}: time to objective median {med_t:.2f} s (batch wall time), iterations/stage median "
                  f"{med_i:.0f}, {ok.float().mean():.2f} of problems reach it")


if __name__ == "__main__":
    main()
