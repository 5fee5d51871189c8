"""Configuration machinery: YAML files read into typed dataclasses.

``load_config(Config, "my_recipe.yaml", ["body.num_betas=10"])`` starts from the dataclass
defaults, applies the file, then each ``--set a.b=value`` override (values are parsed as
YAML, so ``1e-2``, ``true``, ``[1, 2]`` and ``null`` work). Unknown keys and values of the
wrong type are errors that name the key. ``save_config`` writes the resolved config next to
an output so every result can be reproduced.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from spin_diff.errors import BadInputError

T = TypeVar("T")
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class ConfigError(BadInputError):
    """A configuration file or override is invalid; the message names the key."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and where lossless, convert) ``value`` to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return _build(tp, value, key + ".")
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"config key {key!r}: {value!r} does not match {_type_name(tp)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"config key {key!r} must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"config key {key!r} needs {len(args)} values, got {value!r}")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        return {
            _coerce(k, key_type, f"{key}.{k}"): _coerce(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if tp is float:
        # YAML 1.1 reads 1e-2 (no dot) as a string; accept it, as users write it that way.
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key {key!r} has an unsupported type {_type_name(tp)}")


def _build(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r} (known keys here: {sorted(names)})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: Any, update: dict[str, Any]) -> Any:
    """Recursive update; integer keys address list items (``stages.1.iterations=50``)."""
    if isinstance(base, list):
        merged_list = list(base)
        for key, value in update.items():
            if not str(key).isdigit() or int(key) >= len(merged_list):
                raise ConfigError(f"list index {key!r} out of range (the list has {len(base)} items)")
            index = int(key)
            if isinstance(value, dict) and isinstance(merged_list[index], (dict, list)):
                merged_list[index] = _merge(merged_list[index], value)
            else:
                merged_list[index] = value
        return merged_list
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), (dict, list)):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> dict[str, Any]:
    """``"a.b=1e-2"`` -> ``{"a": {"b": 0.01}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: cannot parse value ({err})") from err
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot parse config file {path}: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def _read_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """The mappings to merge for one file, bases first: a file whose top level has
    ``extends: other.yaml`` (a path relative to the file's folder) is read over that one."""
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ConfigError(f"config file {path} extends itself: {chain}; remove one of the extends: keys")
    loaded = _read_yaml(path)
    base = loaded.pop("extends", None)
    if base is None:
        return [loaded]
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"config file {path}: extends must name one YAML file, got {base!r}")
    base_path = Path(base) if Path(base).is_absolute() else path.parent / base
    if not base_path.is_file():
        raise ConfigError(f"config file {path} extends {base}, which is not found at {base_path}")
    return [*_read_with_bases(base_path, (*seen, resolved)), loaded]


def load_config(
    cls: type[T], path: str | Path | list[str | Path] | None = None, overrides: list[str] = ()
) -> T:
    """Defaults of ``cls``, then the YAML file(s) at ``path`` in order, then ``overrides`` (a.b=v).

    A file with a top-level ``extends: base.yaml`` (relative to its folder) is read over that
    base, which may extend another in turn."""
    values = dataclasses.asdict(cls())
    paths = path if isinstance(path, (list, tuple)) else ([] if path is None else [path])
    for path in paths:
        for loaded in _read_with_bases(Path(path)):
            values = _merge(values, loaded)
    for text in overrides:
        values = _merge(values, parse_override(text))
    return _build(cls, values)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) for YAML/JSON output."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def save_config(config: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
