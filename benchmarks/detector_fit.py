"""``spin-diff fit`` on real photos from detected keypoints against the fit from published ones.

For every photo folder given (``PHOTOS/<name>/<stem>.<jpg|png|jpeg>`` beside
``<stem>_keypoints.json``, OpenPose BODY_25), it runs ``spin-diff fit`` twice with its
defaults: without ``--keypoints`` (BlazePose detects) and with the published keypoints. Each
published person is paired with the detected person whose box centre is nearest (within
half a box). Printed per person: the fit's mean residual to the keypoints it was given (224
crop pixels, confident joints; target <= 7 px), and the PA-MPJPE between the two fits' 14
LSP joints (mm; target <= 30 mm), plus each fit's verdict.

    .venv/bin/python benchmarks/detector_fit.py /work/photos spin_im1010 prohmr_pexels_4793258 ...

Photos are never committed; the raw output is ``results_detector_fit_cpu.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from spin_diff.body import joints as J
from spin_diff.cli.main import main as spin_diff
from spin_diff.geometry.alignment import pa_mpjpe

LSP14 = J.joint_indices(J.GT_JOINT_NAMES[:14])
RESIDUAL_TARGET, PA_TARGET = 7.0, 30.0


def fit(image: Path, out: Path, keypoints: Path | None, extra: list[str]) -> dict[str, dict]:
    """Run ``spin-diff fit`` (defaults and ``extra``, one thread); person folder -> its params.json."""
    argv = ["fit", str(image), "--out", str(out), "--threads", "1", "--quiet", *extra]
    if keypoints is not None:
        argv += ["--keypoints", str(keypoints)]
    with contextlib.redirect_stdout(io.StringIO()):
        spin_diff(argv)
    return {str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("*/person_*/params.json"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("names", nargs="+", help="photo folders under PHOTOS")
    parser.add_argument("--init", help="passed to both fits (e.g. mean: the cold start); default: spin-diff fit's")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"spin-diff fit defaults{' with --init ' + args.init if args.init else ''}, 1 thread")
    print(f"targets: residual to the given keypoints <= {RESIDUAL_TARGET} px (224 crop), PA-MPJPE between fits <= {PA_TARGET} mm")
    print(f"{'photo/person':40s} {'res_det':>7s} {'res_pub':>7s} {'pa_mm':>6s}  det_ok pub_ok  verdict")
    residuals, distances = [], []
    for name in args.names:
        folder = args.photos / name
        image = next(p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        keypoints = folder / f"{image.stem}_keypoints.json"
        with tempfile.TemporaryDirectory() as tmp:
            extra = ["--init", args.init] if args.init else []
            detected = fit(image, Path(tmp) / "detected", None, extra)
            published = fit(image, Path(tmp) / "published", keypoints, extra)
        for person, pub in published.items():
            centre, size = np.array(pub["box_center"]), float(pub["box_size"])
            nearest = min(
                detected.items(), key=lambda kv: np.linalg.norm(np.array(kv[1]["box_center"]) - centre), default=None
            )
            label = f"{name}/{person.split('/')[-1]}"
            if nearest is None or np.linalg.norm(np.array(nearest[1]["box_center"]) - centre) > size / 2:
                print(f"{label:40s} not detected")
                continue
            det = nearest[1]
            a = torch.tensor(det["joints3d_crop"])[LSP14][None]
            b = torch.tensor(pub["joints3d_crop"])[LSP14][None]
            distance = float(pa_mpjpe(a, b)[0]) * 1000
            residual = float(det["residual_px"])
            residuals.append(residual)
            distances.append(distance)
            verdict = "ok" if residual <= RESIDUAL_TARGET and distance <= PA_TARGET else "OVER"
            print(
                f"{label:40s} {residual:7.2f} {float(pub['residual_px']):7.2f} {distance:6.1f}  "
                f"{det['success']!s:>6s} {pub['success']!s:>6s}  {verdict}"
            )
    residuals, distances = np.array(residuals), np.array(distances)
    print(
        f"people {len(residuals)}: residual to detected keypoints mean {residuals.mean():.2f} px "
        f"(<= {RESIDUAL_TARGET}: {(residuals <= RESIDUAL_TARGET).sum()}), PA-MPJPE between fits mean "
        f"{distances.mean():.1f} mm, median {np.median(distances):.1f} (<= {PA_TARGET}: {(distances <= PA_TARGET).sum()})"
    )


if __name__ == "__main__":
    main()
