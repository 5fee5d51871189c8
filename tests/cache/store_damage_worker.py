"""The child of the store-damage test: every command's store path, run on damaged copies.

``python store_damage_worker.py SPEC.json`` runs, for each damaged copy of a store, what the
read commands do with it (``cache stats``, ``export``, ``merge``, ``verify``, ``salvage``,
the training run's store opening and reads, and ``cache build`` writing into it) and prints
one JSON line per copy. A damage that LMDB aborts on would end this process (exit status 134
or 135), which the test reports with the copy named on the last "start" line.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from spin_diff.body.files import body_model_hash, body_model_label
from spin_diff.body.model import load_body_model
from spin_diff.cache.builder import build_fits
from spin_diff.cache.repair import check_store, salvage_store
from spin_diff.cache.stats import cache_stats, format_stats
from spin_diff.cache.store import FitStore
from spin_diff.cache.transfer import export_npz, merge_stores
from spin_diff.data.spin_npz import read_spin_npz
from spin_diff.errors import BadInputError
from spin_diff.fitting.config import FittingConfig
from spin_diff.fitting.smplify import SMPLify
from spin_diff.training.run import _open_stores


def digest_of_export(path: Path) -> str:
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files if key not in ("header",)}
    hasher = hashlib.sha256()
    for key in sorted(arrays):
        hasher.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
    return hasher.hexdigest()


def outcome(fn):
    """("ok", value) or ("error", type name, message); other exceptions propagate."""
    try:
        return ["ok", fn()]
    except BadInputError as err:  # the package's input errors: the CLI prints them as one line
        return ["error", type(err).__name__, str(err)]


def scores(path: Path, dataset: str, size: int) -> dict:
    fits = FitStore.open(path, readonly=True).get_many(dataset, np.arange(size))
    return {int(i): float(s) for i, s in zip(np.flatnonzero(fits.found), fits.score[fits.found])}


def main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    work = Path(spec["work"])
    body = load_body_model()
    fitter = SMPLify(body, FittingConfig())
    data = read_spin_npz(spec["dataset"], require=("center", "scale"))
    context = SimpleNamespace(writes_store=True, enabled=False)
    size = spec["records"]
    for number, copy in enumerate(spec["copies"]):
        copy = Path(copy)
        print(json.dumps({"start": str(copy)}), flush=True)
        out = work / f"out{number}"
        out.mkdir()

        def stats():
            return format_stats(cache_stats(FitStore.open(copy, readonly=True))).replace(str(copy), "STORE")

        def export():
            export_npz(FitStore.open(copy, readonly=True), out / "export.npz")
            return digest_of_export(out / "export.npz")

        def merge():
            try:
                merge_stores(out / "merged", [copy])
            finally:
                left = sorted(p.name for p in out.iterdir() if "merged" in p.name)
                print(json.dumps({"merge_left": left, "copy": str(copy)}), flush=True)
            export_npz(FitStore.open(out / "merged", readonly=True), out / "merged.npz")
            return digest_of_export(out / "merged.npz")

        def training_reads():
            _, reader = _open_stores(copy, body, context)
            fits = reader.get_many(spec["dataset_name"], np.arange(size))
            return hashlib.sha256(fits.pose.tobytes() + fits.score.tobytes()).hexdigest()

        def verify():
            report = check_store(copy)
            return [report.ok, report.problem]

        def salvage():
            salvage_store(copy, out / "salvaged")
            return scores(out / "salvaged", spec["dataset_name"], size)

        def build():  # writes into the copy: last
            store = FitStore.open_or_create(copy, body_model_hash(body), body_model_label(body))
            report = build_fits(store, data, spec["dataset_name"], fitter, init="mean", limit=0, progress=False)
            return report.examples

        result = {"copy": str(copy)}
        for name, fn in (("stats", stats), ("export", export), ("merge", merge), ("train", training_reads),
                         ("verify", verify), ("salvage", salvage), ("build", build)):  # fmt: skip
            result[name] = outcome(fn)
        for path in (copy, out / "merged", out / "salvaged"):
            FitStore(path, readonly=True).close()  # this process's environment of the path
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
