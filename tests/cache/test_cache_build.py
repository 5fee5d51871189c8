"""Building a cache: batched fitting, resuming, sharding, ground truth, and surviving SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from spin_diff.body.files import body_model_hash
from spin_diff.cache.builder import build_fits, fit_config_hash, score_fits
from spin_diff.cache.store import BodyModelMismatchError, FitStore
from spin_diff.data.spin_npz import dataset_keypoints, read_spin_npz
from spin_diff.fitting.smplify import SMPLify


@pytest.fixture(scope="module")
def fitter(body_model, fitcache):
    return SMPLify(body_model, fitcache.fast_fitting_config())


def new_store(path, body_model) -> FitStore:
    return FitStore.open_or_create(path, body_model_hash(body_model), "bundled")


def test_build_fits_every_example_then_resumes_without_redoing(tmp_path, tiny_dataset, body_model, device,
                                                              device_body_model, fitcache):  # fmt: skip
    fitter = SMPLify(device_body_model, fitcache.fast_fitting_config())
    data = read_spin_npz(tiny_dataset)
    store = new_store(tmp_path / "cache", body_model)
    report = build_fits(store, data, "tiny", fitter, batch_size=5, progress=False)
    assert (report.examples, report.attempted, report.written, report.failed) == (16, 16, 16, 0)
    fits = store.get_many("tiny", np.arange(16))
    our_hash, description = fit_config_hash(fitter)
    assert fits.found.all() and set(fits.source_labels()) == {"offline"}
    assert (fits.config_hash == np.uint64(our_hash)).all() and np.isfinite(fits.score).all()
    assert store.configs()[our_hash]["fitting"]["stages"][1]["iterations"] == 4
    # the stored score is SPIN's score of the stored parameters against the dataset keypoints
    keypoints = dataset_keypoints(data, 224)
    score, _, residuals = score_fits(fitter, fits.pose, fits.betas, keypoints, fits.transl)
    np.testing.assert_allclose(score, fits.score, rtol=1e-3)
    np.testing.assert_allclose(residuals, fits.residuals, rtol=2e-3, atol=1e-2)

    again = build_fits(store, data, "tiny", fitter, batch_size=5, progress=False)
    assert (again.skipped, again.attempted) == (16, 0)
    assert np.array_equal(store.get_many("tiny", np.arange(16)).time, fits.time)
    refit = build_fits(
        store, data, "tiny", fitter, batch_size=8, refit=True, limit=8, init="stored", progress=False
    )
    assert refit.attempted == 8 and refit.examples == 8
    # starting from the stored fit, the refit can only keep or improve the score
    assert (store.get_many("tiny", np.arange(8)).score <= fits.score[:8]).all()
    store.close()
    if device.type != "cpu":
        # The bound allowed (not yet measured on a GPU): 4 + 4 float32 Adam steps from the same
        # start end within 1e-3 of the cpu's scores (relative) and parameters
        on_cpu = new_store(tmp_path / "cpu_cache", body_model)
        build_fits(on_cpu, data, "tiny", SMPLify(body_model, fitcache.fast_fitting_config()), batch_size=5, progress=False)
        reference = on_cpu.get_many("tiny", np.arange(16))
        np.testing.assert_allclose(fits.score, reference.score, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(fits.pose, reference.pose, atol=1e-3)
        on_cpu.close()


def test_ranks_take_disjoint_shards_that_cover_the_dataset(tmp_path, tiny_dataset, fitter, body_model):
    data = read_spin_npz(tiny_dataset)
    store = new_store(tmp_path / "cache", body_model)
    reports = [
        build_fits(store, data, "tiny", fitter, limit=11, batch_size=4, rank=r, world_size=3, progress=False)
        for r in range(3)
    ]
    assert [r.examples for r in reports] == [4, 4, 3]
    assert sum(r.written for r in reports) == 11
    assert store.get_many("tiny", np.arange(16)).found.tolist() == [True] * 11 + [False] * 5
    store.close()


def test_ground_truth_from_the_dataset_is_stored_and_never_refitted(tmp_path, body_model, fitter, fitcache):
    path = fitcache.make_spin_dataset(body_model, tmp_path / "half.npz", 10, seed=3, has_smpl=0.5)
    data = read_spin_npz(path)
    has_smpl = data["has_smpl"] > 0.5
    assert 0 < has_smpl.sum() < 10
    store = new_store(tmp_path / "cache", body_model)
    report = build_fits(store, data, "half", fitter, gt_from_dataset=True, batch_size=4, progress=False)
    assert report.ground_truth == has_smpl.sum() and report.attempted == (~has_smpl).sum()
    fits = store.get_many("half", np.arange(10))
    assert [s == "ground-truth" for s in fits.source_labels()] == has_smpl.tolist()
    np.testing.assert_allclose(fits.pose[has_smpl], data["pose"][has_smpl], rtol=1e-6, atol=1e-6)
    assert (fits.score[has_smpl] < 1.0).all()  # exact keypoints: the truth scores ~0
    again = build_fits(store, data, "half", fitter, refit=True, batch_size=4, progress=False)
    assert again.attempted == (~has_smpl).sum()  # ground truth is not fitted again
    labels = store.get_many("half", np.arange(10)).source_labels()
    assert [s == "ground-truth" for s in labels] == has_smpl.tolist()
    store.close()


def test_ground_truth_that_is_not_finite_is_fitted_and_said_so_not_taken_for_done(tmp_path, body_model, fitter, fitcache):
    data = read_spin_npz(fitcache.make_spin_dataset(body_model, tmp_path / "gt.npz", 6, seed=4))
    data["pose"][[1, 4], 7] = np.nan
    data["shape"][2, 0] = np.inf
    store = new_store(tmp_path / "cache", body_model)
    report = build_fits(store, data, "gt", fitter, gt_from_dataset=True, batch_size=4, progress=False)
    assert (report.ground_truth, report.ground_truth_not_finite, report.skipped, report.attempted) == (3, 3, 0, 3)
    assert "ground truth NaN or inf in the dataset: 3 rows" in report.summary()
    labels = store.get_many("gt", np.arange(6)).source_labels()
    assert [label == "ground-truth" for label in labels] == [True, False, False, True, False, True]
    again = build_fits(store, data, "gt", fitter, gt_from_dataset=True, batch_size=4, progress=False)
    assert again.skipped == 6 and again.ground_truth_not_finite == 0  # now fitted: done
    store.close()


def test_init_stored_starts_from_the_datasets_smpl(tmp_path, fitter, body_model, fitcache):
    # noisy keypoints: SMPLify calls a fit that starts exactly at a zero-loss optimum diverged
    data = read_spin_npz(fitcache.make_spin_dataset(body_model, tmp_path / "noisy.npz", 4, seed=5, noise_px=2.0))
    mean = build_fits(new_store(tmp_path / "a", body_model), data, "noisy", fitter, progress=False)
    stored = build_fits(
        new_store(tmp_path / "b", body_model), data, "noisy", fitter, init="stored", progress=False
    )
    assert stored.written == 4 and stored.mean_score < mean.mean_score and stored.mean_score < 10.0


def test_build_refuses_a_cache_of_another_body_model(tmp_path, tiny_dataset, fitter):
    store = FitStore.open_or_create(tmp_path / "cache", "another-model", "SMPL_MALE.pkl")
    store.close()
    data_file = tmp_path / "cache" / "data.mdb"
    before = data_file.read_bytes()
    with pytest.raises(BodyModelMismatchError, match="another body model: SMPL_MALE.pkl"):
        new_store(tmp_path / "cache", fitter.body)
    assert data_file.read_bytes() == before


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_build_killed_mid_run_keeps_committed_batches_and_resumes(tmp_path, body_model, fitcache):
    dataset = fitcache.make_spin_dataset(body_model, tmp_path / "crash.npz", 60, seed=4)
    cache = tmp_path / "cache"
    config = fitcache.write_fast_config(tmp_path / "fit.yaml", 5, 5)

    def command(batch_size: int) -> list[str]:
        return [
            sys.executable, "-m", "spin_diff.cli.cache", "build", "--dataset", str(dataset),
            "--cache", str(cache), "--batch-size", str(batch_size), "--quiet", "--config", str(config),
        ]  # fmt: skip

    env = {**os.environ, "PYTHONPATH": str(fitcache.REPO_ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command(2), cwd=fitcache.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_for(lambda: (cache / "data.mdb").is_file(), 60, "the store to be created")
        reader = FitStore(cache, readonly=True)

        def committed() -> int:
            try:
                return reader.count("crash")
            except Exception:  # the header may not be written yet
                return 0

        _wait_for(lambda: committed() >= 6 or process.poll() is not None, 120, "three batches")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, process.stdout.read().decode()[-2000:]
    reader.close()

    # the store opens, and holds whole batches only, each record whole
    after_kill = FitStore.open(cache, body_model_hash=body_model_hash(body_model))
    survivors = after_kill.get_many("crash", np.arange(60))
    done = int(survivors.found.sum())
    assert 6 <= done < 60, f"{done} of 60 committed when killed"
    assert done % 2 == 0 and survivors.found[:done].all()  # whole batches of two, in order
    kept = survivors.found
    assert np.isfinite(survivors.pose[kept]).all() and np.isfinite(survivors.score[kept]).all()
    after_kill.close()

    # the rerun may batch differently: the config hash, not the batch size, says what is done
    result = subprocess.run(command(32), cwd=fitcache.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{done} already fitted" in result.stdout and f"{60 - done} fitted in" in result.stdout
    final = FitStore.open(cache).get_many("crash", np.arange(60))
    assert final.found.all()
    # the batches committed before the kill were not redone: identical records
    for field in ("pose", "betas", "transl", "score", "time", "config_hash"):
        assert np.array_equal(getattr(final, field)[kept], getattr(survivors, field)[kept]), field


@pytest.mark.slow
def test_torchrun_ranks_build_disjoint_shards_into_one_store(tmp_path, tiny_dataset, fitcache):
    # torchrun is torch.distributed.run, part of torch (a hard dependency): run it as a module
    cache = tmp_path / "cache"
    config = fitcache.write_fast_config(tmp_path / "fit.yaml", 2, 2)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "spin_diff.cli.cache", "build",
        "--dataset", str(tiny_dataset), "--cache", str(cache), "--quiet", "--config", str(config),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(fitcache.REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=fitcache.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert f"tiny (rank {rank} of 2): 8 examples; 0 already fitted" in result.stdout
    fits = FitStore.open(cache).get_many("tiny", np.arange(16))
    assert fits.found.all() and set(fits.source_labels()) == {"offline"}


def test_cached_fits_do_not_depend_on_batch_size_or_shard(tmp_path, tiny_dataset, body_model):
    """The default recipe (diffusion term, its noise keyed by example) with the flip trial:
    the same records whatever --batch-size, and whichever rank fitted an example."""
    from spin_diff.fitting.config import FittingConfig, default_stages
    from spin_diff.fitting.smplify import SMPLify

    config = FittingConfig(stages=default_stages(6))
    config.orientation_flip.enabled = True
    fitter = SMPLify(body_model, config)
    data = read_spin_npz(tiny_dataset)
    runs = {}
    for label, batch_size, world in (("one", 16, 1), ("small", 3, 1), ("sharded", 5, 2)):
        store = new_store(tmp_path / label, body_model)
        for rank in range(world):
            build_fits(store, data, "tiny", fitter, batch_size=batch_size, rank=rank, world_size=world, progress=False)
        runs[label] = store.get_many("tiny", np.arange(16))
        store.close()
    for label in ("small", "sharded"):
        assert runs[label].found.all()
        for field in ("pose", "betas", "transl", "score"):
            np.testing.assert_allclose(getattr(runs[label], field), getattr(runs["one"], field), atol=1e-5, rtol=1e-5)


def test_build_with_another_number_of_shape_coefficients(tmp_path, tiny_dataset, fitcache):
    from spin_diff.body.model import load_body_model
    from spin_diff.fitting.smplify import SMPLify

    model = load_body_model(num_betas=6)
    store = new_store(tmp_path / "cache", model)
    report = build_fits(store, read_spin_npz(tiny_dataset), "tiny", SMPLify(model, fitcache.fast_fitting_config()),
                        limit=4, progress=False)  # fmt: skip
    assert (report.written, report.failed) == (4, 0)
    fits = store.get_many("tiny", np.arange(4))
    assert np.abs(fits.betas[:, :6]).sum() > 0 and (fits.betas[:, 6:] == 0).all()  # stored as 10, zero-padded
    store.close()
