"""Fixtures shared by the prior tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread_priors():
    """One torch thread: these tests run many small tensor ops (EM on a few hundred samples,
    gradcheck), where thread hand-offs cost far more than the work on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
