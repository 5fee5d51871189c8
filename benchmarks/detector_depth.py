"""Does BlazePose's depth tell an arm held back from an arm reaching forward? Per limb landmark of
a photo's first detected person: the landmark model's depth relative to the hip centre, in
torso lengths (larger: farther from the camera), beside the same for fits' joints
(``params.json`` of ``spin-diff fit``, crop camera frame).

Seen from behind, a hand held at a bar behind the neck is nearer the camera than its shoulder,
and a hand reaching forward is farther; both project to the same pixels.

    .venv/bin/python benchmarks/detector_depth.py PHOTO.jpg [FIT/person_00/params.json ...]

The photo (ProHMR's Pexels lunge in the docs) is not committed; the output is pasted into
``results_detector_fit_cpu.txt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.detect import BlazePose  # noqa: E402

# BlazePose landmark index -> the OpenPose joint of the same name in params.json
LIMBS = {11: "LShoulder", 12: "RShoulder", 13: "LElbow", 14: "RElbow", 15: "LWrist", 16: "RWrist",
         25: "LKnee", 26: "RKnee", 27: "LAnkle", 28: "RAnkle"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("fits", nargs="*", type=Path, help="params.json files of fits of the same person")
    args = parser.parse_args()
    image = cv2.imread(str(args.photo))
    if image is None:
        raise SystemExit(f"cannot read {args.photo}")
    person = BlazePose(threads=1).detect(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))[0]
    hips = (person.landmarks[23] + person.landmarks[24]) / 2
    torso = float(np.linalg.norm((person.landmarks[11] + person.landmarks[12]) / 2 - hips))
    hip_depth = (person.depth[23] + person.depth[24]) / 2
    columns = [("BlazePose", {name: (person.depth[i] - hip_depth) / torso for i, name in LIMBS.items()})]
    for path in args.fits:
        params = json.loads(path.read_text())
        joints, names = np.array(params["joints3d_crop"]), params["joint_names"]
        at = lambda name: joints[names.index(f"OP {name}")]  # noqa: E731
        fit_hips = (at("LHip") + at("RHip")) / 2
        length = float(np.linalg.norm((at("LShoulder") + at("RShoulder")) / 2 - fit_hips))
        columns.append((path.parents[3].name,  # OUT of OUT/<photo>/<image>/person_NN/params.json
                        {name: (at(name)[2] - fit_hips[2]) / length for name in LIMBS.values()}))  # fmt: skip
    print("depth relative to the hip centre, torso lengths (larger: farther from the camera)")
    print(f"{'joint':10s} " + " ".join(f"{label[-24:]:>24s}" for label, _ in columns))
    for name in LIMBS.values():
        print(f"{name:10s} " + " ".join(f"{values[name]:+24.2f}" for _, values in columns))


if __name__ == "__main__":
    main()
