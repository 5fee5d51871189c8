"""Two datasets under one name (every synthetic set is synth.npz): the store knows each
name's dataset by a fingerprint of its content, and a build, import, import-spin or merge of
another dataset under that name is refused with one line naming both files, the store's
bytes untouched. An older store without identities records them on first use."""

from __future__ import annotations

import numpy as np
import pytest

from spin_diff.body.files import body_model_hash, body_model_label
from spin_diff.cache.builder import build_fits
from spin_diff.cache.errors import DatasetIdentityError
from spin_diff.cache.store import FitStore
from spin_diff.cache.transfer import export_npz, merge_stores
from spin_diff.cli.cache import main
from spin_diff.data.spin_npz import dataset_fingerprint, read_spin_npz, write_spin_npz
from spin_diff.fitting.smplify import SMPLify


@pytest.fixture(scope="module")
def two_synths(body_model, fitcache, tmp_path_factory):
    """Two datasets of different people, both named synth.npz, and a copy of the first."""
    root = tmp_path_factory.mktemp("synths")
    (root / "a").mkdir(), (root / "b").mkdir(), (root / "copy").mkdir()
    a = fitcache.make_spin_dataset(body_model, root / "a" / "synth.npz", 4, seed=1)
    b = fitcache.make_spin_dataset(body_model, root / "b" / "synth.npz", 4, seed=2)
    data = read_spin_npz(a)
    data["extra"] = np.arange(4)  # other keys, re-saved: still the same examples
    copy = write_spin_npz(root / "copy" / "synth.npz", data)
    return a, b, copy


@pytest.fixture(scope="module")
def fitter(body_model, fitcache):
    return SMPLify(body_model, fitcache.fast_fitting_config())


def build(path, dataset, fitter, body_model):
    store = FitStore.open_or_create(path, body_model_hash(body_model), body_model_label(body_model))
    try:
        return build_fits(store, read_spin_npz(dataset), dataset.stem, fitter, init="mean", progress=False,
                          data_file=dataset)  # fmt: skip
    finally:
        store.close()


def test_the_fingerprint_is_of_the_examples_not_the_file(two_synths):
    a, b, copy = two_synths
    fa, fb, fc = (dataset_fingerprint(read_spin_npz(p)) for p in two_synths)
    assert fa == fc != fb and fa.startswith("blake2b:")


def test_build_of_another_dataset_under_a_taken_name_is_refused(tmp_path, two_synths, fitter, body_model):
    a, b, copy = two_synths
    cache = tmp_path / "cache"
    assert build(cache, a, fitter, body_model).written == 4
    before = (cache / "data.mdb").read_bytes()
    with pytest.raises(DatasetIdentityError) as refused:
        build(cache, b, fitter, body_model)
    assert str(a) in str(refused.value) and str(b) in str(refused.value) and "another name" in str(refused.value)
    assert (cache / "data.mdb").read_bytes() == before
    assert build(cache, copy, fitter, body_model).skipped == 4  # the same examples re-saved: the same dataset
    assert FitStore.open(cache).dataset_identities()["synth"]["file"] == str(a)


def test_import_and_merge_of_another_datasets_records_are_refused(tmp_path, two_synths, fitter, body_model, capsys):
    a, b, _ = two_synths
    build(tmp_path / "A", a, fitter, body_model)
    build(tmp_path / "B", b, fitter, body_model)
    export_npz(FitStore.open(tmp_path / "A"), tmp_path / "a.npz")
    FitStore(tmp_path / "A", readonly=True).close()
    before = (tmp_path / "B" / "data.mdb").read_bytes()
    assert main(["import", str(tmp_path / "a.npz"), "--cache", str(tmp_path / "B")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(a) in err and str(b) in err, err
    with pytest.raises(DatasetIdentityError):
        merge_stores(tmp_path / "B", [tmp_path / "A"])
    with pytest.raises(DatasetIdentityError):
        merge_stores(tmp_path / "new", [tmp_path / "A", tmp_path / "B"])
    assert not (tmp_path / "new").exists()
    assert (tmp_path / "B" / "data.mdb").read_bytes() == before
    # the other way round, into a store that knows the name as the same dataset: accepted
    assert main(["import", str(tmp_path / "a.npz"), "--cache", str(tmp_path / "A2")]) == 0
    assert FitStore.open(tmp_path / "A2").dataset_identities()["synth"]["file"] == str(a)


def test_import_spin_of_another_dataset_is_refused(tmp_path, two_synths, fitter, body_model, fitcache, capsys):
    a, b, _ = two_synths
    build(tmp_path / "cache", a, fitter, body_model)
    fits = tmp_path / "fits.npy"
    np.save(fits, np.zeros((4, 82), dtype=np.float32))
    before = (tmp_path / "cache" / "data.mdb").read_bytes()
    config = fitcache.write_fast_config(tmp_path / "fast.yaml")
    code = main(["import-spin", str(fits), "--dataset", "synth", "--data", str(b), "--cache", str(tmp_path / "cache"),
                 "--config", str(config)])  # fmt: skip
    assert code == 2 and str(b) in capsys.readouterr().err
    assert (tmp_path / "cache" / "data.mdb").read_bytes() == before


def test_an_older_store_records_the_identity_on_first_use(tmp_path, two_synths, fitter, body_model, fitcache):
    a, b, _ = two_synths
    store = FitStore.open_or_create(tmp_path / "old", body_model_hash(body_model), body_model_label(body_model))
    store.update_if_better(fitcache.fit_batch("synth", np.arange(4), 1e9))  # records, no identity
    assert store.dataset_identities() == {}
    store.close()
    assert build(tmp_path / "old", b, fitter, body_model).written == 4  # accepted, better fits
    assert FitStore.open(tmp_path / "old").dataset_identities()["synth"]["file"] == str(b)
    with pytest.raises(DatasetIdentityError):
        build(tmp_path / "old", a, fitter, body_model)
