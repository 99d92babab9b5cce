"""Distances between predicted and true distributions on aligned option vectors.

All functions take arrays whose last axis is the option axis and broadcast over the rest,
so a whole table of items is scored in one call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def total_variation(p: ArrayLike, q: ArrayLike) -> FloatArray | float:
    """Total variation distance ½·Σ|p − q|, in [0, 1] for distributions.

    >>> total_variation([1.0, 0.0], [0.5, 0.5])
    0.5
    """
    p_arr, q_arr = _pair(p, q)
    result = 0.5 * np.abs(p_arr - q_arr).sum(axis=-1)
    return float(result) if result.ndim == 0 else result


def jensen_shannon(p: ArrayLike, q: ArrayLike, base: float = 2.0) -> FloatArray | float:
    """Jensen-Shannon *distance* (square root of the divergence), base 2 so it lies in [0, 1].

    Unlike ``scipy.spatial.distance.jensenshannon`` it never returns NaN for nearly identical
    vectors: rounding can make the divergence slightly negative, so it is clipped at 0 before
    the square root.
    """
    p_arr, q_arr = _pair(p, q)
    p_arr = p_arr / p_arr.sum(axis=-1, keepdims=True)
    q_arr = q_arr / q_arr.sum(axis=-1, keepdims=True)
    m = 0.5 * (p_arr + q_arr)
    divergence = 0.5 * (_kl(p_arr, m) + _kl(q_arr, m)) / np.log(base)
    result = np.sqrt(np.clip(divergence, 0.0, None))
    return float(result) if result.ndim == 0 else result


def wasserstein_ordinal(
    p: ArrayLike, q: ArrayLike, positions: Sequence[float | None] | None = None
) -> float:
    """Wasserstein-1 distance over ordered option positions, scaled to [0, 1].

    Options are the points of an ordered scale with unit spacing (ranks), so W1 is
    Σ|CDF_p − CDF_q| / (k − 1). ``positions`` gives each option's place on the scale; options
    whose position is None (e.g. "Refused") have no place on it and are dropped, and both
    distributions are renormalized over the remaining options. Returns NaN when fewer than
    two ordered options remain or either side has no mass on them.

    The reference code passed the probability vectors to ``scipy.stats.wasserstein_distance``
    as if they were samples, which measures the spread of the probability values, not the
    distance between answer distributions.
    """
    p_arr, q_arr = _pair(p, q)
    if p_arr.ndim != 1:
        raise ValueError("wasserstein_ordinal scores one item at a time")
    if positions is None:
        positions = list(range(p_arr.shape[-1]))
    if len(positions) != p_arr.shape[-1]:
        raise ValueError("positions must have one entry per option")
    keep = [i for i, pos in enumerate(positions) if pos is not None]
    if len(keep) < 2:
        return float("nan")
    order = sorted(keep, key=lambda i: float(positions[i]))  # type: ignore[arg-type]
    p_ord, q_ord = p_arr[order], q_arr[order]
    if p_ord.sum() <= 0 or q_ord.sum() <= 0:
        return float("nan")
    cdf_gap = np.cumsum(p_ord / p_ord.sum() - q_ord / q_ord.sum())[:-1]
    return float(np.abs(cdf_gap).sum() / (len(order) - 1))


def _pair(p: ArrayLike, q: ArrayLike) -> tuple[FloatArray, FloatArray]:
    p_arr = np.asarray(p, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    if p_arr.shape[-1:] != q_arr.shape[-1:]:
        raise ValueError(
            f"distributions must be aligned to the same options: {p_arr.shape} vs {q_arr.shape}"
        )
    return p_arr, q_arr


def _kl(p: FloatArray, q: FloatArray) -> FloatArray:
    # p > 0 implies q > 0 mathematically (q is the mixture), but q can underflow to 0 when p is
    # subnormal; such terms are ~1e-323 and are dropped rather than turned into inf.
    usable = (p > 0) & (q > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = np.where(
            usable, p * np.log(np.where(usable, p, 1.0) / np.where(usable, q, 1.0)), 0.0
        )
    return np.asarray(terms.sum(axis=-1))
