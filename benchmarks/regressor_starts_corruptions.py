"""Keypoint-regressor checkpoints as starts alone on ``benchmarks/fit_accuracy.py``'s crop rows.

The same 48 bodies per row as ``fit_accuracy.py --poses test --sections crop`` (its
``CORRUPTIONS``, seeds 100 + row, the CMU test clips), framed as the ``"fitting"`` preset frames
them (``--framing box``, the default) or as it did before 2026-12-02's reframing
(``--framing depth``: root at 40-55 m); PA-MPJPE (mm, 14 LSP joints) of each checkpoint's start:

    python benchmarks/regressor_starts_corruptions.py first=/tmp/first.pt mixed=/tmp/kp_mixed.pt \\
        bundled=spin_diff/models/assets/keypoint_regressor.pt --rows clean,border,detector --framing box,depth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fit_accuracy import CORRUPTIONS  # noqa: E402
from regressor_starts import start_pa_mpjpe  # noqa: E402

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data import keypoint_sets  # noqa: E402
from spin_diff.data.real_poses import load_real_poses  # noqa: E402
from spin_diff.models.checkpoints import load_regressor  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="LABEL=PATH of keypoint regressor checkpoints")
    parser.add_argument("--rows", default=",".join(CORRUPTIONS), help=f"comma-separated, of {list(CORRUPTIONS)}")
    parser.add_argument("--framing", default="box", help="comma-separated: box (box_share 1), depth (box_share 0)")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    body = load_body_model()
    poses = load_real_poses("test")
    regressors = {}
    for spec in args.checkpoints:
        label, path = spec.split("=", 1)
        regressors[label] = load_regressor(path, body=body).eval()
    original = keypoint_sets.preset
    print(f"start alone, PA-MPJPE mean (mm), {args.n} bodies per row of fit_accuracy.py (CMU test clips); "
          f"{args.threads} torch thread(s)")
    print(f"| framing | corruption | {' | '.join(regressors)} |")
    print(f"| --- | --- |{' --- |' * len(regressors)}")
    try:
        for framing in args.framing.split(","):
            share = {"box": 1.0, "depth": 0.0}[framing]
            keypoint_sets.preset = lambda name, **kw: original(name, **{**kw, "box_share": share})
            for index, (name, (corruption, shift)) in enumerate(CORRUPTIONS.items()):
                if name not in args.rows.split(","):
                    continue
                problems = keypoint_sets.make_problems(body, args.n, seed=100 + index, corruption=corruption,
                                                       shift_px=shift, poses=poses)  # fmt: skip
                row = [f"{start_pa_mpjpe(body, regressor, problems):.1f}" for regressor in regressors.values()]
                print(f"| {framing} | {name} | {' | '.join(row)} |", flush=True)
    finally:
        keypoint_sets.preset = original
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
