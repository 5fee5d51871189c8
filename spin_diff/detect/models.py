"""BlazePose's network files: where they live, how they are fetched, how they are loaded.

The files are MediaPipe's (Apache-2.0): ``pose_detection.tflite`` (person detector) and
``pose_landmark_full.tflite`` (landmark model), taken with MediaPipe's licence text out of the
``mediapipe==0.10.21`` wheel on PyPI (the last release that ships them). :func:`fetch_models`
downloads that wheel with pip (``--no-deps``: mediapipe itself is never installed; one fixed
platform's wheel, as the model files are the same in every wheel), checks the files'
SHA-256 and writes them to :func:`model_folder`. ``spin-diff detect --setup`` runs it;
``scripts/setup.sh`` does so. Nothing is downloaded while detecting.

The networks run on ``ai_edge_litert`` (Google's TFLite runtime, Apache-2.0, numpy only), the
``detect`` extra; it is imported here, when a detector is made, so the package works without it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from spin_diff.errors import BadInputError, MissingInputError

__all__ = ["MODEL_FILES", "fetch_models", "load_interpreters", "missing_models", "model_folder"]

MEDIAPIPE_VERSION = "0.10.21"
# The wheel fetched: any platform's holds the same model files; this one is pinned so every
# machine fetches (and checks) the same bytes.
WHEEL_PLATFORM = ("manylinux_2_28_x86_64", "3.11")
MODEL_FILES = {  # file name -> (path inside the wheel, SHA-256)
    "pose_detection.tflite": (
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "pose_landmark_full.tflite": (
        "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
    "LICENSE": (
        f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE",
        "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8",
    ),
}
ENV_VAR = "SPIN_DIFF_DETECTOR_DIR"
SETUP_HINT = "run `spin-diff detect --setup` (fetches them from PyPI's mediapipe wheel, ~36 MB)"


def model_folder() -> Path:
    """Where the model files live: ``$SPIN_DIFF_DETECTOR_DIR``, else
    ``~/.cache/spin_diff/blazepose-<mediapipe version>``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "spin_diff" / f"blazepose-{MEDIAPIPE_VERSION}"


def missing_models(folder: Path | None = None) -> list[str]:
    """Names of the model files absent from ``folder`` (default :func:`model_folder`)."""
    folder = Path(folder) if folder is not None else model_folder()
    return [name for name in MODEL_FILES if not (folder / name).is_file()]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_models(wheel: Path, folder: Path) -> Path:
    """Copy the model files and licence out of a mediapipe wheel into ``folder``, each
    checked against its SHA-256."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as err:
        raise BadInputError(f"{wheel} is not a readable wheel ({err})") from err
    folder.mkdir(parents=True, exist_ok=True)
    with archive:
        for name, (member, digest) in MODEL_FILES.items():
            try:
                data = archive.read(member)
            except KeyError as err:
                raise BadInputError(
                    f"{wheel} holds no {member}: use the mediapipe {MEDIAPIPE_VERSION} wheel"
                ) from err
            if _sha256(data) != digest:
                raise BadInputError(f"{member} in {wheel} is not the file this detector was built for")
            (folder / name).write_bytes(data)
    return folder


def fetch_models(folder: Path | None = None, wheel: Path | None = None) -> Path:
    """Put the model files in ``folder`` (default :func:`model_folder`): from ``wheel`` (a
    downloaded ``mediapipe-0.10.21-*.whl``) or else downloaded from PyPI with pip. Files
    already there are checked, not fetched again. Returns the folder."""
    folder = Path(folder) if folder is not None else model_folder()
    if not missing_models(folder) and all(
        _sha256((folder / name).read_bytes()) == digest for name, (_, digest) in MODEL_FILES.items()
    ):
        return folder
    if wheel is not None:
        return extract_models(Path(wheel), folder)
    platform, python = WHEEL_PLATFORM
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
            "--only-binary=:all:", "--platform", platform, "--python-version", python, "--dest", tmp,
            "--quiet",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
        if done.returncode != 0 or not wheels:
            raise MissingInputError(
                f"could not download mediapipe=={MEDIAPIPE_VERSION} from PyPI ({done.stderr.strip()[-300:]}); "
                "download the wheel elsewhere and pass it: spin-diff detect --setup --wheel FILE"
            )
        return extract_models(wheels[0], folder)


def load_interpreters(folder: Path | None = None, threads: int = 1):
    """The person detector's and landmark model's TFLite interpreters, tensors allocated.

    Raises:
        MissingInputError: ``ai_edge_litert`` not installed, or a model file missing.
    """
    folder = Path(folder) if folder is not None else model_folder()
    missing = missing_models(folder)
    if missing:
        raise MissingInputError(f"detector model files missing in {folder} ({', '.join(missing)}): {SETUP_HINT}")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise MissingInputError(
            "the keypoint detector needs ai-edge-litert: pip install 'spin_diff[detect]' "
            "(or pass --keypoints with OpenPose JSON)"
        ) from err
    interpreters = []
    for name in ("pose_detection.tflite", "pose_landmark_full.tflite"):
        interpreter = Interpreter(model_path=str(folder / name), num_threads=max(1, int(threads)))
        interpreter.allocate_tensors()
        interpreters.append(interpreter)
    return tuple(interpreters)
