"""A sample's fit does not depend on its batch: batch size, row, batch-mates.

Fitting one set of 12 problems as one batch, one by one, and with its rows permuted and split
unevenly (5 + 5 + 2) must give the same parameters to float tolerance, with the default Adam
recipe, the diffusion term (whose noise is keyed per sample) and the orientation-flip trial
(which doubles the batch) switched on. With ``--device cuda`` the same holds there, and the
device's fits agree with the cpu's (tolerances in the test).
"""

import pytest
import torch

from spin_diff.body.model import load_body_model
from spin_diff.constants import NUM_BETAS, NUM_POSE
from spin_diff.fitting.config import FittingConfig, OrientationFlipConfig, default_stages
from spin_diff.fitting.smplify import SMPLify
from spin_diff.utils.seeds import example_seeds

SET_SIZE = 12  # enough for the flip trial to go both ways and for uneven batches


@pytest.fixture(scope="module")
def model():
    return load_body_model()


def fit_in_batches(fitter, start, betas, keypoints, batch_size, order):
    """Fit rows ``order`` in consecutive batches; return the results in the original order."""
    pose = torch.empty(len(order), NUM_POSE)
    out_betas = torch.empty(len(order), NUM_BETAS)
    transl = torch.empty(len(order), 3)
    flipped = torch.empty(len(order), dtype=torch.bool)
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        seeds = example_seeds("invariance", rows)
        r = fitter.fit(keypoints[rows], start[rows], betas[rows], sample_seeds=seeds)
        assert r.success.all()
        pose[rows], out_betas[rows] = r.pose.cpu(), r.betas.cpu()
        transl[rows], flipped[rows] = r.transl.cpu(), r.flipped.cpu()
    return pose, out_betas, transl, flipped


def test_fits_do_not_depend_on_batch_size_or_row(model, device, device_body_model, turned_problems):
    config = FittingConfig(
        stages=default_stages(12), orientation_flip=OrientationFlipConfig(enabled=True, shoulder_distance_px=40.0)
    )
    assert "diffusion_pose" in config.stages[1].terms and config.optimizer == "adam"
    fitter = SMPLify(device_body_model, config)
    start, betas, keypoints = turned_problems(model, SET_SIZE)
    rows = torch.arange(SET_SIZE)
    reference = fit_in_batches(fitter, start, betas, keypoints, SET_SIZE, rows)
    assert reference[3].any() and not reference[3].all()  # the flip trial chose both ways
    shuffled = torch.randperm(SET_SIZE, generator=torch.Generator().manual_seed(1))
    for batch_size, order in ((1, rows), (5, shuffled)):
        pose, out_betas, transl, flipped = fit_in_batches(fitter, start, betas, keypoints, batch_size, order)
        assert torch.equal(flipped, reference[3])
        torch.testing.assert_close(pose, reference[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out_betas, reference[1], atol=1e-5, rtol=0)
        torch.testing.assert_close(transl, reference[2], atol=1e-4, rtol=1e-6)
    if device.type != "cpu":
        # The bound allowed (not yet measured on a GPU): float32 kernels differ by ~1e-7 per
        # operation, and ~110 Adam steps on a smooth objective should not grow that past 1e-3 rad
        on_cpu = fit_in_batches(SMPLify(model, config), start, betas, keypoints, SET_SIZE, rows)
        assert torch.equal(reference[3], on_cpu[3])
        torch.testing.assert_close(reference[0], on_cpu[0], atol=1e-3, rtol=0)
        torch.testing.assert_close(reference[1], on_cpu[1], atol=1e-3, rtol=0)
        torch.testing.assert_close(reference[2], on_cpu[2], atol=1e-2, rtol=1e-4)


def test_guided_refinement_does_not_depend_on_the_batch(model, turned_problems):
    config = FittingConfig(stages=default_stages(8), method="guided")
    config.diffusion.guided.loops = 3
    fitter = SMPLify(model, config)
    start, betas, keypoints = turned_problems(model, 6, seed=4)
    rows = torch.arange(6)
    reference = fit_in_batches(fitter, start, betas, keypoints, 6, rows)
    for batch_size in (1, 4):
        pose, out_betas, transl, _ = fit_in_batches(fitter, start, betas, keypoints, batch_size, rows)
        torch.testing.assert_close(pose, reference[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(transl, reference[2], atol=1e-4, rtol=1e-6)


def test_start_hypotheses_do_not_couple_people(model, turned_problems):
    """The regressor-start hypotheses (given, flipped, mean pose, a depth flip) fitted in one batch: each
    person's chosen fit and its winning start are the same alone and among others."""
    from spin_diff.fitting.multi_start import MultiStart

    config = FittingConfig(stages=default_stages(10), start_hypotheses=["flipped", "mean_pose", "flip_left_arm"],
                           hypothesis_selection="reprojection_prior", hypothesis_prior_weight=0.1)  # fmt: skip
    fitter = MultiStart(SMPLify(model, config))
    start, betas, keypoints = turned_problems(model, 5, seed=6)
    rows = torch.arange(5)
    together = fitter.fit(keypoints, start, betas, sample_seeds=example_seeds("hypotheses", rows))
    assert together.pose.shape == (5, NUM_POSE) and len(together.hypothesis) == 5
    for i in (0, 3):
        alone = fitter.fit(keypoints[i : i + 1], start[i : i + 1], betas[i : i + 1],
                           sample_seeds=example_seeds("hypotheses", rows[i : i + 1]))  # fmt: skip
        assert alone.hypothesis == together.hypothesis[i : i + 1]
        torch.testing.assert_close(alone.pose, together.pose[i : i + 1], atol=1e-5, rtol=0)


def test_the_regressor_recipe_does_not_depend_on_the_batch(model, turned_problems):
    """The shipped from_regressor recipe (anchors, low-noise term, then guided refinement),
    shortened: the same fits alone, in uneven batches and with rows permuted."""
    from spin_diff.fitting.config import Config
    from spin_diff.recipes import recipe_path
    from spin_diff.utils.configs import load_config

    config = load_config(Config, recipe_path("fit_from_regressor")).fitting
    assert config.method == "guided" and "depth_anchor" in config.stages[1].terms
    for stage in config.stages:
        stage.iterations = 8
    config.diffusion.guided.loops = 2
    fitter = SMPLify(model, config)
    start, betas, keypoints = turned_problems(model, 6, seed=8)
    rows = torch.arange(6)
    reference = fit_in_batches(fitter, start, betas, keypoints, 6, rows)
    shuffled = torch.randperm(6, generator=torch.Generator().manual_seed(2))
    for batch_size, order in ((1, rows), (4, shuffled)):
        pose, _, transl, _ = fit_in_batches(fitter, start, betas, keypoints, batch_size, order)
        torch.testing.assert_close(pose, reference[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(transl, reference[2], atol=1e-4, rtol=1e-6)


def test_the_photo_recipe_does_not_depend_on_the_batch(model):
    """spin-diff fit's default (the photo recipe: the cold start's stages from the bundled
    regressor's start, in the photo camera), shortened and with more starts per person (three
    tweaks of the regressor's and the mean pose), through fit_people as the command runs it:
    each person's fit and the start it kept are the same alone and in a batch."""
    from spin_diff.data.keypoint_sets import make_photo_problems
    from spin_diff.fitting.config import Config
    from spin_diff.fitting.images import Person, fit_people, keypoint_box
    from spin_diff.fitting.initialisation import prior_for_start, resolve_init
    from spin_diff.recipes import recipe_path
    from spin_diff.utils.configs import load_config

    config = load_config(Config, recipe_path("fit_photo")).fitting
    assert config.camera == "full" and config.orientation_flip.enabled
    config.start_hypotheses = ["knees_bent", "crouch", "arms_up", "mean_pose"]
    for stage in config.stages:
        stage.iterations = 6
    prior_for_start(config, "regressor")
    fitter = SMPLify(model, config)
    regressor = resolve_init("regressor", model, images_available=False)
    problems = make_photo_problems(model, 4, seed=12)
    people = []
    for i, keypoints in enumerate(problems.keypoints.numpy()):
        center, size = keypoint_box(keypoints)
        people.append(Person(f"photo/person_{i:02d}", keypoints, center, size, problems.image_size))
    together = fit_people(model, fitter, people, regressor=regressor).result
    assert len(together.hypothesis) == 4
    for i in (0, 2):
        alone = fit_people(model, fitter, people[i : i + 1], regressor=regressor).result
        assert alone.hypothesis == together.hypothesis[i : i + 1]
        torch.testing.assert_close(alone.pose, together.pose[i : i + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.transl, together.transl[i : i + 1], atol=1e-4, rtol=1e-6)
