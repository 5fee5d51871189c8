"""Train the bundled keypoint regressor, the default start (``--init regressor``) of fitting.

A narrow keypoint-input regressor (MLP encoder and IEF head of width 384, a few MB) trained by
:func:`spin_diff.training.train_keypoints.train_keypoint_regressor` on fresh synthetic people
whose poses come from the same mix the bundled priors use (``build_free_priors.training_pose_mix``:
the real CMU training split ``spin_diff/data/poses/cmu_train.npz`` with each pose's own tilt,
plus a share of pose-sampler poses where mocap is thin), drawn by the one people generator's
``"regressor"`` preset (:mod:`spin_diff.data.people`: SPIN's crop camera; every person framed
as a detector-box crop, as the fitting problems and ``spin-diff fit``'s photo crops are;
detector-like corruption). Writes ``spin_diff/models/assets/keypoint_regressor.pt``
(its training config, pose-data provenance and loss history stored inside) and
``spin_diff/models/assets/PROVENANCE.md``. One torch thread, about 6 minutes on one CPU core.

    python scripts/train_bundled_keypoint_regressor.py
    python scripts/train_bundled_keypoint_regressor.py --steps 200 --out /tmp/kp.pt --no-provenance
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR  # noqa: E402
from spin_diff.models.config import HeadConfig, KeypointEncoderConfig, RegressorConfig  # noqa: E402

WIDTH = 384
BUNDLED_MODEL = RegressorConfig(
    input="keypoints",
    head=HeadConfig(iterations=3, hidden=WIDTH, dropout=0.1),
    keypoints=KeypointEncoderConfig(hidden=WIDTH, blocks=2, feature_dim=WIDTH, joint_dropout=0.1),
)
CMU_CITATION = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", type=Path, default=REPO / "spin_diff" / "data" / "poses" / "cmu_train.npz",
                        help="the CMU training split (built by scripts/build_cmu_pose_sets.py; not in git)")
    parser.add_argument("--sampler-share", type=float, default=0.2, help="share of pose-sampler poses in the mix")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip (a lr-1e-3 run diverged)")
    parser.add_argument("--face-hiding-prob", type=float, default=0.0,
                        help="share of people whose face points the head hides are missing (as detectors report them); "
                        "0.5 and 1 were tried and dropped (benchmarks/README.md)")
    parser.add_argument("--no-small-toes-prob", type=float, default=0.0,
                        help="share of people without small toes (the bundled detector has none); 0.5 tried and dropped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=BUNDLED_KEYPOINT_REGRESSOR)
    parser.add_argument("--no-provenance", action="store_true", help="do not write PROVENANCE.md beside --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch
    from build_free_priors import training_pose_mix

    from spin_diff.body.model import load_body_model
    from spin_diff.models.checkpoints import save_regressor
    from spin_diff.training.train_keypoints import (
        KeypointTrainConfig,
        SyntheticKeypoints,
        train_keypoint_regressor,
    )
    from spin_diff.utils.configs import config_to_dict

    torch.set_num_threads(args.threads)
    if args.sampler_share < 1 and not args.real.is_file():
        parser.error(f"--real {args.real}: no such file; build it with scripts/build_cmu_pose_sets.py "
                     "or pass --sampler-share 1 to train on pose-sampler poses only")
    poses, pose_mix = training_pose_mix(args.real if args.sampler_share < 1 else None, args.sampler_share,
                                        args.seed, samples=20_000)
    body = load_body_model()
    config = KeypointTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 log_every=max(1, args.steps // 20), grad_clip=args.grad_clip, model=BUNDLED_MODEL)
    source = SyntheticKeypoints(body, seed=args.seed, poses=poses, face_hiding_prob=args.face_hiding_prob,
                                no_small_toes_prob=args.no_small_toes_prob)  # fmt: skip
    regressor, history = train_keypoint_regressor(body, config, source=source, progress=True)
    recipe = {"train": config_to_dict(config), "pose_mix": pose_mix, "corruption": config.corruption,
              "script": "scripts/train_bundled_keypoint_regressor.py", "argv": sys.argv[1:] if argv is None else argv}
    path = save_regressor(regressor, args.out, body, recipe=recipe, history=history)
    size_mb = path.stat().st_size / 1e6
    params = sum(p.numel() for p in regressor.parameters())
    print(f"wrote {path} ({size_mb:.1f} MB, {params / 1e6:.2f}M parameters); final loss {history[-1]['loss']:.4f} "
          f"(3d {history[-1]['3d']:.4f}) after {history[-1]['seconds']:.0f} s")
    if not args.no_provenance:
        write_provenance(path.parent / "PROVENANCE.md", recipe, history, size_mb, params)
    return 0


def write_provenance(path: Path, recipe: dict, history: list[dict], size_mb: float, params: int) -> None:
    mix = recipe["pose_mix"]
    train = recipe["train"]
    text = f"""# The bundled keypoint regressor (`keypoint_regressor.pt`)

The default start of `spin-diff fit` and `spin-diff cache build` (`--init regressor`): a
keypoint-input regressor ({params / 1e6:.2f}M parameters, {size_mb:.1f} MB; MLP encoder and SPIN's
IEF head, width {WIDTH}) for the bundled free body model (CC0 MakeHuman).

Written by `scripts/train_bundled_keypoint_regressor.py` on {datetime.date.today().isoformat()}
(argv: `{json.dumps(recipe["argv"])}`), with
`spin_diff.training.train_keypoints.train_keypoint_regressor`: {train["steps"]} steps of
{train["batch_size"]} fresh synthetic people (Adam, lr {train["lr"]}, gradient norm clipped at
{train["grad_clip"]}, seed {train["seed"]}, SPIN's loss `spin_diff.training.losses.spin_loss`), keypoints projected by SPIN's crop camera and degraded by the
`{recipe["corruption"]}` corruption preset (jitter, dropped and swapped joints, outliers);
40% of people carry only the 25 OpenPose keypoints. Final loss {history[-1]["loss"]:.4f}
after {history[-1]["seconds"]:.0f} s on one torch thread. The full config and loss history are
stored in the checkpoint (`recipe`, `history`).

## Data

- Poses: {mix["real_poses"]} poses of the CMU mocap **training** split
  (`spin_diff/data/poses/cmu_train.npz`, built by `scripts/build_cmu_pose_sets.py`; clips and
  source files listed in `spin_diff/data/poses/PROVENANCE.md`), each with its own tilt and a
  random heading, plus {mix["sampler_poses"]} poses of `spin_diff.priors.pose_sampler` (our own
  procedural sampler). The CMU validation and test clips were not used.
  CMU Graphics Lab Motion Capture Database, http://mocap.cs.cmu.edu/ : "{CMU_CITATION}"
- Shapes, orientations, framing, corruption: the `"regressor"` preset of `spin_diff.data.people`
  (its table: yaw within 70 degrees, 10% turned away, 6-degree tilts, betas N(0, 1) clipped at 3,
  every person framed as a detector-box crop, as `spin-diff fit` crops photos and as the fitting
  problems are framed (keypoint box 0.8-1.05 of 224 / 1.2, centre within 5%), 40%
  OpenPose-only, 10% GT-only).
- No file of SMPL, SMPLify, SPIN, AMASS or any other non-commercial source went into it.
"""
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
