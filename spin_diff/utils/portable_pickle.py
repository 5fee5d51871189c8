"""Pickles of numpy arrays that load on numpy 1.x and 2.x alike.

numpy 2 pickles arrays through ``numpy._core``, which numpy 1.x cannot import, and the
research tools that read SMPL and SMPLify files (``pickle.load(f, encoding='latin1')``) run on
both. Here arrays are pickled as ``numpy.ndarray(shape, dtype, buffer)`` calls instead.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np


class PortableArray:
    """Pickles as ``numpy.ndarray(shape, dtype, raw bytes)``; unpickles as a plain ndarray."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.ascontiguousarray(array)

    def __reduce__(self) -> tuple:
        return (np.ndarray, (self.array.shape, self.array.dtype.str, self.array.tobytes()))


class Zeros:
    """Pickles as ``numpy.zeros(shape, dtype)``: a few bytes for an all-zero array."""

    def __init__(self, shape: tuple[int, ...], dtype: str) -> None:
        self.shape, self.dtype = tuple(shape), dtype

    def __reduce__(self) -> tuple:
        return (np.zeros, (self.shape, self.dtype))


def dump_portable(content: dict[str, Any], path: str | Path) -> Path:
    """Pickle a dict (protocol 4), wrapping every ndarray value in :class:`PortableArray`."""
    wrapped = {k: PortableArray(v) if isinstance(v, np.ndarray) else v for k, v in content.items()}
    buffer = io.BytesIO()
    pickle.dump(wrapped, buffer, protocol=4)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path
