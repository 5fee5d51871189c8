"""Train a diffusion pose prior conditioned on the bundled keypoint regressor's features (ScoreHMR).

Training pairs: ``--people`` people of the real CMU training split
(``spin_diff/data/poses/cmu_train.npz``, rebuilt by ``scripts/build_cmu_pose_sets.py``), drawn
as the fitting problems are (``make_problems``: SPIN's crop camera, detector-like keypoints),
each pose in its camera frame beside the features the bundled regressor computes from its
corrupted keypoints. The denoiser, steps and schedule are the bundled unconditional prior's
(``scripts/train_free_diffusion_prior.py``), with the features as its conditioning (10% of them
dropped in training, so it also runs unconditionally).

    python scripts/train_conditional_prior.py --out /tmp/conditional_prior.pt [--steps 8000] [--people 15000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from train_free_diffusion_prior import BUNDLED_DENOISER  # noqa: E402

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_problems  # noqa: E402
from spin_diff.data.real_poses import POSES_DIR  # noqa: E402
from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig, DiffusionTrainConfig  # noqa: E402
from spin_diff.diffusion.training import train_diffusion_prior  # noqa: E402
from spin_diff.fitting.conditioning import conditioning_record, regressor_features  # noqa: E402
from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR  # noqa: E402
from spin_diff.models.checkpoints import load_regressor  # noqa: E402
from spin_diff.priors.pose_files import read_smpl_poses  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the prior's weights go (.pt)")
    parser.add_argument("--people", type=int, default=15_000, help="training people (at most the split's poses)")
    parser.add_argument("--steps", type=int, default=8_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run-dir", type=Path, default=REPO / "outputs" / "conditional_prior_run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    body = load_body_model()
    regressor = load_regressor(BUNDLED_KEYPOINT_REGRESSOR, body).eval()
    tic = time.time()
    poses = read_smpl_poses(POSES_DIR / "cmu_train.npz")  # gitignored: scripts/build_cmu_pose_sets.py
    people = make_problems(body, min(args.people, len(poses)), seed=args.seed + 31_000,
                           corruption=CorruptionConfig.preset("detector"), poses=poses)  # fmt: skip
    features = regressor_features(regressor, people.keypoints.float())
    paired = time.time() - tic
    denoiser = DenoiserConfig(**{**vars(BUNDLED_DENOISER), "cond_dim": int(features.shape[1])})
    config = DiffusionTrainConfig(
        model=DiffusionModelConfig(orientation="canonical", denoiser=denoiser),
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, lr_min=args.lr / 20, warmup_steps=500,
        ema_decay=0.999, seed=args.seed, checkpoint_every=2000, log_every=250, threads=args.threads,
        pose_frame="camera", tilt_degrees=0.0,  # each pose with the features of its own view
    )  # fmt: skip
    tic = time.time()
    record = conditioning_record(regressor, BUNDLED_KEYPOINT_REGRESSOR)
    path = train_diffusion_prior(people.pose, config, args.run_dir, cond=features, conditioning=record, progress=False)
    trained = time.time() - tic
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, args.out)
    last = (args.run_dir / "loss_log.csv").read_text().strip().splitlines()[-1]
    print(json.dumps({"people": int(people.pose.shape[0]), "feature_dim": int(features.shape[1]),
                      "steps": args.steps, "pairing_seconds": round(paired, 1), "training_seconds": round(trained, 1),
                      "last_log_line (step,train,val_ema,val_ema_small_t,lr,s)": last, "file": str(args.out),
                      "file_bytes": args.out.stat().st_size}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
