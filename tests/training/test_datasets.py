"""Training data: augmented views agree with each other, with the crops and with stored fits."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from training_helpers import make_keypoint_dataset, people

from spin_diff.body.files import body_model_hash
from spin_diff.cache.store import FitStore
from spin_diff.data.spin_npz import SpinDataError, write_spin_npz
from spin_diff.geometry.cameras import perspective_projection
from spin_diff.training.datasets import SpinDataset, TrainingData, crop_affine, view_keypoints
from spin_diff.training.frames import root_joint, to_view
from spin_diff.training.sampler import AugmentationConfig, BatchRequest, EpochBatchSampler, draw_epoch

VIEWS = [  # (flip, rotation, scale)
    (False, 0.0, 1.0), (True, 0.0, 1.0), (False, 35.0, 1.2), (True, -50.0, 0.8), (True, 20.0, 1.25),
]  # fmt: skip


@pytest.fixture(scope="module")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()


def _request(rows, flip, rotation, scale):
    n = len(rows)
    return BatchRequest(0, 0, np.zeros(n, np.int64), np.asarray(rows), np.full(n, flip), np.full(n, rotation),
                        np.full(n, scale), np.ones((n, 3)))  # fmt: skip


def _reprojection(body_model, pose, betas, transl, keypoints):
    with torch.no_grad():
        joints = body_model.joints(pose.float(), betas.float()).joints.double()
        projected = perspective_projection(joints, transl.double(), 5000.0)
    return (projected - keypoints[..., :2].double()).norm(dim=-1)


def test_fit_stored_from_one_view_reprojects_in_another(body_model, tmp_path):
    """Acceptance 2: the true body, fitted (here: known exactly) in view A, written through the
    loop's canonical mapping, read back in view B, lands on B's keypoints within 0.5 px."""
    from spin_diff.fitting.config import FittingConfig
    from spin_diff.fitting.smplify import SMPLify
    from spin_diff.training.config import scoring_config
    from spin_diff.training.fit_updates import unpack_updates
    from spin_diff.training.loop import canonical_updates

    npz = make_keypoint_dataset(body_model, tmp_path / "views.npz", 6, seed=1)
    pose, betas, transl = people(body_model, 6, seed=1)
    pose, betas, transl = (torch.as_tensor(v, dtype=torch.float32) for v in (pose, betas, transl))
    fitter = SMPLify(body_model, scoring_config(FittingConfig()))
    root = root_joint(body_model, betas)
    rows = np.arange(6)
    for a, (flip_a, rot_a, scale_a) in enumerate(VIEWS):
        store = FitStore.open_or_create(tmp_path / f"fits{a}", body_model_hash(body_model))
        data = TrainingData([SpinDataset(npz)], store=FitStore(tmp_path / f"fits{a}", readonly=True))
        batch = data.__getitems__(_request(rows, flip_a, rot_a, scale_a))
        # The true body in view A: rotated and mirrored by frames.to_view, camera scale_a further.
        pose_a, transl_a = to_view(pose, flip_a, rot_a, transl, root)
        transl_a = transl_a * torch.tensor([1.0, 1.0, scale_a])
        assert _reprojection(body_model, pose_a, betas, transl_a, batch["keypoints"]).max() < 0.5
        fit = SimpleNamespace(pose=pose_a, betas=betas, transl=transl_a)
        targets = SimpleNamespace(new_is_better=torch.ones(6, dtype=torch.bool))
        packed = canonical_updates(fitter, batch, fit, targets)
        store.update_if_better(unpack_updates(packed.numpy(), ["views"], step=0, config_hash=1))
        for flip_b, rot_b, scale_b in VIEWS:
            view = data.__getitems__(_request(rows, flip_b, rot_b, scale_b))
            assert view["stored_found"].all()
            _, _, lsq = fitter.score(view["stored_pose"], view["stored_betas"], view["keypoints"])
            error = _reprojection(body_model, view["stored_pose"], view["stored_betas"], lsq, view["keypoints"])
            assert error.max() < 0.5, (a, flip_b, rot_b, scale_b, float(error.max()))
            stored = store.get_many("views", rows)
            _, moved = to_view(torch.as_tensor(stored.pose), flip_b, rot_b, torch.as_tensor(stored.transl),
                               root_joint(body_model, torch.as_tensor(stored.betas)))  # fmt: skip
            moved = moved * torch.tensor([1.0, 1.0, scale_b])
            camera_error = _reprojection(body_model, view["stored_pose"], view["stored_betas"], moved, view["keypoints"])
            assert camera_error.max() < 0.5, float(camera_error.max())
        store.close()


def test_crop_pixels_follow_the_keypoints():
    """A bright dot drawn at a keypoint lands, in the warped crop, where the keypoint map puts it."""
    image = np.zeros((400, 500, 3), np.uint8)
    point = np.array([310.0, 170.0])
    cv2.circle(image, (310, 170), 3, (255, 255, 255), -1)
    keypoints = np.zeros((1, 49, 3))
    keypoints[0, :, :2] = point
    keypoints[0, :, 2] = 1
    for flip, rotation, scale in VIEWS:
        box = 1.5 * scale
        crop = cv2.warpAffine(image, crop_affine([[250, 200]], box, 224, rotation, flip)[0], (224, 224))
        ys, xs = np.nonzero(crop[..., 0] > 100)
        weight = crop[ys, xs, 0].astype(float)
        centroid = np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
        mapped = view_keypoints(keypoints, np.array([[250.0, 200.0]]), np.array([box]), np.array([rotation]),
                                np.array([flip]), 224)  # fmt: skip
        # every keypoint sits on the dot (the flip swaps sides, the points are all the same)
        assert np.abs(mapped[0, :, :2].numpy() - centroid).max() < 0.5


def test_images_are_cropped_coloured_and_normalised(tmp_path):
    image = np.full((240, 320, 3), 128, np.uint8)
    image[:, :, 0] = 40  # blue channel (BGR)
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), image)
    kp = np.zeros((1, 25, 3))
    write_spin_npz(tmp_path / "d.npz", {"imgname": np.array(["a.png"]), "center": np.array([[160.0, 120.0]]),
                                        "scale": np.array([1.0]), "openpose": kp})  # fmt: skip
    data = TrainingData([SpinDataset(tmp_path / "d.npz", tmp_path / "img", need_images=True)], use_images=True)
    request = _request([0], False, 0.0, 1.0)
    request.colour = np.array([[1.0, 1.2, 0.5]])
    crop = data.__getitems__(request)["images"][0]
    assert crop.shape == (3, 224, 224)
    # the centre pixel: RGB (128, 128, 40) times the colour factors, /255, ImageNet-normalised
    expected = (np.array([128 * 1.0, 128 * 1.2, 40 * 0.5]) / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    assert np.allclose(crop[:, 112, 112].numpy(), expected, atol=1e-5)


def test_sampler_order_depends_only_on_seed_and_epoch():
    aug = AugmentationConfig()
    sampler = EpochBatchSampler([10, 30], 4, seed=5, ratios=[0.5, 0.5], augmentation=aug)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=3)
    resumed = list(sampler)
    assert len(full) == 30 // 4 and len(resumed) == len(full) - 3
    for a, b in zip(full[3:], resumed):
        assert np.array_equal(a.index, b.index) and np.array_equal(a.dataset, b.dataset)
        assert np.array_equal(a.rotation, b.rotation) and np.array_equal(a.colour, b.colour)
    # two ranks split each global batch of the one-rank run (batch 2 x 2 ranks == batch 4)
    ranks = [EpochBatchSampler([10, 30], 2, seed=5, ratios=[0.5, 0.5], augmentation=aug, rank=r, world_size=2)
             for r in range(2)]  # fmt: skip
    for r in ranks:
        r.set_epoch(2)
    for whole, part0, part1 in zip(full, *ranks):
        assert np.array_equal(whole.index, np.concatenate([part0.index, part1.index]))
        assert np.array_equal(whole.flip, np.concatenate([part0.flip, part1.flip]))


def test_mixing_follows_the_ratios_and_augmentation_follows_spin():
    drawn = draw_epoch([100, 1000, 50], epoch=0, seed=0, ratios=[0.3, 0.6, 0.1], epoch_length=20000,
                       augmentation=AugmentationConfig())  # fmt: skip
    share = np.bincount(drawn.dataset, minlength=3) / drawn.dataset.size
    assert np.allclose(share, [0.3, 0.6, 0.1], atol=0.02)
    small = drawn.index[drawn.dataset == 2]
    assert small.max() < 50 and np.bincount(small).min() >= 1  # cycles through all 50
    assert abs(drawn.flip.mean() - 0.5) < 0.02
    assert abs((drawn.rotation == 0).mean() - 0.6) < 0.02 and np.abs(drawn.rotation).max() <= 60
    assert drawn.scale.min() >= 0.75 and drawn.scale.max() <= 1.25
    assert drawn.colour.min() >= 0.6 and drawn.colour.max() <= 1.4
    plain = draw_epoch([3, 4], epoch=1, seed=0)
    assert sorted(zip(plain.dataset.tolist(), plain.index.tolist())) == [(0, i) for i in range(3)] + [(1, i) for i in range(4)]


def test_bad_inputs_are_named(tmp_path, body_model):
    npz = make_keypoint_dataset(body_model, tmp_path / "kp.npz", 4)
    with pytest.raises(SpinDataError, match="--images"):
        SpinDataset(npz, None, need_images=True)
    with pytest.raises(FileNotFoundError, match="images of"):
        (tmp_path / "empty").mkdir()
        SpinDataset(npz, tmp_path / "empty", need_images=True)
    write_spin_npz(tmp_path / "nokp.npz", {"center": np.zeros((2, 2)), "scale": np.ones(2)}, require=("center",))
    with pytest.raises(SpinDataError, match="no 2D keypoints"):
        SpinDataset(tmp_path / "nokp.npz")
    with pytest.raises(ValueError, match="share the name"):
        TrainingData([SpinDataset(npz), SpinDataset(npz)])
    with pytest.raises(ValueError, match="one ratio per"):
        EpochBatchSampler([4, 4], 2, ratios=[1.0])
    with pytest.raises(ValueError, match="no full batch"):
        EpochBatchSampler([4], 8)
