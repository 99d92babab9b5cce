"""Bootstrap confidence intervals for mean TV over (question × group) item tables.

A dataset's items form a table ``T[q, g, s]`` over questions q, groups g and any further
axis s (e.g. the persona and few-shot steerings that are pooled together), with NaN where a
cell has no score. The statistic is the equal-weight mean over datasets of each dataset's
mean over its non-NaN cells.

Two resampling schemes:

* ``cluster`` (default): Owen's two-way "pigeonhole" bootstrap. Each replicate draws
  questions and, independently, groups with replacement; a cell's weight is the product of
  its question's and its group's draw counts. The same question appears for every group and
  one persona can be off on every question, so cells are correlated along both factors and an
  item-level bootstrap is too narrow.
* ``iid``: items resampled independently within each dataset (the paper's scheme).

Everything is vectorized: weights are drawn as (replicates × questions) and
(replicates × groups) count matrices and applied with ``einsum``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
CIMode = Literal["cluster", "question", "iid"]
CI_MODES: tuple[str, ...] = ("cluster", "question", "iid")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    mean: float
    low: float
    high: float
    ci_mode: str
    n_boot: int
    seed: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class DatasetWeights:
    """Per-replicate question and group draw counts for one dataset table."""

    questions: FloatArray  # (R, Q)
    groups: FloatArray  # (R, G)


def as_table(table: FloatArray) -> FloatArray:
    """Give a (Q, G) table a trailing axis so every table is (Q, G, S)."""
    arr = np.asarray(table, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"an item table must be (questions, groups[, other]); got {arr.shape}")
    return arr


def draw_weights(
    table: FloatArray, n_boot: int, rng: np.random.Generator, mode: CIMode
) -> DatasetWeights:
    """Draw resampling weights for one dataset table under ``mode``."""
    n_q, n_g = table.shape[0], table.shape[1]
    if mode not in ("cluster", "question"):
        raise ValueError(f"draw_weights has no mode {mode!r}; iid uses iid_replicates")
    wq = rng.multinomial(n_q, np.full(n_q, 1 / n_q), size=n_boot).astype(np.float64)
    if mode == "cluster":
        wg = rng.multinomial(n_g, np.full(n_g, 1 / n_g), size=n_boot).astype(np.float64)
    else:  # "question": every group kept once
        wg = np.ones((n_boot, n_g))
    return DatasetWeights(wq, wg)


def weighted_sums(table: FloatArray, weights: DatasetWeights) -> tuple[FloatArray, FloatArray]:
    """Per-replicate weighted sum of the cells and of the cell count (NaN cells skipped)."""
    present = ~np.isnan(table)
    values = np.where(present, table, 0.0)
    total = np.einsum("rq,qgs,rg->r", weights.questions, values, weights.groups)
    count = np.einsum("rq,qgs,rg->r", weights.questions, present.astype(np.float64), weights.groups)
    return total, count


def table_mean(table: FloatArray) -> float:
    values = as_table(table)
    if np.isnan(values).all():
        return float("nan")
    return float(np.nanmean(values))


def replicate_means(
    tables: Sequence[FloatArray], n_boot: int, rng: np.random.Generator, mode: CIMode
) -> FloatArray:
    """Per-replicate equal-weight mean over datasets of each dataset's resampled mean."""
    per_dataset = []
    for raw in tables:
        table = as_table(raw)
        if mode == "iid":
            per_dataset.append(iid_replicates(table, n_boot, rng))
        else:
            total, count = weighted_sums(table, draw_weights(table, n_boot, rng, mode))
            with np.errstate(invalid="ignore", divide="ignore"):
                per_dataset.append(total / count)
    return np.mean(np.stack(per_dataset), axis=0)


def iid_replicates(table: FloatArray, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """Resample the non-NaN cells of one table independently (an item is the unit)."""
    values = table[~np.isnan(table)]
    if values.size == 0:
        return np.full(n_boot, np.nan)
    picks = rng.integers(0, values.size, size=(n_boot, values.size))
    return np.asarray(values[picks].mean(axis=1))


def bootstrap_mean(
    tables: Sequence[FloatArray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    mode: CIMode = "cluster",
    level: float = 0.95,
) -> Interval:
    """Equal-weight mean over datasets with a percentile bootstrap interval.

    >>> import numpy as np
    >>> iv = bootstrap_mean([np.array([[0.1, 0.2], [0.3, 0.4]])], n_boot=200)
    >>> round(iv.mean, 3)
    0.25
    """
    _check(n_boot, level, mode)
    point = float(np.mean([table_mean(t) for t in tables]))
    reps = replicate_means(tables, n_boot, np.random.default_rng(seed), mode)
    low, high = _percentiles(reps, level)
    return Interval(point, low, high, mode, n_boot, seed)


def paired_replicates(
    tables_a: Sequence[FloatArray],
    tables_b: Sequence[FloatArray],
    *,
    n_boot: int,
    seed: int,
    mode: CIMode,
) -> tuple[FloatArray, FloatArray]:
    """Replicate means of two configurations resampled with the SAME clusters.

    Cells are kept only where both sides have a score, so both means cover the same items.
    """
    rng = np.random.default_rng(seed)
    reps_a, reps_b = [], []
    for raw_a, raw_b in zip(tables_a, tables_b, strict=True):
        a, b = _shared_cells(as_table(raw_a), as_table(raw_b))
        if mode == "iid":
            keep = ~np.isnan(a)
            picks = rng.integers(0, int(keep.sum()), size=(n_boot, int(keep.sum())))
            reps_a.append(a[keep][picks].mean(axis=1))
            reps_b.append(b[keep][picks].mean(axis=1))
            continue
        weights = draw_weights(a, n_boot, rng, mode)
        for side, out in ((a, reps_a), (b, reps_b)):
            total, count = weighted_sums(side, weights)
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append(total / count)
    return np.mean(np.stack(reps_a), axis=0), np.mean(np.stack(reps_b), axis=0)


def shared_means(
    tables_a: Sequence[FloatArray], tables_b: Sequence[FloatArray]
) -> tuple[float, float]:
    """Point means of two configurations over the cells both of them scored."""
    means_a, means_b = [], []
    for raw_a, raw_b in zip(tables_a, tables_b, strict=True):
        a, b = _shared_cells(as_table(raw_a), as_table(raw_b))
        means_a.append(table_mean(a))
        means_b.append(table_mean(b))
    return float(np.mean(means_a)), float(np.mean(means_b))


def two_sided_p(replicates: FloatArray, null: float = 0.0) -> float:
    """Bootstrap p-value: twice the share of replicates on the far side of ``null``."""
    reps = replicates[~np.isnan(replicates)]
    if reps.size == 0:
        return float("nan")
    below = float(np.mean(reps <= null))
    above = float(np.mean(reps >= null))
    return min(1.0, 2 * min(below, above))


def _shared_cells(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    if a.shape != b.shape:
        raise ValueError(f"paired tables must have the same shape: {a.shape} vs {b.shape}")
    both = ~np.isnan(a) & ~np.isnan(b)
    return np.where(both, a, np.nan), np.where(both, b, np.nan)


def _percentiles(reps: FloatArray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(reps, [tail, 100 - tail])
    return float(low), float(high)


def _check(n_boot: int, level: float, mode: str) -> None:
    if n_boot < 1:
        raise ValueError("`n_boot` must be a positive integer")
    if not 0 < level < 1:
        raise ValueError("`level` must lie strictly between 0 and 1")
    if mode not in CI_MODES:
        raise ValueError(f"`mode` must be one of {CI_MODES}, got {mode!r}")
