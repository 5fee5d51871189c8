"""`spin-diff fit` on every photo folder of PHOTOS with given options, one line per person.

For every folder ``PHOTOS/<name>/`` holding an image (``.jpg``/``.jpeg``/``.png``) beside
``<stem>_keypoints.json`` (OpenPose BODY_25; SPIN's ``<stem>_bbox.json`` is read as its box),
it runs ``spin-diff fit IMAGE --keypoints JSON --out OUT/<name> --threads 1`` plus the options
after ``--``, and prints per person: the mean residual on the confident keypoints after the fit
and at the start (224-crop px), the fit's GMM energy, the start it kept and whether
``fitting.quality`` accepted it (else why not); then how many people end within 7 px.

    .venv/bin/python benchmarks/photo_fits.py /work/photos /tmp/fits_default
    .venv/bin/python benchmarks/photo_fits.py /work/photos /tmp/fits_mean -- --init mean

Photos are never committed (licences); the raw output is ``results_photo_fits_real.txt``, and
the overlays and side views under OUT are what the docs describe.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.apps.fit_photos import IMAGE_SUFFIXES  # noqa: E402
from spin_diff.cli.main import main as spin_diff  # noqa: E402

TARGET_PX = 7.0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("out", type=Path, help="fits are written to OUT/<photo folder> (replaced)")
    args = parser.parse_args(own)
    torch.set_num_threads(1)
    print(f"spin-diff fit --threads 1 {' '.join(extra)}".rstrip())
    residuals = []
    for folder in sorted(p for p in args.photos.iterdir() if p.is_dir()):
        image = next((p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES), None)
        if image is None:
            continue
        out = args.out / folder.name
        if out.exists():
            shutil.rmtree(out)
        command = ["fit", str(image), "--keypoints", str(folder / f"{image.stem}_keypoints.json"),
                   "--out", str(out), "--threads", "1", "--quiet", *extra]  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            spin_diff(command)
        for item in json.loads((out / "summary.json").read_text())["items"]:
            if "folder" not in item:  # refused before fitting
                print(f"{folder.name:32s} {'-':44s} refused: {item['failure']}")
                continue
            params = json.loads((out / item["folder"] / "params.json").read_text())
            residuals.append(item["residual_px"])
            verdict = "ok" if item["success"] else f"flagged: {item['failure']}"
            print(f"{folder.name:32s} {item['folder'][-44:]:44s} res {item['residual_px']:6.2f} "
                  f"start {item['initial_residual_px']:6.2f} gmm {params['pose_prior']:7.1f} "
                  f"kept {params['start_hypothesis']:10s} {verdict}", flush=True)  # fmt: skip
    fitted = [r for r in residuals if not math.isnan(r)]
    within = sum(r <= TARGET_PX for r in fitted)
    print(f"people fitted {len(fitted)}: {within} within {TARGET_PX:g} px, mean residual "
          f"{sum(fitted) / max(len(fitted), 1):.2f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
