"""A checkpoint with bytes overwritten inside is refused by every reader, the bundled assets' included.

torch.load does not check the zip members' CRC-32; a damaged file would load with garbage
weights (a resume with optimiser state up to 3e38, a fit started 83 px off).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spin_diff.cli.main import main
from spin_diff.diffusion.model import BUNDLED_DIFFUSION_PRIOR, DiffusionPriorError, load_diffusion_prior
from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR
from spin_diff.models.checkpoints import load_regressor
from spin_diff.utils.checkpoints import CheckpointError, read_torch_file, verify_torch_file


def damaged_copy(source: Path, target: Path, size: int = 4096) -> tuple[Path, str]:
    """A copy of ``source`` with ``size`` bytes overwritten inside its largest member's data;
    returns the copy and that member's name."""
    shutil.copyfile(source, target)
    with zipfile.ZipFile(target) as archive:
        member = max(archive.infolist(), key=lambda info: info.compress_size)
    with open(target, "r+b") as handle:
        handle.seek(member.header_offset + 26)
        name_length, extra_length = np.frombuffer(handle.read(4), dtype="<u2")
        start = member.header_offset + 30 + int(name_length) + int(extra_length)
        handle.seek(start + max(0, (member.compress_size - size) // 2))
        handle.write(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return target, member.filename


def test_verify_names_the_damaged_member_and_passes_an_intact_file(tmp_path):
    assert verify_torch_file(BUNDLED_KEYPOINT_REGRESSOR) == BUNDLED_KEYPOINT_REGRESSOR
    path, member = damaged_copy(BUNDLED_KEYPOINT_REGRESSOR, tmp_path / "regressor.pt")
    with pytest.raises(CheckpointError, match=f"member {member} fails its CRC-32 check"):
        verify_torch_file(path)
    with pytest.raises(CheckpointError, match="regressor.pt is damaged"):
        read_torch_file(path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(BUNDLED_KEYPOINT_REGRESSOR.read_bytes()[:-5000])
    with pytest.raises(CheckpointError, match="cut.pt"):
        read_torch_file(cut)


def test_the_bundled_assets_loaders_refuse_a_damaged_copy(body_model, tmp_path):
    regressor, _ = damaged_copy(BUNDLED_KEYPOINT_REGRESSOR, tmp_path / "keypoint_regressor.pt")
    with pytest.raises(CheckpointError, match="CRC-32"):
        load_regressor(regressor, body=body_model)
    prior, member = damaged_copy(BUNDLED_DIFFUSION_PRIOR, tmp_path / "diffusion_prior.pt")
    with pytest.raises(DiffusionPriorError, match=f"{member} fails its CRC-32"):
        load_diffusion_prior(prior)
    assert load_diffusion_prior(BUNDLED_DIFFUSION_PRIOR) is not None  # the intact file still loads


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    assert main(["synth", "--out", str(out), "--n", "2", "--image-size", "160x160", "--corrupt", "none", "--quiet"]) == 0
    return out


def test_fit_init_and_eval_refuse_a_damaged_regressor_in_one_line(photos, tmp_path, capsys):
    damaged, member = damaged_copy(BUNDLED_KEYPOINT_REGRESSOR, tmp_path / "regressor.pt")
    capsys.readouterr()
    code = main(["fit", str(photos / "images"), "--keypoints", str(photos / "keypoints"), "--out", str(tmp_path / "fit"),
                 "--init", str(damaged), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and member in err and "CRC-32" in err and err.count("\n") == 1
    assert not (tmp_path / "fit").exists() or not any((tmp_path / "fit").rglob("params.json"))
    code = main(["eval", "--checkpoint", str(damaged), "--dataset", str(photos / "synth.npz"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "CRC-32" in err and err.count("\n") == 1
