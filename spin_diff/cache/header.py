"""What a fit cache says about itself: its header record and the table of config hashes.

Besides the records, a store holds a header (``b"\\x00header"``: format name and version,
record layout, body-model hash and label, creation time; JSON) and the description of every
config hash its records name (``b"\\x00config/<16 hex digits>"``: JSON, see
:mod:`spin_diff.cache.provenance`) and the identity of every dataset named in its keys
(``b"\\x00dataset/<name>"``: JSON ``{"fingerprint", "file", "examples", "recorded"}``; the
fingerprint is :func:`spin_diff.data.spin_npz.dataset_fingerprint`). These keys start with
``\\x00``, outside the records' key space.

Dataset identity: records are keyed by the dataset's name, by default its file's stem, and
two files may share a stem (every synthetic set is ``synth.npz``). So the first build,
import or training run that uses a name records the identity of its dataset, and one whose
dataset has the name but another identity is refused before it writes anything
(:func:`claim_datasets`). A store made before identities were kept records each on first use.

The functions here read and write them inside a transaction the caller holds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from spin_diff.cache.errors import BodyModelMismatchError, DatasetIdentityError, ScoreRuleMismatchError, StoreFormatError
from spin_diff.cache.records import RECORD_SIZE, RECORD_VERSION, prefix_items

FORMAT_NAME = "spin_diff.fit_cache"
FORMAT_VERSION = 1
HEADER_KEY = b"\x00header"
CONFIG_PREFIX = b"\x00config/"
DATASET_PREFIX = b"\x00dataset/"
SCORE_RULE_KEY = b"\x00score_rule"
#: what a store's scores are when it records no rule: SPIN's, the only one before rules existed
SPIN_SCORE_RULE = {"rule": "reprojection"}


def read_header(txn) -> tuple[bytes | None, bytes | None]:
    """(the raw header or None, and where there is none the store's first key or None)."""
    raw = txn.get(HEADER_KEY)
    first = None
    if raw is None:
        with txn.cursor() as cursor:
            first = bytes(cursor.key()) if cursor.first() else None
    return (bytes(raw) if raw is not None else None), first


def parse_header(path: Path, raw: bytes) -> dict:
    """The header of the store at ``path``; StoreFormatError if it is not this format and version."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreFormatError(f"{path}: the header record is corrupt ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise StoreFormatError(f"{path}: the header does not describe a spin_diff fit cache: {header!r:.200}")
    if header.get("version") != FORMAT_VERSION:
        raise StoreFormatError(
            f"{path} is a fit cache of format version {header.get('version')}; this spin_diff reads "
            f"version {FORMAT_VERSION}. Use the spin_diff version that wrote it, or export it there "
            "(`spin-diff cache export`) and import the npz here"
        )
    return header


def new_header(body_model_hash: str | None, body_model_label: str) -> dict:
    """The header of a store created now for the given body model."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "record_version": RECORD_VERSION,
        "record_size": RECORD_SIZE,
        "body_model_sha256": body_model_hash,
        "body_model": body_model_label,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_header(txn, path: Path, header: dict) -> dict:
    """Put ``header`` into an empty store; returns the header the store then has (another
    process's, if it created the store meanwhile). Refuses a store with records but no header."""
    existing = txn.get(HEADER_KEY)
    if existing is not None:  # another process created it meanwhile
        return parse_header(path, bytes(existing))
    with txn.cursor() as cursor:
        if cursor.first():
            raise StoreFormatError(f"{path} holds records but no header; it was left untouched")
    txn.put(HEADER_KEY, json.dumps(header, sort_keys=True).encode())
    return header


def refuse_missing_header(path: Path, first: bytes | None, create: bool) -> None:
    """Raise StoreFormatError for an environment without a header, unless it is empty and
    ``create`` allows making it a store."""
    if first is not None:
        raise StoreFormatError(
            f"{path} is an LMDB environment but not a spin_diff fit cache (no header record; "
            f"its first key is {first[:40]!r}). It was left untouched: choose another cache folder"
        )
    if not create:
        raise StoreFormatError(
            f"{path} is an empty LMDB environment, not a fit cache yet: build one with "
            "`spin-diff cache build` (or open it for writing with create=True)"
        )


def check_body_model(path: Path, header: dict, body_model_hash: str | None, body_model_label: str) -> None:
    """BodyModelMismatchError if ``body_model_hash`` is given and the store's is another."""
    stored = header.get("body_model_sha256")
    if body_model_hash is not None and stored != body_model_hash:
        theirs = header.get("body_model") or "unnamed"
        ours = body_model_label or "this run's body model"
        raise BodyModelMismatchError(
            f"{path} holds fits of another body model: {theirs} (sha256 {str(stored)[:12]}...), "
            f"not {ours} (sha256 {body_model_hash[:12]}...). Fits do not transfer between "
            "body models: use another --cache, or the body model the cache was built with"
        )


def config_entry(config_hash: int, description: dict) -> tuple[bytes, bytes]:
    """The (key, value) that records what ``config_hash`` stands for."""
    return CONFIG_PREFIX + b"%016x" % int(config_hash), json.dumps(description, sort_keys=True).encode()


def _read_table(txn, prefix: bytes) -> dict[bytes, dict]:
    """The JSON entries under ``prefix``, by the rest of their key."""
    return {key: json.loads(value) for key, value in prefix_items(txn, prefix)}


def read_configs(txn) -> dict[int, dict]:
    """Every registered config description, by hash."""
    return {int(key, 16): value for key, value in _read_table(txn, CONFIG_PREFIX).items()}


def read_datasets(txn) -> dict[str, dict]:
    """Every recorded dataset identity, by dataset name."""
    return {key.decode(): value for key, value in _read_table(txn, DATASET_PREFIX).items()}


def dataset_identity(fingerprint: str, file, examples: int | None = None) -> dict:
    """The identity recorded for a dataset: its fingerprint and the file it was read from."""
    return {"fingerprint": fingerprint, "file": str(file), "examples": examples,
            "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip


def claim_datasets(txn, path: Path, identities: dict[str, dict]) -> None:
    """Record the identity of each named dataset the store has none for; raise
    DatasetIdentityError, writing nothing, if one name already stands for another fingerprint."""
    recorded = {}
    for name, identity in identities.items():
        raw = txn.get(DATASET_PREFIX + name.encode())
        if raw is None:
            continue
        recorded[name] = theirs = json.loads(bytes(raw))
        if theirs.get("fingerprint") != identity["fingerprint"]:
            raise DatasetIdentityError(
                f"{path}: its records of dataset {name!r} are of {theirs.get('file')} (fingerprint "
                f"{str(theirs.get('fingerprint'))[8:20]}), but {identity['file']} has other examples under that name "
                f"(fingerprint {identity['fingerprint'][8:20]}); mixing them would mix their fits. Nothing was "
                "written: rename the file or pass another name for it (train --dataset NAME=PATH, cache build --name, "
                "cache import-spin --dataset), or use another cache"
            )
    for name, identity in identities.items():
        if name not in recorded:
            txn.put(DATASET_PREFIX + name.encode(), json.dumps(identity, sort_keys=True).encode())


def read_score_rule(txn) -> dict:
    """The keep rule the store's scores were written under (:data:`SPIN_SCORE_RULE` where none
    is recorded)."""
    raw = txn.get(SCORE_RULE_KEY)
    return json.loads(bytes(raw)) if raw is not None else dict(SPIN_SCORE_RULE)


def claim_score_rule(txn, path: Path, rule: dict) -> None:
    """Record ``rule`` (:func:`spin_diff.fitting.keep.rule_description`) as the rule of the
    store's scores, or raise ScoreRuleMismatchError, writing nothing, if they were written under
    another (a store without records takes any rule)."""
    recorded = txn.get(SCORE_RULE_KEY)
    theirs = json.loads(bytes(recorded)) if recorded is not None else None
    if theirs is None:
        with txn.cursor() as cursor:
            has_records = cursor.set_range(b"\x01")  # record keys sort after the \x00 entries
        theirs = dict(SPIN_SCORE_RULE) if has_records else None
    if theirs is not None and theirs != rule:
        raise ScoreRuleMismatchError(
            f"{path}: its fits were scored under keep rule {_rule_text(theirs)}, but this run keeps fits by "
            f"{_rule_text(rule)}; scores of two rules cannot be compared. Nothing was written: use another fit "
            "cache (train --cache DIR, or a new --out), or the store's rule (fitting.keep, and the body stage's "
            "prior weights for 'objective')"
        )
    if recorded is None:
        txn.put(SCORE_RULE_KEY, json.dumps(rule, sort_keys=True).encode())


def _rule_text(rule: dict) -> str:
    weights = rule.get("weights")
    return repr(rule.get("rule")) + (f" with weights {weights}" if weights else "")
