"""Keypoint regressors as fitting starts, alone: PA-MPJPE of checkpoints on the fitting problems.

The problems of ``tests/fitting/test_bundled_regressor.py`` (``--n`` 64 pose-sampler people, seed
90210, and 64 people of the held-out CMU test clips, seed 90211; the ``"fitting"`` preset of
:mod:`spin_diff.data.people`, detector-like keypoints), each checkpoint's start scored against
the truth (mm, 14 LSP joints), beside the mean pose. ``--poses`` picks the sets: ``sampler``,
``test`` (the default pair), ``val`` (64 people of the CMU validation clips, seed 90212: to
choose between checkpoints without looking at the test clips), and ``test_subjects`` /
``val_subjects`` (64 people of the whole held-out CMU subjects, seeds 90213 / 90214). Compares regressors trained on
other people distributions, e.g. the bundled one against an earlier one from git.
``--inputs`` picks which keypoints each person's detector gives (``make_problems``' ``inputs``:
``all`` 49, SPIN's datasets; ``openpose`` the 25 OpenPose ones less the face points the head
hides; ``detector`` those less the small toes, as the bundled detector gives), one column per
set and input; with both ``openpose`` and ``detector``, a column ``op~det`` adds the PA-MPJPE
between the two starts of each person (how much the regressor's start moves with the joints a
detector lacks; the same people and keypoints otherwise); ``--mpjpe`` adds each start's MPJPE:

    git show adb439e:spin_diff/models/assets/keypoint_regressor.pt > /tmp/depth_only.pt
    python benchmarks/regressor_starts.py bundled=spin_diff/models/assets/keypoint_regressor.pt \\
        depth_only=/tmp/depth_only.pt
    python benchmarks/regressor_starts.py bundled=spin_diff/models/assets/keypoint_regressor.pt \\
        --poses val --inputs all,openpose,detector --mpjpe
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import INPUTS, make_problems  # noqa: E402
from spin_diff.data.real_poses import load_real_poses  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors  # noqa: E402
from spin_diff.fitting.initialisation import regressor_start  # noqa: E402
from spin_diff.models.checkpoints import load_regressor  # noqa: E402


def predict(body, regressor, people):
    with torch.no_grad():
        return regressor_start(regressor, people.keypoints.float(), body.num_betas)


def start_pa_mpjpe(body, regressor, people, with_mpjpe: bool = False) -> str:
    """Mean PA-MPJPE (mm) of a regressor's prediction alone on problems with known truth
    (``with_mpjpe``: "PA / MPJPE", the second also scoring the body's orientation)."""
    start = predict(body, regressor, people)
    errors = joint_errors(body, start.rotmat, start.betas, people.pose, people.betas)
    pa = f"{float(errors['pa_mpjpe'].mean()):.1f}"
    return f"{pa} / {float(errors['mpjpe'].mean()):.1f}" if with_mpjpe else pa


def starts_apart(body, regressor, first, second) -> float:
    """Mean PA-MPJPE (mm) between the regressor's starts from two inputs of the same people."""
    a, b = predict(body, regressor, first), predict(body, regressor, second)
    return float(joint_errors(body, a.rotmat, a.betas, b.rotmat, b.betas)["pa_mpjpe"].mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="LABEL=PATH of keypoint regressor checkpoints")
    parser.add_argument("--poses", default="sampler,test",
                        help="comma-separated problem sets: sampler, test (CMU test clips), val (CMU validation clips), "
                        "test_subjects / val_subjects (whole held-out CMU subjects)")
    parser.add_argument("--n", type=int, default=64, help="people per set")
    parser.add_argument("--inputs", default="all", help=f"comma-separated: {', '.join(INPUTS)}")
    parser.add_argument("--mpjpe", action="store_true", help="print PA-MPJPE / MPJPE in each start column")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    if not inputs or any(name not in INPUTS for name in inputs):
        parser.error(f"--inputs {args.inputs!r}: choose from {', '.join(INPUTS)}")
    torch.set_num_threads(args.threads)
    body = load_body_model()
    corruption = CorruptionConfig.preset("detector")
    sets = {  # name -> (seed, CMU split or None for the pose sampler)
        "sampler": (90_210, None), "cmu_test": (90_211, "test"), "cmu_val": (90_212, "val"),
        "cmu_test_subjects": (90_213, "test_subjects"), "cmu_val_subjects": (90_214, "val_subjects"),
    }  # fmt: skip
    names = {"sampler": "sampler", "test": "cmu_test", "val": "cmu_val", "test_subjects": "cmu_test_subjects",
             "val_subjects": "cmu_val_subjects"}
    chosen = [name.strip() for name in args.poses.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in names]
    if unknown or not chosen:
        parser.error(f"--poses {args.poses!r}: choose from {sorted(names)}")
    problems = {}  # (set, inputs) -> problems
    for name in chosen:
        seed, split = sets[names[name]]
        poses = None if split is None else load_real_poses(split)
        for kind in inputs:
            problems[names[name], kind] = make_problems(body, args.n, seed=seed, corruption=corruption, poses=poses,
                                                        inputs=kind)  # fmt: skip
    apart = [names[name] for name in chosen] if {"openpose", "detector"} <= set(inputs) else []
    columns = [name if len(inputs) == 1 else f"{name} {kind}" for name, kind in problems]
    columns += [f"{name} op~det" for name in apart]
    scores = "PA-MPJPE / MPJPE" if args.mpjpe else "PA-MPJPE"
    print(f"start alone, {scores} mean (mm), {args.n} people each, detector-like keypoints; "
          f"{args.threads} torch thread(s)")
    print(f"| start | {' | '.join(columns)} |")
    print(f"| --- |{' --- |' * len(columns)}")
    mean_row = []
    for people in problems.values():
        count = people.pose.shape[0]
        errors = joint_errors(body, body.mean_pose_rotmat(count), torch.zeros_like(people.betas), people.pose,
                              people.betas)  # fmt: skip
        pa, full = float(errors["pa_mpjpe"].mean()), float(errors["mpjpe"].mean())
        mean_row.append(f"{pa:.1f} / {full:.1f}" if args.mpjpe else f"{pa:.1f}")
    print(f"| mean pose | {' | '.join(mean_row + ['0.0'] * len(apart))} |")
    for spec in args.checkpoints:
        label, path = spec.split("=", 1)
        regressor = load_regressor(path, body=body).eval()
        row = [start_pa_mpjpe(body, regressor, people, args.mpjpe) for people in problems.values()]
        row += [f"{starts_apart(body, regressor, problems[n, 'openpose'], problems[n, 'detector']):.1f}" for n in apart]
        print(f"| {label} | {' | '.join(row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
