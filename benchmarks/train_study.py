"""The headline study: does fitting in the loop train a better regressor, and does the diffusion prior help?

Keypoint-input regressors (the bundled regressor's architecture) are trained by ``spin-diff
train`` on synthetic 2D keypoints of real motion capture (the CMU training split, SPIN's crop
camera, detector-like corruption), then scored by ``spin-diff eval`` on people made the same
way from the held-out CMU *test* clips (validation curves on the *val* clips). Every row gets
the same budget: the same warm start, steps, batch and seeds.

Phase 1 (shared): a 2D-only warm start from fresh weights (SPIN, too, starts its loop from a
pretrained regressor; this one never saw 3D). Phase 2, per row and seed, from that warm start:

  a  2D-only: the keypoint loss alone (no fits)
  b  SPIN: in-loop SMPLify with the GMM pose prior
  c  in-loop SMPLify with the GMM and the diffusion-prior term
  d  in-loop guided refinement (ScoreHMR) instead of the body stage
  e  ground-truth supervised (the same examples with their 3D truth): the upper bound
  f  as c, the diffusion prior conditioned on the regressor's features (trained with
     ``spin-diff prior train --features-from`` on the warm start's features; in the loop the
     network's own features are fed, drifting from the warm start's as it trains)
  g  as c, with the ``objective`` keep rule (stored and new fits compared, and thresholded, by
     reprojection plus the body stage's prior energies; ``spin_diff.fitting.keep``); h, i: g
     with the threshold at 200 and 400 (it bounds the total there)
  k  as f, the features from a frozen copy of the starting network in eval mode
     (``fitting.condition_features: frozen``): the features the prior was trained on, so the
     prior's input never drifts while the network trains
  l  as k, then ScoreHMR's guided refinement with the same conditioned prior (3 loops of 10
     steps from t = 50, scale 0.015), the in-loop recipe whose fits from the warm start were best on validation
  (g-l are opt-in: ``--rows abcdefghikl``)

Each trained regressor is evaluated alone and with the test-time refinement rows (SMPLify,
+ term, guided). Also printed: the store's fits (share under SPIN's threshold, mean score),
the in-loop batches' mean fit score from first to last log row, wall time and the share of it
spent fitting (estimated as 1 - wall(a) / wall(row), same seed; runs share the machine).

Jobs run as ``spin-diff`` subprocesses, ``--jobs`` at a time, one torch thread each; a job
whose output exists is not run again, so an interrupted study resumes where it stopped.

    python benchmarks/train_study.py --out outputs/train_study | tee benchmarks/results_train_study_cpu.txt
    python benchmarks/train_study.py --out /tmp/s --train 256 --test 64 --val 64 --warm-steps 40 --steps 20 --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROWS = {
    "a": ("2D-only (no fits)", ["fitting.in_loop=false"]),
    "b": ("SPIN: in-loop SMPLify, GMM", ["fitting.prior=gmm"]),
    "c": ("in-loop SMPLify, GMM + diffusion term", ["fitting.prior=gmm+diffusion"]),
    "d": ("in-loop guided refinement", ["fitting.method=guided"]),
    "e": ("ground-truth supervised (bound)", ["fitting.in_loop=false"]),
    "f": ("in-loop, GMM + feature-conditioned term", ["fitting.prior=gmm+diffusion"]),
    "g": ("in-loop, GMM + diffusion term, objective keep rule", ["fitting.prior=gmm+diffusion", "fitting.keep=objective"]),
    # the objective rule's threshold bounds reprojection + priors, so SPIN's 100 supervises fewer fits
    "h": ("as g, threshold 200", ["fitting.prior=gmm+diffusion", "fitting.keep=objective", "fitting.threshold=200"]),
    "i": ("as g, threshold 400", ["fitting.prior=gmm+diffusion", "fitting.keep=objective", "fitting.threshold=400"]),
    "k": ("as f, features of the frozen start", ["fitting.prior=gmm+diffusion", "fitting.condition_features=frozen"]),
    # chosen on validation fits from the warm start (benchmarks/real_starts.py --regressor): the
    # conditioned term, then ScoreHMR's guided refinement with the same prior; what prior: auto
    # runs with a conditional prior (spin_diff.training.config.resolve_auto_prior), so the row
    # measures the default itself
    "l": ("as k, then guided refinement", ["fitting.prior=auto"]),
}
CONDITIONED = "fkl"  # rows whose term reads the conditional prior trained on the start's features
REFINE = ("none", "smplify", "term", "guided")
# The bundled regressor's network (scripts/train_bundled_keypoint_regressor.py)
MODEL = ["model.input=keypoints", "model.keypoints.hidden=384", "model.keypoints.feature_dim=384",
         "model.keypoints.blocks=2", "model.keypoints.joint_dropout=0.1", "model.head.hidden=384",
         "model.head.dropout=0.1", "model.head.iterations=3"]  # fmt: skip
# A small conditional prior, the bundled prior's denoiser size (scripts/train_free_diffusion_prior.py)
PRIOR = ["model.denoiser.width=256", "model.denoiser.hidden=512", "model.denoiser.blocks=3",
         "model.denoiser.time_dim=128", "batch_size=256", "lr=1e-3", "warmup_steps=200"]  # fmt: skip


@dataclass
class Job:
    name: str
    command: list[str]
    done: Path  # exists once the job has finished
    needs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def spin_diff(*args: str) -> list[str]:
    return [sys.executable, "-m", "spin_diff.cli.main", *args]


def settings(values) -> list[str]:
    """``--set`` arguments for each ``key=value``."""
    return [arg for value in values for arg in ("--set", value)]


def make_data(args, out: Path) -> dict[str, Path]:
    """The keypoint sets: 2D-only and ground-truth copies of the training people (CMU train),
    the prior's pairs (every CMU training pose), validation (CMU val) and test (CMU test)."""
    import torch

    from spin_diff.body.model import load_body_model
    from spin_diff.data.corruption import CorruptionConfig
    from spin_diff.data.keypoint_sets import make_problems, write_keypoint_dataset
    from spin_diff.data.real_poses import load_real_poses

    paths = {k: out / "data" / f"{k}.npz" for k in ("train_2d", "train_gt", "prior_pairs", "val", "test")}
    manifest = out / "data" / "sizes.json"
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    if all(p.is_file() for p in paths.values()):
        if manifest.is_file() and json.loads(manifest.read_text()) != sizes:
            raise SystemExit(f"{out / 'data'} holds sets of sizes {manifest.read_text().strip()}, not {sizes}: "
                             "pass another --out (runs there were trained on those sets)")  # fmt: skip
        return paths
    if not args.real_train.is_file():
        raise SystemExit(f"--real-train {args.real_train}: no such file; build the CMU training split with "
                         "scripts/build_cmu_pose_sets.py")  # fmt: skip
    torch.set_num_threads(1)
    body = load_body_model()
    with np.load(args.real_train) as data:
        train_poses = np.asarray(data["pose"], dtype=np.float64)
    corruption = CorruptionConfig.preset("detector")
    train = make_problems(body, args.train, seed=101, corruption=corruption, poses=train_poses)
    write_keypoint_dataset(train, paths["train_2d"], with_ground_truth=False)
    write_keypoint_dataset(train, paths["train_gt"])
    pairs = make_problems(body, len(train_poses), seed=102, corruption=corruption, poses=train_poses)
    write_keypoint_dataset(pairs, paths["prior_pairs"])
    for split, count, seed in (("val", args.val, 103), ("test", args.test, 104)):
        problems = make_problems(body, count, seed=seed, corruption=corruption, poses=load_real_poses(split))
        write_keypoint_dataset(problems, paths[split])
    manifest.write_text(json.dumps(sizes))
    return paths


def plan(args, out: Path, data: dict[str, Path]) -> list[Job]:
    train_common = ["--config", "train_keypoints_cpu", "--threads", "1", "--quiet",
                    "--set", f"data.batch_size={args.batch}", "--set", f"optim.lr={args.lr}", "--set", f"optim.grad_clip={args.grad_clip}",
                    "--set", "epochs=1000", "--set", "checkpoint_every=100000", "--set", f"summary_every={args.log_every}",
                    "--set", f"validation_data={data['val']}"]  # fmt: skip
    for value in MODEL:
        train_common += ["--set", value]
    warm = out / "warm"
    if args.start is not None:  # phase 1 replaced by a given regressor (e.g. the bundled one)
        warm.mkdir(parents=True, exist_ok=True)
        if not (warm / "last.pt").exists():
            (warm / "last.pt").symlink_to(args.start.resolve())
    jobs = [Job("warm", spin_diff("train", "--dataset", str(data["train_2d"]), "--out", str(warm), *train_common,
                                  "--set", "fitting.in_loop=false", "--set", f"max_steps={args.warm_steps}",
                                  "--set", f"validate_every={args.warm_steps}", "--set", f"seed={args.warm_seed}"),
                warm / "last.pt")]  # fmt: skip
    prior = out / "conditional_prior"
    if set(CONDITIONED) & set(args.rows):
        command = spin_diff("prior", "train", "--poses", str(data["prior_pairs"]), "--out", str(prior),
                            "--features-from", str(warm / "last.pt"), "--quiet", "--set", f"steps={args.prior_steps}",
                            "--set", "threads=1", *settings(PRIOR))  # fmt: skip
        jobs.append(Job("conditional prior", command, prior / "prior.pt", needs=["warm"]))
    for seed in args.seeds:
        for row in args.rows:
            run = out / "runs" / f"{row}_seed{seed}"
            dataset = data["train_gt"] if row == "e" else data["train_2d"]
            extra = settings(ROWS[row][1])
            if row == "d":
                extra += ["--set", f"fitting.diffusion.guided.loops={args.guided_loops}"]
            needs = ["warm"]
            if row in CONDITIONED:
                extra += ["--set", f"fitting.diffusion.checkpoint={prior / 'prior.pt'}"]
                needs.append("conditional prior")
            command = spin_diff("train", "--dataset", str(dataset), "--out", str(run), "--pretrained", str(warm / "last.pt"),
                                *train_common, *extra, "--set", f"max_steps={args.steps}", "--set", f"seed={seed}",
                                "--set", f"validate_every={max(1, args.steps // 4)}")  # fmt: skip
            jobs.append(Job(f"train {row} seed {seed}", command, run / "last.pt", needs=needs))
            jobs.append(eval_job(f"eval {row} seed {seed}", run / "last.pt", data["test"], out / "eval" / f"{row}_seed{seed}",
                                 [f"train {row} seed {seed}"], prior / "prior.pt" if row in CONDITIONED else None))  # fmt: skip
    jobs.append(eval_job("eval warm start", warm / "last.pt", data["test"], out / "eval" / "warm", ["warm"], None))
    from spin_diff.fitting.initialisation import BUNDLED_KEYPOINT_REGRESSOR

    if BUNDLED_KEYPOINT_REGRESSOR.is_file():
        jobs.append(eval_job("eval bundled", BUNDLED_KEYPOINT_REGRESSOR, data["test"], out / "eval" / "bundled", [], None))
    jobs.append(Job("eval mean", spin_diff("eval", "--init", "mean", "--dataset", str(data["test"]), "--threads", "1",
                                           "--quiet", "--refine", ",".join(REFINE), "--out", str(out / "eval" / "mean")),
                    out / "eval" / "mean" / "summary.json"))  # fmt: skip
    return jobs


def eval_job(name: str, checkpoint: Path, dataset: Path, folder: Path, needs: list[str], prior: Path | None) -> Job:
    command = spin_diff("eval", "--checkpoint", str(checkpoint), "--dataset", str(dataset), "--threads", "1", "--quiet",
                        "--refine", ",".join(REFINE), "--out", str(folder))  # fmt: skip
    if prior is not None:  # rows f, k: their refinement rows use the conditional prior with the regressor's features
        command += ["--set", f"fitting.diffusion.checkpoint={prior}", "--set", "fitting.diffusion.regressor_check=size"]
    return Job(name, command, folder / "summary.json", needs=needs)


def run_jobs(jobs: list[Job], parallel: int, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    finished = {j.name for j in jobs if j.done.exists()}
    pending = [j for j in jobs if j.name not in finished]
    running = {}

    def execute(job: Job) -> Job:
        started = time.perf_counter()
        slug = job.name.replace(" ", "_")
        with (log_dir / f"{slug}.log").open("w") as handle:
            code = subprocess.call(job.command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        job.seconds = time.perf_counter() - started
        if code != 0 or not job.done.exists():
            raise RuntimeError(f"{job.name} failed (exit {code}); see {log_dir / f'{slug}.log'}")
        return job

    with ThreadPoolExecutor(parallel) as pool:
        while pending or running:
            ready = [j for j in pending if all(n in finished for n in j.needs)]
            for job in ready[: parallel - len(running)]:
                pending.remove(job)
                running[pool.submit(execute, job)] = job
                print(f"[{time.strftime('%H:%M:%S')}] started {job.name}", file=sys.stderr, flush=True)
            if not running:
                raise RuntimeError(f"jobs waiting on unknown jobs: {[j.name for j in pending]}")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                future.result()
                finished.add(job.name)
                print(f"[{time.strftime('%H:%M:%S')}] finished {job.name} ({job.seconds:.0f} s)", file=sys.stderr, flush=True)


def read_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in csv.DictReader(handle)]


def row_threshold(row: str, default: float) -> float:
    """The row's ``fitting.threshold`` (what its supervision is bounded by), else ``default``."""
    values = [float(v.split("=", 1)[1]) for v in ROWS[row][1] if v.startswith("fitting.threshold=")]
    return values[-1] if values else default


def store_figures(run: Path, threshold: float, count: int) -> dict:
    """Of the ``count`` training examples: the share whose stored fit scores under the row's
    threshold (what supervises; scores are the row's keep rule's), how many hold a fit, and
    their mean stored score."""
    from spin_diff.body.files import body_model_hash, body_model_label
    from spin_diff.body.model import load_body_model
    from spin_diff.cache.store import FitStore

    if not (run / "fits").is_dir():
        return {}
    body = load_body_model()
    with FitStore(run / "fits", readonly=True, body_model_hash=body_model_hash(body),
                  body_model_label=body_model_label(body)) as store:  # fmt: skip
        stored = store.get_many("train_2d", np.arange(count))
    scores = np.where(stored.found, stored.score.astype(np.float64), np.inf)
    filled = np.isfinite(scores)
    return {"filled": int(filled.sum()), "accepted": float((scores < threshold).mean()),
            "mean_score": float(scores[filled].mean()) if filled.any() else float("nan")}  # fmt: skip


def collect(args, out: Path) -> dict:
    results = {}
    for row in args.rows:
        for seed in args.seeds:
            run, folder = out / "runs" / f"{row}_seed{seed}", out / "eval" / f"{row}_seed{seed}"
            summary = json.loads((folder / "summary.json").read_text())
            log_rows, val = read_csv(run / "log.csv"), read_csv(run / "validation.csv")
            entry = {
                "test": {k: v for k, v in summary["rows"].items()},
                "val_pa_mpjpe": val[-1]["pa_mpjpe"] if val else float("nan"),
                "val_curve": [(r["step"], r["pa_mpjpe"]) for r in val],
                "wall_s": log_rows[-1]["wall_s"] if log_rows else float("nan"),
                "score_first": log_rows[0]["mean_fit_score"] if log_rows else float("nan"),
                "score_last": log_rows[-1]["mean_fit_score"] if log_rows else float("nan"),
                "supervised_first": log_rows[0]["supervised_share"] if log_rows else float("nan"),
                "supervised_last": log_rows[-1]["supervised_share"] if log_rows else float("nan"),
                "improved_fits": sum(r["improved_fits"] for r in log_rows),
                "store": store_figures(run, row_threshold(row, args.threshold), args.train),
            }
            results[f"{row}_seed{seed}"] = entry
    for name in ("warm", "bundled", "mean"):
        path = out / "eval" / name / "summary.json"
        if path.is_file():
            results[name] = {"test": json.loads(path.read_text())["rows"]}
    return results


def spread(values) -> str:
    # summary.json writes a missing figure (NaN) as null
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return "-"
    if values.size == 1:
        return f"{values[0]:.1f}"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"


def report(args, results: dict) -> str:
    lines = []
    seeds = args.seeds
    head = (f"{'row':<44} {'val PA':>12} {'test PA-MPJPE':>14} {'test MPJPE':>14} {'+SMPLify PA':>12} "
            f"{'+term PA':>12} {'+guided PA':>12} {'accepted':>9} {'store score':>12} {'batch score':>15} "
            f"{'wall s':>8} {'fitting':>8}")  # fmt: skip
    lines += [head, "-" * len(head)]
    wall_a = {s: results.get(f"a_seed{s}", {}).get("wall_s", float("nan")) for s in seeds}
    means = {}
    for row in args.rows:
        entries = [results[f"{row}_seed{s}"] for s in seeds]
        pa = [e["test"]["none"]["pa_mpjpe"] for e in entries]
        means[row] = float(np.mean(pa))
        refine = {k: spread([e["test"][k]["pa_mpjpe"] for e in entries]) for k in REFINE[1:]}
        stores = [e["store"] for e in entries if e["store"]]
        accepted = f"{100 * np.mean([s['accepted'] for s in stores]):.0f}%" if stores else "-"
        store_score = spread([s["mean_score"] for s in stores]) if stores else "-"
        batch = (f"{np.mean([e['score_first'] for e in entries]):.0f} -> {np.mean([e['score_last'] for e in entries]):.0f}"
                 if np.isfinite(entries[0]["score_first"]) and entries[0]["score_first"] > 0 else "-")  # fmt: skip
        wall = [e["wall_s"] for e in entries]
        share = [1 - wall_a[s] / e["wall_s"] for s, e in zip(seeds, entries)] if row not in ("a", "e") else []
        lines.append(
            f"{row + ' ' + ROWS[row][0]:<44} {spread([e['val_pa_mpjpe'] for e in entries]):>12} {spread(pa):>14} "
            f"{spread([e['test']['none']['mpjpe'] for e in entries]):>14} {refine['smplify']:>12} {refine['term']:>12} "
            f"{refine['guided']:>12} {accepted:>9} {store_score:>12} {batch:>15} {np.mean(wall):>8.0f} "
            f"{(f'{100 * np.mean(share):.0f}%' if share else '-'):>8}"
        )  # fmt: skip
    start_label = "phase-2 start" if args.start else "warm start (2D-only, phase 1)"
    for name, label in (("warm", start_label), ("bundled", "bundled regressor (GT, 6000 x 128)"),
                        ("mean", "mean pose (no regressor)")):  # fmt: skip
        if name in results:
            t = results[name]["test"]
            lines.append(f"{label:<44} {'':>12} {t['none']['pa_mpjpe']:>14.1f} {t['none']['mpjpe']:>14.1f} "
                         f"{t['smplify']['pa_mpjpe']:>12.1f} {t['term']['pa_mpjpe']:>12.1f} {t['guided']['pa_mpjpe']:>12.1f}")  # fmt: skip
    lines.append("")
    for better, worse, target in (("b", "a", 10.0), ("c", "b", 5.0), ("f", "b", 5.0), ("d", "b", 5.0), ("f", "c", 0.0),
                                 ("g", "b", 5.0), ("g", "c", 0.0), ("h", "c", 0.0), ("i", "c", 0.0), ("k", "b", 5.0),
                                 ("k", "f", 0.0), ("l", "b", 5.0), ("l", "k", 0.0)):  # fmt: skip
        if better in means and worse in means:
            gain = 100 * (means[worse] - means[better]) / means[worse]
            verdict = f" (target >= {target:g}%: {'met' if gain >= target else 'missed'})" if target else ""
            lines.append(f"{better} vs {worse}: test PA-MPJPE {means[better]:.1f} vs {means[worse]:.1f} mm, "
                         f"{gain:+.1f}%{verdict}")  # fmt: skip
    if "e" in means:
        for row in args.rows:
            if row != "e":
                lines.append(f"gap of {row} to e (GT-supervised): {means[row] - means['e']:+.1f} mm")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "train_study")
    parser.add_argument("--real-train", type=Path, default=REPO / "spin_diff" / "data" / "poses" / "cmu_train.npz",
                        help="the CMU training split (scripts/build_cmu_pose_sets.py; not in git)")
    parser.add_argument("--rows", default="abcdef")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train", type=int, default=4096, help="training people (CMU train poses)")
    parser.add_argument("--val", type=int, default=256, help="validation people (CMU val poses)")
    parser.add_argument("--test", type=int, default=512, help="test people (CMU test poses)")
    parser.add_argument("--warm-steps", type=int, default=1000)
    parser.add_argument("--warm-seed", type=int, default=1000, help="seed of the phase-1 warm start")
    parser.add_argument("--start", type=Path, help="a regressor checkpoint to start phase 2 from instead of the "
                        "2D-only warm start (e.g. the bundled one: spin_diff/models/assets/keypoint_regressor.pt)")
    parser.add_argument("--steps", type=int, default=400, help="phase-2 steps of every row")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4, help="Adam (the bundled regressor's recipe: 5e-4, clip 1)")
    parser.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip")
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--prior-steps", type=int, default=4000, help="steps of the conditional prior (row f)")
    parser.add_argument("--guided-loops", type=int, default=3, help="guided refinement loops in the loop (row d)")
    parser.add_argument("--threshold", type=float, default=100.0, help="SPIN's fit acceptance threshold (the config's)")
    parser.add_argument("--jobs", type=int, default=2, help="subprocesses at once (one torch thread each)")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.rows = [r for r in args.rows if r in ROWS]

    started = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    data = make_data(args, out)
    run_jobs(plan(args, out, data), args.jobs, out / "logs")
    results = collect(args, out)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"train study, {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {args.jobs} jobs of one torch thread; {time.perf_counter() - started:.0f} s")
    print(f"argv: {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"data: {args.train} training people from CMU train poses (2D-only; row e with their 3D truth), "
          f"validation {args.val} from CMU val, test {args.test} from CMU test; detector-like keypoints, SPIN's crop camera")
    phase1 = (f"start {args.start}" if args.start
              else f"warm start {args.warm_steps} steps 2D-only (shared, seed {args.warm_seed})")  # fmt: skip
    print(f"budget: {phase1}, then {args.steps} steps of {args.batch} per row "
          f"(Adam lr {args.lr:g}, clip {args.grad_clip:g}) "
          f"and seed (seeds {args.seeds}); in-loop fits: recipe train_keypoints_cpu (20 camera + 30 body iterations); "
          f"row d guided loops {args.guided_loops}")  # fmt: skip
    print("PA-MPJPE / MPJPE in mm on the test people (14 joints, pelvis-centred); mean ± sd over seeds")
    print(report(args, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
