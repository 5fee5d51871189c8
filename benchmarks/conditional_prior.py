"""Does conditioning the diffusion prior on the regressor's features help refinement? A small
same-budget comparison (the training study's feature-conditioned row in miniature, not the study).

Run: .venv/bin/python benchmarks/conditional_prior.py [--regressor-steps 800] [--prior-steps 1500]
     [--pairs 20000] [--n 48] [--threads 1]

1. Train a keypoint regressor on synthetic keypoints
   (:func:`spin_diff.training.train_keypoints.train_keypoint_regressor`).
2. Draw ``--pairs`` synthetic people (pose-sampler poses, synth's orientations, detector-like
   keypoints; another seed than the regressor's) and compute the regressor's features of
   each one's keypoints (:func:`spin_diff.fitting.conditioning.regressor_features`).
3. Train two priors of the same size on the same poses for the same steps, camera-frame
   orientation untilted: unconditional, and conditioned on the features (10% dropout).
4. Render a synthetic evaluation set (``spin-diff synth``'s generator, seed 2026) and evaluate
   the regressor alone, + SMPLify with the diffusion term, + guided refinement, once per prior
   (``spin-diff eval``'s code; the conditional prior receives the regressor's features).

Caveat, printed with the figures: every pose here comes from the pose sampler the priors and
the regressor were trained on (in-distribution for all of them), and the priors are small and
briefly trained; this is a check of the mechanism, not evidence about real data.
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
from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig, DiffusionTrainConfig
from spin_diff.diffusion.training import train_diffusion_prior
from spin_diff.evaluation.protocols import load_eval_set
from spin_diff.evaluation.run import evaluate, format_table
from spin_diff.fitting.conditioning import conditioning_record, regressor_features
from spin_diff.fitting.config import FittingConfig
from spin_diff.models.checkpoints import save_regressor
from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig
from spin_diff.training.train_keypoints import (
    KeypointTrainConfig,
    SyntheticKeypoints,
    train_keypoint_regressor,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regressor-steps", type=int, default=800)
    parser.add_argument("--width", type=int, default=256, help="regressor width and feature size")
    parser.add_argument("--prior-steps", type=int, default=1500)
    parser.add_argument("--pairs", type=int, default=20000, help="(pose, features) training pairs")
    parser.add_argument("--n", type=int, default=48, help="evaluation images")
    parser.add_argument("--rows", default="none,term,guided")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    body = load_body_model()
    tic = time.perf_counter()
    model_config = RegressorConfig(
        input="keypoints", head=HeadConfig(hidden=args.width),
        keypoints=KeypointEncoderConfig(hidden=args.width, blocks=2, feature_dim=args.width),
    )  # fmt: skip
    regressor, _ = train_keypoint_regressor(
        body, KeypointTrainConfig(steps=args.regressor_steps, model=model_config, log_every=args.regressor_steps)
    )  # fmt: skip
    print(f"regressor: {args.regressor_steps} steps x 64, width {args.width}, {time.perf_counter() - tic:.0f} s")

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint = save_regressor(regressor, folder / "regressor.pt", body)
        tic = time.perf_counter()
        people = SyntheticKeypoints(body, seed=11, pool_size=4096).sample(args.pairs)
        features = regressor_features(regressor, people.keypoints)
        poses = people.pose.double().numpy()
        print(f"pairs: {args.pairs} synthetic people and their features in {time.perf_counter() - tic:.0f} s")

        priors = {}
        for name, cond_dim in (("unconditional", 0), ("conditional", args.width)):
            config = DiffusionTrainConfig(
                model=DiffusionModelConfig(denoiser=DenoiserConfig(width=144, hidden=512, blocks=3, time_dim=128,
                                                                   cond_dim=cond_dim)),  # fmt: skip
                steps=args.prior_steps, batch_size=256, lr=1e-3, warmup_steps=100, pose_frame="camera",
                tilt_degrees=0.0, checkpoint_every=args.prior_steps, log_every=max(1, args.prior_steps // 5),
            )  # fmt: skip
            tic = time.perf_counter()
            priors[name] = train_diffusion_prior(
                poses, config, folder / name, progress=False,
                cond=features if cond_dim else None,
                conditioning=conditioning_record(regressor, checkpoint) if cond_dim else None,
            )  # fmt: skip
            log = (folder / name / "loss_log.csv").read_text().strip().splitlines()[-1].split(",")
            print(f"prior {name}: {args.prior_steps} steps x 256 in {time.perf_counter() - tic:.0f} s, "
                  f"last val loss (EMA) {float(log[2]):.4f}, at t < 250 {float(log[3]):.4f}")  # fmt: skip

        evalset_path = generate_dataset(SynthConfig(num_images=args.n, seed=2026), folder / "eval", body, progress=False)
        regressor.checkpoint_path = checkpoint
        for name, prior in priors.items():
            fitting = FittingConfig()
            fitting.diffusion.checkpoint = str(prior)
            result = evaluate(load_eval_set(evalset_path), body, regressor=regressor, source=f"keypoint regressor, {name} prior",
                              rows=args.rows.split(","), fitting=fitting, progress=False)  # fmt: skip
            print(format_table(result))
    print(
        "caveat: training pairs and evaluation people are draws from the pose sampler the regressor and both priors "
        "were trained on (in-distribution); small priors, short training: a check of the mechanism, not a study"
    )


if __name__ == "__main__":
    main()
