"""What a fit cache holds: counts per dataset and source, score histograms, coverage."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from spin_diff.cache.records import MISSING_SOURCE, Source
from spin_diff.cache.store import FitStore

__all__ = ["SCORE_BINS", "SPIN_SCORE_THRESHOLD", "DatasetStats", "CacheStats", "cache_stats", "format_stats"]

#: Upper edges of the score histogram's bins (SPIN's score: mean robust squared pixel error).
SCORE_BINS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, np.inf)
#: SPIN supervises the regressor with a fit only when its score is below this.
SPIN_SCORE_THRESHOLD = 100.0


@dataclass
class DatasetStats:
    name: str
    count: int = 0
    by_source: Counter = field(default_factory=Counter)
    by_config: Counter = field(default_factory=Counter)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(SCORE_BINS), dtype=np.int64))
    unscored: int = 0
    below_threshold: int = 0
    score_sum: float = 0.0
    scored: int = 0
    size: int | None = None  # examples in the dataset, if known
    max_index: int = -1

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.scored if self.scored else float("nan")

    @property
    def coverage(self) -> float | None:
        return None if not self.size else self.count / self.size


@dataclass
class CacheStats:
    path: str
    header: dict
    info: dict
    datasets: dict[str, DatasetStats]
    configs: dict[int, dict]


def cache_stats(store: FitStore, dataset_sizes: dict[str, int] | None = None) -> CacheStats:
    """Scan the store once and summarise it; ``dataset_sizes`` ({name: examples}) adds coverage."""
    sizes = dict(dataset_sizes or {})
    datasets: dict[str, DatasetStats] = {}
    for names, indices, fits in store.scan():
        stats = datasets.setdefault(names[0], DatasetStats(names[0]))
        stats.count += len(indices)
        stats.max_index = max(stats.max_index, int(indices.max()))
        for code, count in zip(*np.unique(fits.source, return_counts=True)):
            label = Source(int(code)).label if code != MISSING_SOURCE else "missing"
            stats.by_source[label] += int(count)
        for value, count in zip(*np.unique(fits.config_hash, return_counts=True)):
            stats.by_config[int(value)] += int(count)
        scores = fits.score.astype(np.float64)
        finite = np.isfinite(scores)
        stats.unscored += int((~finite).sum())
        stats.scored += int(finite.sum())
        stats.score_sum += float(scores[finite].sum())
        stats.below_threshold += int((scores[finite] < SPIN_SCORE_THRESHOLD).sum())
        bins = np.searchsorted(np.asarray(SCORE_BINS), scores[finite], side="right")
        stats.histogram += np.bincount(np.minimum(bins, len(SCORE_BINS) - 1), minlength=len(SCORE_BINS))
    for name, size in sizes.items():
        datasets.setdefault(name, DatasetStats(name)).size = int(size)
    return CacheStats(str(store.path), store.header, store.info(), datasets, store.configs())


def _describe_config(description: dict) -> str:
    kind = description.get("kind", "?")
    if kind == "fit":
        fitting = description.get("fitting", {})
        stages = ", ".join(f"{s.get('name')} x{s.get('iterations')}" for s in fitting.get("stages", []))
        return f"SMPLify ({fitting.get('optimizer')}; {stages})"
    if kind == "static-import":
        return f"static fits imported from {description.get('file')}"
    if kind == "ground-truth":
        return f"ground truth of {description.get('dataset')}"
    return kind


def format_stats(stats: CacheStats, width: int = 40) -> str:
    """A plain-text report of :func:`cache_stats`."""
    header, info = stats.header, stats.info
    lines = [
        f"fit cache {stats.path}",
        f"  format {header.get('format')} v{header.get('version')}, created {header.get('created')}",
        f"  body model: {header.get('body_model') or 'unnamed'} "
        f"(sha256 {str(header.get('body_model_sha256'))[:16]}...)",
        f"  {sum(d.count for d in stats.datasets.values())} records, "
        f"{info['used_bytes'] / 2**20:.1f} MiB used of a {info['map_size'] / 2**20:.0f} MiB map",
    ]
    lower = (0.0, *SCORE_BINS[:-1])
    labels = [f"{low:g}-{high:g}" if np.isfinite(high) else f">= {low:g}" for low, high in zip(lower, SCORE_BINS)]
    for name in sorted(stats.datasets):
        d = stats.datasets[name]
        lines.append("")
        coverage = (
            f", coverage {d.count}/{d.size} = {100 * d.coverage:.1f}%" if d.size else
            f", indices up to {d.max_index}" if d.count else ""
        )  # fmt: skip
        lines.append(f"dataset {name}: {d.count} records{coverage}")
        if d.size is not None and d.max_index >= d.size:
            lines.append(
                f"  WARNING: records up to index {d.max_index}, beyond the dataset's {d.size} examples"
            )
        if not d.count:
            continue
        lines.append("  by source: " + ", ".join(f"{k} {v}" for k, v in sorted(d.by_source.items())))
        for value, count in d.by_config.most_common():
            what = _describe_config(stats.configs.get(value, {"kind": "unregistered"}))
            lines.append(f"  config {value:016x}: {count} ({what})")
        lines.append(
            f"  score: mean {d.mean_score:.2f}; {d.below_threshold} of {d.scored} scored below SPIN's "
            f"threshold {SPIN_SCORE_THRESHOLD:g}" + (f"; {d.unscored} unscored" if d.unscored else "")
        )
        top = max(int(d.histogram.max()), 1)
        for label, count in zip(labels, d.histogram):
            bar = "#" * int(round(width * count / top))
            lines.append(f"    {label:>8} | {bar:<{width}} {count}")
    return "\n".join(lines)
