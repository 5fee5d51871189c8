"""The keypoint regressor as a start for fitting: train it on synthetic keypoints, then evaluate
the mean pose and the regressor, alone and refined, on a rendered synthetic set.

Run: .venv/bin/python benchmarks/keypoint_regressor.py [--steps 1500] [--n 48] [--threads 1]

1. Train a keypoint regressor (MLP 512 wide, 2 blocks, SPIN's head) with
   :func:`spin_diff.training.train_keypoints.train_keypoint_regressor`: fresh batches of 64
   synthetic people per step (pose-sampler poses, detector-like corruption).
2. Render a synthetic set with ``spin-diff synth``'s generator (another seed, detector-like
   keypoints) and evaluate, from the mean pose and from the regressor, the rows: alone,
   + SMPLify (GMM), + SMPLify with the diffusion term, + guided refinement (default fitting).

Caveat, printed with the figures: the evaluation people come from the same pose sampler and
body model as the training people (other draws), so this measures the regressor within its
training distribution, not on real detections.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

try:
    import spin_diff  # noqa: F401
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spin_diff.body.model import load_body_model
from spin_diff.data.synth import SynthConfig, generate_dataset
from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.evaluation.run import evaluate, format_table
from spin_diff.fitting.config import FittingConfig
from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig
from spin_diff.training.train_keypoints import KeypointTrainConfig, train_keypoint_regressor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--n", type=int, default=48, help="evaluation images")
    parser.add_argument("--rows", default="none,smplify,term,guided")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    body = load_body_model()
    model_config = RegressorConfig(
        input="keypoints",
        head=HeadConfig(hidden=args.width),
        keypoints=KeypointEncoderConfig(hidden=args.width, blocks=2, feature_dim=args.width),
    )
    config = KeypointTrainConfig(steps=args.steps, model=model_config, log_every=max(1, args.steps // 5))
    start = time.perf_counter()
    regressor, history = train_keypoint_regressor(body, config)
    print(
        f"trained {args.steps} steps x 64 in {time.perf_counter() - start:.0f} s ({args.threads} thread(s))"
    )
    for entry in history:
        print(
            f"  step {entry['step']:5d}: loss {entry['loss']:.4f} "
            f"(3D {entry['3d']:.4f}, rotations {entry['pose']:.4f})"
        )
    rows = args.rows.split(",")
    with tempfile.TemporaryDirectory() as folder:
        path = generate_dataset(SynthConfig(num_images=args.n, seed=2026), folder, body, progress=False)
        for name, model in (("mean", None), ("keypoint regressor", regressor)):
            evalset = load_eval_set(path)
            result = evaluate(
                evalset,
                body,
                regressor=model,
                source=name,
                rows=rows,
                fitting=FittingConfig(),
                progress=False,
            )
            print(format_table(result).replace(str(path), f"synth set ({args.n} people, seed 2026)"))
    print(
        "caveat: evaluation people are new draws from the pose sampler and body model the regressor was "
        "trained on (detector-like keypoints); not evidence about real images"
    )


if __name__ == "__main__":
    main()
