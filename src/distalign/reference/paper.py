"""Paper mode: the paper's tables from its stored outputs, exactly as the paper made them (§9.1).

Each rule below is one function with the spec section and quirk id it implements. The rules
are the paper's, quirks included; the standard mode (``distalign.metrics``) fixes them and is
deliberately not used here. The items are scored in :mod:`distalign.reference.paper_scoring`,
whose names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distalign.data import FloatArray
from distalign.reference.files import DATASETS, MODEL_DISPLAY_NAMES
from distalign.reference.paper_scoring import (
    TEMPERATURE_BOUNDS,
    Results,
    fit_temperature,
    fit_temperatures,
    judge,
    paper_items,
    positional_tv,
    rescale_records,
    survey_order_truth,
    temperature_scale,
)
from distalign.results import Status, items_frame

__all__ = [
    "BASELINE_MODEL",
    "NYT_COPIES",
    "N_DRAWS",
    "N_SIMULATIONS",
    "STEERED",
    "TEMPERATURE_BOUNDS",
    "Results",
    "baseline_items",
    "bootstrap_equal_weight",
    "discretization_tv",
    "fit_temperature",
    "fit_temperatures",
    "judge",
    "majority_prediction",
    "paper_baselines",
    "paper_gap",
    "paper_items",
    "paper_leaderboard",
    "positional_tv",
    "rescale_records",
    "survey_order_truth",
    "temperature_scale",
    "uniform_prediction",
]

STEERED = ("persona", "fewshot")
NYT_COPIES = 2  # §6.2, S5: NYT group lists enter the main leaderboard twice
BASELINE_MODEL = "gpt-3.5-turbo-0125"  # §6.6: every baseline reuses its Sequence files
N_DRAWS = 30  # §6.6: the discretization baseline's sequence length
N_SIMULATIONS = 1000  # §6.6: simulations per item of the discretization baseline


# --- aggregation ---------------------------------------------------------------------------


def bootstrap_equal_weight(
    lists: Mapping[str, FloatArray], *, n_boot: int, rng: np.random.Generator
) -> FloatArray:
    """§6.4: i.i.d. resampling within each dataset; each replicate is the mean of dataset means."""
    replicates = np.zeros(n_boot)
    for values in lists.values():
        draws = rng.integers(0, values.size, size=(n_boot, values.size))
        replicates += values[draws].mean(axis=1)
    result: FloatArray = replicates / len(lists)
    return result


def _summary(block: pd.DataFrame, *, nyt_copies: int, n_boot: int, seed: int) -> dict[str, Any]:
    """One leaderboard row: point mean (§9.1 item 5), percentile CI, per-dataset counts."""
    lists = {
        d: block.loc[block["dataset"] == d, "tv"].to_numpy(dtype=np.float64)
        for d in DATASETS
        if (block["dataset"] == d).any()
    }
    means = {d: float(values.mean()) for d, values in lists.items()}
    if "nytimes" in lists:  # S5: duplicates change only the CI, never the mean
        lists["nytimes"] = np.tile(lists["nytimes"], nyt_copies)
    replicates = bootstrap_equal_weight(lists, n_boot=n_boot, rng=np.random.default_rng(seed))
    low, high = np.percentile(replicates, [2.5, 97.5])
    row: dict[str, Any] = {
        "mean": float(np.mean(list(means.values()))),
        "ci_low": float(low),
        "ci_high": float(high),
        "half_width": float(high - low) / 2,
    }
    for d in DATASETS:
        row[f"mean_{d}"] = means.get(d, math.nan)
        row[f"n_{d}"] = int((block["dataset"] == d).sum())
    row["ci_mode"] = "paper"
    return row


def _leaderboard(items: pd.DataFrame, *, nyt_copies: int, n_boot: int, seed: int) -> pd.DataFrame:
    ok = items[items["status"] == str(Status.OK)]
    rows = []
    for (model, method), block in ok.groupby(["model", "method"], sort=False):
        name = MODEL_DISPLAY_NAMES.get(str(model), str(model))
        summary = _summary(block, nyt_copies=nyt_copies, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "model_name": name, "method": method, **summary})
    return pd.DataFrame(rows)


def paper_leaderboard(items: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Table 1a (§6.2): persona + few-shot items pooled per dataset, datasets weighted ⅓ each.

    Every row is bootstrapped with a generator seeded by ``seed`` (S7: the paper's was
    unseeded, so its CI bounds differ from these by bootstrap noise).
    """
    steered = items[(items["mode"] == "paper") & items["steering"].isin(STEERED)]
    return _leaderboard(steered, nyt_copies=NYT_COPIES, n_boot=n_boot, seed=seed)


# --- baselines -----------------------------------------------------------------------------


def _baseline_sources(items: pd.DataFrame) -> pd.DataFrame:
    """§6.6: GPT-3.5 Sequence items; unsteered for OpinionQA/NYT, persona for Global values.

    The persona Global-values files keep their stored (R3-shifted) truths.
    """
    gpt35_sequence = (items["model"] == BASELINE_MODEL) & (items["method"] == "sequence")
    unsteered = items["dataset"].isin(("opinionqa", "nytimes")) & (items["steering"] == "none")
    persona = (items["dataset"] == "globalvalues") & (items["steering"] == "persona")
    chosen = gpt35_sequence & (unsteered | persona) & (items["status"] == str(Status.OK))
    return items[chosen & (items["mode"] == "paper")]


def uniform_prediction(pred: Sequence[float]) -> list[float]:
    """S10: 1/k on each of the k letters of GPT-3.5's stored output."""
    return [1.0 / len(pred)] * len(pred)


def majority_prediction(pred: Sequence[float]) -> list[float]:
    """S8 (LB1): one-hot on GPT-3.5's modal letter (first in dict order on ties)."""
    onehot = [0.0] * len(pred)
    onehot[int(np.argmax(pred))] = 1.0
    return onehot


def discretization_tv(truth: Sequence[float], rng: np.random.Generator) -> float:
    """§6.6: mean TV(truth, 30 i.i.d. draws from truth/Σtruth) over 1,000 simulations.

    The draws use the renormalised truth; the TV is against the un-renormalised truth.
    """
    t = np.asarray(truth, dtype=np.float64)
    draws = rng.multinomial(N_DRAWS, t / t.sum(), size=N_SIMULATIONS) / N_DRAWS
    return float(0.5 * np.abs(draws - t).sum(axis=1).mean())


def _until_zero_truth(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S9: per (dataset, group), the paper's loop stops at the first truth summing to exactly 0."""
    stopped: set[tuple[str, str]] = set()
    kept = []
    for source in sources:
        key = (source["dataset"], source["group"])
        if key not in stopped and sum(source["truth"]) == 0:
            stopped.add(key)
        if key not in stopped:
            kept.append(source)
    return kept


def baseline_items(items: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per-item rows of the uniform, majority (LB1) and discretization baselines (§6.6).

    Rows keep the source item's group, question, truth and detail (S4, R3 notes).
    """
    sources = [
        {str(k): v for k, v in row.items()} for row in _baseline_sources(items).to_dict("records")
    ]
    rows = []
    for source in sources:
        for method, predict in (("uniform", uniform_prediction), ("majority", majority_prediction)):
            pred = predict(source["pred"])
            rows.append(_baseline_row(source, method, pred, positional_tv(pred, source["truth"])))
    rng = np.random.default_rng(seed)
    for source in _until_zero_truth(sources):
        tv = discretization_tv(source["truth"], rng)
        rows.append(_baseline_row(source, "discretization", None, tv))
    return items_frame(rows)


def _baseline_row(
    source: dict[str, Any], method: str, pred: list[float] | None, tv: float
) -> dict[str, Any]:
    return {**source, "model": "baseline", "method": method, "pred": pred, "tv": tv, "raw": None}


def paper_baselines(items: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Baseline rows of Table 1a, aggregated like §6.2 but with NYT counted once (§6.6)."""
    return _leaderboard(baseline_items(items, seed=seed), nyt_copies=1, n_boot=n_boot, seed=seed)


# --- Table 1b ------------------------------------------------------------------------------


def paper_gap(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """Table 1b (§6.5): the knowledge-to-simulation gap A(Seq)/A(V) − 1 from the means."""
    means = leaderboard.pivot(index="model", columns="method", values="mean")
    means = means.dropna(subset=["verbalize", "sequence"])
    gap = pd.DataFrame(
        {
            "model": means.index,
            "model_name": [MODEL_DISPLAY_NAMES.get(str(m), str(m)) for m in means.index],
            "verbalize": means["verbalize"].to_numpy(),
            "sequence": means["sequence"].to_numpy(),
        }
    )
    gap["gap"] = gap["sequence"] / gap["verbalize"] - 1
    return gap.reset_index(drop=True)
