"""Fixtures shared by the diffusion tests: tiny priors, the bundled prior, one torch thread."""

import pytest
import torch

from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig

TINY = DenoiserConfig(width=64, hidden=128, blocks=2, time_dim=32)


@pytest.fixture(autouse=True)
def single_thread():
    """Small tensors: thread hand-offs cost more than the work on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_config():
    return DiffusionModelConfig(denoiser=TINY)


@pytest.fixture(scope="session")
def tiny_prior(tiny_config):
    """An untrained tiny prior with non-trivial weights (deterministic)."""
    from spin_diff.diffusion.model import DiffusionPrior

    torch.manual_seed(0)
    prior = DiffusionPrior(tiny_config)
    with torch.no_grad():  # the zero-initialised modulation would make t irrelevant
        for block in prior.denoiser.blocks:
            block.modulation[1].weight.normal_(0.0, 0.05)
    return prior.eval().requires_grad_(False)


@pytest.fixture(scope="session")
def bundled_prior():
    from spin_diff.diffusion.model import load_diffusion_prior

    return load_diffusion_prior()


@pytest.fixture(scope="session")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()
