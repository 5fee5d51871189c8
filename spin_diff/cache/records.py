"""What one fit record holds, how it is laid out in bytes, and how examples are keyed.

Keys
----
``b"<dataset>/<index:010d>"``: ASCII, so keys sort by dataset then by index and one
dataset is a prefix scan. Dataset names are made of ``[A-Za-z0-9_.-]`` (every other
character a name could contain sorts on the wrong side of ``/`` or is unsafe in a key).
Keys that start with ``\\x00`` (the header, the provenance table) lie outside that space.

Records
-------
One fixed little-endian layout, :data:`RECORD_DTYPE` (470 bytes), so a batch of values
decodes with a single ``np.frombuffer``. The first byte is the layout version
(:data:`RECORD_VERSION`); a record of another version is refused, never guessed at.

=============  =========  ======================================================
field          type       meaning
=============  =========  ======================================================
version        u1         record layout version
source         u1         :class:`Source` code
flags          u2         bit 0: ``transl`` is known; bit 1: ``residuals`` known
score          f4         SPIN's fit score (lower is better; +inf: not scored)
step           i8         training step that wrote it (in-loop), else -1
time           f8         when it was written, seconds since the epoch (UTC)
config_hash    u8         :mod:`spin_diff.cache.provenance` hash of what made it
pose           f4 x 72    axis-angle, global orientation first, canonical frame
betas          f4 x 10    shape coefficients
transl         f4 x 3     crop-camera translation in the canonical frame (metres)
residuals      f2 x 49    reprojection distance per joint in crop pixels (NaN where
                          the keypoint had no confidence)
=============  =========  ======================================================
"""

from __future__ import annotations

import enum
import re
import time as _time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spin_diff.constants import NUM_BETAS, NUM_KEYPOINTS, NUM_POSE
from spin_diff.cache.errors import StoreFormatError
from spin_diff.errors import BadInputError

__all__ = [
    "RECORD_VERSION",
    "RECORD_DTYPE",
    "RECORD_SIZE",
    "NUM_POSE",
    "NUM_BETAS",
    "NUM_KEYPOINTS",
    "MISSING_SOURCE",
    "Source",
    "parse_source",
    "FitBatch",
    "StoredFits",
    "check_dataset_name",
    "encode_key",
    "encode_keys",
    "decode_key",
    "dataset_prefix",
    "decode_records",
    "prefix_items",
]

RECORD_VERSION = 1
MAX_INDEX = 10**10 - 1

RECORD_DTYPE = np.dtype(
    [
        ("version", "u1"),
        ("source", "u1"),
        ("flags", "<u2"),
        ("score", "<f4"),
        ("step", "<i8"),
        ("time", "<f8"),
        ("config_hash", "<u8"),
        ("pose", "<f4", (NUM_POSE,)),
        ("betas", "<f4", (NUM_BETAS,)),
        ("transl", "<f4", (3,)),
        ("residuals", "<f2", (NUM_KEYPOINTS,)),
    ]
)
RECORD_SIZE = RECORD_DTYPE.itemsize
SCORE_OFFSET = RECORD_DTYPE.fields["score"][1]

FLAG_TRANSL = 1
FLAG_RESIDUALS = 2

#: ``source`` code of rows that :meth:`FitStore.get_many` did not find.
MISSING_SOURCE = 255

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_DATASET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class Source(enum.IntEnum):
    """Where a record came from. Ground truth, once stored, is never replaced."""

    STATIC = 0  # imported from a static fits file (SPIN's data/static_fits/*.npy)
    OFFLINE = 1  # ``spin-diff cache build``
    IN_LOOP = 2  # SMPLify inside the training loop
    GROUND_TRUTH = 3  # the dataset's own SMPL parameters (has_smpl)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Source.STATIC: "static",
    Source.OFFLINE: "offline",
    Source.IN_LOOP: "in-loop",
    Source.GROUND_TRUTH: "ground-truth",
}
_BY_LABEL = {label: source for source, label in _LABELS.items()}


def parse_source(value: "str | int | Source") -> Source:
    """A :class:`Source` from its label (``"in-loop"``), name (``"IN_LOOP"``) or code."""
    if isinstance(value, Source):
        return value
    if isinstance(value, (int, np.integer)):
        try:
            return Source(int(value))
        except ValueError:
            known = [int(s) for s in Source]
            raise BadInputError(f"unknown fit source code {int(value)}; known: {known}") from None
    text = str(value).strip()
    if text in _BY_LABEL:
        return _BY_LABEL[text]
    if text.upper().replace("-", "_") in Source.__members__:
        return Source[text.upper().replace("-", "_")]
    raise BadInputError(f"unknown fit source {value!r}; choose from {sorted(_BY_LABEL)}")


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it can be a key prefix; otherwise raise ValueError saying why."""
    if not isinstance(name, str) or not _DATASET_NAME.match(name):
        raise BadInputError(
            f"dataset name {name!r} cannot key a fit cache: use 1-200 characters from "
            "letters, digits, '_', '.', '-' (e.g. the npz file's stem)"
        )
    return name


def encode_key(dataset: str, index: int) -> bytes:
    """``b"<dataset>/<index:010d>"``."""
    check_dataset_name(dataset)
    index = int(index)
    if not 0 <= index <= MAX_INDEX:
        raise BadInputError(f"example index {index} out of range [0, {MAX_INDEX}]")
    return b"%s/%010d" % (dataset.encode(), index)


def dataset_prefix(dataset: str) -> bytes:
    """The prefix every key of ``dataset`` starts with."""
    return check_dataset_name(dataset).encode() + b"/"


def encode_keys(dataset: "str | Sequence[str]", indices) -> list[bytes]:
    """Keys of a batch; ``dataset`` is one name for all rows or one name per row."""
    indices = np.asarray(indices)
    if indices.ndim != 1 or indices.dtype.kind not in "iu":
        raise BadInputError(f"indices must be a 1-D integer array, got {indices.dtype} of shape {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() > MAX_INDEX):
        raise BadInputError(f"example indices must lie in [0, {MAX_INDEX}]")
    values = indices.tolist()
    if isinstance(dataset, str):
        prefix = dataset_prefix(dataset)
        return [b"%s%010d" % (prefix, i) for i in values]
    names = list(dataset)
    if len(names) != len(values):
        raise BadInputError(f"{len(names)} dataset names for {len(values)} indices")
    prefixes = {name: dataset_prefix(name) for name in set(names)}
    return [b"%s%010d" % (prefixes[n], i) for n, i in zip(names, values)]


def prefix_items(txn, prefix: bytes) -> list[tuple[bytes, bytes]]:
    """(key without ``prefix``, value) of every entry whose key starts with ``prefix``, in key order."""
    items = []
    with txn.cursor() as cursor:
        found = cursor.set_range(prefix)
        while found:
            key = bytes(cursor.key())
            if not key.startswith(prefix):
                break
            items.append((key[len(prefix) :], bytes(cursor.value())))
            found = cursor.next()
    return items


def decode_key(key: bytes) -> tuple[str, int]:
    """``b"lsp/0000000012"`` -> ``("lsp", 12)``."""
    name, _, index = bytes(key).rpartition(b"/")
    if not name or len(index) != 10 or not index.isdigit():
        raise BadInputError(f"not a fit record key: {bytes(key)!r}")
    return name.decode(), int(index)


def _as_numpy(value, dtype, shape: tuple, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensors, without importing torch here
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64 if dtype is None else dtype)
    if array.shape != shape:
        raise BadInputError(f"{name} must have shape {shape}, got {array.shape}")
    return array


@dataclass
class FitBatch:
    """B fits to write. Arrays may be numpy or torch; ``dataset``, ``source``, ``step``,
    ``config_hash`` and ``time`` may be one value for the batch or one per row.

    Fits must be in the example's canonical (un-augmented) frame: see
    :mod:`spin_diff.training.frames`.
    """

    dataset: "str | Sequence[str]"
    index: np.ndarray  # (B,) example index within its dataset
    pose: np.ndarray  # (B, 72) axis-angle
    betas: np.ndarray  # (B, <=10); shorter betas are zero-padded
    score: np.ndarray  # (B,) lower is better
    source: "str | Source | Sequence" = Source.IN_LOOP
    transl: np.ndarray | None = None  # (B, 3) crop camera, canonical frame; all-NaN row: unknown
    residuals: np.ndarray | None = None  # (B, 49) pixels
    step: "int | np.ndarray" = -1
    config_hash: "int | np.ndarray" = 0
    time: "float | np.ndarray | None" = None  # None: now

    def __len__(self) -> int:
        return int(np.asarray(self.index).shape[0])

    def keys(self) -> list[bytes]:
        return encode_keys(self.dataset, np.asarray(self.index).astype(np.int64))

    def to_records(self) -> np.ndarray:
        """The batch as a structured array of :data:`RECORD_DTYPE` (validated shapes)."""
        n = len(self)
        records = np.zeros(n, dtype=RECORD_DTYPE)
        records["version"] = RECORD_VERSION
        if isinstance(self.source, (str, int, Source, np.integer)):
            records["source"] = parse_source(self.source)
        else:
            sources = list(self.source)
            if len(sources) != n:
                raise BadInputError(f"{len(sources)} sources for a batch of {n}")
            records["source"] = [parse_source(s) for s in sources]
        records["pose"] = _as_numpy(self.pose, np.float32, (n, NUM_POSE), "pose")
        betas = self.betas.detach().cpu().numpy() if hasattr(self.betas, "detach") else np.asarray(self.betas)
        if betas.ndim != 2 or betas.shape[0] != n or betas.shape[1] > NUM_BETAS:
            raise BadInputError(f"betas must have shape ({n}, <={NUM_BETAS}), got {betas.shape}")
        records["betas"][:, : betas.shape[1]] = betas
        records["score"] = _as_numpy(self.score, np.float32, (n,), "score")
        flags = np.zeros(n, dtype=np.uint16)
        if self.transl is not None:
            transl = _as_numpy(self.transl, np.float32, (n, 3), "transl")
            known = ~np.isnan(transl).all(1)  # an all-NaN row means "no camera"
            records["transl"] = np.where(known[:, None], transl, 0.0)
            flags |= np.where(known, FLAG_TRANSL, 0).astype(np.uint16)
        if self.residuals is not None:
            residuals = _as_numpy(self.residuals, np.float64, (n, NUM_KEYPOINTS), "residuals")
            records["residuals"] = np.clip(residuals, 0.0, _FLOAT16_MAX)  # NaN stays NaN
            flags |= np.where(~np.isnan(residuals).all(1), FLAG_RESIDUALS, 0).astype(np.uint16)
        else:
            records["residuals"] = np.nan
        records["flags"] = flags
        records["step"] = np.broadcast_to(np.asarray(self.step, dtype=np.int64), (n,))
        records["config_hash"] = np.broadcast_to(np.asarray(self.config_hash, dtype=np.uint64), (n,))
        when = _time.time() if self.time is None else self.time
        records["time"] = np.broadcast_to(np.asarray(when, dtype=np.float64), (n,))
        return records

    @classmethod
    def from_stored(cls, dataset, index, fits: "StoredFits") -> "FitBatch":
        """Re-write stored records exactly (merge, import): provenance and time kept."""
        keep = fits.found
        return cls(
            dataset=dataset if isinstance(dataset, str) else [d for d, k in zip(dataset, keep) if k],
            index=np.asarray(index)[keep],
            pose=fits.pose[keep],
            betas=fits.betas[keep],
            score=fits.score[keep],
            source=fits.source[keep].tolist(),
            transl=np.where(fits.has_transl[keep, None], fits.transl[keep], np.nan),
            residuals=fits.residuals[keep],
            step=fits.step[keep],
            config_hash=fits.config_hash[keep],
            time=fits.time[keep],
        )


@dataclass
class StoredFits:
    """Records read back for B requested examples. Rows not found have ``found`` False,
    zero parameters, score +inf and source :data:`MISSING_SOURCE`."""

    found: np.ndarray  # (B,) bool
    pose: np.ndarray  # (B, 72) float32
    betas: np.ndarray  # (B, 10) float32
    transl: np.ndarray  # (B, 3) float32
    score: np.ndarray  # (B,) float32
    residuals: np.ndarray  # (B, 49) float32
    source: np.ndarray  # (B,) uint8 Source codes
    step: np.ndarray  # (B,) int64
    time: np.ndarray  # (B,) float64
    config_hash: np.ndarray  # (B,) uint64
    has_transl: np.ndarray  # (B,) bool: transl was stored (else zeros)

    def __len__(self) -> int:
        return int(self.found.shape[0])

    def source_labels(self) -> list[str]:
        """``"in-loop"``, ``"ground-truth"``, ... per row; ``"missing"`` where not found."""
        return [_LABELS[Source(s)] if s != MISSING_SOURCE else "missing" for s in self.source.tolist()]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def select(self, rows) -> "StoredFits":
        return StoredFits(**{name: value[rows] for name, value in self.as_dict().items()})


def decode_records(values: Sequence[bytes | None], where: str = "fit cache") -> StoredFits:
    """Decode raw values (None for missing rows) into a :class:`StoredFits`.

    Raises:
        StoreFormatError: a value has the wrong length or another layout version (the store
            is corrupt or was written by another version of spin_diff).
    """
    n = len(values)
    found = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    present = [v for v in values if v is not None]
    bad = next((i for i, v in enumerate(present) if len(v) != RECORD_SIZE), None)
    if bad is not None:
        raise StoreFormatError(
            f"{where}: a record has {len(present[bad])} bytes, expected {RECORD_SIZE}; "
            "the store is corrupt or was written by another version of spin_diff"
        )
    records = np.zeros(n, dtype=RECORD_DTYPE)
    if present:
        stored = np.frombuffer(b"".join(present), dtype=RECORD_DTYPE)
        versions = np.unique(stored["version"])
        if versions.size != 1 or versions[0] != RECORD_VERSION:
            raise StoreFormatError(
                f"{where}: records of layout version {versions.tolist()}, this spin_diff reads "
                f"version {RECORD_VERSION}; use the spin_diff version that wrote the store"
            )
        records[found] = stored
    records["score"][~found] = np.inf
    records["source"][~found] = MISSING_SOURCE
    residuals = records["residuals"].astype(np.float32)
    residuals[~found] = np.nan
    return StoredFits(
        found=found,
        pose=records["pose"].copy(),
        betas=records["betas"].copy(),
        transl=records["transl"].copy(),
        score=records["score"].copy(),
        residuals=residuals,
        source=records["source"].copy(),
        step=records["step"].copy(),
        time=records["time"].copy(),
        config_hash=records["config_hash"].copy(),
        has_transl=(records["flags"] & FLAG_TRANSL).astype(bool),
    )
