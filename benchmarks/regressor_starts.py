"""Keypoint regressors as fitting starts, alone: PA-MPJPE of checkpoints on the fitting problems.

The problems of ``tests/fitting/test_bundled_regressor.py`` (64 pose-sampler people, seed
90210, and 64 people of the held-out CMU test clips, seed 90211; the ``"fitting"`` preset of
:mod:`spin_diff.data.people`, detector-like keypoints), each checkpoint's start scored against
the truth (mm, 14 LSP joints), beside the mean pose. ``--poses`` picks the sets: ``sampler``,
``test`` (the default pair), ``val`` (64 people of the CMU validation clips, seed 90212: to
choose between checkpoints without looking at the test clips), and ``test_subjects`` /
``val_subjects`` (64 people of the whole held-out CMU subjects, seeds 90213 / 90214). Compares regressors trained on
other people distributions, e.g. the bundled one against an earlier one from git:

    git show adb439e:spin_diff/models/assets/keypoint_regressor.pt > /tmp/depth_only.pt
    python benchmarks/regressor_starts.py bundled=spin_diff/models/assets/keypoint_regressor.pt \\
        depth_only=/tmp/depth_only.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_problems  # noqa: E402
from spin_diff.data.real_poses import load_real_poses  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors  # noqa: E402
from spin_diff.fitting.initialisation import regressor_start  # noqa: E402
from spin_diff.models.checkpoints import load_regressor  # noqa: E402


def start_pa_mpjpe(body, regressor, people) -> float:
    """Mean PA-MPJPE (mm) of a regressor's prediction alone on problems with known truth."""
    with torch.no_grad():
        start = regressor_start(regressor, people.keypoints.float(), body.num_betas)
    errors = joint_errors(body, start.rotmat, start.betas, people.pose, people.betas)
    return float(errors["pa_mpjpe"].mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="LABEL=PATH of keypoint regressor checkpoints")
    parser.add_argument("--poses", default="sampler,test",
                        help="comma-separated problem sets: sampler, test (CMU test clips), val (CMU validation clips), "
                        "test_subjects / val_subjects (whole held-out CMU subjects)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    body = load_body_model()
    corruption = CorruptionConfig.preset("detector")
    makers = {
        "sampler": lambda: make_problems(body, 64, seed=90_210, corruption=corruption),
        "cmu_test": lambda: make_problems(body, 64, seed=90_211, corruption=corruption, poses=load_real_poses("test")),
        "cmu_val": lambda: make_problems(body, 64, seed=90_212, corruption=corruption, poses=load_real_poses("val")),
        "cmu_test_subjects": lambda: make_problems(body, 64, seed=90_213, corruption=corruption,
                                                   poses=load_real_poses("test_subjects")),
        "cmu_val_subjects": lambda: make_problems(body, 64, seed=90_214, corruption=corruption,
                                                  poses=load_real_poses("val_subjects")),
    }
    names = {"sampler": "sampler", "test": "cmu_test", "val": "cmu_val", "test_subjects": "cmu_test_subjects",
             "val_subjects": "cmu_val_subjects"}
    chosen = [name.strip() for name in args.poses.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in names]
    if unknown or not chosen:
        parser.error(f"--poses {args.poses!r}: choose from {sorted(names)}")
    problems = {names[name]: makers[names[name]]() for name in chosen}
    print(f"start alone, PA-MPJPE mean (mm), 64 people each, detector keypoints; {args.threads} torch thread(s)")
    print(f"| start | {' | '.join(problems)} |")
    print(f"| --- |{' --- |' * len(problems)}")
    mean_row = []
    for people in problems.values():
        count = people.pose.shape[0]
        errors = joint_errors(body, body.mean_pose_rotmat(count), torch.zeros_like(people.betas), people.pose,
                              people.betas)  # fmt: skip
        mean_row.append(f"{float(errors['pa_mpjpe'].mean()):.1f}")
    print(f"| mean pose | {' | '.join(mean_row)} |")
    for spec in args.checkpoints:
        label, path = spec.split("=", 1)
        regressor = load_regressor(path, body=body).eval()
        row = [f"{start_pa_mpjpe(body, regressor, people):.1f}" for people in problems.values()]
        print(f"| {label} | {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
