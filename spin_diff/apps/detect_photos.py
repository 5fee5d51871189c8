"""``spin-diff detect`` on files: every person's 2D keypoints in each image, as OpenPose JSON.

Each image ``x.jpg`` gets ``--out/x_keypoints.json`` (OpenPose BODY_25, every person found,
left to right; ``spin-diff fit --keypoints`` reads the folder back, so nothing else is written
there: any other JSON file would be taken for an image's keypoints). An unreadable image is a
failure of that image alone; an image where nobody is found gets a file with no people.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from spin_diff.apps.fit_photos import FitReport, find_inputs
from spin_diff.data.openpose import write_openpose_json
from spin_diff.detect.people import detect_people
from spin_diff.utils.outputs import prepare_output


def detect_images(images: Path, out_dir: Path, detector, *, overwrite: bool = False) -> FitReport:
    """Detect everyone in ``images`` (a file or folder) and write their keypoints to ``out_dir``."""
    pairs, _ = find_inputs(images, None)
    report = FitReport()
    if not pairs:
        report.failed.append((str(images), "no images found"))
        return report
    prepare_output(out_dir, [f"{p.name}_keypoints.json" for p in pairs], replace=overwrite, what="keypoint files")
    for pair in pairs:
        image = cv2.imread(str(pair.image)) if pair.image.is_file() else None
        if image is None:
            report.failed.append((str(pair.image), "not an image cv2 can read (or damaged)"))
            continue
        found = detect_people(detector, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        path = write_openpose_json(out_dir / f"{pair.name}_keypoints.json", found.keypoints)
        report.notes.append(f"{pair.name}: {len(found)} people -> {path}")
        for index, flags in enumerate(found.flags):
            report.notes.extend(f"{pair.name}/person_{index:02d}: {flag}" for flag in flags)
        report.fitted.extend(f"{pair.name}/person_{index:02d}" for index in range(len(found)))
        report.summary.append({"item": pair.name, "people": len(found), "boxes": found.boxes.round(1).tolist(),
                               "flags": found.flags})  # fmt: skip
    return report
