"""Fitting recipes from a real regressor's prediction: which one improves it, on real held-out poses.

Problems: bodies of the real CMU ``--split`` (``val`` to choose, ``test`` to report), the
``"fitting"`` people preset in SPIN's crop camera, detector-like keypoints
(``CorruptionConfig.preset("detector")``). Starts: the bundled keypoint regressor's
prediction on those corrupted keypoints (``regressor``, what ``spin-diff fit`` starts from),
the mean pose (``mean``) and the truth perturbed by ``--pose-sigma`` rad per joint
(``perturbed``). Each candidate recipe (:data:`CANDIDATES`, a change of today's default
``FittingConfig()``) fits every start in batches of ``--batch`` (64) with per-example noise
keys, beside today's default in the same run. Printed per start and candidate: the start's
and the fit's PA-MPJPE / MPJPE (mm, 14 LSP joints), the share of people the fit made worse /
better than its start by more than 1 mm (PA-MPJPE), and seconds per person.

    python benchmarks/real_starts.py --split val --n 256 --starts regressor [--candidates a,b]
    python benchmarks/real_starts.py --split test --n 256 --candidates today,chosen
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spin_diff.body.model import load_body_model  # noqa: E402
from spin_diff.data.corruption import CorruptionConfig  # noqa: E402
from spin_diff.data.keypoint_sets import make_problems, perturbed_start, write_keypoint_dataset  # noqa: E402
from spin_diff.data.real_poses import load_real_poses  # noqa: E402
from spin_diff.evaluation.metrics import joint_errors  # noqa: E402
from spin_diff.fitting.config import Config, FittingConfig  # noqa: E402
from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR, prior_for_start, regressor_start  # noqa: E402
from spin_diff.fitting.multi_start import DEPTH_FLIPS, MultiStart  # noqa: E402
from spin_diff.fitting.smplify import SMPLify, gmm_prior_for  # noqa: E402
from spin_diff.geometry.rotations import matrix_to_axis_angle  # noqa: E402
from spin_diff.models.checkpoints import load_regressor  # noqa: E402
from spin_diff.recipes import recipe_path  # noqa: E402
from spin_diff.utils.configs import load_config  # noqa: E402
from spin_diff.utils.seeds import example_seeds  # noqa: E402

SEEDS = {"val": 21_000, "test": 21_001}  # problem seeds per split (never tuned on)
HYPOTHESES = ("flipped", "mean_pose")  # beside the given start, in --hypotheses
PRIOR_WEIGHTS = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # of the GMM energy in the choice


def _body(config: FittingConfig):
    return [s for s in config.stages if "body_pose" in s.optimize]


def _set_terms(**weights) -> Callable[[FittingConfig], None]:
    """Change: these term weights in every body stage (0 removes a term)."""

    def change(config: FittingConfig) -> None:
        for stage in _body(config):
            for name, weight in weights.items():
                stage.terms[name] = weight

    return change


def _iterations(count: int) -> Callable[[FittingConfig], None]:
    def change(config: FittingConfig) -> None:
        for stage in _body(config):
            stage.iterations = count

    return change


def _free_transl(config: FittingConfig) -> None:
    for stage in _body(config):
        if "transl" not in stage.optimize:
            stage.optimize.append("transl")


def _data_term(name: str) -> Callable[[FittingConfig], None]:
    def change(config: FittingConfig) -> None:
        for stage in _body(config):
            stage.terms = {(name if k.startswith("reprojection") else k): v for k, v in stage.terms.items()}

    return change


def _setting(path: str, value) -> Callable[[FittingConfig], None]:
    """Change: one setting by dotted path below ``fitting`` (e.g. ``diffusion.term_t_max``)."""

    def change(config: FittingConfig) -> None:
        target = config
        *parents, leaf = path.split(".")
        for name in parents:
            target = getattr(target, name)
        setattr(target, leaf, value)

    return change


def _all(*changes) -> Callable[[FittingConfig], None]:
    def change(config: FittingConfig) -> None:
        for one in changes:
            one(config)

    return change


def _low_noise(config: FittingConfig) -> None:
    """The diffusion term's noise levels 100 -> 10 (the cold-start recipe's) instead of 700 -> 50."""
    config.diffusion.term_t_max, config.diffusion.term_t_min = 100, 10


def _body_moves(groups: list[str]) -> Callable[[FittingConfig], None]:
    """Change: the body stages optimise only these parameter groups."""

    def change(config: FittingConfig) -> None:
        for stage in _body(config):
            stage.optimize = list(groups)

    return change


def _then_guided(scale: float, **weights) -> Callable[[FittingConfig], None]:
    """Change: the body stage with these weights and low-noise diffusion, then guided refinement."""
    return _all(_low_noise, _set_terms(**weights), _guided(scale),
                _setting("diffusion.guided.pre_stages", ["camera", "body"]))  # fmt: skip


def _orientation_kept(config: FittingConfig) -> None:
    """Change: the start's global orientation is never optimised (camera stage: translation only)."""
    config.stages[0].optimize = ["transl"]
    for stage in _body(config):
        stage.optimize = [g for g in stage.optimize if g != "global_orient"]


def _orientation_anchor(weight: float) -> Callable[[FittingConfig], None]:
    """Change: the orientation_anchor term in every stage that moves the global orientation."""

    def change(config: FittingConfig) -> None:
        for stage in config.stages:
            if "global_orient" in stage.optimize:
                stage.terms["orientation_anchor"] = weight

    return change


def _guided(scale: float) -> Callable[[FittingConfig], None]:
    """Change: ScoreHMR's guided refinement after the pre-stages, at this guidance scale."""
    return _all(_setting("method", "guided"), _setting("diffusion.guided.guidance_scale", scale))


def _then_body_stage(**weights) -> Callable[[FittingConfig], None]:
    """Change: one more body stage after the last, a copy of it with these term weights."""

    def change(config: FittingConfig) -> None:
        stage = copy.deepcopy(_body(config)[-1])
        stage.name = f"body{len(config.stages)}"
        stage.terms.update(weights)
        config.stages.append(stage)

    return change


def _shipped_recipe(config: FittingConfig) -> None:
    """Change: every setting of the shipped fit_from_regressor recipe (what the commands use)."""
    shipped = load_config(Config, recipe_path("fit_from_regressor")).fitting
    for name in vars(shipped):
        setattr(config, name, getattr(shipped, name))


def _camera_stage_lm(iterations: int) -> Callable[[FittingConfig], None]:
    """Change: the camera stage by the per-sample Levenberg-Marquardt solver (``optimizer: lm``)."""

    def change(config: FittingConfig) -> None:
        config.stages[0].optimizer = "lm"
        config.stages[0].iterations = iterations

    return change


def _in_loop(prior: str, **settings) -> Callable[[FittingConfig], None]:
    """Change: the training loop's fit (the recipe train_keypoints_cpu, the training study's, as
    ``spin-diff train`` runs it with ``fitting.prior`` and these dotted ``fitting`` settings)."""

    def change(config: FittingConfig) -> None:
        from spin_diff.training.config import TrainConfig, effective_fitting_config

        overrides = [f"fitting.prior={prior}", *(f"fitting.{k.replace('__', '.')}={v}" for k, v in settings.items())]
        loop = effective_fitting_config(load_config(TrainConfig, recipe_path("train_keypoints_cpu"), overrides).fitting)
        for name in vars(loop):
            setattr(config, name, getattr(loop, name))

    return change


# name -> change of today's default FittingConfig() (the from_regressor recipe before this
# benchmark: the library's defaults); "today" is that default itself.
CANDIDATES: dict[str, Callable[[FittingConfig], None] | None] = {
    "today": None,
    # the training study's in-loop fits (rows b and c; --diffusion-prior for f and k)
    "in-loop GMM": _in_loop("gmm"),
    "in-loop GMM + term": _in_loop("gmm+diffusion"),
    "in-loop GMM + term t 100->10": _in_loop("gmm+diffusion", diffusion__term_t_max=100, diffusion__term_t_min=10),
    "in-loop GMM + term t 200->20": _in_loop("gmm+diffusion", diffusion__term_t_max=200, diffusion__term_t_min=20),
    "in-loop guided (3 loops)": _in_loop("gmm", method="guided", diffusion__guided__loops=3),
    "in-loop GMM + term, then guided 0.015": _in_loop("gmm+diffusion", method="guided", diffusion__guided__loops=3,
                                                      diffusion__guided__guidance_scale=0.015,
                                                      diffusion__guided__pre_stages="[camera,body]"),
    "in-loop GMM + term, then guided 0.015, 1 loop, step 5": _in_loop(
        "gmm+diffusion", method="guided", diffusion__guided__loops=1, diffusion__guided__step=5,
        diffusion__guided__guidance_scale=0.015, diffusion__guided__pre_stages="[camera,body]"),
    "in-loop GMM + term, then guided 0.015, 3 loops, step 5": _in_loop(
        "gmm+diffusion", method="guided", diffusion__guided__loops=3, diffusion__guided__step=5,
        diffusion__guided__guidance_scale=0.015, diffusion__guided__pre_stages="[camera,body]"),
    "in-loop GMM x0.25 + term t 100->10": _in_loop("gmm+diffusion", diffusion__term_t_max=100, diffusion__term_t_min=10,
                                                   stages__1__terms__gmm_pose=5.7121),
    "from_regressor recipe": _shipped_recipe,
    "from_regressor recipe, camera stage lm 10": _all(_shipped_recipe, _camera_stage_lm(10)),
    # what spin-diff fit, cache build and eval --refine run from the bundled regressor
    "from_regressor recipe + conditional prior": _all(_shipped_recipe,
                                                      lambda c: prior_for_start(c, BUNDLED_KEYPOINT_REGRESSOR)),
    "anchor 3000": _set_terms(pose_anchor=3000.0),
    "anchor 1000": _set_terms(pose_anchor=1000.0),
    "anchor 300": _set_terms(pose_anchor=300.0),
    "anchor 100": _set_terms(pose_anchor=100.0),
    "anchor 0": _set_terms(pose_anchor=0.0),
    "anchor 0 + diffusion 0": _set_terms(pose_anchor=0.0, diffusion_pose=0.0),
    "anchor 0 + diffusion 10000": _set_terms(pose_anchor=0.0, diffusion_pose=10000.0),
    "anchor 0 + diffusion 1000": _set_terms(pose_anchor=0.0, diffusion_pose=1000.0),
    "anchor 0 + gmm x0.25": _set_terms(pose_anchor=0.0, gmm_pose=22.8484 / 4),
    "anchor 0 + gmm x4": _set_terms(pose_anchor=0.0, gmm_pose=22.8484 * 4),
    "anchor 300 + transl free": _all(_set_terms(pose_anchor=300.0), _free_transl),
    "anchor 300 + conf": _all(_set_terms(pose_anchor=300.0), _data_term("reprojection_conf")),
    "anchor 300 + 300 its": _all(_set_terms(pose_anchor=300.0), _iterations(300)),
    "anchor 300 + t 100->10": _all(_set_terms(pose_anchor=300.0), _setting("diffusion.term_t_max", 100),
                                  _setting("diffusion.term_t_min", 10)),  # fmt: skip
    "anchor 300 + sigma 50": _all(_set_terms(pose_anchor=300.0), _setting("sigma", 50.0)),
    "anchor 30000": _set_terms(pose_anchor=30000.0),
    "camera stage: transl only": lambda c: setattr(c.stages[0], "optimize", ["transl"]),
    "depth anchor 1e4": _set_terms(pose_anchor=0.0, depth_anchor=1e4),
    "depth anchor 1e5": _set_terms(pose_anchor=0.0, depth_anchor=1e5),
    "depth anchor 1e6": _set_terms(pose_anchor=0.0, depth_anchor=1e6),
    "depth anchor 1e5 + anchor 1000": _set_terms(pose_anchor=1000.0, depth_anchor=1e5),
    "depth anchor 1e5 + anchor 3000": _set_terms(pose_anchor=3000.0, depth_anchor=1e5),
    "depth anchor 1e5 + anchor 10000": _set_terms(depth_anchor=1e5),
    "diffusion 0 + anchor 3000": _set_terms(pose_anchor=3000.0, diffusion_pose=0.0),
    "diffusion 0 + anchor 1000": _set_terms(pose_anchor=1000.0, diffusion_pose=0.0),
    "diffusion 0 + anchor 300": _set_terms(pose_anchor=300.0, diffusion_pose=0.0),
    "diffusion 0 + depth anchor 1e4": _set_terms(pose_anchor=0.0, diffusion_pose=0.0, depth_anchor=1e4),
    "diffusion 0 + depth anchor 1e5": _set_terms(pose_anchor=0.0, diffusion_pose=0.0, depth_anchor=1e5),
    "diffusion 0 + depth anchor 1e5 + anchor 300": _set_terms(pose_anchor=300.0, diffusion_pose=0.0,
                                                              depth_anchor=1e5),
    "t 100->10": _all(_setting("diffusion.term_t_max", 100), _setting("diffusion.term_t_min", 10)),
    "t 100->10 + anchor 3000": _all(_set_terms(pose_anchor=3000.0), _setting("diffusion.term_t_max", 100),
                                    _setting("diffusion.term_t_min", 10)),
    "t 100->10 + anchor 1000": _all(_set_terms(pose_anchor=1000.0), _setting("diffusion.term_t_max", 100),
                                    _setting("diffusion.term_t_min", 10)),
    "t 100->10 + anchor 100": _all(_set_terms(pose_anchor=100.0), _setting("diffusion.term_t_max", 100),
                                   _setting("diffusion.term_t_min", 10)),
    "t 100->10 + anchor 0": _all(_set_terms(pose_anchor=0.0), _setting("diffusion.term_t_max", 100),
                                 _setting("diffusion.term_t_min", 10)),
    "t 50->5 + anchor 300": _all(_set_terms(pose_anchor=300.0), _setting("diffusion.term_t_max", 50),
                                 _setting("diffusion.term_t_min", 5)),
    "t 200->20 + anchor 300": _all(_set_terms(pose_anchor=300.0), _setting("diffusion.term_t_max", 200),
                                   _setting("diffusion.term_t_min", 20)),
    "t 100->10 + anchor 300 + diffusion 10000": _all(_set_terms(pose_anchor=300.0, diffusion_pose=10000.0),
                                                     _setting("diffusion.term_t_max", 100),
                                                     _setting("diffusion.term_t_min", 10)),
    "t 100->10 + anchor 300 + diffusion 1000": _all(_set_terms(pose_anchor=300.0, diffusion_pose=1000.0),
                                                    _setting("diffusion.term_t_max", 100),
                                                    _setting("diffusion.term_t_min", 10)),
    "t 100->10 + anchor 300 + depth 1e4": _all(_low_noise, _set_terms(pose_anchor=300.0, depth_anchor=1e4)),
    "t 100->10 + anchor 1000 + depth 1e4": _all(_low_noise, _set_terms(pose_anchor=1000.0, depth_anchor=1e4)),
    "t 100->10 + anchor 0 + depth 1e4": _all(_low_noise, _set_terms(pose_anchor=0.0, depth_anchor=1e4)),
    "t 100->10 + anchor 300 + depth 3e3": _all(_low_noise, _set_terms(pose_anchor=300.0, depth_anchor=3e3)),
    "t 100->10 + anchor 300 + depth 3e4": _all(_low_noise, _set_terms(pose_anchor=300.0, depth_anchor=3e4)),
    "t 100->10 + anchor 300 + gmm x0.25": _all(_low_noise, _set_terms(pose_anchor=300.0, gmm_pose=22.8484 / 4)),
    "t 100->10 + anchor 3000 -> 300 (2 x 100 its)": _all(_low_noise, _set_terms(pose_anchor=3000.0),
                                                         _then_body_stage(pose_anchor=300.0)),
    "t 100->10 + anchor 3000 -> 300 -> 0 + depth 1e4": _all(_low_noise, _set_terms(pose_anchor=3000.0, depth_anchor=1e4),
                                                            _then_body_stage(pose_anchor=300.0),
                                                            _then_body_stage(pose_anchor=0.0)),
    "anchor 300 + t 100->10, then guided 0.02": _all(_low_noise, _set_terms(pose_anchor=300.0), _guided(0.02),
                                                     _setting("diffusion.guided.pre_stages", ["camera", "body"])),
    "anchor 3000 + t 100->10, then guided 0.02": _all(_low_noise, _set_terms(pose_anchor=3000.0), _guided(0.02),
                                                      _setting("diffusion.guided.pre_stages", ["camera", "body"])),
    "anchor 300 + depth 1e4 + t 100->10, then guided 0.02": _all(
        _low_noise, _set_terms(pose_anchor=300.0, depth_anchor=1e4), _guided(0.02),
        _setting("diffusion.guided.pre_stages", ["camera", "body"])),
    "t 100->10 + anchor 300 + gmm 0": _all(_low_noise, _set_terms(pose_anchor=300.0, gmm_pose=0.0)),
    "t 100->10 + anchor 300 + gmm x0.1": _all(_low_noise, _set_terms(pose_anchor=300.0, gmm_pose=2.28484)),
    "t 100->10 + anchor 1000 + gmm x0.25": _all(_low_noise, _set_terms(pose_anchor=1000.0, gmm_pose=5.7121)),
    "t 100->10 + anchor 300 + gmm x0.25 + diffusion 10000": _all(
        _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121, diffusion_pose=10000.0)),
    "t 100->10 + anchor 300 + gmm x0.25 + depth 3e3": _all(
        _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=3e3)),
    "t 50->5 + anchor 300 + gmm x0.25": _all(_set_terms(pose_anchor=300.0, gmm_pose=5.7121),
                                             _setting("diffusion.term_t_max", 50), _setting("diffusion.term_t_min", 5)),
    "t 100->10 + anchor 300 + gmm x0.25 + betas fixed": _all(
        _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121), _body_moves(["body_pose", "global_orient"])),
    "t 100->10 + anchor 300 + gmm x0.25 + orientation fixed in body": _all(
        _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121), _body_moves(["body_pose", "betas"])),
    "t 100->10 + anchor 300 + gmm x0.25 + orientation never moves": _all(
        _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121), _body_moves(["body_pose", "betas"]),
        lambda c: setattr(c.stages[0], "optimize", ["transl"])),
    "t 100->10 + gmm x0.25 + depth 1e4 + anchor 3000 -> 300 -> 0": _all(
        _low_noise, _set_terms(pose_anchor=3000.0, depth_anchor=1e4, gmm_pose=5.7121),
        _then_body_stage(pose_anchor=300.0), _then_body_stage(pose_anchor=0.0)),
    "t 100->10 + gmm x0.25 + depth 3e3 + anchor 3000 -> 300 -> 0": _all(
        _low_noise, _set_terms(pose_anchor=3000.0, depth_anchor=3e3, gmm_pose=5.7121),
        _then_body_stage(pose_anchor=300.0), _then_body_stage(pose_anchor=0.0)),
    "t 100->10 + gmm x0.25 + depth 1e4 + anchor 1000 -> 0": _all(
        _low_noise, _set_terms(pose_anchor=1000.0, depth_anchor=1e4, gmm_pose=5.7121),
        _then_body_stage(pose_anchor=0.0)),
    "t 100->10 + gmm x0.25 + depth 1e4 + anchor 300": _all(
        _low_noise, _set_terms(pose_anchor=300.0, depth_anchor=1e4, gmm_pose=5.7121)),
    "orientation kept + t 100->10 + gmm x0.25 + anchor 300 + depth 1e4": _all(
        _orientation_kept, _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=1e4)),
    "orientation kept + t 100->10 + gmm x0.25 + anchor 300 + depth 3e3": _all(
        _orientation_kept, _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=3e3)),
    "orientation kept + t 100->10 + gmm x0.25 + depth 1e4 + anchor 3000 -> 300 -> 0": _all(
        _orientation_kept, _low_noise, _set_terms(pose_anchor=3000.0, depth_anchor=1e4, gmm_pose=5.7121),
        _then_body_stage(pose_anchor=300.0), _then_body_stage(pose_anchor=0.0)),
    "orientation kept + t 100->10 + gmm x0.1 + anchor 100": _all(
        _orientation_kept, _low_noise, _set_terms(pose_anchor=100.0, gmm_pose=2.28484)),
    "orientation kept + t 100->10 + gmm x0.25 + anchor 1000": _all(
        _orientation_kept, _low_noise, _set_terms(pose_anchor=1000.0, gmm_pose=5.7121)),
    "orientation anchor 1e3 + t 100->10 + gmm x0.25 + anchor 300": _all(
        _orientation_anchor(1e3), _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300": _all(
        _orientation_anchor(1e4), _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121)),
    "orientation anchor 1e5 + t 100->10 + gmm x0.25 + anchor 300": _all(
        _orientation_anchor(1e5), _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300, then guided 0.02": _all(
        _orientation_anchor(1e4), _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121), _guided(0.02),
        _setting("diffusion.guided.pre_stages", ["camera", "body"])),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300 + depth 3e3, then guided 0.02": _all(
        _orientation_anchor(1e4), _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=3e3),
        _guided(0.02), _setting("diffusion.guided.pre_stages", ["camera", "body"])),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + depth 3e3 + anchor 3000 -> 300 -> 0": _all(
        _orientation_anchor(1e4), _low_noise, _set_terms(pose_anchor=3000.0, depth_anchor=3e3, gmm_pose=5.7121),
        _then_body_stage(pose_anchor=300.0), _then_body_stage(pose_anchor=0.0)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300 + depth 3e3": _all(
        _orientation_anchor(1e4), _low_noise, _set_terms(pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=3e3)),
    "anchor 1000 + depth 1e4 + t 100->10, then guided 0.02": _then_guided(0.02, pose_anchor=1000.0, depth_anchor=1e4),
    "anchor 300 + depth 1e4 + t 100->10, then guided 0.01": _then_guided(0.01, pose_anchor=300.0, depth_anchor=1e4),
    "anchor 300 + depth 3e4 + t 100->10, then guided 0.02": _then_guided(0.02, pose_anchor=300.0, depth_anchor=3e4),
    "anchor 1000 + depth 3e4 + t 100->10, then guided 0.02": _then_guided(0.02, pose_anchor=1000.0, depth_anchor=3e4),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300, then guided 0.02, 5 loops": _all(
        _orientation_anchor(1e4), _then_guided(0.02, pose_anchor=300.0, gmm_pose=5.7121),
        _setting("diffusion.guided.loops", 5)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300, then guided 0.02, t_start 25": _all(
        _orientation_anchor(1e4), _then_guided(0.02, pose_anchor=300.0, gmm_pose=5.7121),
        _setting("diffusion.guided.t_start", 25)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300 + depth 1e4, then guided 0.01": _all(
        _orientation_anchor(1e4), _then_guided(0.01, pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=1e4)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 1000 + depth 3e3, then guided 0.02": _all(
        _orientation_anchor(1e4), _then_guided(0.02, pose_anchor=1000.0, gmm_pose=5.7121, depth_anchor=3e3)),
    "orientation anchor 1e4 + t 100->10 + gmm x0.25 + anchor 300 + depth 1e4, then guided 0.015": _all(
        _orientation_anchor(1e4), _then_guided(0.015, pose_anchor=300.0, gmm_pose=5.7121, depth_anchor=1e4)),
    "guided": _setting("method", "guided"),
    "guided + scale 0.02": _all(_setting("method", "guided"), _setting("diffusion.guided.guidance_scale", 0.02)),
    "guided + scale 0.005": _all(_setting("method", "guided"), _setting("diffusion.guided.guidance_scale", 0.005)),
    "guided + scale 0.05": _all(_setting("method", "guided"), _setting("diffusion.guided.guidance_scale", 0.05)),
    "guided + scale 0.1": _all(_setting("method", "guided"), _setting("diffusion.guided.guidance_scale", 0.1)),
    "guided + t_start 100": _all(_setting("method", "guided"), _setting("diffusion.guided.t_start", 100)),
    "guided + t_start 25": _all(_setting("method", "guided"), _setting("diffusion.guided.t_start", 25)),
    "guided + 20 loops": _all(_setting("method", "guided"), _setting("diffusion.guided.loops", 20)),
    "guided + camera transl only": _all(_setting("method", "guided"),
                                       lambda c: setattr(c.stages[0], "optimize", ["transl"])),
}


def candidate_config(name: str, prior: str | None = None) -> FittingConfig:
    """The candidate's FittingConfig; ``prior``: another diffusion prior checkpoint for it."""
    config = FittingConfig()
    change = CANDIDATES[name]
    if change is not None:
        change(config)
    if prior is not None:
        config.diffusion.checkpoint = prior
    return copy.deepcopy(config)


def starts_for(body, regressor, problems, names, pose_sigma: float, seed: int):
    """name -> (pose (B, 72) axis-angle, betas (B, 10), crop translation (B, 3) or None, the
    regressor's features (B, F) or None: what a conditional prior reads)."""
    count = problems.pose.shape[0]
    starts = {}
    if "regressor" in names:
        start = regressor_start(regressor, problems.keypoints.float(), body.num_betas)
        starts["regressor"] = (matrix_to_axis_angle(start.rotmat).reshape(count, 72), start.betas, start.transl,
                               start.features)  # fmt: skip
    if "mean" in names:
        mean = matrix_to_axis_angle(body.mean_pose_rotmat(count)).reshape(count, 72)
        starts["mean"] = (mean, torch.zeros_like(problems.betas), None, None)
    if "perturbed" in names:
        starts["perturbed"] = (*perturbed_start(problems, seed=seed + 1, pose_sigma=pose_sigma), None)
    return starts


def fit_in_batches(fitter, keypoints, start, seeds, batch: int, every_start: bool = False):
    """The fits (pose, betas) of every problem, ``batch`` people at a time (each with all its
    start hypotheses in the same batch), and the seconds taken. ``every_start``: the fits of
    every start, (K, N, ...), with their selection scores (K, N), instead of the chosen one."""
    pose0, betas0, transl0, features = start
    poses, betas, scores = [], [], []
    tic = time.perf_counter()
    for first in range(0, keypoints.shape[0], batch):
        rows = slice(first, first + batch)
        inputs = (keypoints[rows], pose0[rows], betas0[rows], None if transl0 is None else transl0[rows])
        condition = None if features is None else features[rows]
        if every_start:
            result = fitter.fit_all(*inputs, sample_seeds=seeds[rows], condition=condition)
            count = len(fitter.names)
            scores.append(selection_parts(fitter, result).view(2, count, -1))
            poses.append(result.pose.view(count, -1, 72))
            betas.append(result.betas.view(count, -1, result.betas.shape[-1]))
        else:
            result = fitter.fit(*inputs, sample_seeds=seeds[rows], condition=condition)
            poses.append(result.pose)
            betas.append(result.betas)
    dim = 1 if every_start else 0
    seconds = time.perf_counter() - tic
    if every_start:
        return torch.cat(poses, dim), torch.cat(betas, dim), torch.cat(scores, 2), seconds
    return torch.cat(poses), torch.cat(betas), seconds


def selection_parts(multi: MultiStart, result) -> torch.Tensor:
    """(2, rows): the reprojection score and the GMM energy of every start's fit (failed
    fits score inf), the two parts of ``reprojection_prior`` selection."""
    gmm = multi.method.context.gmm or gmm_prior_for(multi.config, multi.method.body)
    with torch.no_grad():
        energy = gmm(result.pose[:, 3:])
    inf = torch.full_like(result.score, float("inf"))
    return torch.stack([torch.where(result.success, result.score, inf), energy])


def hypotheses_section(body, problems, start, seeds, args, base: str) -> None:
    """What each start hypothesis buys: every start's fit alone, the best per person by the
    truth (an upper bound), and the choice without truth for several prior weights."""
    config = candidate_config(base, args.diffusion_prior)
    config.start_hypotheses = list(args.hypothesis_names)
    multi = MultiStart(SMPLify(body, config))
    poses, betas, parts, seconds = fit_in_batches(multi, problems.keypoints, start, seeds, args.batch, True)
    count, n = poses.shape[:2]
    errors = [joint_errors(body, poses[k], betas[k], problems.pose, problems.betas) for k in range(count)]
    before = joint_errors(body, start[0], start[1], problems.pose, problems.betas)
    pa = torch.stack([e["pa_mpjpe"] for e in errors])
    mpjpe = torch.stack([e["mpjpe"] for e in errors])

    def row(label: str, choice: torch.Tensor, per_person: float) -> None:
        chosen_pa = pa.gather(0, choice[None]).squeeze(0)
        chosen = mpjpe.gather(0, choice[None]).squeeze(0)
        worse = float((chosen_pa > before["pa_mpjpe"] + 1.0).float().mean()) * 100
        share = " ".join(f"{float((choice == k).float().mean()) * 100:3.0f}%" for k in range(count))
        print(f"{label:<44} | {float(chosen_pa.mean()):8.1f} {float(chosen.mean()):6.1f} | {worse:4.0f}% | "
              f"{share} | {per_person:8.3f}")  # fmt: skip

    print(f"\nstart hypotheses from the regressor, recipe {base!r}: starts {multi.names}, all in one batch per "
          f"{args.batch} people ({count * args.batch} rows); s/person: all starts together")  # fmt: skip
    print(f"{'choice':<44} | {'PA-MPJPE':>8} {'MPJPE':>6} | worse | {'share won per start':<{5 * count - 1}} | s/person")
    for k, name in enumerate(multi.names):
        row(f"{name} alone", torch.full((n,), k, dtype=torch.long), seconds / n)
    row("best by the truth (bound)", pa.argmin(0), seconds / n)
    for weight in PRIOR_WEIGHTS:
        score = parts[0] + weight * parts[1]
        row(f"reprojection + {weight:g} x GMM energy", torch.nan_to_num(score, nan=float("inf")).argmin(0),
            seconds / n)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=sorted(SEEDS), default="val")
    parser.add_argument("--n", type=int, default=256, help="people (a multiple of --batch)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--starts", default="regressor", help="comma-separated: regressor, mean, perturbed")
    parser.add_argument("--candidates", default=";".join(CANDIDATES), help="names of CANDIDATES separated by ';'")
    parser.add_argument("--pose-sigma", type=float, default=0.12, help="rad per joint of the perturbed start")
    parser.add_argument("--hypotheses", metavar="CANDIDATE",
                        help="also fit the regressor start with the start hypotheses under this candidate")
    parser.add_argument("--hypothesis-names", default=",".join(HYPOTHESES),
                        help="the start hypotheses of --hypotheses, comma-separated (spin_diff.fitting.multi_start: "
                        "flipped, mean_pose, the joint tweaks, the depth flips flip_<side>_<bone>, or depth_flips "
                        "for all twelve)")
    parser.add_argument("--eval-file", metavar="DIR",
                        help="also write the problems as DIR/real_starts_<split>.npz for spin-diff eval --refine")
    parser.add_argument("--diffusion-prior", metavar="CKPT",
                        help="fit every candidate with this diffusion prior (a conditional one reads the regressor's "
                        "features from the regressor start)")
    parser.add_argument("--regressor", type=Path, default=BUNDLED_KEYPOINT_REGRESSOR,
                        help="the keypoint regressor whose predictions start the fits (default: the bundled one)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.hypothesis_names = [n for part in args.hypothesis_names.split(",") if part
                             for n in (DEPTH_FLIPS if part == "depth_flips" else [part])]  # fmt: skip
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.candidates.split(";") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"--candidates: unknown {unknown}; known: {list(CANDIDATES)}")
    body = load_body_model()
    regressor = load_regressor(args.regressor, body).eval()
    seed = SEEDS[args.split]
    problems = make_problems(body, args.n, seed=seed, corruption=CorruptionConfig.preset("detector"),
                             poses=load_real_poses(args.split))  # fmt: skip
    name = f"real_starts_{args.split}"  # also the stem of --eval-file's npz: spin-diff eval keys its noise by it
    seeds = example_seeds(name, torch.arange(args.n))
    if args.eval_file:
        path = write_keypoint_dataset(problems, Path(args.eval_file) / f"{name}.npz")
        print(f"wrote {path}: spin-diff eval --checkpoint {BUNDLED_KEYPOINT_REGRESSOR} --dataset {path} "
              f"--refine term,guided --batch-size {args.batch} --threads 1 gives the regressor rows")  # fmt: skip
    starts = starts_for(body, regressor, problems, args.starts.split(","), args.pose_sigma, seed)
    print(f"{args.n} people of the real CMU {args.split} split (seed {seed}), detector keypoints, SPIN crop camera, "
          f"batch {args.batch}, {torch.get_num_threads()} torch thread(s); mm, 14 LSP joints")  # fmt: skip
    header = (f"{'start':<9} | {'start PA':>8} {'MPJPE':>6} | {'candidate':<34} | {'PA-MPJPE':>8} {'(%)':>5} "
              f"{'MPJPE':>6} {'(%)':>5} | {'worse':>5} {'better':>6} | {'s/person':>8}")
    print(header)
    print("-" * len(header))
    for start_name, start in starts.items():
        before = joint_errors(body, start[0], start[1], problems.pose, problems.betas)
        pa0, mpjpe0 = float(before["pa_mpjpe"].mean()), float(before["mpjpe"].mean())
        for name in names:
            fitter = MultiStart(SMPLify(body, candidate_config(name, args.diffusion_prior)))
            pose, betas, seconds = fit_in_batches(fitter, problems.keypoints, start, seeds, args.batch)
            after = joint_errors(body, pose, betas, problems.pose, problems.betas)
            pa, mpjpe = float(after["pa_mpjpe"].mean()), float(after["mpjpe"].mean())
            worse = float((after["pa_mpjpe"] > before["pa_mpjpe"] + 1.0).float().mean()) * 100
            better = float((after["pa_mpjpe"] < before["pa_mpjpe"] - 1.0).float().mean()) * 100
            print(f"{start_name:<9} | {pa0:8.1f} {mpjpe0:6.1f} | {name:<34} | {pa:8.1f} {100 * (pa / pa0 - 1):+5.0f} "
                  f"{mpjpe:6.1f} {100 * (mpjpe / mpjpe0 - 1):+5.0f} | {worse:4.0f}% {better:5.0f}% | "
                  f"{seconds / args.n:8.3f}", flush=True)  # fmt: skip
    if args.hypotheses:
        hypotheses_section(body, problems, starts["regressor"], seeds, args, args.hypotheses)
    print("worse / better: share of people whose PA-MPJPE the fit raised / lowered by more than 1 mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
