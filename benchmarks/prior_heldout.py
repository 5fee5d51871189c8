"""How well pose priors score real held-out poses, per split and per subject.

For each GMM file (SMPLify's ``gmm_08.pkl`` format) the mean log-likelihood of the held-out
body poses (69 values, higher is better) and the median max-mixture energy SMPLify's term
uses (lower is better); for each diffusion prior checkpoint the denoising error (the DDPM
'simple' loss: epsilon-prediction MSE, lower is better) at the same fixed timesteps and noise
for every prior, averaged over ``--timesteps``. Splits: the bundled CMU ``val`` / ``test``
clips (subjects also in training) and ``val_subjects`` / ``test_subjects`` (whole held-out
subjects); one row per split and per subject in it.

    python benchmarks/prior_heldout.py --gmm new=spin_diff/body/assets/free_body/gmm_08.pkl \\
        --gmm old=/tmp/old_gmm_08.pkl --diffusion new=spin_diff/body/assets/free_body/diffusion_prior.pt \\
        --diffusion old=/tmp/old_diffusion_prior.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.data.real_poses import REAL_SPLITS, real_pose_path  # noqa: E402
from spin_diff.diffusion.model import load_diffusion_prior  # noqa: E402
from spin_diff.diffusion.schedule import q_sample  # noqa: E402
from spin_diff.geometry.rotations import axis_angle_to_matrix  # noqa: E402
from spin_diff.priors.em import gmm_log_likelihood  # noqa: E402
from spin_diff.priors.gmm import MaxMixturePrior, read_gmm_file  # noqa: E402


def denoising_error(prior, pose: np.ndarray, timesteps: list[int], seed: int = 0) -> float:
    """Mean epsilon-prediction MSE of ``prior`` on poses (N, 72) at each of ``timesteps``, the
    noise drawn from ``seed`` (the same for every prior of the same data size)."""
    rotmats = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float32).reshape(-1, 24, 3))
    x0, _ = prior.encode(rotmats, torch.zeros(len(pose), 10) if prior.config.use_betas else None)
    generator = torch.Generator().manual_seed(seed)
    errors = []
    with torch.no_grad():
        for t in timesteps:
            noise = torch.randn(x0.shape, generator=generator)
            step = torch.full((len(pose),), int(t), dtype=torch.long)
            x_t = q_sample(prior.alpha_bars, x0, step, noise)
            errors.append(float(((prior.denoiser(x_t, step, None) - noise) ** 2).mean()))
    return float(np.mean(errors))


def _groups(split: str):
    with np.load(real_pose_path(split)) as data:
        pose, subject = data["pose"].astype(np.float64), data["subject"].astype(str)
    yield f"{split} (all)", pose
    for name in sorted(set(subject.tolist())):
        yield f"{split}: subject {name}", pose[subject == name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gmm", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--diffusion", action="append", default=[], metavar="LABEL=PATH")
    parser.add_argument("--timesteps", default="10,50,100,250,500")
    parser.add_argument("--splits", default=",".join(REAL_SPLITS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gmms = [(spec.split("=", 1)[0], read_gmm_file(spec.split("=", 1)[1])) for spec in args.gmm]
    priors = [(spec.split("=", 1)[0], load_diffusion_prior(spec.split("=", 1)[1])) for spec in args.diffusion]
    for _, prior in priors:
        prior.eval()
    timesteps = [int(t) for t in args.timesteps.split(",")]
    header = ["poses"]
    header += [f"GMM {label} loglik" for label, _ in gmms] + [f"GMM {label} energy" for label, _ in gmms]
    header += [f"diffusion {label} error" for label, _ in priors]
    print(f"held-out real poses; GMM: mean log-likelihood (higher better) and median max-mixture energy "
          f"(lower better); diffusion: denoising MSE at t={timesteps} (lower better); {args.threads} thread(s)")  # fmt: skip
    print(f"| set | {' | '.join(header)} |")
    print(f"| --- |{' --- |' * len(header)}")
    for split in [s.strip() for s in args.splits.split(",") if s.strip()]:
        if not real_pose_path(split).is_file():
            print(f"| {split} | (not built) |")
            continue
        for name, pose in _groups(split):
            row = [str(len(pose))]
            row += [f"{float(gmm_log_likelihood(pose[:, 3:], params).mean()):.1f}" for _, params in gmms]
            for _, params in gmms:
                with torch.no_grad():
                    energy = MaxMixturePrior(params, dtype=torch.float64)(torch.as_tensor(pose[:, 3:]))
                row.append(f"{float(energy.median()):.1f}")
            row += [f"{denoising_error(prior, pose, timesteps):.4f}" for _, prior in priors]
            print(f"| {name} | {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
