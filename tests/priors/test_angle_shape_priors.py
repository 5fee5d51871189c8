"""SMPLify's elbow/knee bending prior and the shape prior."""

import numpy as np
import pytest
import torch

from spin_diff.priors.angle import angle_prior, shape_prior


def test_angle_prior_closed_form():
    pose = torch.zeros(2, 69, dtype=torch.float64)
    assert torch.allclose(angle_prior(pose), torch.full((2,), 4.0, dtype=torch.float64))
    pose[0, 52] = 0.5  # left elbow y: positive bends it backwards
    pose[0, 55] = 0.3  # right elbow y: positive is its natural bend
    pose[1, 9] = -0.2  # left knee x: negative bends it forwards (wrong way)
    pose[1, 12] = 1.0  # right knee x: natural bend
    expected = [np.exp(1.0) + np.exp(-0.6) + 2.0, 2.0 + np.exp(0.4) + np.exp(-2.0)]
    np.testing.assert_allclose(angle_prior(pose).numpy(), expected, rtol=1e-12)


def test_angle_prior_penalises_only_the_wrong_way():
    natural = torch.zeros(1, 69)
    natural[0, 52], natural[0, 55], natural[0, 9], natural[0, 12] = -1.5, 1.5, 1.5, 1.5
    wrong = -natural
    assert angle_prior(natural) < 0.2 < 4.0 < angle_prior(wrong)


def test_angle_prior_gradient():
    pose = (0.3 * torch.randn(3, 69, dtype=torch.float64, generator=torch.Generator().manual_seed(0))).requires_grad_()
    assert torch.autograd.gradcheck(angle_prior, (pose,))
    angle_prior(pose).sum().backward()
    signs = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    expected = torch.zeros_like(pose)
    expected[:, [52, 55, 9, 12]] = 2 * signs * torch.exp(2 * signs * pose.detach()[:, [52, 55, 9, 12]])
    torch.testing.assert_close(pose.grad, expected)


def test_shape_prior_value_and_gradient():
    betas = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(shape_prior(betas), torch.tensor([5.25, 0.0], dtype=torch.float64))
    assert torch.autograd.gradcheck(shape_prior, (betas,))


@pytest.mark.parametrize("fn, shape", [(angle_prior, (2, 72)), (shape_prior, (10,))])
def test_shapes_are_checked(fn, shape):
    with pytest.raises(ValueError):
        fn(torch.zeros(shape))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_priors_on_cuda_match_cpu_without_host_syncs():
    from spin_diff.priors.gmm import load_gmm_prior

    prior = load_gmm_prior()
    pose = 0.2 * torch.randn(16, 69, generator=torch.Generator().manual_seed(0))
    betas = torch.randn(16, 10, generator=torch.Generator().manual_seed(1))
    expected = prior(pose) + angle_prior(pose) + shape_prior(betas)
    prior_cuda = prior.cuda()
    pose_cuda, betas_cuda = pose.cuda().requires_grad_(), betas.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        total = prior_cuda(pose_cuda) + angle_prior(pose_cuda) + shape_prior(betas_cuda)
        total.sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(total.detach().cpu(), expected, rtol=1e-4, atol=1e-3)
