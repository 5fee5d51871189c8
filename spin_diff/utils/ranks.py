"""Where this process stands among torchrun's processes, read from the environment.

torchrun sets ``RANK``/``WORLD_SIZE`` (and ``LOCAL_RANK``/``LOCAL_WORLD_SIZE``); a plain
``python`` run has none of them and is the one process of a world of one.
"""

from __future__ import annotations

import os

from spin_diff.errors import BadInputError

__all__ = ["shard_from_environment", "env_int"]


def env_int(name: str, default: int) -> int:
    """The integer environment variable ``name`` (set by torchrun), ``default`` when unset."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadInputError(f"environment variable {name}={value!r} must be an integer (set by torchrun)") from None


def shard_from_environment() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's ``RANK``/``WORLD_SIZE``; ``(0, 1)`` otherwise."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as err:
        raise BadInputError(f"RANK / WORLD_SIZE must be integers: {err}") from err
    if world < 1 or not 0 <= rank < world:
        raise BadInputError(f"RANK={rank} and WORLD_SIZE={world} do not describe a shard")
    return rank, world
