"""Score one prediction against its truth with every distance at once.

The input rule is :mod:`distalign.metrics.distance`'s: a prediction or truth that is not a
probability vector over the same options (NaN, infinite or negative values, an all-zero vector
or any sum other than 1, a different number of options) scores NaN on every distance, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from distalign.metrics.distance import (
    jensen_shannon,
    total_variation,
    wasserstein_ordinal,
    wasserstein_ordinal_rows,
)


def score_item(
    pred: ArrayLike, truth: ArrayLike, ordinal: Sequence[float | None] | None = None
) -> dict[str, Any]:
    """TV, JS distance and (for ordinal questions) ordinal W1 of an aligned prediction.

    All three are NaN when the pair breaks the input rule (see the module docstring); use
    :func:`distalign.metrics.distance.distribution_problem` to say why.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    return {
        "tv": float(total_variation(p, t)),
        "js": float(jensen_shannon(p, t)),
        "w1": wasserstein_ordinal(p, t, ordinal) if ordinal is not None else float("nan"),
    }


def score_items(
    preds: Sequence[ArrayLike],
    truths: Sequence[ArrayLike],
    ordinals: Sequence[Sequence[float | None] | None],
) -> list[dict[str, Any]]:
    """:func:`score_item` for many items at once: TV and JS in one array call per option count.

    A grid of 15,000 items scores in a fraction of a second instead of seconds.
    """
    scores: list[dict[str, Any]] = [{} for _ in preds]
    by_width: dict[int, list[int]] = {}
    for index, pred in enumerate(preds):
        by_width.setdefault(len(np.atleast_1d(np.asarray(pred))), []).append(index)
    for indices in by_width.values():
        p = np.array([np.asarray(preds[i], dtype=np.float64) for i in indices])
        t = _stack([truths[i] for i in indices], p.shape[-1])
        tv = np.atleast_1d(total_variation(p, t))
        js = np.atleast_1d(jensen_shannon(p, t))
        for row, i in enumerate(indices):
            scores[i] = {"tv": float(tv[row]), "js": float(js[row])}
    for score in scores:
        score["w1"] = float("nan")
    for (width, scale), indices in _by_scale(preds, ordinals).items():
        p = np.array([np.asarray(preds[i], dtype=np.float64) for i in indices])
        t = _stack([truths[i] for i in indices], width)
        for i, w1 in zip(indices, wasserstein_ordinal_rows(p, t, scale), strict=True):
            scores[i]["w1"] = float(w1)
    return scores


def _by_scale(
    preds: Sequence[ArrayLike], ordinals: Sequence[Sequence[float | None] | None]
) -> dict[tuple[int, tuple[float | None, ...]], list[int]]:
    """Indices of the ordinal items, by option count and scale positions."""
    groups: dict[tuple[int, tuple[float | None, ...]], list[int]] = {}
    for index, ordinal in enumerate(ordinals):
        if ordinal is not None:
            width = len(np.atleast_1d(np.asarray(preds[index])))
            groups.setdefault((width, tuple(ordinal)), []).append(index)
    return groups


def _stack(truths: Sequence[ArrayLike], width: int) -> np.ndarray:
    rows = [np.asarray(t, dtype=np.float64) for t in truths]
    # a truth over a different number of options scores NaN, as in score_item
    return np.array([r if r.shape == (width,) else np.full(width, np.nan) for r in rows])
