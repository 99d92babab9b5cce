"""Bootstrap replicates of several aligned item tables resampled with the same clusters.

A ratio of two means (Sequence over Verbalize, model spread over human spread) needs both means
from the same resample in every replicate. :func:`joint_means` generalises
:func:`~distalign.metrics.bootstrap.paired_replicates` to any number of tables per dataset:
cells are kept only where every table has a score, so all means cover the same items, and one
draw of question (and group) weights per dataset and replicate is applied to all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distalign.metrics.bootstrap import (
    CIMode,
    FloatArray,
    as_table,
    draw_weights,
    table_mean,
    weighted_sums,
)


@dataclass(frozen=True)
class JointMeans:
    """Point means (one per configuration) and their replicates, shape (configs, n_boot)."""

    points: FloatArray
    replicates: FloatArray
    n_shared: int


def joint_means(
    tables: Sequence[Sequence[FloatArray]], *, n_boot: int, seed: int, mode: CIMode
) -> JointMeans:
    """Equal-weight means over datasets for each configuration, on their shared cells.

    ``tables[c][d]`` is configuration c's (question, group, steering) table for dataset d; all
    configurations must give tables of the same shape per dataset.
    """
    if not tables:
        raise ValueError("joint_means needs at least one configuration")
    rng = np.random.default_rng(seed)
    per_dataset_points, per_dataset_reps = [], []
    n_shared = 0
    for d in range(len(tables[0])):
        shared = _shared([as_table(config[d]) for config in tables])
        cells = int(np.isfinite(shared[0]).sum())
        if cells == 0:
            continue  # a dataset no configuration scored in common does not enter the mean
        n_shared += cells
        per_dataset_points.append([table_mean(t) for t in shared])
        per_dataset_reps.append(_replicates(shared, n_boot, rng, mode))
    if not per_dataset_points:
        nan = float("nan")
        return JointMeans(np.full(len(tables), nan), np.full((len(tables), n_boot), nan), 0)
    points = np.mean(np.array(per_dataset_points, dtype=np.float64), axis=0)
    with np.errstate(invalid="ignore"):
        reps = np.mean(np.stack(per_dataset_reps), axis=0)  # (configs, n_boot)
    return JointMeans(np.asarray(points), reps, n_shared)


def percentile_interval(replicates: FloatArray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite replicates; NaN when there are none."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _shared(tables: list[FloatArray]) -> list[FloatArray]:
    shapes = {t.shape for t in tables}
    if len(shapes) != 1:
        raise ValueError(f"joint tables must have the same shape, got {sorted(shapes)}")
    keep = np.logical_and.reduce([np.isfinite(t) for t in tables])
    return [np.where(keep, t, np.nan) for t in tables]


def _replicates(
    shared: list[FloatArray], n_boot: int, rng: np.random.Generator, mode: CIMode
) -> FloatArray:
    if mode == "iid":
        keep = np.isfinite(shared[0])
        size = int(keep.sum())
        if size == 0:
            return np.full((len(shared), n_boot), np.nan)
        picks = rng.integers(0, size, size=(n_boot, size))
        return np.stack([t[keep][picks].mean(axis=1) for t in shared])
    weights = draw_weights(shared[0], n_boot, rng, mode)
    out = []
    for table in shared:
        total, count = weighted_sums(table, weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(total / count)
    return np.stack(out)
