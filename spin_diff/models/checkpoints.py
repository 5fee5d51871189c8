"""Reading and writing regressor checkpoints: SPIN's ``model_checkpoint.pt`` and our own.

* **SPIN's checkpoints** (``utils/saver.py``) are dicts whose ``model`` entry is the HMR state
  dict: ResNet-50 keys at the top level (``conv1``, ``bn1``, ``layer1`` .. ``layer4``), the
  head's ``fc1``, ``fc2``, ``decpose``, ``decshape``, ``deccam`` and the buffers
  ``init_pose`` / ``init_shape`` / ``init_cam`` (each ``(1, n)``). They are read as they are:
  the keys are mapped onto :class:`~spin_diff.models.hmr.Regressor` (``encoder.*`` and
  ``head.*``), the backbone's depth and width are read from the tensor shapes. A bare state
  dict with those keys is accepted too.
* **Our checkpoints** hold ``format`` = ``"spin_diff.regressor"``, the resolved
  :class:`~spin_diff.models.config.RegressorConfig`, the input kind, the SHA-256 of the body
  model file the regressor was built for, the state dict under ``model`` (SPIN's entry name)
  and whatever else the caller adds (optimizer, step ...).

:func:`export_checkpoint` converts either way: ours -> SPIN's layout (a ``model`` entry that
SPIN's ``models/hmr.py`` loads with ``strict=True``; image regressors only, SPIN's HMR has no
keypoint input) and SPIN's -> ours (config, input kind and body-model hash recorded).

Anything else fails with a :class:`CheckpointError` that lists the missing and unexpected keys
and names the shape mismatches; a checkpoint of another body model (by hash or by its mean
parameters) or of the other input kind, and a damaged file, fail with a message that says what
to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from spin_diff.body.files import body_model_hash
from spin_diff.errors import BadInputError
from spin_diff.models.backbones import (
    RESNET_LAYERS,
    Bottleneck,
    _describe_problems,
    _fill_batch_counters,
    _state_dict_problems,
)
from spin_diff.models.config import HeadConfig, RegressorConfig
from spin_diff.models.hmr import Regressor, build_regressor
from spin_diff.utils.checkpoints import (
    CheckpointError,
    check_version,
    read_torch_file,
    save_checkpoint,
    strip_prefix,
    write_torch_file,
)
from spin_diff.utils.configs import ConfigError, _build, config_to_dict

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "export_checkpoint",
    "load_regressor",
    "peek_checkpoint",
    "read_torch_file",
    "regressor_to_spin_keys",
    "save_regressor",
    "spin_to_regressor_keys",
    "strip_prefix",
]

CHECKPOINT_FORMAT = "spin_diff.regressor"
CHECKPOINT_VERSION = 1
_BACKBONE_PREFIXES = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
_HEAD_PREFIXES = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.", "init_pose", "init_shape", "init_cam")


def spin_to_regressor_keys(state: dict) -> dict:
    """SPIN's HMR state-dict keys -> :class:`Regressor` keys (``encoder.*``, ``head.*``).
    Keys of neither part are kept as they are (and reported as unexpected by the loader)."""
    mapped = {}
    for key, value in state.items():
        if key.startswith(_BACKBONE_PREFIXES):
            mapped["encoder." + key] = value
        elif key.startswith(_HEAD_PREFIXES):
            mapped["head." + key] = value
        else:
            mapped[key] = value
    return mapped


def regressor_to_spin_keys(state: dict) -> dict:
    """Inverse of :func:`spin_to_regressor_keys` for an image regressor (SPIN's layout)."""
    return {_spin_name(key): value for key, value in state.items()}


def _spin_name(key: str) -> str:
    for prefix in ("encoder.", "head."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _looks_like_spin(state: dict) -> bool:
    return "conv1.weight" in state and "fc1.weight" in state and "decpose.weight" in state


def _spin_config(state: dict, path) -> RegressorConfig:
    """The backbone (depth, block, width) and head size of a SPIN-layout state dict."""
    blocks = []
    for layer in range(1, 5):
        indices = {
            int(k.split(".")[1])
            for k in state
            if k.startswith(f"layer{layer}.") and k.split(".")[1].isdigit()
        }
        blocks.append(len(indices))
    bottleneck = any(k.endswith("conv3.weight") for k in state if k.startswith("layer1."))
    width = state["conv1.weight"].shape[0] / 64
    for name, (block, layers) in RESNET_LAYERS.items():
        if (block is Bottleneck) == bottleneck and tuple(layers) == tuple(blocks):
            break
    else:
        raise CheckpointError(
            f"{path}: the backbone has {blocks} blocks per stage "
            f"({'Bottleneck' if bottleneck else 'BasicBlock'}), which is none of "
            f"{sorted(RESNET_LAYERS)}; is this an HMR checkpoint?"
        )
    head = HeadConfig(hidden=int(state["fc1.weight"].shape[0]))
    return RegressorConfig(input="image", backbone=name, width=width, head=head)


def _mean_params_of(state: dict, prefix: str = "head.") -> dict[str, torch.Tensor]:
    out = {}
    for key, name in (("pose", "init_pose"), ("shape", "init_shape"), ("cam", "init_cam")):
        if prefix + name not in state:
            raise CheckpointError(f"the checkpoint has no {name} buffer (the regressor's starting estimate)")
        out[key] = torch.as_tensor(state[prefix + name]).float().reshape(-1)
    return out


def _check_mean_params(path, checkpoint_mean: dict, body) -> None:
    """Refuse a regressor whose starting estimate is not the body model's mean parameters."""
    if body is None or body.mean_params is None:
        return
    for key in ("pose", "shape", "cam"):
        ours = body.mean_params[key].float().reshape(-1)
        theirs = checkpoint_mean[key]
        if ours.shape != theirs.shape or not torch.allclose(ours, theirs, atol=1e-5):
            raise CheckpointError(
                f"{path} was trained for another body model: its mean parameters ({key}) differ "
                f"from {body.files.mean_params} of the loaded body model ({body.files.model}). "
                "Load the body model it was trained with (--body-model PATH, e.g. SMPL with "
                "SPIN's data files for SPIN's checkpoints)"
            )


def _config_from_dict(values: dict, path) -> RegressorConfig:
    try:
        return _build(RegressorConfig, values)
    except ConfigError as err:
        raise CheckpointError(f"{path}: its recorded regressor config is invalid: {err}") from err


def peek_checkpoint(path: str | Path) -> dict[str, Any]:
    """What a checkpoint is, without building a network: ``{"kind": "spin"|"spin_diff",
    "input": "image"|"keypoints", "config": RegressorConfig, "body_model_sha256": str|None}``."""
    raw = read_torch_file(path)
    return _identify(raw, path)[0]


def _identify(raw: Any, path) -> tuple[dict[str, Any], dict]:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not a checkpoint dict or a state dict")
    if raw.get("format") == CHECKPOINT_FORMAT:
        check_version(raw, path, CHECKPOINT_VERSION)
        missing = [k for k in ("config", "input", "model") if k not in raw]
        if missing:
            raise CheckpointError(f"{path}: spin_diff checkpoint without {missing}; the file is damaged")
        config = _config_from_dict(raw["config"], path)
        info = {
            "kind": "spin_diff",
            "input": raw["input"],
            "config": config,
            "body_model_sha256": raw.get("body_model_sha256"),
        }
        return info, strip_prefix(dict(raw["model"]), "module.")
    state = raw["model"] if isinstance(raw.get("model"), dict) else raw
    state = strip_prefix(dict(state), "module.")
    if _looks_like_spin(state):
        config = _spin_config(state, path)
        info = {"kind": "spin", "input": "image", "config": config, "body_model_sha256": None}
        return info, spin_to_regressor_keys(state)
    if "conv1.weight" in state and "layer1.0.conv1.weight" in state:
        raise CheckpointError(
            f"{path} is a ResNet backbone state dict (torchvision layout: no fc1 / decpose head), not a "
            "regressor checkpoint: give it as the backbone's starting weights (spin-diff train "
            "--backbone-weights FILE, or --set model.backbone_weights=FILE)"
        )
    expected = ("conv1.weight", "fc1.weight", "decpose.weight")
    absent = ", ".join(k for k in expected if k not in state)
    keys = sorted(str(k) for k in state)[:12]
    raise CheckpointError(
        f"{path} is neither a spin_diff regressor checkpoint nor SPIN's model_checkpoint.pt: "
        f"missing keys: {absent} (SPIN's HMR) or 'format': "
        f"{CHECKPOINT_FORMAT!r}; its keys: {', '.join(keys)}{' ...' if len(state) > 12 else ''}"
    )


def load_regressor(
    path: str | Path,
    body=None,
    *,
    expect_input: str | None = None,
    device: str | torch.device = "cpu",
    strict: bool = True,
) -> Regressor:
    """Build a :class:`Regressor` from SPIN's ``model_checkpoint.pt`` or one of ours.

    Args:
        path: the checkpoint file.
        body: the :class:`~spin_diff.body.model.BodyModel` predictions are for. Checked against
            the checkpoint (body-model hash, mean parameters); with it the regressor also
            returns projected keypoints.
        expect_input: ``"image"`` or ``"keypoints"`` if the caller can only feed one kind.
        device: where the regressor goes. It is returned in eval mode.
        strict: any missing or unexpected key, or shape mismatch, is an error.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: damaged file, wrong layout (keys listed), another body model, wrong
            input kind.
    """
    raw = read_torch_file(path)
    info, state = _identify(raw, path)
    if expect_input is not None and info["input"] != expect_input:
        needs = "image crops (pass --images DIR)" if info["input"] == "image" else "2D keypoints"
        raise CheckpointError(
            f"{path} is a regressor of {info['input']} input, it needs {needs}, but {expect_input} "
            f"input is what is available here; use a {expect_input} checkpoint"
        )
    recorded = info["body_model_sha256"]
    if body is not None and recorded:
        actual = body_model_hash(body)
        if actual != recorded:
            raise CheckpointError(
                f"{path} was trained for another body model (sha256 {recorded[:12]}...) than the "
                f"loaded one ({body.files.model}, sha256 {actual[:12]}...). Pass the body model it "
                "was trained with (--body-model PATH)"
            )
    checkpoint_mean = _mean_params_of(state)
    _check_mean_params(path, checkpoint_mean, body)
    try:
        model = build_regressor(info["config"], body=body, mean_params=checkpoint_mean)
    except ValueError as err:
        raise CheckpointError(f"{path}: cannot build the recorded regressor: {err}") from err
    problems = _state_dict_problems(model, state)
    if info["kind"] == "spin":  # report SPIN's own key names, not our mapped ones
        problems = {label: [_spin_name(item) for item in items] for label, items in problems.items()}
    if strict and any(problems.values()):
        what = f"{info['config'].backbone} HMR" if info["input"] == "image" else "keypoint regressor"
        raise CheckpointError(_describe_problems(str(path), what, problems))
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(_fill_batch_counters(model, usable), strict=False)
    model.checkpoint_info = info
    model.checkpoint_path = Path(path)  # e.g. for a conditional diffusion prior's check of its regressor
    return model.to(device).eval()


def save_regressor(model: Regressor, path: str | Path, body=None, **extra: Any) -> Path:
    """Write ``model`` as a spin_diff checkpoint (atomically: a crash leaves no half file).

    ``body`` (or the body model the regressor was built with) is recorded by its hash, so
    that loading it for another body model fails. ``extra`` entries (optimizer state, step
    ...) are stored beside it.
    """
    if model.config is None:
        raise BadInputError("the regressor has no config (build it with build_regressor)")
    files = body.files if body is not None else getattr(model, "body_files", None)
    reserved = {"format", "version", "config", "input", "model", "body_model_sha256"} & set(extra)
    if reserved:
        raise BadInputError(f"extra checkpoint entries may not be named {sorted(reserved)}")
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config_to_dict(model.config),
        "input": model.input_kind,
        "body_model_sha256": body_model_hash(files.model) if files is not None else None,
        "body_model": str(files.model) if files is not None else None,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    return save_checkpoint(checkpoint, path)


EXPORT_FORMATS = ("spin", "spin_diff")
SPIN_HIDDEN = 1024  # SPIN's fc1 / fc2 width, fixed in its models/hmr.py


def export_checkpoint(
    source: str | Path, out: str | Path, format: str, body=None, *, overwrite: bool = False
) -> Path:
    """Write the regressor of ``source`` (SPIN's ``model_checkpoint.pt`` or ours) to ``out``.

    Args:
        format: ``"spin"``: a dict whose ``model`` entry is SPIN's HMR state dict (torchvision
            ResNet names, ``fc1`` .. ``deccam``, the ``(1, n)`` ``init_*`` buffers), which SPIN's
            ``models/hmr.py`` loads with ``strict=True``. ``"spin_diff"``: our checkpoint, with
            the config, the input kind and the hash of ``body`` (checked against the source's
            mean parameters, as :func:`load_regressor` does).
        body: the body model the regressor is for; needed for ``"spin_diff"``'s hash.
        overwrite: replace an existing ``out``; without it an existing file is refused.

    The file is written atomically. Optimizer and step entries are not carried over.
    """
    source, out = Path(source), Path(out)
    if format not in EXPORT_FORMATS:
        raise BadInputError(f"--format {format!r} is not one of {list(EXPORT_FORMATS)}")
    if out.exists() and not overwrite:
        raise BadInputError(f"--out {out} exists: pass --overwrite to replace it, or choose another --out")
    if out.resolve() == source.resolve():
        raise BadInputError(f"--out {out} is the checkpoint being converted: choose another --out")
    model = load_regressor(source, body)
    if format == "spin_diff":
        return save_regressor(model, out, body)
    if model.input_kind != "image":
        raise CheckpointError(
            f"{source} is a regressor of {model.input_kind} input; only image (ResNet) regressors map "
            "to SPIN's HMR, which has no keypoint input"
        )
    config = model.config
    if (config.backbone, config.width, config.head.hidden) != ("resnet50", 1.0, SPIN_HIDDEN):
        log.warning(
            "%s is a %s (width %g, head %d hidden units); SPIN's models/hmr.py builds a ResNet-50 with "
            "%d, so only code that builds this network loads %s strictly",
            source, config.backbone, config.width, config.head.hidden, SPIN_HIDDEN, out,
        )
    state = regressor_to_spin_keys({k: v.detach().cpu() for k, v in model.state_dict().items()})
    return write_torch_file({"model": state}, out)
