"""``spin-diff body``: inspect a body model, export and render posed meshes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from spin_diff.body.demo_poses import POSE_NAMES, named_pose
from spin_diff.body.mesh_io import write_obj
from spin_diff.body.model import load_body_from_config
from spin_diff.cli.common import add_config_arguments, parse_vector, resolve_config
from spin_diff.errors import BadInputError
from spin_diff.render import part_colors, save_png
from spin_diff.render.views import render_views
from spin_diff.utils.outputs import check_output_file, replace_atomically


def add_parser(subparsers) -> None:
    body = subparsers.add_parser("body", help="inspect, export and render body models")
    commands = body.add_subparsers(dest="body_command", required=True)

    info = commands.add_parser("info", help="print what body model is loaded")
    add_config_arguments(info)
    info.set_defaults(handler=run_info)

    for name, help_text in (("export", "write a posed mesh as .obj"), ("render", "render a posed body to .png")):
        sub = commands.add_parser(name, help=help_text)
        add_config_arguments(sub)
        sub.add_argument(
            "--pose",
            help="72 axis-angle numbers (comma-separated, or .npy/.npz/.json), or a named pose: "
            "tpose, apose, walk, sit, arms_up, reach (default: tpose)",
        )
        sub.add_argument("--betas", help="up to 10 shape coefficients (comma-separated or a file)")
        sub.add_argument("--out", type=Path, required=True, help="output file (.obj for export, .png for render)")
        sub.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
        if name == "render":
            sub.add_argument("--size", type=int, default=512, help="pixels per view")
            sub.add_argument("--views", default="0,90", help="yaw angles in degrees (0 front, 90 side)")
            sub.add_argument("--parts", action="store_true", help="colour the 24 body parts")
        sub.set_defaults(handler=run_export if name == "export" else run_render)


MAX_ANGLE = 4 * np.pi  # rad: a larger axis-angle value is not a pose (degrees given as radians?)


def _pose_and_betas(args: argparse.Namespace, num_betas: int) -> tuple[torch.Tensor, torch.Tensor]:
    if args.pose in POSE_NAMES or args.pose is None:
        pose = named_pose(args.pose or "tpose")
    else:
        pose = parse_vector(args.pose, 72, "pose")
        if np.abs(pose).max() > MAX_ANGLE:
            raise BadInputError(
                f"--pose has an angle of {np.abs(pose).max():.3g} rad; axis-angle values are radians, at most "
                f"{MAX_ANGLE:.0f} here (a file of degrees, or not a pose?)"
            )
    betas = parse_vector(args.betas, num_betas, "betas", exact=False)
    return torch.tensor(pose, dtype=torch.float32)[None], torch.tensor(betas, dtype=torch.float32)[None]


def _posed_vertices(args: argparse.Namespace):
    config = resolve_config(args)
    model = load_body_from_config(config)
    pose, betas = _pose_and_betas(args, model.num_betas)
    with torch.no_grad():
        out = model(pose.to(config.device), betas.to(config.device))
    return model, out.vertices[0].cpu().numpy()


def run_info(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    model = load_body_from_config(config)
    for key, value in model.info().items():
        print(f"{key:>20}: {value}")
    return 0


MAX_RENDER_SIZE = 4096  # pixels per view: beyond it one view alone needs gigabytes


def run_export(args: argparse.Namespace) -> int:
    check_output_file(args.out, overwrite=args.overwrite, suffixes=(".obj",))
    model, vertices = _posed_vertices(args)
    with replace_atomically(args.out) as partial:
        write_obj(partial, vertices, model.faces)
    path = args.out
    print(f"wrote {path} ({vertices.shape[0]} vertices, {model.faces.shape[0]} faces)")
    return 0


def run_render(args: argparse.Namespace) -> int:
    if not 16 <= args.size <= MAX_RENDER_SIZE:
        raise BadInputError(f"--size {args.size}: give 16 to {MAX_RENDER_SIZE} pixels per view")
    check_output_file(args.out, overwrite=args.overwrite, suffixes=(".png",))
    model, vertices = _posed_vertices(args)
    try:
        yaws = tuple(float(v) for v in args.views.split(","))
    except ValueError as err:
        raise BadInputError(f"--views must be comma-separated angles in degrees: {err}") from err
    colors = None
    if args.parts:
        colors = part_colors(model.smpl.lbs_weights.argmax(1).cpu().numpy())
    image = render_views(vertices, model.faces, yaws, size=args.size, vertex_colors=colors)
    with replace_atomically(args.out) as partial:
        save_png(partial, image)
    path = args.out
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")
    return 0
