"""The parts of a step: supervision rules, losses, fit seeds, packed updates."""

from __future__ import annotations

import numpy as np
import torch

from spin_diff.training import losses as L
from spin_diff.training.fit_updates import pack_updates, unpack_updates
from spin_diff.training.loop import batch_seeds, fit_from_prediction
from spin_diff.training.supervision import choose_supervision


def test_supervision_rules():
    inf = float("inf")
    b = 5
    stored_pose, new_pose, gt_pose = torch.full((b, 72), 1.0), torch.full((b, 72), 2.0), torch.full((b, 72), 3.0)
    betas = torch.zeros(b, 10)
    new_betas = torch.zeros(b, 10)
    new_betas[3, 4] = 3.5  # |beta| > 3: no shape supervision from it
    out = choose_supervision(
        stored_pose, betas, torch.tensor([50.0, 50.0, inf, 150.0, 20.0]),
        new_pose, new_betas, torch.tensor([40.0, 60.0, 120.0, 90.0, 10.0]),
        torch.tensor([True, True, True, True, False]),
        gt_pose, torch.ones(b, 10), torch.tensor([False, False, False, False, True]),
        torch.tensor([True, True, True, True, True]), threshold=100.0, beta_limit=3.0,
    )  # fmt: skip
    assert out.new_is_better.tolist() == [True, False, True, True, False]
    assert out.pose[:, 0].tolist() == [2.0, 1.0, 2.0, 2.0, 3.0]  # row 4: ground truth wins
    assert out.score.tolist() == [40.0, 50.0, 120.0, 90.0, 20.0]
    assert out.supervised.tolist() == [True, True, False, True, True]  # 120 > threshold; GT always
    assert out.betas[3].abs().sum() == 0 and torch.all(out.betas[4] == 1.0)


def test_losses_ignore_masked_rows_and_match_a_direct_computation():
    torch.manual_seed(0)
    pred = torch.randn(4, 49, 2, requires_grad=True)
    target = torch.cat([torch.randn(4, 49, 2), torch.rand(4, 49, 1)], -1)
    rows = torch.tensor([True, True, False, True])
    value = L.keypoint_loss(pred, target, rows, 224.0, openpose_weight=0.0, gt_weight=1.0)
    conf = target[..., 2].clone()
    conf[:, :25] = 0
    direct = (conf[..., None] * ((pred - target[..., :2]) / 112) ** 2)[rows].sum() / (4 * 49 * 2)
    assert torch.allclose(value, direct)
    value.backward()
    assert torch.all(pred.grad[2] == 0)
    nan_pred = torch.randn(3, 24, 3, 3)
    nan_pred[1] = float("nan")
    assert torch.isfinite(L.rotation_loss(nan_pred, torch.zeros(3, 24, 3, 3), torch.tensor([True, False, True])))
    assert L.rotation_loss(nan_pred, nan_pred, torch.zeros(3, dtype=torch.bool)) == 0  # no row: 0, not NaN


def test_fit_seeds_are_per_example_and_reach_smplify():
    batch_a = {"dataset": torch.tensor([0, 1, 0]), "index": torch.tensor([5, 5, 7])}
    batch_b = {"dataset": torch.tensor([0, 0]), "index": torch.tensor([7, 5])}
    seeds_a, seeds_b = batch_seeds(batch_a, ["lsp", "mpii"]), batch_seeds(batch_b, ["lsp", "mpii"])
    assert len(set(seeds_a.tolist())) == 3  # dataset and index both matter
    assert seeds_a[2] == seeds_b[0] and seeds_a[0] == seeds_b[1]  # batch-mates do not

    class Fitter:
        def fit(self, keypoints, init_pose, init_betas, init_transl=None, *, sample_seeds=None):
            self.seeds = sample_seeds
            return "fitted"

    class Prediction:
        rotmat, betas, transl = torch.eye(3).expand(2, 24, 3, 3), torch.zeros(2, 10), torch.zeros(2, 3)

    fitter = Fitter()
    assert fit_from_prediction(fitter, Prediction, {**batch_b, "keypoints": torch.zeros(2, 49, 3)}, ["lsp", "mpii"]) == "fitted"
    assert torch.equal(fitter.seeds, seeds_b)


def test_packed_updates_round_trip():
    b = 3
    write = torch.tensor([True, False, True])
    packed = pack_updates(write, torch.tensor([2, 2, 3]), torch.tensor([0, 1, 1]), torch.tensor([12, 13, 9_999_999_999]),
                          torch.tensor([1.5, 2.0, 3.0]), torch.randn(b, 72), torch.randn(b, 10), torch.randn(b, 3),
                          torch.rand(b, 49))  # fmt: skip
    batch = unpack_updates(packed.numpy(), ["a", "b"], step=7, config_hash=11)
    assert batch.dataset == ["a", "b"] and batch.index.tolist() == [12, 9_999_999_999]
    assert np.allclose(batch.pose, packed[write, 5:77].numpy()) and batch.source == [2, 3]
    assert unpack_updates(pack_updates(torch.zeros(1, dtype=torch.bool), *[torch.zeros(1)] * 4, torch.zeros(1, 72),
                                       torch.zeros(1, 10), torch.zeros(1, 3), torch.zeros(1, 49)).numpy(), ["a"], 0, 0) is None


def test_ground_truth_sent_again_by_a_stale_batch_is_stored_once(tmp_path):
    """A batch read before the previous write landed sends an example's ground truth again,
    scored a hair lower by float noise: the store keeps the first record (its step)."""
    from spin_diff.cache.records import Source
    from spin_diff.cache.store import FitStore
    from spin_diff.training.fit_updates import FitWriter

    def updates(source, score):
        n = 2
        return pack_updates(torch.ones(n, dtype=torch.bool), torch.full((n,), int(source)), torch.zeros(n),
                            torch.tensor([4, 5]), torch.full((n,), score), torch.zeros(n, 72), torch.zeros(n, 10),
                            torch.tensor([[0.0, 0.0, 40.0]] * n), torch.zeros(n, 49))  # fmt: skip

    store = FitStore.open_or_create(tmp_path / "fits", "0" * 64, "test body")
    writer = FitWriter(store, ["gt"], config_hash=7)
    writer.submit(updates(Source.GROUND_TRUTH, 0.50), step=1)
    writer.submit(updates(Source.GROUND_TRUTH, 0.49), step=2)  # the same truth, from a stale read
    writer.submit(updates(Source.IN_LOOP, 0.01), step=3)  # a fit never replaces ground truth
    writer.close()
    stored = store.get_many("gt", np.array([4, 5]))
    assert stored.step.tolist() == [1, 1] and np.allclose(stored.score, 0.50)
    assert np.all(stored.source == int(Source.GROUND_TRUTH)) and writer.protected == 2
    store.close()
