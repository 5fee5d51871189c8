"""``spin-diff fit``: fit SMPL to the people in images, from OpenPose keypoints (``--keypoints``)
or from keypoints it detects itself (BlazePose, the ``detect`` extra).

``--no-optimise`` writes the regressor's bodies without the fit (the regression-only mode).

The fitting recipe is a named config shipped in ``spin_diff/recipes/`` (``fit_<name>.yaml``) applied
before ``--config`` and ``--set``: ``cold_start`` (staged, decaying priors, photo camera)
for a start at the mean pose; ``photo`` (the same stages from the regressor's prediction)
for a regressor's start (``--init regressor|CKPT``, the default); ``from_regressor`` (SPIN's in-loop recipe, what
``cache build`` and ``eval --refine`` fit with, and the camera of ``--no-optimise``'s bodies).
``--recipe auto`` picks by the start.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from spin_diff.apps.fit_photos import fit_images
from spin_diff.body.model import load_body_from_config
from spin_diff.cli.common import add_config_arguments, resolve_config
from spin_diff.detect import BlazePose
from spin_diff.errors import BadInputError, MissingInputError
from spin_diff.fitting.images import StartOnly
from spin_diff.fitting.initialisation import default_init, prior_for_start, resolve_init
from spin_diff.fitting.smplify import SMPLify
from spin_diff.recipes import recipe_path as shipped_recipe
from spin_diff.utils.configs import save_config
from spin_diff.utils.outputs import check_writable_folder
from spin_diff.utils.threads import set_threads

RECIPES = ("cold_start", "photo", "from_regressor")


def add_parser(subparsers) -> None:
    fit = subparsers.add_parser("fit", help="fit SMPL to people in images (detected, or from OpenPose JSON)")
    fit.add_argument("images", type=Path, help="an image or a folder of images")
    fit.add_argument(
        "--keypoints", type=Path,
        help="OpenPose JSON file, or a folder with <image stem>_keypoints.json (or SPIN's "
             "<stem>_openpose.json) per image; default: detect everyone (BlazePose; written to "
             "--out/keypoints/<stem>_keypoints.json, to edit and pass back here)",
    )  # fmt: skip
    fit.add_argument(
        "--no-optimise", action="store_true",
        help="regression only: the regressor's bodies, scored against the keypoints, without the fit",
    )  # fmt: skip
    fit.add_argument("--out", type=Path, required=True, help="output folder")
    fit.add_argument(
        "--bbox",
        help="one person's box: x1,y1,x2,y2 in pixels, or SPIN's bbox JSON file ({\"bbox\": [x, y, w, h]}); "
        "default: from the keypoints",
    )
    fit.add_argument(
        "--recipe", default="auto",
        help="fitting recipe: auto (cold_start from the mean pose, photo from --init's "
             f"regressor, from_regressor with --no-optimise), {', '.join(RECIPES)} (shipped fit_<name>.yaml), "
             "or a YAML file",
    )  # fmt: skip
    fit.add_argument(
        "--camera", choices=("crop", "full"),
        help="crop: SPIN's crop camera (focal 5000 px on the 224 crop); full: the photo's camera (focal "
             "from --focal or the image diagonal, principal point at the image centre); default: the recipe's",
    )  # fmt: skip
    fit.add_argument("--focal", type=float, help="focal length of the photo in pixels (--camera full)")
    fit.add_argument(
        "--mesh-frame", choices=("fit", "crop", "full", "body"), default="fit",
        help="frame of mesh.obj: the fit's camera (default), the crop camera, the full-image camera, "
             "or the body's own (no translation)",
    )  # fmt: skip
    fit.add_argument(
        "--overwrite", action="store_true", help="replace existing results of these images in --out"
    )
    fit.add_argument(
        "--init",
        help="where fits start: regressor (the bundled keypoint regressor; the default, except for "
        "a body model it was not trained for, where the mean pose is), mean (SPIN's "
        "mean pose) or a regressor checkpoint (SPIN's model_checkpoint.pt or spin-diff's; an image "
        "regressor reads the crops, a keypoint regressor the keypoints)",
    )  # fmt: skip
    fit.add_argument("--checkpoint", help="the same as --init CKPT")
    fit.add_argument("--batch-size", type=int, default=32)
    fit.add_argument(
        "--threads", type=int, default=0,
        help="torch threads (default 0: the idle cores, 1 inside a DataLoader worker)",
    )  # fmt: skip
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(fit)
    fit.set_defaults(handler=run_fit)


def default_recipe(start: str = "mean", optimise: bool = True) -> str:
    """The recipe for a start: the mean pose is far from any answer (cold start); a regressor's
    prediction starts the same stages (photo: on photos and on CMU people in a photo camera
    SPIN's in-loop recipe, from_regressor, explained the keypoints worse). Without the fit
    (``--no-optimise``) the regressor's bodies are placed by from_regressor's crop camera, as
    SPIN's demo shows them."""
    if start == "mean":
        return "cold_start"
    return "photo" if optimise else "from_regressor"


def recipe_path(recipe: str, start: str = "mean", optimise: bool = True) -> Path:
    """The YAML file of a recipe name (or a path to one)."""
    name = default_recipe(start, optimise) if recipe == "auto" else recipe
    if name in RECIPES:
        return shipped_recipe(f"fit_{name}")
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise MissingInputError(f"--recipe file not found: {path}")
        return path
    raise BadInputError(f"--recipe {recipe!r}: choose auto, {', '.join(RECIPES)}, or a YAML file")


def run_fit(args: argparse.Namespace) -> int:
    init = args.checkpoint if args.checkpoint is not None else args.init
    if not args.images.exists():
        raise MissingInputError(f"images not found: {args.images}")
    if args.keypoints is not None and not args.keypoints.exists():
        raise MissingInputError(f"--keypoints not found: {args.keypoints}")
    if args.no_optimise and init == "mean":
        raise BadInputError("--no-optimise shows a regressor's bodies: drop --init mean (or fit without it)")
    check_writable_folder(args.out)  # before the fit runs, not after
    if args.batch_size < 1:
        raise BadInputError("--batch-size must be at least 1")
    if args.focal is not None and not args.focal > 0:
        raise BadInputError(f"--focal must be a positive number of pixels, got {args.focal}")
    threads = set_threads(args.threads)
    start = "mean" if init == "mean" else "regressor"
    optimise = not args.no_optimise
    recipe = recipe_path(args.recipe, start, optimise)
    config = resolve_config(args, base=[recipe])
    model = load_body_from_config(config)
    if init is None:  # the bundled regressor, or the mean pose for another body model
        init = default_init(model)
        if init == "mean":
            start = "mean"
            recipe = recipe_path(args.recipe, start)
            config = resolve_config(args, base=[recipe])
    if args.camera:
        config.fitting.camera = args.camera
    if args.focal is not None:
        config.fitting.full_focal_length = args.focal
    if args.no_optimise and init == "mean":  # the body model has no bundled regressor
        raise BadInputError(
            "--no-optimise needs a regressor, and none is bundled for this body model: pass --init CKPT"
        )
    if args.no_optimise:
        config.fitting.start_hypotheses = []  # one start per person: the regressor's
    regressor = resolve_init(init, model, images_available=True, device=config.device)
    prior_for_start(config.fitting, init)
    fitter = SMPLify(model, config.fitting)
    if args.no_optimise:
        fitter = StartOnly(fitter)
    detector = None
    if args.keypoints is None:
        detector = BlazePose(threads=threads)
    report = fit_images(
        args.images, args.keypoints, args.out, model, fitter,
        bbox=args.bbox, batch_size=args.batch_size, progress=not args.quiet, overwrite=args.overwrite,
        mesh_frame=args.mesh_frame, regressor=regressor, detector=detector,
        run_info={"recipe": str(args.recipe if args.recipe != "auto" else default_recipe(start, optimise)),
                  "recipe_file": str(recipe), "init": str(init), "optimised": not args.no_optimise,
                  "keypoints": str(args.keypoints) if args.keypoints else "detected (BlazePose)"},
    )  # fmt: skip
    save_config(config, args.out / "config.yaml")
    for note in report.notes:
        print(note)
    for name, reason in report.failed:
        print(f"FAILED {name}: {reason}")
    done = "regressed (no fit)" if args.no_optimise else "fitted"
    print(
        f"{done} {len(report.fitted)} people, {len(report.failed)} failed; results in {args.out} "
        f"(recipe {recipe.stem}, camera {config.fitting.camera}, {threads} thread(s))"
    )
    return 0 if report.ok else 1
