"""Distances between predicted and true distributions on aligned option vectors.

All functions take arrays whose last axis is the option axis and broadcast over the rest,
so a whole table of items is scored in one call.

**Input rule (every distance here, and** :func:`distalign.metrics.score_item` **).** Both
arguments must be probability vectors over the same options: every value finite and
non-negative, summing to 1 within :data:`SUM_TOLERANCE`. A pair that breaks the rule has no
distance, and its result is NaN:

* a NaN or infinite value, or a negative value;
* an all-zero vector, or any other vector whose sum is not 1 (nothing is renormalised);
* the two vectors (or W1's ``positions``) having different numbers of options.

NaN, never 0: a distance of 0 would be a perfect score for an item that was never scored. And
NaN, never an exception, so one bad row of a vectorised call does not sink the others; the
aggregation skips NaN. Callers that keep item statuses should mark such items not scored:
:func:`distribution_problem` says what is wrong with one vector. Only calling a function the
wrong way (W1 on a table instead of one item) raises ``ValueError``.

**No distance renormalises.** TV, JS and W1 treat their inputs alike: a vector that does not
sum to 1 is rejected rather than rescaled, because rescaling would hide a prediction that put
its mass elsewhere (e.g. Log-p mass on tokens that are not option letters). Renormalising is
the parsers' job; they record the mass before it (``raw_sum``, ``covered_mass``). The one
renormalisation left is part of W1's definition: options without a place on the ordinal scale
("Refused") are dropped and both distributions conditioned on the ordered options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

SUM_TOLERANCE = 1e-6  # a probability vector sums to 1 within this


def total_variation(p: ArrayLike, q: ArrayLike) -> FloatArray | float:
    """Total variation distance ½·Σ|p − q|, in [0, 1]; NaN for inputs that are not
    distributions (see the module docstring).

    >>> total_variation([1.0, 0.0], [0.5, 0.5])
    0.5
    >>> total_variation([0.0, 0.0], [0.5, 0.5])
    nan
    """
    return _scored(p, q, lambda a, b: 0.5 * np.abs(a - b).sum(axis=-1))


def jensen_shannon(p: ArrayLike, q: ArrayLike, base: float = 2.0) -> FloatArray | float:
    """Jensen-Shannon *distance* (square root of the divergence), base 2 so it lies in [0, 1].

    Inputs are not renormalised; a vector that is not a distribution gives NaN (see the module
    docstring). Unlike ``scipy.spatial.distance.jensenshannon`` it never returns NaN for
    nearly identical vectors: rounding can make the divergence slightly negative, so it is
    clipped at 0 before the square root.
    """

    def distance(p_arr: FloatArray, q_arr: FloatArray) -> FloatArray:
        m = 0.5 * (p_arr + q_arr)
        divergence = 0.5 * (_kl(p_arr, m) + _kl(q_arr, m)) / np.log(base)
        return np.asarray(np.sqrt(np.clip(divergence, 0.0, None)))

    return _scored(p, q, distance)


def wasserstein_ordinal(
    p: ArrayLike, q: ArrayLike, positions: Sequence[float | None] | None = None
) -> float:
    """Wasserstein-1 distance over ordered option positions, scaled to [0, 1].

    Options are the points of an ordered scale with unit spacing (ranks), so W1 is
    Σ|CDF_p − CDF_q| / (k − 1). ``positions`` gives each option's place on the scale; options
    whose position is None (e.g. "Refused") have no place on it and are dropped, and both
    distributions are renormalized over the remaining options. Returns NaN when fewer than
    two ordered options remain or either side has no mass on them, and for inputs that break
    the module's input rule (``positions`` of the wrong length or with a non-finite entry
    included). Scores one item: 1-D vectors only.

    The reference code passed the probability vectors to ``scipy.stats.wasserstein_distance``
    as if they were samples, which measures the spread of the probability values, not the
    distance between answer distributions.
    """
    p_arr, q_arr = _vectors(p, q)
    if p_arr.ndim != 1 or q_arr.ndim != 1:
        raise ValueError("wasserstein_ordinal scores one item at a time")
    if p_arr.shape != q_arr.shape or not (_valid(p_arr) and _valid(q_arr)):
        return float("nan")
    if positions is None:
        positions = list(range(p_arr.shape[-1]))
    if len(positions) != p_arr.shape[-1]:
        return float("nan")
    if any(pos is not None and not np.isfinite(float(pos)) for pos in positions):
        return float("nan")
    keep = [i for i, pos in enumerate(positions) if pos is not None]
    if len(keep) < 2:
        return float("nan")
    order = sorted(keep, key=lambda i: float(positions[i]))  # type: ignore[arg-type]
    p_ord, q_ord = p_arr[order], q_arr[order]
    if p_ord.sum() <= 0 or q_ord.sum() <= 0:
        return float("nan")
    cdf_gap = np.cumsum(p_ord / p_ord.sum() - q_ord / q_ord.sum())[:-1]
    return float(np.abs(cdf_gap).sum() / (len(order) - 1))


def wasserstein_ordinal_rows(
    p: FloatArray, q: FloatArray, positions: Sequence[float | None]
) -> FloatArray:
    """:func:`wasserstein_ordinal` for many items of one scale: ``p`` and ``q`` are [items, k].

    The same arithmetic row by row (so the same floats), in a few array operations.
    """
    p_arr, q_arr = np.atleast_2d(p).astype(np.float64), np.atleast_2d(q).astype(np.float64)
    rows = p_arr.shape[0]
    if p_arr.shape != q_arr.shape or len(positions) != p_arr.shape[-1]:
        return np.full(rows, np.nan)
    if any(pos is not None and not np.isfinite(float(pos)) for pos in positions):
        return np.full(rows, np.nan)
    keep = [i for i, pos in enumerate(positions) if pos is not None]
    if len(keep) < 2:
        return np.full(rows, np.nan)
    order = sorted(keep, key=lambda i: float(positions[i]))  # type: ignore[arg-type]
    p_ord, q_ord = p_arr[:, order], q_arr[:, order]
    p_sum, q_sum = p_ord.sum(axis=-1), q_ord.sum(axis=-1)
    ok = _valid(p_arr) & _valid(q_arr) & (p_sum > 0) & (q_sum > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.cumsum(p_ord / p_sum[:, None] - q_ord / q_sum[:, None], axis=-1)[:, :-1]
        w1 = np.abs(gap).sum(axis=-1) / (len(order) - 1)
    return np.where(ok, w1, np.nan)


def distribution_problem(values: ArrayLike) -> str | None:
    """Why one vector is not a probability distribution (the module's input rule), or None.

    >>> distribution_problem([0.5, 0.5]) is None
    True
    >>> distribution_problem([0.0, 0.0])
    'all values are 0'
    """
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1:
        raise ValueError("distribution_problem checks one vector at a time")
    if arr.size == 0:
        return "no values"
    if not np.isfinite(arr).all():
        return "a value is NaN or infinite"
    if (arr < 0).any():
        return "a value is negative"
    with np.errstate(over="ignore"):
        total = float(arr.sum())
    if total == 0:
        return "all values are 0"
    if not np.isfinite(total) or abs(total - 1.0) > SUM_TOLERANCE:
        return f"values sum to {total:.6g}, not 1"
    return None


def _scored(
    p: ArrayLike, q: ArrayLike, distance: Callable[[FloatArray, FloatArray], FloatArray]
) -> FloatArray | float:
    """``distance`` on the rows where both sides are distributions, NaN on the others."""
    p_arr, q_arr = _vectors(p, q)
    batch = np.broadcast_shapes(p_arr.shape[:-1], q_arr.shape[:-1])
    if p_arr.shape[-1] != q_arr.shape[-1]:
        result = np.full(batch, np.nan)  # not aligned to the same options: no distance
    else:
        ok = _valid(p_arr) & _valid(q_arr)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            result = np.where(ok, distance(p_arr, q_arr), np.nan)
    return float(result) if result.ndim == 0 else np.asarray(result, dtype=np.float64)


def _vectors(p: ArrayLike, q: ArrayLike) -> tuple[FloatArray, FloatArray]:
    return (
        np.atleast_1d(np.asarray(p, dtype=np.float64)),
        np.atleast_1d(np.asarray(q, dtype=np.float64)),
    )


def _valid(x: FloatArray) -> BoolArray:
    """Per row of the last axis: finite, non-negative values summing to 1 within tolerance."""
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(x).all(axis=-1)
        non_negative = (x >= 0).all(axis=-1)
        unit = np.abs(x.sum(axis=-1) - 1.0) <= SUM_TOLERANCE
    return np.asarray(finite & non_negative & unit & (x.shape[-1] > 0))


def _kl(p: FloatArray, q: FloatArray) -> FloatArray:
    # p > 0 implies q > 0 mathematically (q is the mixture), but q can underflow to 0 when p is
    # subnormal; such terms are ~1e-323 and are dropped rather than turned into inf.
    usable = (p > 0) & (q > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = np.where(
            usable, p * np.log(np.where(usable, p, 1.0) / np.where(usable, q, 1.0)), 0.0
        )
    return np.asarray(terms.sum(axis=-1))
