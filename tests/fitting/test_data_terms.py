"""The confidence mappings of the data term (conf, thresholded) against a closed form."""

import torch

from spin_diff.fitting.terms import FitState, TermContext, build_term


def _state(confidence):
    batch = confidence.shape[0]
    keypoints = torch.zeros(batch, 49, 2)
    projected = torch.zeros(batch, 49, 2)
    projected[:, :, 0] = 3.0  # 3 px off in x, 4 px in y: residual 5 px
    projected[:, :, 1] = 4.0
    zeros = torch.zeros(batch, 3)
    return FitState(
        global_orient=zeros, body_pose=torch.zeros(batch, 69), betas=torch.zeros(batch, 10), transl=zeros,
        joints=torch.zeros(batch, 49, 3), projected=projected, keypoints=keypoints, confidence=confidence,
        raw_confidence=confidence, init_transl=zeros,
    )  # fmt: skip


def test_confidence_mappings_match_closed_form():
    sigma = 100.0
    gmof = lambda r: sigma**2 * r**2 / (sigma**2 + r**2)  # noqa: E731
    per_joint = gmof(torch.tensor(3.0)) + gmof(torch.tensor(4.0))
    confidence = torch.zeros(2, 49)
    confidence[0, :3] = torch.tensor([0.8, 0.05, 0.5])
    confidence[1, 10] = 1.0
    context = TermContext(sigma=sigma, extras={"confidence_threshold": 0.1})
    state = _state(confidence)
    squared = build_term("reprojection", context)(state)
    linear = build_term("reprojection_conf", context)(state)
    thresholded = build_term("reprojection_thresholded", context)(state)
    torch.testing.assert_close(squared, per_joint * torch.tensor([0.64 + 0.0025 + 0.25, 1.0]))
    torch.testing.assert_close(linear, per_joint * torch.tensor([0.8 + 0.05 + 0.5, 1.0]))
    torch.testing.assert_close(thresholded, per_joint * torch.tensor([2.0, 1.0]))  # 0.05 is below 0.1
