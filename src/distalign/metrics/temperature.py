"""Temperature scaling for Log-p predictions (TS-Log-p).

q = p^(1/T) / Σ p^(1/T), with one T per (model, dataset, steering) chosen to minimise the
summed TV to the truth.

* ``crossfit`` (default): questions are split into k seeded folds and each fold is scored with
  a temperature fit on the other folds, so no question is scored with a T that saw it. Folds
  are by question, not by item, so a question's groups stay together.
* ``insample``: fit on the scored items themselves, as the paper did (its exact bounded (0, 10)
  variant with NaN quirks lives in ``distalign.reference.paper``).

The search runs over log T on [log T_min, log T_max] (default T in [0.01, 100]) so small and
large temperatures get the same resolution, and all-zero predictions (which have no
temperature-scaled form) are left out of the objective instead of turning it into NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar

FloatArray = NDArray[np.float64]
FitMode = Literal["crossfit", "insample"]
DEFAULT_BOUNDS = (0.01, 100.0)


def scale(probs: FloatArray, temperature: float) -> FloatArray:
    """Temperature-scale rows of (unnormalized) probabilities; all-zero rows become NaN."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    top = np.max(logits, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        weights = np.exp(logits - top)
        return np.asarray(weights / weights.sum(axis=-1, keepdims=True))


def scaled_tv(preds: list[FloatArray], truths: list[FloatArray], temperature: float) -> FloatArray:
    """TV of each temperature-scaled prediction to its truth (NaN for all-zero predictions)."""
    pred_matrix, truth_matrix = padded(preds), padded(truths)
    return _matrix_tv(pred_matrix, truth_matrix, temperature)


def padded(rows: list[FloatArray]) -> FloatArray:
    """Stack rows of different lengths, padding with zeros (which stay zero when scaled)."""
    width = max((len(r) for r in rows), default=0)
    out = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _matrix_tv(pred: FloatArray, truth: FloatArray, temperature: float) -> FloatArray:
    return np.asarray(0.5 * np.abs(scale(pred, temperature) - truth).sum(axis=-1))


def fit_temperature(
    preds: list[FloatArray],
    truths: list[FloatArray],
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
) -> float:
    """The T in ``bounds`` minimising the summed TV over items with a usable prediction."""
    usable = [i for i, p in enumerate(preds) if np.asarray(p).sum() > 0]
    if not usable:
        return 1.0
    pred_matrix = padded([preds[i] for i in usable])
    truth_matrix = padded([truths[i] for i in usable])

    def objective(log_t: float) -> float:
        return float(_matrix_tv(pred_matrix, truth_matrix, float(np.exp(log_t))).sum())

    result = minimize_scalar(
        objective, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded"
    )
    return float(np.exp(result.x))


@dataclass(frozen=True)
class CrossFit:
    """Temperature-scaled predictions plus the temperature each item was scaled with."""

    scaled: list[FloatArray]
    temperature_per_item: FloatArray
    fold_of_question: dict[str, int]
    fold_temperatures: list[float]
    mode: str


def crossfit(
    question_ids: list[str],
    preds: list[FloatArray],
    truths: list[FloatArray],
    *,
    mode: FitMode = "crossfit",
    k: int = 5,
    seed: int = 0,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
) -> CrossFit:
    """Scale each item with a T fit without (crossfit) or with (insample) its question."""
    unique = list(dict.fromkeys(question_ids))
    if mode == "insample" or len(unique) < 2:
        temp = fit_temperature(preds, truths, bounds)
        folds = dict.fromkeys(unique, 0)
        temps = [temp]
    else:
        folds = _assign_folds(unique, min(k, len(unique)), seed)
        temps = []
        for fold in range(min(k, len(unique))):
            train = [i for i, q in enumerate(question_ids) if folds[q] != fold]
            temps.append(
                fit_temperature([preds[i] for i in train], [truths[i] for i in train], bounds)
            )
    per_item = np.array([temps[folds[q]] for q in question_ids])
    scaled = [scale(p, t) for p, t in zip(preds, per_item, strict=True)]
    return CrossFit(scaled, per_item, folds, temps, mode)


def _assign_folds(question_ids: list[str], k: int, seed: int) -> dict[str, int]:
    order = np.random.default_rng(seed).permutation(len(question_ids))
    return {question_ids[idx]: rank % k for rank, idx in enumerate(order)}
