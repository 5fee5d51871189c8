"""Settings for the whole test suite, and fixtures several test folders share."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from spin_diff.diffusion.config import DenoiserConfig, DiffusionModelConfig

# The tests run many small tensor operations; on a 2-core machine shared with other work,
# torch's intra-op threads mostly wait on each other (measured: 10x slower fast-joints steps
# with 2 threads under load than with 1). One thread keeps the suite fast and steady.
torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption(
        "--device",
        default="cpu",
        help="torch device the device tests run on (cpu, cuda, cuda:N); on another device than the "
        "cpu they also compute a CPU reference and compare within the tolerance each states",
    )


def pytest_configure(config):
    name = config.getoption("--device")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise pytest.UsageError(f"--device {name!r} is not a torch device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {name}: torch {torch.__version__} sees no CUDA device here")
    config.addinivalue_line("markers", "device: takes the device fixture (set here); -m device --device cuda runs them")


def pytest_collection_modifyitems(config, items):
    # By fixture, not by path: the device tests are found wherever they move to
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The device of ``--device`` (default cpu). Tests that take it run there; where it is not
    the cpu they compare their results against the same computation on the cpu."""
    return torch.device(request.config.getoption("--device"))


@pytest.fixture(scope="session")
def device_body_model(device):
    """The bundled body model on ``device``."""
    from spin_diff.body.model import load_body_model

    return load_body_model(device=device)


@pytest.fixture(scope="session")
def other_body_folder(tmp_path_factory) -> Path:
    """A copy of the bundled model folder with a slightly larger template and other mean
    parameters: a different body model (other file hash, other smpl_mean_params.npz)."""
    from spin_diff.body.files import BUNDLED_MODEL_DIR
    from spin_diff.body.smpl_format import read_smpl_file, write_smpl_pkl

    folder = tmp_path_factory.mktemp("other_body")
    shutil.copytree(BUNDLED_MODEL_DIR, folder, dirs_exist_ok=True)
    model_file = folder / "smpl" / "SMPL_NEUTRAL.pkl"
    arrays = read_smpl_file(model_file)
    write_smpl_pkl(
        model_file,
        v_template=arrays["v_template"] * 1.05,
        shapedirs=arrays["shapedirs"],
        J_regressor=arrays["J_regressor"],
        weights=arrays["weights"],
        faces=arrays["f"],
        kintree_table=arrays["kintree_table"],
        posedirs=arrays["posedirs"],
    )
    with np.load(folder / "smpl_mean_params.npz") as data:
        mean = {k: data[k].copy() for k in data.files}
    mean["shape"] = mean["shape"] + 0.5
    np.savez(folder / "smpl_mean_params.npz", **mean)
    return folder


@pytest.fixture(scope="session")
def other_body_model(other_body_folder):
    from spin_diff.body.model import load_body_model

    return load_body_model(other_body_folder)


@pytest.fixture(scope="session")
def body_model():
    from spin_diff.body.model import load_body_model

    return load_body_model()


# A tiny diffusion prior for tests of the prior and of the fitting terms that use it.
TINY_DENOISER = DenoiserConfig(width=64, hidden=128, blocks=2, time_dim=32)


@pytest.fixture(scope="session")
def tiny_config():
    return DiffusionModelConfig(denoiser=TINY_DENOISER)


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
