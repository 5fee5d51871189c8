"""Settings for the whole test suite, and fixtures several test folders share."""

import shutil
from types import SimpleNamespace
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


# State-dict layouts of other projects' networks, written out from their architectures (not
# from our modules), so that a test of loading or exporting them can fail.
def resnet_layout(
    bottleneck: bool, blocks: tuple[int, ...], width: int = 64, classifier: bool = False
) -> dict:
    """Key -> shape of a torchvision ResNet state dict, written out from the architecture
    (stem, four stages of blocks, 1x1 strided downsample on each stage's first block)."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (width, 3, 7, 7)}

    def bn(prefix, channels):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", width)
    expansion = 4 if bottleneck else 1
    inplanes = width
    for stage, count in enumerate(blocks):
        planes = width * 2**stage
        for b in range(count):
            p = f"layer{stage + 1}.{b}"
            if bottleneck:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                for i, c in ((1, planes), (2, planes), (3, planes * 4)):
                    bn(f"{p}.bn{i}", c)
            else:
                shapes[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                bn(f"{p}.bn1", planes)
                bn(f"{p}.bn2", planes)
            if b == 0 and (stage > 0 or inplanes != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    if classifier:
        shapes["fc.weight"] = (1000, inplanes)
        shapes["fc.bias"] = (1000,)
    return shapes


def spin_hmr_layout() -> dict:
    """Key -> shape of SPIN's HMR (models/hmr.py): ResNet-50 trunk, fc1 over 2048 + 144 + 13
    inputs, fc2, the three decoders and the three (1, n) mean-parameter buffers."""
    shapes = resnet_layout(True, (3, 4, 6, 3))
    shapes.update({
        "fc1.weight": (1024, 2048 + 144 + 13), "fc1.bias": (1024,),
        "fc2.weight": (1024, 1024), "fc2.bias": (1024,),
        "decpose.weight": (144, 1024), "decpose.bias": (144,),
        "decshape.weight": (10, 1024), "decshape.bias": (10,),
        "deccam.weight": (3, 1024), "deccam.bias": (3,),
        "init_pose": (1, 144), "init_shape": (1, 10), "init_cam": (1, 3),
    })  # fmt: skip
    return shapes


def random_state(shapes: dict, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        else:
            state[key] = 0.02 * torch.randn(shape, generator=gen)
    return state


@pytest.fixture(scope="session")
def state_layouts():
    """``resnet_layout(bottleneck, blocks, width, classifier)`` (torchvision), ``spin_hmr_layout()``
    (SPIN's models/hmr.py), each key -> shape; ``random_state(shapes, seed)`` fills one."""
    return SimpleNamespace(resnet_layout=resnet_layout, spin_hmr_layout=spin_hmr_layout, random_state=random_state)
