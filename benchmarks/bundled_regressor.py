"""The bundled keypoint regressor as ``spin-diff fit``'s start, against the mean pose.

Synthesises people with ``spin_diff.data.synth`` (pose-sampler poses, detector-like keypoints;
a seed no training used), runs ``spin-diff fit`` on them twice as a user would, with the
default start (the bundled regressor, ``from_regressor`` recipe) and with ``--init mean``
(the ``cold_start`` recipe), and reports PA-MPJPE / MPJPE (mm, 14 LSP joints) of each start
alone and after its fit, against the synthesised ground truth, with seconds per run.

    python benchmarks/bundled_regressor.py [--n 24] [--seed 4242] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.cli.main import main as cli  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors


def _fitted(out: Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    poses, betas = [], []
    for name in names:
        params = json.loads((out / Path(name).stem / "person_00" / "params.json").read_text())
        poses.append(params["pose"])
        betas.append(params["betas"])
    return torch.tensor(poses, dtype=torch.float32), torch.tensor(betas, dtype=torch.float32)


def _row(label, errors, seconds=None):
    pa, mp = errors["pa_mpjpe"], errors["mpjpe"]
    seconds_text = f"{seconds:6.1f}" if seconds is not None else "     -"
    means = f"{float(pa.mean()):6.1f} | {float(pa.median()):6.1f} | {float(mp.mean()):6.1f}"
    return f"| {label:<42} | {means} | {seconds_text} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from spin_diff.data.spin_npz import dataset_keypoints
    from spin_diff.data.spin_npz import read_spin_npz
    from spin_diff.data.synth import SynthConfig, generate_dataset
    from spin_diff.fitting.initialisation import regressor_start, resolve_init

    body = load_body_model()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        npz = generate_dataset(SynthConfig(num_images=args.n, seed=args.seed), root / "data", body, progress=False)
        data = read_spin_npz(npz)
        names = [str(n) for n in data["imgname"]]
        gt_pose = torch.tensor(data["pose"], dtype=torch.float32)
        gt_betas = torch.tensor(data["shape"], dtype=torch.float32)

        regressor = resolve_init("regressor", body, images_available=False)
        keypoints = torch.tensor(dataset_keypoints(data, 224), dtype=torch.float32)
        start = regressor_start(regressor, keypoints, body.num_betas)
        mean_pose, zero_betas = body.mean_pose_rotmat(args.n), torch.zeros_like(gt_betas)
        rows = [
            _row("mean pose alone", joint_errors(body, mean_pose, zero_betas, gt_pose, gt_betas)),
            _row("bundled regressor alone", joint_errors(body, start.rotmat, start.betas, gt_pose, gt_betas)),
        ]
        common = [str(root / "data" / "images"), "--keypoints", str(root / "data" / "keypoints"), "--quiet",
                  "--threads", str(args.threads)]
        for label, extra in (("mean pose + fit (cold_start, --init mean)", ["--init", "mean"]),
                             ("bundled regressor + fit (default)", [])):
            out = root / ("fit_" + ("mean" if extra else "default"))
            began = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli(["fit", *common, "--out", str(out), *extra])
            seconds = time.perf_counter() - began
            if code not in (0, 1):  # 1: some fits flagged as failed (fitting.quality), still written
                print(f"spin-diff fit {' '.join(extra)} exited {code}")
                return 1
            label += f" [{'some fits flagged' if code else 'none flagged'}]"
            pose, betas = _fitted(out, names)
            rows.append(_row(label, joint_errors(body, pose, betas, gt_pose, gt_betas), seconds))
    print(f"{args.n} synthetic people (spin_diff.data.synth, pose sampler, detector corruption, seed {args.seed}); "
          f"{args.threads} torch thread(s)")
    print("| start | PA-MPJPE mean | median | MPJPE mean | s |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
