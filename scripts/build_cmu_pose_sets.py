"""Build the real pose sets from CMU motion capture: import, split by clip, write provenance.

Reads the CMU Graphics Lab Motion Capture Database files from git mirrors of public
repositories (nothing is committed but the derived poses), imports them with
``spin_diff.data.mocap`` (retargeting to the bundled body model, near-duplicate frames and
badly retargeted frames dropped), splits by clip, and writes

* ``spin_diff/data/poses/cmu_val.npz`` and ``cmu_test.npz`` (bundled: held-out clips of the
  training subjects, the splits of every earlier figure),
* ``cmu_val_subjects.npz`` and ``cmu_test_subjects.npz`` (bundled: whole held-out subjects),
* ``spin_diff/data/poses/cmu_train.npz`` (bundled: what the priors are trained on),
* ``spin_diff/data/poses/PROVENANCE.md`` (every source file, its hash, repository, commit,
  licence and split, and the citation CMU asks for).

    python scripts/build_cmu_pose_sets.py \\
        --git-source /work/.mirror/cyun9601+CMU-MOCAP-Data/repo=cyun9601/CMU-MOCAP-Data:data/CMU/asfamc/subjects \\
        --git-source /work/.mirror/yuki-koyama+bvh11/repo=yuki-koyama/bvh11:resources/131_0*.bvh \\
        --git-source '/work/.mirror/DragonForgedTheArtist+IClone-CMU-Mocap/repo=DragonForgedTheArtist/IClone-CMU-Mocap:All_BVH/subjects/00[5-7]/*.bvh'

(the mirrors are bare git directories: ``fetch github:OWNER/NAME`` of the project's tools, or
``git clone --mirror``). IClone-CMU-Mocap's subjects 01-03 are the same CMU clips as
cyun9601's ASF/AMC files and are not read twice.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spin_diff.data.real_poses import POSES_DIR  # noqa: E402

# Clips held out, chosen by hand so that each split spans the subjects and activities
# (CMU's descriptions: 01 playground climbing/sitting, 02 walk/run/jump/punch/bend/swordplay,
# 03 walking on uneven terrain, 131 walk and hop in Michael Jackson's style).
VAL_CLIPS = ("01_06", "01_12", "02_05", "02_09", "03_01", "131_02")
TEST_CLIPS = ("01_03", "01_10", "02_03", "02_07", "03_02", "131_03")
# Whole subjects held out (none of their clips trained on): 07 walking for validation, 06
# basketball (dribble, shoot, pass) for test. Subject 05 (modern dance) trains.
VAL_SUBJECTS = ("07",)
TEST_SUBJECTS = ("06",)

# The mirrors' licences as read in each repository (the motion is CMU's, under its terms).
REPOSITORY_TERMS = {
    "cyun9601/CMU-MOCAP-Data": "CMU's ASF/AMC files as distributed by CMU",
    "yuki-koyama/bvh11": "CMU's BVH conversion (cgspeed release), in the repository's resources/",
    "DragonForgedTheArtist/IClone-CMU-Mocap": "CMU's AMC clips converted to BVH (LifeForms, exported on "
    "iClone's motion dummy); the repository states no licence of its own",
}

CITATION = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)


UNAVAILABLE: list[str] = []  # files the mirrors list but do not hold (named in the provenance)


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True).stdout


def extract(spec: str, into: Path) -> list[dict]:
    """``GITDIR=owner/name:PATH_OR_GLOB`` -> files written under ``into``, with provenance."""
    git_dir, rest = spec.split("=", 1)
    repo, pattern = rest.split(":", 1)
    git_dir = Path(git_dir)
    commit = git(git_dir, "rev-parse", "HEAD").strip()
    entries = []
    for line in git(git_dir, "ls-tree", "-r", "HEAD").splitlines():
        meta, path = line.split("\t", 1)
        blob = meta.split()[2]
        if not (fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/")):
            continue
        if Path(path).suffix.lower() not in (".asf", ".amc", ".bvh"):
            continue
        content = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "blob", blob], capture_output=True)
        if content.returncode != 0:  # a snapshot may list a file whose blob it does not hold
            print(f"skipped {repo}:{path}: blob {blob[:12]} is not in {git_dir}", file=sys.stderr)
            UNAVAILABLE.append(f"{repo}:{path} (blob {blob[:12]} absent from the mirror)")
            continue
        target = into / repo.replace("/", "+") / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.stdout)
        entries.append({"local": str(target), "repo": repo, "commit": commit, "path": path, "blob": blob})
    if not entries:
        raise SystemExit(f"{spec}: no .asf/.amc/.bvh files match")
    return entries


def write_provenance(path: Path, sources: list[dict], files: list[dict], splits: dict, settings: dict) -> None:
    by_local = {s["local"]: s for s in sources}
    split_of = {clip: name for name, subset in splits.items() for clip in set(subset.clip.tolist())}
    lines = [
        "# Real poses from the CMU Graphics Lab Motion Capture Database",
        "",
        f"Source: the CMU Graphics Lab Motion Capture Database, http://mocap.cs.cmu.edu/ ; {CITATION}",
        "Licence: free for research and commercial use (the database's terms ask for the citation above).",
        "Mirrors read: " + "; ".join(f"{repo}: {REPOSITORY_TERMS.get(repo, 'see the repository')}"
                                    for repo in sorted({s['repo'] for s in sources})) + ".",
        "No file of AMASS, SMPL, SMPLify or SPIN went into these poses.",
        "",
        "Built by `scripts/build_cmu_pose_sets.py` (retargeted to the bundled free body model by",
        "`spin-diff prior import-mocap`'s code: bone-direction fit, mean shape; near-duplicate frames",
        f"and frames retargeted worse than {settings['max_direction_error_deg']} degrees dropped). Settings: "
        f"`{json.dumps(settings)}`.",
        "",
        "| split | poses | subjects | clips |",
        "| --- | --- | --- | --- |",
    ]
    for name, subset in splits.items():
        clips = sorted(set(subset.clip.tolist()))
        subjects = sorted(set(subset.subject.tolist()))
        lines.append(f"| {name} | {len(subset)} | {', '.join(subjects)} | {', '.join(clips)} |")
    lines += ["", "Every source file (git blob ids of the mirrors' commits; the ASF skeletons are used by the",
              "AMC clips of their subject):", "",
              "| split | file | repository @ commit | blob | frames read | distinct | kept |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for entry in files:
        src = by_local[entry["path"]]
        lines.append(
            f"| {split_of.get(entry['clip'], '-')} | {src['path']} | {src['repo']} @ {src['commit'][:12]} | "
            f"{src['blob'][:12]} | {entry['frames']} | {entry['distinct']} | {entry['kept']} |"
        )
    for missing in UNAVAILABLE:
        lines.append(f"| (not read) | {missing} | | | | | |")
    for src in sources:
        if src["path"].lower().endswith(".asf"):
            lines.append(f"| (skeleton) | {src['path']} | {src['repo']} @ {src['commit'][:12]} | {src['blob'][:12]} | | | |")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--git-source", action="append", required=True, help="GITDIR=owner/name:PATH_OR_GLOB")
    parser.add_argument("--out-dir", type=Path, default=POSES_DIR)
    parser.add_argument("--imported", type=Path, help="reuse an import-mocap npz + json of the same files")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from spin_diff.body.model import load_body_model
    from spin_diff.data.mocap.importer import ImportConfig, PoseSet, import_mocap, split_pose_set

    torch.set_num_threads(args.threads)
    config = ImportConfig()
    with tempfile.TemporaryDirectory() as tmp:
        sources = [entry for spec in args.git_source for entry in extract(spec, Path(tmp))]
        mocap = [s["local"] for s in sources if not s["local"].lower().endswith(".asf")]
        tic = time.time()
        if args.imported:
            with np.load(args.imported) as data:
                poses = PoseSet(data["pose"].astype(np.float64), data["clip"], data["subject"], data["frame"],
                                data["direction_error_deg"], data["position_error_mm"],
                                json.loads(args.imported.with_suffix(".json").read_text()))  # fmt: skip
            # the earlier import's paths point elsewhere: match them to these files by clip name
            local_by_clip = {Path(s["local"]).stem: s["local"] for s in sources}
            for entry in poses.files:
                entry["path"] = local_by_clip[entry["clip"]]
        else:
            poses = import_mocap(mocap, load_body_model(), config)
        seconds = time.time() - tic
        held_out = np.isin(poses.subject, VAL_SUBJECTS + TEST_SUBJECTS)
        splits = split_pose_set(poses.subset(~held_out), "clip", val=list(VAL_CLIPS), test=list(TEST_CLIPS),
                                val_share=0, test_share=0)  # fmt: skip
        splits["val_subjects"] = poses.subset(np.isin(poses.subject, VAL_SUBJECTS))
        splits["test_subjects"] = poses.subset(np.isin(poses.subject, TEST_SUBJECTS))
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name, subset in splits.items():
            print(f"wrote {subset.save(args.out_dir / f'cmu_{name}.npz')} ({len(subset)} poses)")
        settings = {"min_motion_m": config.min_motion_m, "max_direction_error_deg": config.max_direction_error_deg,
                    "retarget_iterations": config.retarget.iterations}  # fmt: skip
        write_provenance(args.out_dir / "PROVENANCE.md", sources, poses.files, splits, settings)
    print(json.dumps({"poses": len(poses), "files": len(poses.files), "import_seconds": round(seconds, 1),
                      "median_direction_error_deg": round(float(np.median(poses.direction_error_deg)), 2),
                      "median_position_error_mm": round(float(np.median(poses.position_error_mm)), 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
