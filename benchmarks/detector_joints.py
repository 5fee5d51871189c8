"""Do `spin-diff fit`'s start and fit move with the joints a detector lacks? On CMU people.

A photo's keypoints come from OpenPose (a ``--keypoints`` file) or from the bundled detector
(none), and the two mark different joints: the detector has no small toes, and both leave out
the face points the head hides. This runs the same people of the real CMU ``--split`` in a
1280x960 photo (:func:`spin_diff.data.keypoint_sets.make_photo_problems`, detector-like
corruption, seed of ``benchmarks/photo_starts.py``) twice, with ``inputs="openpose"`` and with
``inputs="detector"`` (the same keypoints, the small toes removed), through what ``spin-diff fit``
runs (``photo_starts.run``: the regressor's start alone, and the ``photo`` recipe, the default),
and prints per candidate regressor and input the PA-MPJPE / MPJPE of the start and of the fit
(mm, 14 LSP joints), then the PA-MPJPE between the two inputs' starts and fits of each person
(mean, median, share within 30 mm: the agreement ``benchmarks/detector_fit.py`` measures on
real photos, here with both inputs from one truth).

Candidates: ``LABEL=REGRESSOR[,PRIOR]``: a keypoint regressor checkpoint and the diffusion prior
conditioned on it (``scripts/train_conditional_prior.py``); without PRIOR, the bundled regressor
reads the bundled conditional prior (``bundled`` for the bundled file) and any other the
unconditional one.

    python benchmarks/detector_joints.py --split val bundled \\
        "face 0.5, toes 0.5=/tmp/kp_v2.pt,/tmp/kp_prior_v2.pt"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photo_starts import SEEDS, errors, people_of, run  # noqa: E402

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_photo_problems  # noqa: E402
from spin_diff.data.real_poses import load_real_poses  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors  # noqa: E402
from spin_diff.fitting.initialisation import resolve_init  # noqa: E402

KINDS = ("openpose", "detector")  # make_photo_problems' inputs, compared
AGREE_MM = 30.0  # the agreement target of the detected-vs-OpenPose fits on real photos


def candidates(specs: list[str]) -> list[tuple[str, str, str | None]]:
    """(label, regressor path or 'regressor', prior path or None) of each ``LABEL=REG[,PRIOR]``."""
    out = []
    for spec in specs:
        if spec == "bundled":
            out.append(("bundled", "regressor", None))
            continue
        label, _, paths = spec.partition("=")
        regressor, _, prior = paths.partition(",")
        if not label or not regressor:
            raise SystemExit(f"candidate {spec!r}: write LABEL=REGRESSOR[,PRIOR] or 'bundled'")
        out.append((label, regressor, prior or None))
    return out


def apart(model, a: dict, b: dict) -> torch.Tensor:
    """(N,) PA-MPJPE (mm) between two fits of the same people."""
    return joint_errors(model, a["pose"].float(), a["betas"].float(), b["pose"].float(), b["betas"].float())["pa_mpjpe"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("candidates", nargs="+", help="'bundled' or LABEL=REGRESSOR[,PRIOR]")
    parser.add_argument("--split", default="val", choices=sorted(SEEDS))
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="people per fit batch (spin-diff fit's default)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_body_model()
    poses = load_real_poses(args.split)
    problems = {kind: make_photo_problems(model, args.n, seed=SEEDS[args.split], poses=poses, inputs=kind,
                                          corruption=CorruptionConfig.preset("detector")) for kind in KINDS}  # fmt: skip
    people = {kind: people_of(problems[kind], args.split) for kind in KINDS}
    print(f"{args.n} people of the real CMU {args.split} split in a 1280x960 photo, detector-like keypoints with "
          f"the face points the head hides missing; 'detector' also without small toes; batch {args.batch}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    header = (f"{'candidate':<24} {'input':<9} | {'start PA':>8} {'MPJPE':>6} | {'fit PA':>7} {'MPJPE':>6} | "
              f"{'s/pers':>6}")
    print(header)
    print("-" * len(header))
    agreement = []
    for label, path, prior in candidates(args.candidates):
        regressor = resolve_init(path, model, images_available=False)
        fits = {}
        for kind in KINDS:
            start = run(model, "photo", people[kind], args.batch, regressor=regressor, start_only=True, prior=prior)
            fit = run(model, "photo", people[kind], args.batch, regressor=regressor, prior=prior)
            fits[kind] = (start, fit)
            s, f = errors(model, problems[kind], start), errors(model, problems[kind], fit)
            print(f"{label:<24} {kind:<9} | {s['pa_mpjpe'].mean():8.1f} {s['mpjpe'].mean():6.1f} | "
                  f"{f['pa_mpjpe'].mean():7.1f} {f['mpjpe'].mean():6.1f} | {fit['seconds']:6.2f}")
        starts, fitted = (apart(model, fits["openpose"][i], fits["detector"][i]) for i in (0, 1))
        agreement.append((label, starts, fitted))
    print(f"\nPA-MPJPE between the openpose and detector inputs' results of each person (mm): mean / median / "
          f"share <= {AGREE_MM:g}")
    for label, starts, fitted in agreement:
        share = lambda x: 100 * (x <= AGREE_MM).float().mean()  # noqa: E731
        print(f"{label:<24} starts {starts.mean():5.1f} / {starts.median():5.1f} / {share(starts):3.0f}%   "
              f"fits {fitted.mean():5.1f} / {fitted.median():5.1f} / {share(fitted):3.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
