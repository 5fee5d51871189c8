"""Settings for the whole test suite, and fixtures several test folders share."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

# The tests run many small tensor operations; on a 2-core machine shared with other work,
# torch's intra-op threads mostly wait on each other (measured: 10x slower fast-joints steps
# with 2 threads under load than with 1). One thread keeps the suite fast and steady.
torch.set_num_threads(1)


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
