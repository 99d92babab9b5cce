"""Leaderboards, baselines, the knowledge-to-simulation gap, and their breakdowns.

Confidence intervals follow the mode of the rows: paper-mode rows use the paper's i.i.d. item
bootstrap (its main leaderboard goes through ``paper_leaderboard`` to keep its quirks),
standard-mode rows the two-way cluster bootstrap of :mod:`distalign.metrics.bootstrap`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from distalign.formatting import fmt
from distalign.metrics.aggregate import (
    MAIN_STEERINGS,
    gap_table,
    item_table,
    leaderboard,
    mark_undefined_gaps,
    select,
    table_index,
)
from distalign.metrics.bootstrap import bootstrap_mean
from distalign.metrics.common import with_item_counts
from distalign.report.items import baselines_only, ci_mode_for, models_only, with_names
from distalign.results import METHODS, STEERINGS

CI_COLUMNS = ["mean", "ci_low", "ci_high"]
COUNT_COLUMNS = ["n_scored", "n_parse_failures", "n_request_failures", "failure_rate"]


# --- leaderboards --------------------------------------------------------------------------


def main_leaderboard(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Model × method, persona + few-shot pooled, mean over datasets with a 95% CI."""
    models = models_only(items)
    if models.empty:
        return pd.DataFrame()
    if mode == "paper":
        from distalign.reference import paper_leaderboard

        return with_names(paper_leaderboard(models, n_boot=n_boot, seed=seed))
    board = leaderboard(models, ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed)
    return with_names(with_item_counts(_method_order(board)))


def baseline_board(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """The baselines aggregated like a model (paper mode: the paper's own baselines)."""
    if mode == "paper":
        from distalign.reference import paper_baselines

        if models_only(items).empty:
            return pd.DataFrame()
        return paper_baselines(items, n_boot=n_boot, seed=seed)
    rows = baselines_only(items)
    if rows.empty:
        return pd.DataFrame()
    # Baselines are unsteered rows, so every steering is kept.
    return leaderboard(rows, steerings=None, ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed)


def gap(
    items: pd.DataFrame, board: pd.DataFrame, mode: str, *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Knowledge-to-simulation gap A(Sequence)/A(Verbalize) − 1 per model (and steering)."""
    if mode == "paper":
        from distalign.reference import paper_gap

        has_both = not board.empty and {"verbalize", "sequence"} <= set(board["method"])
        # Verbalize's mean TV of 0 leaves the ratio undefined: NaN with a note, not inf.
        return mark_undefined_gaps(paper_gap(board)) if has_both else pd.DataFrame()
    gaps = gap_table(models_only(items), ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed)
    return with_names(gaps)


def wide_leaderboard(board: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 layout: one row per model, one ``mean [low, high]`` cell per method."""
    if board.empty:
        return pd.DataFrame()
    cells = board.assign(cell=[_ci_cell(row) for _, row in board.iterrows()])
    wide = cells.pivot_table(index="model", columns="method", values="cell", aggfunc="first")
    order = [m for m in METHODS if m in wide.columns] + [
        m for m in wide.columns if m not in METHODS
    ]
    wide = wide[order].reset_index()
    wide.columns.name = None
    if "datasets" in board:
        # A model scored on fewer datasets is not comparable cell for cell: say which it had.
        covered = board.groupby("model")["datasets"].agg(_union)
        wide["datasets"] = wide["model"].map(covered)
    return with_names(wide).fillna("–")


def _union(values: pd.Series) -> str:
    names = {n for v in values.dropna() for n in str(v).split(",") if n}
    return ",".join(sorted(names))


def _ci_cell(row: pd.Series) -> str:
    return f"{fmt(row['mean'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


def _method_order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(METHODS)}
    key = frame["method"].map(lambda m: rank.get(str(m), len(rank)))
    return frame.assign(_order=key).sort_values(["_order", "mean"]).drop(columns="_order")


# --- breakdowns ----------------------------------------------------------------------------


def breakdown(
    items: pd.DataFrame, mode: str, by: Sequence[str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Mean TV with a CI for every (model, method) within each cell of ``by``.

    ``by=("dataset", "steering")`` is the paper's appendix table; ``("dataset", "group")``
    pools persona + few-shot per group (baselines keep their unsteered rows).
    """
    chosen = items if "steering" in by else _steered(items)
    rows = []
    for key, part in chosen.groupby(list(by), sort=True):
        board = leaderboard(
            part, steerings=None, ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed
        )
        cell = {name: str(value) for name, value in zip(by, key, strict=True)}
        rows.append(board.assign(**cell))
    if not rows:
        return pd.DataFrame()
    keep = ["mode", "model", "method", *by, *CI_COLUMNS, *COUNT_COLUMNS]
    frame = pd.concat(rows, ignore_index=True)
    return with_names(frame[[c for c in keep if c in frame]])


def _steered(items: pd.DataFrame) -> pd.DataFrame:
    """Model rows under persona + few-shot, and every baseline row."""
    models = select(models_only(items), MAIN_STEERINGS)
    return pd.concat([models, baselines_only(items)], ignore_index=True)


def steering_summary(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean TV per (dataset, steering), pooled over every model × method that ran them all.

    Only configurations that ran every steering of a dataset enter it, so the steerings are
    compared on the same configurations. The configurations become the third axis of the item
    table, so the cluster bootstrap still resamples questions and groups, not configurations.
    """
    rows = []
    for dataset, part in models_only(items).groupby("dataset", sort=True):
        for steering, chosen in _complete_configs(part).groupby("steering", sort=False):
            as_axis = chosen.assign(steering=chosen["model"] + "/" + chosen["method"])
            table = item_table(as_axis, table_index(as_axis))
            if not np.isfinite(table).any():
                continue
            interval = bootstrap_mean([table], n_boot=n_boot, seed=seed, mode=ci_mode_for(mode))
            rows.append(
                {
                    "mode": mode,
                    "dataset": dataset,
                    "steering": steering,
                    "mean": interval.mean,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "n_configurations": int(as_axis["steering"].nunique()),
                }
            )
    return _steering_order(pd.DataFrame(rows))


def _complete_configs(part: pd.DataFrame) -> pd.DataFrame:
    steerings = set(part["steering"])
    config = part["model"] + "/" + part["method"]
    covered = part.groupby(config)["steering"].nunique()
    complete = set(covered[covered == len(steerings)].index)
    return part[config.isin(complete)]


def _steering_order(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = {s: i for i, s in enumerate(STEERINGS)}
    key = frame["steering"].map(lambda s: rank.get(str(s), len(rank)))
    return frame.assign(_o=key).sort_values(["dataset", "_o"]).drop(columns="_o")
