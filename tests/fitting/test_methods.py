"""The fitting methods are peers behind one interface: staged SMPLify, guided refinement on
its own, and several starts per sample; each gives a per-sample FitResult."""

import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.fitting.config import FittingConfig, default_stages
from spin_diff.fitting.guidance import GuidedRefinement
from spin_diff.fitting.multi_start import MultiStart
from spin_diff.fitting.smplify import SMPLify
from spin_diff.utils.seeds import example_seeds


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def test_guided_refinement_alone_refines_the_start_it_is_given(model, turned_problems):
    """Without SMPLify's camera stage, from a start whose camera is known: the keypoints are
    explained better, betas are held, and a failed sample keeps its start."""
    start, betas, keypoints = turned_problems(model, 3, seed=2)
    keypoints[2, :, 2] = 0.0  # no confident joints: not fitted
    config = FittingConfig()
    config.diffusion.guided.loops = 2
    smplify = SMPLify(model, config)  # loads the bundled prior the default term uses
    guided = GuidedRefinement(model, config, smplify.context.extras["diffusion_prior"])
    transl = torch.tensor([0.0, 0.25, 45.0]).expand(3, 3)
    result = guided.fit(keypoints, start, betas, transl)
    assert result.success.tolist() == [True, True, False]
    assert set(result.stage_losses) == {"guided"}
    assert (result.score[:2] < result.initial_score[:2]).all()
    torch.testing.assert_close(result.betas, betas, rtol=0, atol=0)
    assert result.failure[2].startswith("too few confident joints")


def test_multi_start_without_hypotheses_is_its_method_and_with_them_stays_per_sample(model, turned_problems):
    config = FittingConfig(stages=default_stages(6))
    fitter = SMPLify(model, config)
    start, betas, keypoints = turned_problems(model, 3, seed=5)
    seeds = example_seeds("methods", torch.arange(3))
    alone = fitter.fit(keypoints, start, betas, sample_seeds=seeds)
    same = MultiStart(fitter).fit(keypoints, start, betas, sample_seeds=seeds)
    torch.testing.assert_close(same.pose, alone.pose, rtol=0, atol=0)

    several = MultiStart(fitter, ["knees_bent", "crouch"])
    batch = several.fit(keypoints, start, betas, sample_seeds=seeds)
    assert batch.pose.shape == (3, 72) and len(batch.failure) == 3
    # a sample's choice among its starts does not depend on its batch-mates
    last = several.fit(keypoints[2:], start[2:], betas[2:], sample_seeds=seeds[2:])
    torch.testing.assert_close(last.pose, batch.pose[2:], atol=1e-5, rtol=0)
