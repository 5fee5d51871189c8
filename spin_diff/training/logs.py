"""What a training run reports: a tqdm bar, ``RUN_DIR/log.csv``, and TensorBoard if installed.

Per-step figures stay on the device and are summed there; every ``summary_every`` steps
they are summed over the ranks (under torchrun), copied to the host once (the only
logging sync), averaged over the steps, shown on the bar
(loss, fits/s, share of examples supervised, mean fit score), appended to the CSV, and
written to TensorBoard when the optional ``tensorboard`` package is importable.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

log = logging.getLogger(__name__)

__all__ = ["SUMMARY_FIELDS", "RunLog"]

SUMMARY_FIELDS = (
    "step", "epoch", "wall_s", "loss", "loss_keypoints", "loss_joints3d", "loss_pose", "loss_betas",
    "loss_camera", "supervised_share", "mean_fit_score", "improved_fits", "nonfinite_rows", "fits_per_s", "lr",
)  # fmt: skip
_SUMS = ("loss", "loss_keypoints", "loss_joints3d", "loss_pose", "loss_betas", "loss_camera",
         "supervised_share", "score_sum", "score_count", "improved_fits", "nonfinite_rows")  # fmt: skip


class RunLog:
    """Accumulates step figures on the device; writes a summary every ``every`` steps."""

    def __init__(self, run_dir: Path, every: int, total: int | None, initial: int, active: bool, progress: bool,
                 reduce=None, world_size: int = 1):  # fmt: skip

        self.every = max(1, int(every))
        self.active = active  # this process writes the bar, the CSV and TensorBoard
        self.reduce = reduce  # sum over ranks (every rank calls summarise at the same steps)
        self.world_size = world_size
        self.path = Path(run_dir) / "log.csv"
        self._sums: torch.Tensor | None = None
        self._steps = 0
        self._fits = 0
        self._since = time.perf_counter()
        self._start = time.perf_counter()
        self.last: dict[str, float] = {}
        self.bar = tqdm(total=total, initial=initial, unit="step", disable=not (active and progress), dynamic_ncols=True)
        self.tensorboard = None
        if active:
            new = not self.path.is_file()
            self._file = self.path.open("a", newline="")
            self._csv = csv.DictWriter(self._file, fieldnames=SUMMARY_FIELDS)
            if new:
                self._csv.writeheader()
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard"))
            except ImportError:
                log.debug("tensorboard is not installed: logging to %s only", self.path)

    def add(self, parts, fits: int) -> None:
        """Add one step's :class:`~spin_diff.training.loop.StepParts` (no host sync)."""
        losses, targets = parts.losses, parts.supervision
        finite_score = torch.isfinite(targets.score) & ~parts.nonfinite
        values = torch.stack([
            losses.total.detach(), losses.keypoints.detach(), losses.joints3d.detach(), losses.pose.detach(),
            losses.betas.detach(), losses.camera.detach(), targets.supervised.float().mean(),
            torch.where(finite_score, targets.score, torch.zeros_like(targets.score)).sum(),
            finite_score.sum().float(), parts.improved.sum().float(), parts.nonfinite.sum().float(),
        ]).double()  # fmt: skip
        self._sums = values if self._sums is None else self._sums + values
        self._steps += 1
        self._fits += fits

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def summarise(self, step: int, epoch: int, lr: float) -> dict[str, float]:
        """Average what was added since the last summary; show and write it (main process)."""
        if self._sums is None:
            return self.last
        totals = self.reduce(self._sums) if self.reduce is not None else self._sums
        sums = dict(zip(_SUMS, totals.cpu().tolist()))  # the logging sync
        now = time.perf_counter()
        row = {name: sums[name] / (self._steps * self.world_size) for name in _SUMS[:7]}
        row["mean_fit_score"] = sums["score_sum"] / sums["score_count"] if sums["score_count"] else float("nan")
        row["improved_fits"] = sums["improved_fits"]
        row["nonfinite_rows"] = sums["nonfinite_rows"]
        row["fits_per_s"] = self._fits / max(now - self._since, 1e-9)
        row.update(step=step, epoch=epoch, wall_s=now - self._start, lr=lr)
        self._sums, self._steps, self._fits, self._since = None, 0, 0, now
        self.last = row
        if self.active:
            self._csv.writerow({k: row[k] for k in SUMMARY_FIELDS})
            self._file.flush()
            self.bar.set_postfix(
                loss=f"{row['loss']:.4g}", fits_s=f"{row['fits_per_s']:.1f}",
                supervised=f"{row['supervised_share']:.0%}", score=f"{row['mean_fit_score']:.1f}", refresh=False,
            )  # fmt: skip
            if self.tensorboard is not None:
                for name in SUMMARY_FIELDS[3:]:
                    self.tensorboard.add_scalar(f"train/{name}", row[name], step)
        return row

    def validation(self, step: int, metrics: dict[str, float]) -> None:
        if self.active and self.tensorboard is not None:
            for name, value in metrics.items():
                self.tensorboard.add_scalar(f"validation/{name}", value, step)

    def image(self, tag: str, image, step: int) -> None:
        """An (H, W, 3) uint8 picture to TensorBoard (main process, when installed)."""
        if self.active and self.tensorboard is not None:
            self.tensorboard.add_image(tag, image, step, dataformats="HWC")

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()
        if self.active:
            self._file.close()
            if self.tensorboard is not None:
                self.tensorboard.close()
