"""Honest success (residual and pose-prior thresholds) and the choice among start hypotheses."""

import math

import pytest
import torch

from spin_diff.fitting.base import FitResult
from spin_diff.fitting.config import FitQualityConfig, FittingConfig
from spin_diff.fitting.multi_start import (
    DEPTH_FLIPS,
    START_HYPOTHESES,
    hypothesis_starts,
    select_fits,
    selection_scores,
)
from spin_diff.fitting.quality import assess_fits, confident_residual


class ConstantPrior(torch.nn.Module):
    def __init__(self, values):
        super().__init__()
        self.register_buffer("values", torch.tensor(values))

    def forward(self, body_pose):
        return self.values


def test_confident_residual_counts_only_confident_joints():
    residuals = torch.tensor([[1.0, 3.0, 100.0], [5.0, 5.0, 5.0]])
    confidence = torch.tensor([[0.9, 0.5, 0.1], [0.0, 0.0, 0.0]])
    mean, count = confident_residual(residuals, confidence, 0.3)
    assert mean[0].item() == 2.0 and count.tolist() == [2.0, 0.0] and math.isnan(mean[1].item())


def test_fits_beyond_the_thresholds_fail_with_their_reason():
    config = FitQualityConfig(max_residual_px=10.0, max_pose_prior=200.0, confident=0.3)
    residuals = torch.tensor([[2.0] * 49, [30.0] * 49, [2.0] * 49, [2.0] * 49])
    confidence = torch.full((4, 49), 0.8)
    confidence[3] = 0.0
    fit_ok = torch.tensor([True, True, True, True])
    quality = assess_fits(
        residuals,
        confidence,
        torch.zeros(4, 69),
        fit_ok,
        [None] * 4,
        config,
        ConstantPrior([90.0, 90.0, 500.0, 90.0]),
    )
    assert quality.success.tolist() == [True, False, False, False]
    assert quality.failure[0] is None
    assert "does not follow the keypoints: mean residual 30.0 px" in quality.failure[1]
    assert "implausible pose: GMM pose prior energy 500.0" in quality.failure[2]
    assert "no keypoint above confidence" in quality.failure[3]
    # the fitter's own failure is kept; disabled checks judge nothing
    kept = assess_fits(residuals, confidence, torch.zeros(4, 69), ~fit_ok, ["diverged"] * 4, config, None)
    assert kept.failure == ["diverged"] * 4 and not kept.success.any()
    off = assess_fits(
        residuals, confidence, torch.zeros(4, 69), fit_ok, [None] * 4, FitQualityConfig(enabled=False)
    )
    assert off.success.all()


def _result(final_loss, success):
    batch = len(final_loss)
    ident = torch.arange(batch, dtype=torch.float32)
    return FitResult(
        pose=ident[:, None].expand(batch, 72).clone(), betas=ident[:, None].expand(batch, 10).clone(),
        transl=ident[:, None].expand(batch, 3).clone(), score=ident.clone(), initial_score=ident.clone(),
        joint_losses=torch.zeros(batch, 49), joint_residuals=torch.zeros(batch, 49),
        success=torch.tensor(success), failure=[None if s else "bad" for s in success],
        iterations=torch.ones(batch, dtype=torch.long), flipped=torch.zeros(batch, dtype=torch.bool),
        stage_losses={"camera": torch.zeros(batch), "body": torch.tensor(final_loss)},
    )  # fmt: skip


def test_select_fits_keeps_the_lowest_final_objective_per_person():
    # 2 hypotheses x 3 people, hypothesis-major: rows 0-2 the first start, rows 3-5 the second
    result = _result([5.0, 1.0, 7.0, 4.0, 2.0, 0.5], [True, True, True, True, True, False])
    selected, best = select_fits(result, 2)
    assert best.tolist() == [1, 0, 0]  # person 2's lower loss came from a failed fit
    assert selected.pose[:, 0].tolist() == [3.0, 1.0, 2.0]
    assert selected.iterations.tolist() == [2, 2, 2]
    assert selected.stage_losses["body"].tolist() == [4.0, 1.0, 7.0]


def test_hypothesis_starts_bend_only_their_joints():
    from spin_diff.body.joints import SMPL_JOINT_NAMES

    start = torch.eye(3).expand(2, 24, 3, 3).clone()
    starts = hypothesis_starts(start, ["knees_bent"])
    assert starts.shape == (2, 2, 24, 3, 3) and torch.equal(starts[0], start)
    changed = (starts[1] - start).abs().sum((0, 2, 3)) > 0
    assert [SMPL_JOINT_NAMES[i] for i in changed.nonzero().flatten()] == sorted(
        START_HYPOTHESES["knees_bent"], key=SMPL_JOINT_NAMES.index
    )
    with pytest.raises(ValueError, match="unknown"):
        hypothesis_starts(start, ["cartwheel"])


def test_other_starts_turn_the_body_or_take_the_mean_pose():
    from spin_diff.geometry.rotations import axis_angle_to_matrix

    gen = torch.Generator().manual_seed(2)
    start = axis_angle_to_matrix(0.4 * torch.randn(3, 24, 3, generator=gen))
    mean = axis_angle_to_matrix(0.2 * torch.randn(1, 24, 3, generator=gen))
    starts = hypothesis_starts(start, ["flipped", "mean_pose"], mean.expand(3, 24, 3, 3))
    assert starts.shape == (3, 3, 24, 3, 3)
    half_turn = axis_angle_to_matrix(torch.tensor([0.0, math.pi, 0.0]))
    torch.testing.assert_close(starts[1, :, 0], half_turn @ start[:, 0])
    assert torch.equal(starts[1, :, 1:], start[:, 1:])  # the body pose itself unchanged
    assert torch.equal(starts[2], mean.expand(3, 24, 3, 3))
    with pytest.raises(ValueError, match="mean pose"):
        hypothesis_starts(start, ["mean_pose"])


def test_depth_flips_keep_the_image_of_the_limb_and_reverse_the_depth_of_its_flipped_bones(body_model):
    """Against the body model's skeleton (an independent forward): each flipped bone's camera
    direction has its depth negated, the other bone keeps its direction, every joint outside
    the limb stays where it was."""
    from spin_diff.body.joints import SMPL_JOINT_NAMES
    from spin_diff.geometry.rotations import axis_angle_to_matrix

    gen = torch.Generator().manual_seed(4)
    start = axis_angle_to_matrix(0.5 * torch.randn(6, 24, 3, generator=gen))
    starts = hypothesis_starts(start, list(DEPTH_FLIPS), rest_joints=body_model.fast.joint_template)
    betas = torch.zeros(6, 10)
    before = body_model.fast(start, betas).skeleton
    for k, (name, (chain, flips)) in enumerate(DEPTH_FLIPS.items(), start=1):
        after = body_model.fast(starts[k], betas).skeleton
        a, b, c = (SMPL_JOINT_NAMES.index(j) for j in chain)
        for (p, q), flipped in zip(((a, b), (b, c)), flips):
            old, new = before[:, q] - before[:, p], after[:, q] - after[:, p]
            torch.testing.assert_close(new[:, :2], old[:, :2], atol=1e-5, rtol=0, msg=name)
            torch.testing.assert_close(new[:, 2], -old[:, 2] if flipped else old[:, 2], atol=1e-5, rtol=0, msg=name)
        outside = [j for j in range(24) if j not in (b, c) and SMPL_JOINT_NAMES[j].split("_")[-1] not in ("hand", "foot")]
        torch.testing.assert_close(after[:, outside], before[:, outside], atol=1e-6, rtol=0, msg=name)
    with pytest.raises(ValueError, match="rest joints"):
        hypothesis_starts(start, ["flip_left_arm"])


def test_reprojection_prior_selection_weighs_the_pose_prior():
    # 2 starts x 2 people: person 0's second fit reprojects better but is a contortion
    result = _result([0.0, 0.0, 0.0, 0.0], [True] * 4)
    result.score = torch.tensor([3.0, 2.0, 1.0, 4.0])
    prior = ConstantPrior([100.0, 100.0, 400.0, 100.0])
    scores = {}
    for weight in (0.0, 0.1):
        config = FittingConfig(hypothesis_selection="reprojection_prior", hypothesis_prior_weight=weight)
        scores[weight] = selection_scores(result, config, prior)
    assert select_fits(result, 2, scores[0.0], ["given", "flipped"])[0].hypothesis == ["flipped", "given"]
    assert select_fits(result, 2, scores[0.1], ["given", "flipped"])[0].hypothesis == ["given", "given"]
    with pytest.raises(ValueError, match="GMM"):
        selection_scores(result, FittingConfig(hypothesis_selection="reprojection_prior", hypothesis_prior_weight=1.0))
