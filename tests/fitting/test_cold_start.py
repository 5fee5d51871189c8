"""The cold-start recipe against SPIN's in-loop recipe, from the mean pose, on synthetic people
seen by a photo-like full-image camera with detector-like keypoints;
the recipes' files; the torso metrics against known answers."""

import itertools
import math

import numpy as np
import pytest
import torch

from spin_diff.body.measures import torso_angle, torso_lean
from spin_diff.cli.fit import default_recipe, recipe_path
from spin_diff.data.corruption import CorruptionConfig
from spin_diff.data.keypoint_sets import make_photo_problems
from spin_diff.evaluation.metrics import joint_errors
from spin_diff.fitting.config import Config, FittingConfig
from spin_diff.fitting.images import fit_keypoints, keypoint_box
from spin_diff.fitting.quality import confident_residual
from spin_diff.fitting.smplify import SMPLify
from spin_diff.geometry.rotations import axis_angle_to_matrix
from spin_diff.utils.configs import load_config


@pytest.fixture(scope="module")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def photo_people(body_model):
    return make_photo_problems(body_model, 12, seed=0, corruption=CorruptionConfig.preset("detector"))


def fit_with(model, problems, recipe, camera=None):
    config = load_config(Config, recipe_path(recipe))
    fitter = SMPLify(model, config.fitting)
    boxes = [keypoint_box(k.numpy()) for k in problems.keypoints]
    count = len(boxes)
    fit = fit_keypoints(
        model, fitter, problems.keypoints,
        torch.tensor(np.stack([center for center, _ in boxes]), dtype=torch.float32),
        torch.tensor([size for _, size in boxes], dtype=torch.float32),
        torch.tensor([problems.image_size] * count, dtype=torch.float32),
        camera=camera or config.fitting.camera,
    )  # fmt: skip
    errors = joint_errors(model, fit.result.pose, fit.result.betas, problems.pose, problems.betas)
    confidence = fitter.body_stage_confidence(fit.crop_keypoints[..., 2])
    residual, _ = confident_residual(fit.result.joint_residuals, confidence, 0.3)
    return {
        "pa_mpjpe": errors["pa_mpjpe"].mean().item(),
        "torso": torso_angle(fit.joints_full, problems.joints).mean().item(),
        "residual": residual.mean().item(),
        "success": bool(fit.result.success.all()),
    }


@pytest.mark.slow
def test_cold_start_beats_the_in_loop_recipe_from_the_mean_pose(body_model, photo_people):
    cold = fit_with(body_model, photo_people, "cold_start")
    in_loop_crop = fit_with(body_model, photo_people, "from_regressor")  # today's spin-diff fit
    in_loop_full = fit_with(body_model, photo_people, "from_regressor", camera="full")
    assert cold["success"] and in_loop_crop["success"] and in_loop_full["success"]
    for other in (in_loop_crop, in_loop_full):
        assert cold["pa_mpjpe"] < other["pa_mpjpe"], (cold, other)
        assert cold["torso"] < other["torso"], (cold, other)
    assert cold["residual"] < 0.6 * in_loop_crop["residual"]  # it follows the keypoints


def test_recipes_are_named_files_and_chosen_by_the_start():
    assert default_recipe("mean") == "cold_start"
    assert default_recipe("regressor") == "photo"
    assert default_recipe("regressor", optimise=False) == "from_regressor"  # --no-optimise's camera
    photo = load_config(Config, recipe_path("auto", "regressor")).fitting
    # the cold start's stages and camera from the regressor's start alone (more starts lost on validation)
    cold = load_config(Config, recipe_path("cold_start")).fitting
    assert photo.stages == cold.stages and photo.camera == "full" and photo.orientation_flip.enabled
    assert photo.start_hypotheses == [] and cold.start_hypotheses
    cold = load_config(Config, recipe_path("auto")).fitting
    assert cold.camera == "full" and cold.orientation_flip.enabled
    gmm = [s.terms.get("gmm_pose", 0.0) for s in cold.stages[1:]]
    assert len(gmm) >= 3 and all(a > b for a, b in itertools.pairwise(gmm))  # decaying prior weights
    in_loop = load_config(Config, recipe_path("from_regressor")).fitting
    assert in_loop.camera == "crop" and [s.name for s in in_loop.stages] == [s.name for s in FittingConfig().stages]
    # chosen on real regressor predictions (benchmarks/real_starts.py): the anchors that keep
    # what 2D keypoints cannot fix (relative depth, the regressor's turn), a weaker anchor on
    # the pose than the library's, low-noise diffusion, then guided refinement
    body = in_loop.stages[1].terms
    assert body["depth_anchor"] > 0 and body["orientation_anchor"] > 0
    assert 0 < body["pose_anchor"] < FittingConfig().stages[1].terms["pose_anchor"]
    assert in_loop.diffusion.term_t_max < FittingConfig().diffusion.term_t_max
    assert in_loop.method == "guided" and in_loop.diffusion.guided.pre_stages == ["camera", "body"]


def test_torso_metrics_known_answers(body_model):
    """A body turned by a known angle about the camera's x axis leans by that angle."""
    pose = torch.zeros(1, 72)
    pose[0, 0] = math.pi  # upright, facing the camera
    with torch.no_grad():
        joints = body_model.joints(pose, torch.zeros(1, 10)).joints
    upright = torso_lean(joints)
    assert upright["total"].item() < 3.0  # the rest pose's torso is nearly vertical
    for degrees in (10.0, 30.0):
        turn = axis_angle_to_matrix(torch.tensor([math.radians(degrees), 0.0, 0.0]))
        tilted = joints @ turn.T
        assert torso_angle(tilted, joints).item() == pytest.approx(degrees, abs=1e-3)
        lean = torso_lean(tilted)
        # a positive turn about x takes up (-y) to (0, -cos, -sin): shoulders towards the camera
        assert lean["depth"].item() - upright["depth"].item() == pytest.approx(-degrees, abs=1e-3)
        assert lean["sideways"].item() == pytest.approx(upright["sideways"].item(), abs=1e-3)


@pytest.mark.slow
def test_cold_start_is_batch_invariant_apart_from_the_diffusion_noise(body_model, photo_people):
    """The extra starts and the per-person choice among them do not couple batch-mates. (The
    diffusion term's noise is drawn per batch, so it is left out here.)"""
    config = load_config(Config, recipe_path("cold_start")).fitting
    for stage in config.stages:
        stage.iterations = 10
        stage.terms.pop("diffusion_pose", None)
    fitter = SMPLify(body_model, config)
    boxes = [keypoint_box(k.numpy()) for k in photo_people.keypoints[:3]]
    centers = torch.tensor(np.stack([center for center, _ in boxes]), dtype=torch.float32)
    sizes = torch.tensor([size for _, size in boxes], dtype=torch.float32)
    image_sizes = torch.tensor([photo_people.image_size] * 3, dtype=torch.float32)
    batch = fit_keypoints(
        body_model, fitter, photo_people.keypoints[:3], centers, sizes, image_sizes, camera="full"
    )
    for i in range(3):
        alone = fit_keypoints(
            body_model, fitter, photo_people.keypoints[i : i + 1], centers[i : i + 1], sizes[i : i + 1],
            image_sizes[i : i + 1], camera="full",
        )  # fmt: skip
        torch.testing.assert_close(alone.result.pose[0], batch.result.pose[i], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.transl_full[0], batch.transl_full[i], atol=1e-5, rtol=0)
