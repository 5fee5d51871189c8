"""The keep rules (``fitting.keep``, ``fitting.plausibility_gate``): which of a stored and a
new fit is kept and supervises, on hand-made cases, and a store refusing a run under another
rule than the one its scores were written with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from training_helpers import make_keypoint_dataset, tiny_config

from spin_diff.cache.errors import ScoreRuleMismatchError
from spin_diff.cache.records import FitBatch, Source
from spin_diff.cache.store import FitStore
from spin_diff.cache.transfer import export_npz, import_npz, merge_stores
from spin_diff.fitting.config import FittingConfig, spin_stages
from spin_diff.fitting.keep import KeepRule, body_stage_priors
from spin_diff.fitting.smplify import gmm_prior_for
from spin_diff.priors.angle import angle_prior
from spin_diff.training.run import train
from spin_diff.training.supervision import choose_supervision

SPIN = FittingConfig(stages=spin_stages(1))


@pytest.fixture(scope="module")
def gmm(body_model):
    return gmm_prior_for(SPIN, body_model)


def _poses(gmm):
    """Two body poses: the GMM's most likely mean (plausible) and a contorted one."""
    plausible = gmm.means[int(torch.argmin(gmm.constants))][None].float()
    contorted = plausible + 2.5 * torch.sign(torch.sin(torch.arange(69.0)))[None]
    assert gmm(contorted) > gmm(plausible) + 1000
    return plausible, contorted


def test_the_objective_rule_adds_the_body_stages_priors_per_joint(body_model, gmm):
    plausible, contorted = _poses(gmm)
    pose, betas = torch.cat([plausible, contorted]), torch.tensor([[0.5] * 10, [2.0] * 10])
    reprojection = torch.tensor([3.0, 4.0])
    weights = body_stage_priors(SPIN)
    assert weights == {"gmm_pose": 4.78**2, "angle": 15.2**2, "shape": 25.0}
    spin = KeepRule.of_stages(SPIN, body_model)
    objective = KeepRule.of_stages(SPIN, body_model, "objective", gmm=gmm)
    expected = reprojection + (4.78**2 * gmm(pose) + 15.2**2 * angle_prior(pose) + 25.0 * (betas**2).sum(1)) / 49
    torch.testing.assert_close(spin(reprojection, pose, betas), reprojection)
    torch.testing.assert_close(objective(reprojection, pose, betas), expected)


def _choose(rule, stored, new, stored_score, new_score, threshold=100.0):
    """choose_supervision for one example with a stored and a new fit (no ground truth)."""
    (stored_pose, stored_betas), (new_pose, new_betas) = stored, new
    full = lambda body: torch.cat([torch.zeros(1, 3), body], 1)
    return choose_supervision(
        full(stored_pose), stored_betas, rule(torch.tensor([stored_score]), stored_pose, stored_betas),
        full(new_pose), new_betas, rule(torch.tensor([new_score]), new_pose, new_betas), torch.tensor([True]),
        torch.zeros(1, 72), torch.zeros(1, 10), torch.tensor([False]), torch.tensor([True]), threshold, 3.0,
    )  # fmt: skip


def test_a_plausible_new_fit_replaces_a_contorted_stored_one_only_under_the_objective(body_model, gmm):
    """The study's case: the stored fit meets the keypoints a little better but is contorted; the
    new one (a prior term traded 2 px^2 of reprojection for plausibility) is a real body."""
    plausible, contorted = _poses(gmm)
    betas = torch.zeros(1, 10)
    stored, new = (contorted, betas), (plausible, betas)
    spin = _choose(KeepRule(), stored, new, stored_score=10.0, new_score=12.0)
    objective = _choose(KeepRule.of_stages(SPIN, body_model, "objective", gmm=gmm), stored, new, 10.0, 12.0)
    assert not spin.new_is_better and torch.allclose(spin.pose[:, 3:], contorted)
    assert objective.new_is_better and torch.allclose(objective.pose[:, 3:], plausible)
    # and where the new fit is the contorted one, neither rule takes it over a plausible stored fit
    reverse = _choose(KeepRule.of_stages(SPIN, body_model, "objective", gmm=gmm), new, stored, 12.0, 10.0)
    assert not reverse.new_is_better


def test_the_objective_threshold_bounds_the_total_loss(body_model, gmm):
    """CamSMPLify-style: under 'objective', the threshold applies to reprojection + priors."""
    plausible, contorted = _poses(gmm)
    betas = torch.zeros(1, 10)
    rule = KeepRule.of_stages(SPIN, body_model, "objective", gmm=gmm)
    empty = (plausible, betas)
    assert _choose(rule, empty, (plausible, betas), float("inf"), 50.0).supervised.item()
    assert not _choose(rule, empty, (contorted, betas), float("inf"), 50.0).supervised.item()
    assert _choose(KeepRule(), empty, (contorted, betas), float("inf"), 50.0).supervised.item()  # SPIN's rule


def test_the_gate_refuses_implausible_fits_under_either_rule(body_model, gmm):
    plausible, contorted = _poses(gmm)
    betas = torch.zeros(1, 10)
    gate = float(gmm(plausible)) + 100.0
    for name in ("reprojection", "objective"):
        rule = KeepRule.of_stages(SPIN, body_model, name, gate, gmm)
        # a contorted new fit, however well it meets the keypoints, never replaces nor supervises
        worse = _choose(rule, (plausible, betas), (contorted, betas), 50.0, 1.0)
        assert not worse.new_is_better and worse.supervised.item()
        # a contorted stored fit supervises no longer; any plausible new fit replaces it
        replaced = _choose(rule, (contorted, betas), (plausible, betas), 1.0, 60.0)
        assert replaced.new_is_better and replaced.supervised.item()
        alone = _choose(rule, (contorted, betas), (contorted, betas), 1.0, 1.0)
        assert not alone.supervised.item()


def test_a_store_remembers_its_rule_and_refuses_another(tmp_path):
    objective = {"rule": "objective", "weights": {"angle": 231.04, "gmm_pose": 22.8484, "shape": 25.0}}
    store = FitStore.open_or_create(tmp_path / "a", "hash", "model")
    assert store.score_rule() == {"rule": "reprojection"}  # nothing recorded: SPIN's
    store.claim_score_rule(objective)  # an empty store takes any rule
    store.claim_score_rule(objective)
    with pytest.raises(ScoreRuleMismatchError, match="'objective' with weights.*'reprojection'"):
        store.claim_score_rule({"rule": "reprojection"})
    heavier = {"rule": "objective", "weights": {**objective["weights"], "gmm_pose": 100.0}}
    with pytest.raises(ScoreRuleMismatchError):
        store.claim_score_rule(heavier)
    assert store.score_rule() == objective
    store.close()


def fit_batch(dataset, index, score) -> FitBatch:
    n = len(index)
    return FitBatch(dataset=dataset, index=np.asarray(index), pose=np.zeros((n, 72)), betas=np.zeros((n, 10)),
                    score=np.asarray(score, dtype=np.float64), source=Source.OFFLINE)  # fmt: skip


def test_export_import_and_merge_carry_the_rule(tmp_path):
    """Records written before rules were recorded are SPIN's; an export carries its store's
    rule, and stores of two rules neither import into each other nor merge."""
    objective = {"rule": "objective", "weights": {"gmm_pose": 22.8484}}
    spin_store = FitStore.open_or_create(tmp_path / "spin", "hash", "model")
    spin_store.update_if_better(fit_batch("d", [0, 1], [5.0, 6.0]))  # records, no rule recorded
    with pytest.raises(ScoreRuleMismatchError, match="'reprojection'"):
        spin_store.claim_score_rule(objective)
    spin_store.close()
    other = FitStore.open_or_create(tmp_path / "objective", "hash", "model")
    other.claim_score_rule(objective)
    other.update_if_better(fit_batch("d", [2], [7.0]))
    export_npz(other, tmp_path / "objective.npz")
    other.close()
    with pytest.raises(ScoreRuleMismatchError):
        import_npz(tmp_path / "objective.npz", tmp_path / "spin")
    with pytest.raises(ScoreRuleMismatchError, match="cannot merge"):
        merge_stores(tmp_path / "merged", [tmp_path / "spin", tmp_path / "objective"])
    import_npz(tmp_path / "objective.npz", tmp_path / "fresh")
    assert FitStore.open(tmp_path / "fresh").score_rule() == objective


@pytest.fixture(scope="module")
def two_d_only(body_model, tmp_path_factory):
    return make_keypoint_dataset(body_model, tmp_path_factory.mktemp("data") / "twod.npz", 16, seed=3, has_smpl=0.0)


def test_a_run_under_another_rule_than_its_store_is_refused_before_writing(two_d_only, tmp_path):
    run_dir = tmp_path / "run"
    train(tiny_config(steps=1), [(two_d_only, None)], run_dir, progress=False)  # SPIN's rule
    before = FitStore(run_dir / "fits", readonly=True).get_many("twod", np.arange(16))
    with pytest.raises(ScoreRuleMismatchError, match="'reprojection'.*'objective'"):
        train(tiny_config(steps=2, **{"fitting.keep": "objective"}), [(two_d_only, None)], run_dir,
              resume=True, progress=False)  # fmt: skip
    after = FitStore(run_dir / "fits", readonly=True).get_many("twod", np.arange(16))
    np.testing.assert_array_equal(after.score, before.score)


def test_the_objective_rule_trains_and_records_its_rule(two_d_only, tmp_path):
    config = tiny_config(steps=2, **{"fitting.keep": "objective", "fitting.threshold": 1000.0})
    train(config, [(two_d_only, None)], tmp_path / "run", progress=False)
    store = FitStore(tmp_path / "run" / "fits", readonly=True)
    assert store.score_rule()["rule"] == "objective"
    fits = store.get_many("twod", np.arange(16))
    assert fits.found.sum() >= 12 and np.isfinite(fits.score[fits.found]).all()
