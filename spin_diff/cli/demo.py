"""``spin-diff demo``: the main job on the built-in defaults, nothing downloaded."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from spin_diff.cli.common import add_config_arguments, load_body_from_config, resolve_config


def add_parser(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="run the end-to-end demo on the bundled model")
    add_config_arguments(demo)
    demo.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    demo.add_argument("--n", type=int, default=4, help="synthetic people to render and fit")
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
    """Body model -> synthetic people -> SMPLify fits (the cold-start recipe, as ``spin-diff fit``
    from the mean pose), with errors against the known truth."""
    from spin_diff.body.mesh_io import write_obj
    from spin_diff.config import save_config
    from spin_diff.data.spin_npz import read_spin_npz
    from spin_diff.data.synth import SynthConfig, generate_dataset
    from spin_diff.evaluation.metrics import joint_errors
    from spin_diff.fitting.images import fit_images
    from spin_diff.fitting.smplify import SMPLify
    from spin_diff.render import save_png

    from spin_diff.cli.fit import recipe_path

    config = resolve_config(args, base=[recipe_path("auto")])  # fits start from the mean pose
    model = load_body_from_config(config)
    print("body model:")
    for key, value in model.info().items():
        print(f"  {key:>20}: {value}")
    gallery, names, vertices = render_pose_gallery(model)
    out = args.out
    print(f"wrote {save_png(out / 'body_poses.png', gallery)} (poses: {', '.join(names)}; front and side)")
    print(f"wrote {write_obj(out / 'tpose.obj', vertices[0], model.faces)}")

    # photo-like people (focal = image diagonal): the camera the cold-start recipe assumes
    synth = SynthConfig(num_images=args.n, seed=config.seed, back_view_prob=0.0, focal="realistic")
    npz = generate_dataset(synth, out / "synth", model, progress=False)
    print(f"rendered {args.n} synthetic people with detector-like keypoints into {out / 'synth'}")
    report = fit_images(out / "synth" / "images", out / "synth" / "keypoints", out / "fits", model,
                        SMPLify(model, config.fitting), progress=False, overwrite=True)  # fmt: skip
    for name, reason in report.failed:
        print(f"  FAILED {name}: {reason}")
    data = read_spin_npz(npz, require=("imgname", "pose", "shape"))
    fitted = []
    for i, imgname in enumerate(data["imgname"]):
        params = out / "fits" / Path(str(imgname)).stem / "person_00" / "params.npz"
        if params.is_file():
            with np.load(params) as p:
                fitted.append((i, p["pose"], p["betas"]))
    if fitted:
        index = [i for i, _, _ in fitted]
        as_tensor = lambda a: torch.tensor(np.stack(a), dtype=torch.float32, device=config.device)  # noqa: E731
        errors = joint_errors(
            model, as_tensor([p for _, p, _ in fitted]), as_tensor([b for _, _, b in fitted]),
            as_tensor(data["pose"][index]), as_tensor(data["shape"][index]),
        )  # fmt: skip
        print(f"fitted {len(fitted)} people from the mean pose: PA-MPJPE {errors['pa_mpjpe'].mean():.1f} mm, "
              f"MPJPE {errors['mpjpe'].mean():.1f} mm (overlays and side views in {out / 'fits'})")
    print(f"wrote {save_config(config, out / 'config.yaml')}")
    return 0 if report.ok else 1
