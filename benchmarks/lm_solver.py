"""Time to objective: the per-sample Levenberg-Marquardt solver (``optimizer: lm``) against Adam.

SPIN's recipe (``spin_stages``: camera stage then body stage, the same weighted terms) on the
synthetic batch of ``fit_throughput.py`` (sampled people, mean-pose start, SPIN's crop camera).
Two targets per problem: the final body-stage objective of 2 x 100 Adam (the project's
default solver), and, at batches up to ``--reference-max-batch``, the final objective of
SPIN's own loop (``fit_throughput.reference_smplify``: smplx's full forward every iteration,
2 x 100 Adam at lr 1e-2, as SPIN's smplify.py runs it).

Each solver runs with growing iteration counts per stage. A problem's time to objective is the
batch's wall time at the smallest count whose objective is within 0.1% of the target (every
problem of a batched fit finishes when the batch does). Reported per solver and target: the
median time to objective, the iterations per stage it took, the share that never gets there in
the sweep, and per count the shares ending lower than / more than 0.5% above the target.
Adam's rows below 100 show what stopping it early costs.

    OMP_NUM_THREADS=1 python benchmarks/lm_solver.py [--batches 64,4096] [--lm-iterations 3,5,10,20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_throughput import machine, reference_smplify, synthetic_batch  # noqa: E402

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.fitting.config import FittingConfig, spin_stages  # noqa: E402
from spin_diff.fitting.smplify import SMPLify, gmm_prior_for  # noqa: E402


def run(model, optimizer, iterations, problem):
    """(wall seconds, final body-stage objective (B,)) of one batched fit."""
    keypoints, pose, betas, transl = problem
    fitter = SMPLify(model, FittingConfig(optimizer=optimizer, stages=spin_stages(iterations)))
    start = time.perf_counter()
    result = fitter.fit(keypoints, pose, betas, transl)
    return time.perf_counter() - start, result.stage_losses["body"]


def report(name: str, rows, target: torch.Tensor) -> None:
    """The per-count table and the time to objective of one solver against one target."""
    for count, wall, loss in rows:
        rel = (loss - target) / target.abs()
        print(f"  {name:4s} {count:4d} it/stage  {wall:7.2f} s  within 0.1%: {(rel <= 1e-3).float().mean():4.2f}  "
              f"lower: {(rel < 0).float().mean():4.2f}  >0.5% above: {(rel > 5e-3).float().mean():4.2f}  "
              f"median rel {rel.median():+.1e}")
    walls = torch.tensor([wall for _, wall, _ in rows])
    counts = torch.tensor([count for count, _, _ in rows])
    reached = torch.stack([(loss - target) / target.abs() <= 1e-3 for _, _, loss in rows])  # (runs, B)
    first = reached.float().argmax(0)
    ok = reached.any(0)
    if ok.any():
        print(f"  {name}: time to objective median {walls[first[ok]].median():.2f} s, iterations/stage median "
              f"{counts[first[ok]].float().median():.0f}, never within 0.1% in the sweep: {(~ok).float().mean():.2f}")
    else:
        print(f"  {name}: no problem within 0.1% in the sweep")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,4096")
    parser.add_argument("--adam-iterations", default="25,50,75,100")
    parser.add_argument("--lm-iterations", default="3,5,10,20")
    parser.add_argument("--reference-max-batch", type=int, default=64,
                        help="largest batch SPIN's loop is run on in full (about 1 fit/s on one thread)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_body_model()
    gmm = gmm_prior_for(FittingConfig(), model)
    print(f"machine: {machine('cpu')}; torch {torch.__version__}")
    for batch in [int(b) for b in args.batches.split(",")]:
        problem = synthetic_batch(model, batch, seed=0)
        for name in ("adam", "lm"):  # warm-up
            run(model, name, 1, tuple(x[:2] for x in problem))
        runs = {name: [(n, *run(model, name, n, problem)) for n in (int(c) for c in counts.split(","))]
                for name, counts in (("adam", args.adam_iterations), ("lm", args.lm_iterations))}  # fmt: skip
        adam_100 = [loss for n, _, loss in runs["adam"] if n == 100]
        targets = {"2 x 100 Adam": adam_100[0] if adam_100 else run(model, "adam", 100, problem)[1]}
        if batch <= args.reference_max_batch:
            start = time.perf_counter()
            targets["SPIN's loop (smplx forward)"], _ = reference_smplify(model, gmm, *problem, 100)
            print(f"\nbatch {batch}: SPIN's loop took {time.perf_counter() - start:.1f} s")
        for target_name, target in targets.items():
            print(f"\nbatch {batch}, target: {target_name} (median body-stage objective {target.median():.1f})")
            for name, rows in runs.items():
                report(name, rows, target)


if __name__ == "__main__":
    main()
