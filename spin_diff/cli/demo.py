"""``spin-diff demo``: the main job on the built-in defaults, nothing downloaded."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spin_diff.cli.common import add_config_arguments, load_body_from_config, resolve_config


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run the end-to-end demo on the bundled model")
    add_config_arguments(demo)
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    demo.set_defaults(handler=run_demo)


def render_pose_gallery(model, size: int = 300):
    """Front and side views of the mean body in each named pose, one pose per row pair."""
    import numpy as np

    from spin_diff.body.demo_poses import POSE_NAMES, named_pose
    from spin_diff.render import part_colors
    from spin_diff.render.views import image_grid, render_views

    device = model.fast.joint_template.device
    poses = torch.tensor(np.stack([named_pose(n) for n in POSE_NAMES]), dtype=torch.float32, device=device)
    with torch.no_grad():
        vertices = model(poses, torch.zeros(len(poses), model.num_betas, device=device)).vertices.cpu().numpy()
    colors = part_colors(model.smpl.lbs_weights.argmax(1).cpu().numpy())
    tiles = [
        render_views(v, model.faces, (0.0, 90.0), size=size, vertex_colors=colors if i == 0 else None)
        for i, v in enumerate(vertices)
    ]
    return image_grid(tiles, columns=3), POSE_NAMES, vertices


def run_demo(args: argparse.Namespace) -> int:
    from spin_diff.body.mesh_io import write_obj
    from spin_diff.config import save_config
    from spin_diff.render import save_png

    config = resolve_config(args)
    model = load_body_from_config(config)
    print("body model:")
    for key, value in model.info().items():
        print(f"  {key:>20}: {value}")
    gallery, names, vertices = render_pose_gallery(model)
    out = args.out
    print(f"wrote {save_png(out / 'body_poses.png', gallery)} (poses: {', '.join(names)}; front and side)")
    print(f"wrote {write_obj(out / 'tpose.obj', vertices[0], model.faces)}")
    print(f"wrote {save_config(config, out / 'config.yaml')}")
    return 0
