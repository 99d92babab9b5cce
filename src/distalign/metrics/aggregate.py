"""From the items table to leaderboards, the knowledge-to-simulation gap and paired tests.

Order of averaging (as the paper): for one (model, method), pool the scored items of a dataset
over its groups and the chosen steerings, take the mean per dataset, then the unweighted mean
over datasets. Items whose status is not ``ok`` never enter a mean; they are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from distalign.metrics.bootstrap import (
    CIMode,
    Interval,
    bootstrap_mean,
    paired_replicates,
    shared_means,
    two_sided_p,
)
from distalign.results import Status

FloatArray = NDArray[np.float64]
MAIN_STEERINGS = ("persona", "fewshot")


@dataclass(frozen=True)
class TableIndex:
    """The fixed (question, group, steering) layout of one dataset's item tables."""

    questions: list[str]
    groups: list[str]
    steerings: list[str]


def table_index(frame: pd.DataFrame) -> TableIndex:
    return TableIndex(
        questions=list(dict.fromkeys(frame["question_id"])),
        groups=sorted(set(frame["group"])),
        steerings=sorted(set(frame["steering"])),
    )


def item_table(frame: pd.DataFrame, index: TableIndex, value: str = "tv") -> FloatArray:
    """Scored values of one dataset laid out as (question, group, steering), NaN elsewhere."""
    table = np.full((len(index.questions), len(index.groups), len(index.steerings)), np.nan)
    ok = frame[frame["status"] == Status.OK]
    if ok.empty:
        return table
    q_pos = {q: i for i, q in enumerate(index.questions)}
    g_pos = {g: i for i, g in enumerate(index.groups)}
    s_pos = {s: i for i, s in enumerate(index.steerings)}
    qi = ok["question_id"].map(q_pos).to_numpy()
    gi = ok["group"].map(g_pos).to_numpy()
    si = ok["steering"].map(s_pos).to_numpy()
    table[qi, gi, si] = ok[value].to_numpy(dtype=np.float64)
    return table


def select(
    frame: pd.DataFrame, steerings: Sequence[str] | None = None, groups: Sequence[str] | None = None
) -> pd.DataFrame:
    keep = pd.Series(True, index=frame.index)
    if steerings is not None:
        keep &= frame["steering"].isin(list(steerings))
    if groups is not None:
        keep &= frame["group"].isin(list(groups))
    return frame[keep]


def leaderboard(
    frame: pd.DataFrame,
    *,
    steerings: Sequence[str] | None = MAIN_STEERINGS,
    ci_mode: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    value: str = "tv",
) -> pd.DataFrame:
    """One row per (mode, model, method): mean over datasets with a bootstrap CI and counts."""
    rows = []
    chosen = select(frame, steerings)
    for (mode, model, method), config in chosen.groupby(["mode", "model", "method"], sort=False):
        rows.append(
            {
                "mode": mode,
                "model": model,
                "method": method,
                **_summary(config, ci_mode=ci_mode, n_boot=n_boot, seed=seed, value=value),
            }
        )
    return pd.DataFrame(rows)


def _summary(
    config: pd.DataFrame, *, ci_mode: CIMode, n_boot: int, seed: int, value: str
) -> dict[str, object]:
    tables, per_dataset, scored_datasets = [], {}, []
    for name, part in config.groupby("dataset", sort=True):
        if not (part["status"] == Status.OK).any():
            continue  # e.g. a noise floor where no respondent counts are known
        scored_datasets.append(str(name))
        table = item_table(part, table_index(part), value)
        tables.append(table)
        per_dataset[f"{value}_{name}"] = (
            float(np.nanmean(table)) if np.isfinite(table).any() else np.nan
        )
    if not tables:
        nan = float("nan")
        interval = Interval(nan, nan, nan, ci_mode, n_boot, seed)
    else:
        interval = bootstrap_mean(tables, n_boot=n_boot, seed=seed, mode=ci_mode)
    # Few groups (3 countries) make the group factor's share of the interval itself
    # uncertain, so the question-only cluster interval is reported beside the two-way one.
    question_only = (
        bootstrap_mean(tables, n_boot=n_boot, seed=seed, mode="question")
        if tables and ci_mode == "cluster"
        else None
    )
    failures = int((config["status"] == Status.PARSE_FAILURE).sum())
    requests = int((config["status"] == Status.REQUEST_FAILURE).sum())
    scored = int((config["status"] == Status.OK).sum())
    attempted = scored + failures + requests
    return {
        "mean": interval.mean,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "half_width": interval.half_width,
        "ci_mode": ci_mode,
        "question_ci_low": question_only.low if question_only else np.nan,
        "question_ci_high": question_only.high if question_only else np.nan,
        "n_boot": n_boot,
        "seed": seed,
        "n_scored": scored,
        "n_parse_failures": failures,
        "n_request_failures": requests,
        "failure_rate": (failures + requests) / attempted if attempted else np.nan,
        "datasets": ",".join(scored_datasets),
        **per_dataset,
    }


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of two configurations on their shared items."""

    mean_a: float
    mean_b: float
    statistic: float  # b - a for "difference", b / a - 1 for "ratio"
    low: float
    high: float
    p_value: float
    n_shared: int
    wins_a: int  # items where a has the lower TV
    wins_b: int
    ties: int
    ci_mode: str
    kind: str


def paired(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    *,
    kind: str = "difference",
    ci_mode: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedResult:
    """Compare configuration b with a on the items both scored, resampling shared clusters.

    ``kind="difference"`` gives mean(b) − mean(a); ``kind="ratio"`` gives mean(b)/mean(a) − 1
    (the knowledge-to-simulation gap when a is Verbalize and b is Sequence). The ratio is
    computed inside each replicate from the two resampled means. The ratio is undefined (NaN,
    with a NaN interval) when mean(a) is 0 or NaN; replicates whose resampled mean(a) is 0 are
    left out of the interval. The p-value is the two-sided bootstrap p-value of the difference
    (share of replicates beyond zero, doubled).
    """
    tables_a, tables_b = _paired_tables(frame_a, frame_b)
    mean_a, mean_b = shared_means(tables_a, tables_b)
    reps_a, reps_b = paired_replicates(tables_a, tables_b, n_boot=n_boot, seed=seed, mode=ci_mode)
    stat, reps = _paired_statistic(kind, mean_a, mean_b, reps_a, reps_b)
    tail = (1 - level) / 2 * 100
    if np.isfinite(stat) and np.isfinite(reps).any():
        low, high = np.nanpercentile(reps[np.isfinite(reps)], [tail, 100 - tail])
    else:
        low = high = np.nan  # an undefined statistic has no interval
    diffs = _shared_differences(tables_a, tables_b)
    return PairedResult(
        mean_a=mean_a,
        mean_b=mean_b,
        statistic=stat,
        low=float(low),
        high=float(high),
        p_value=two_sided_p(reps_b - reps_a),
        n_shared=int(diffs.size),
        wins_a=int((diffs < 0).sum()),
        wins_b=int((diffs > 0).sum()),
        ties=int((diffs == 0).sum()),
        ci_mode=ci_mode,
        kind=kind,
    )


def _paired_statistic(
    kind: str, mean_a: float, mean_b: float, reps_a: FloatArray, reps_b: FloatArray
) -> tuple[float, FloatArray]:
    if kind == "difference":
        return mean_b - mean_a, reps_b - reps_a
    if kind == "ratio":
        return float(ratio_gap(mean_b, mean_a)), np.asarray(ratio_gap(reps_b, reps_a))
    raise ValueError(f"kind must be 'difference' or 'ratio', got {kind!r}")


def ratio_gap(numerator: ArrayLike, denominator: ArrayLike) -> FloatArray | float:
    """numerator / denominator − 1, NaN where the denominator is 0 or either side is not finite.

    The knowledge-to-simulation gap A(Sequence)/A(Verbalize) − 1 has no value when Verbalize's
    mean TV is 0: it is undefined, not infinite, and never a Python ``ZeroDivisionError``.
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    defined = np.isfinite(num) & np.isfinite(den) & (den != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(defined, num / np.where(defined, den, 1.0) - 1, np.nan)
    return float(result) if result.ndim == 0 else result


GAP_UNDEFINED = "undefined: Verbalize's mean TV is 0"
GAP_NO_ITEMS = "undefined: no items scored by both methods"


def mark_undefined_gaps(gaps: pd.DataFrame) -> pd.DataFrame:
    """Recompute ``gap`` from ``sequence`` / ``verbalize`` safely and say where it is undefined.

    Works on any gap table with ``verbalize``, ``sequence`` and ``gap`` columns (this module's
    :func:`gap_table` and the paper's Table 1b). Where the gap is undefined, ``gap`` and its
    interval (``ci_low``, ``ci_high``) are NaN and the ``note`` column says why; elsewhere
    ``note`` is empty.
    """
    out = gaps.copy()
    if out.empty or not {"verbalize", "sequence", "gap"} <= set(out.columns):
        return out
    verbalize = pd.to_numeric(out["verbalize"], errors="coerce").to_numpy(dtype=np.float64)
    sequence = pd.to_numeric(out["sequence"], errors="coerce").to_numpy(dtype=np.float64)
    out["gap"] = ratio_gap(sequence, verbalize)
    undefined = ~np.isfinite(out["gap"].to_numpy(dtype=np.float64))
    for column in ("ci_low", "ci_high"):
        if column in out:
            out.loc[undefined, column] = np.nan
    notes = np.where(verbalize == 0, GAP_UNDEFINED, GAP_NO_ITEMS)
    out["note"] = np.where(undefined, notes, "")
    return out


def _paired_tables(
    frame_a: pd.DataFrame, frame_b: pd.DataFrame
) -> tuple[list[FloatArray], list[FloatArray]]:
    tables_a, tables_b = [], []
    datasets = sorted(set(frame_a["dataset"]) & set(frame_b["dataset"]))
    if not datasets:
        raise ValueError("the two configurations share no dataset")
    for name in datasets:
        part_a = frame_a[frame_a["dataset"] == name]
        part_b = frame_b[frame_b["dataset"] == name]
        index = table_index(pd.concat([part_a, part_b]))
        tables_a.append(item_table(part_a, index))
        tables_b.append(item_table(part_b, index))
    return tables_a, tables_b


def _shared_differences(tables_a: list[FloatArray], tables_b: list[FloatArray]) -> FloatArray:
    diffs = [(a - b)[~np.isnan(a) & ~np.isnan(b)] for a, b in zip(tables_a, tables_b, strict=True)]
    return np.concatenate(diffs) if diffs else np.array([])


def gap_table(
    frame: pd.DataFrame,
    *,
    ci_mode: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Knowledge-to-simulation gap A(Sequence)/A(Verbalize) − 1 per model and steering.

    Rows per (mode, model, steering) for each steering and for persona+fewshot pooled, with a
    paired bootstrap CI over the items both methods scored. Where the gap is undefined
    (Verbalize's mean TV is 0, or no shared items) ``gap`` and its CI are NaN and ``note`` says
    why (see :func:`mark_undefined_gaps`).
    """
    rows = []
    for (mode, model), part in frame.groupby(["mode", "model"], sort=False):
        methods = set(part["method"])
        if not {"sequence", "verbalize"} <= methods:
            continue
        for label, steerings in _steering_sets(part):
            chosen = select(part, steerings)
            verbalize = chosen[chosen["method"] == "verbalize"]
            sequence = chosen[chosen["method"] == "sequence"]
            if verbalize.empty or sequence.empty:
                continue
            res = paired(
                verbalize, sequence, kind="ratio", ci_mode=ci_mode, n_boot=n_boot, seed=seed
            )
            rows.append(
                {
                    "mode": mode,
                    "model": model,
                    "steering": label,
                    "verbalize": res.mean_a,
                    "sequence": res.mean_b,
                    "gap": res.statistic,
                    "ci_low": res.low,
                    "ci_high": res.high,
                    "n_shared": res.n_shared,
                    "ci_mode": ci_mode,
                }
            )
    return mark_undefined_gaps(pd.DataFrame(rows))


def _steering_sets(part: pd.DataFrame) -> list[tuple[str, tuple[str, ...]]]:
    present = [s for s in ("none", "persona", "fewshot") if s in set(part["steering"])]
    sets: list[tuple[str, tuple[str, ...]]] = [(s, (s,)) for s in present]
    if {"persona", "fewshot"} <= set(present):
        sets.append(("persona+fewshot", MAIN_STEERINGS))
    return sets
