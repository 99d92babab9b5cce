"""The report's figures (matplotlib, Agg, one style, Okabe–Ito colours).

Each ``*_figure`` function takes a table (an items table or one of :mod:`.tables`' frames) and
returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG and SVG and
:func:`png_base64` gives the PNG for embedding. The shared style and colours are in
:mod:`.plotting`, the stereotype diagnostic in :mod:`.stereotype` and the biased-coin figure in
:mod:`.coin`; their names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from distalign.methods import method_label
from distalign.metrics.aggregate import MAIN_STEERINGS, select
from distalign.report.coin import COIN_COLUMNS, coin_columns, coin_figure, read_toy_table
from distalign.report.diagnostics import (
    calibration_points,
    expected_calibration_error,
    reliability_bins,
)
from distalign.report.items import models_only
from distalign.report.plotting import (
    OKABE_ITO,
    PAPER_MODELS,
    STYLE,
    colour,
    empty_figure,
    model_colour,
    model_label,
    ordered_models,
    png_base64,
    save,
    style,
)
from distalign.report.stereotype import Marginals, marginals, stereotype_figure
from distalign.results import METHODS, STEERINGS, Status

__all__ = [
    "COIN_COLUMNS",
    "OKABE_ITO",
    "PAPER_MODELS",
    "STYLE",
    "Marginals",
    "coin_columns",
    "coin_figure",
    "colour",
    "majority_frame",
    "majority_scatter",
    "marginals",
    "method_figure",
    "method_label",
    "model_colour",
    "model_label",
    "ordered_models",
    "png_base64",
    "read_toy_table",
    "reliability_figure",
    "save",
    "steering_figure",
    "stereotype_figure",
    "style",
]


# --- mean TV per steering per dataset ------------------------------------------------------


def steering_figure(summary: pd.DataFrame) -> Figure:
    """Bars of mean TV per steering within each dataset, with 95% CI whiskers.

    ``summary`` is :func:`distalign.report.tables.steering_summary` (dataset, steering, mean,
    ci_low, ci_high).
    """
    with style():
        fig = Figure(figsize=(7, 3.4), layout="constrained")
        if summary.empty:
            return empty_figure(fig, "no steered results")
        ax = fig.add_subplot()
        datasets = sorted(set(summary["dataset"]))
        steerings = [s for s in STEERINGS if s in set(summary["steering"])]
        width = 0.8 / len(steerings)
        for i, steering in enumerate(steerings):
            rows = summary[summary["steering"] == steering].set_index("dataset")
            x = np.array([d for d, name in enumerate(datasets) if name in rows.index])
            part = rows.loc[[n for n in datasets if n in rows.index]]
            _bars(ax, x + (i - (len(steerings) - 1) / 2) * width, part, width, colour(i), steering)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_xlabel("dataset")
        ax.set_ylabel("mean total variation (lower is better)")
        ax.set_title("Mean TV per steering method per dataset (95% CI)")
        # Beside the axes, never over the bars.
        ax.legend(title="steering", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig


def _bars(ax: Axes, x: np.ndarray, part: pd.DataFrame, width: float, fill: str, label: str) -> None:
    mean = part["mean"].to_numpy(dtype=float)
    err = np.vstack(
        [mean - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - mean]
    )
    ax.bar(x, mean, width, color=fill, label=label)
    ax.errorbar(x, mean, yerr=np.clip(err, 0, None), fmt="none", ecolor="#333333", capsize=2)


# --- TV per method per model, baselines as reference lines -----------------------------------


def method_figure(
    board: pd.DataFrame,
    baselines: pd.DataFrame | None = None,
    names: Mapping[Any, str] | None = None,
) -> Figure:
    """Mean TV per method (x) and model (bars) with CIs; baselines drawn as dashed lines.
    ``names`` overrides models' legend labels (:func:`.plotting.model_label`)."""
    with style():
        fig = Figure(figsize=(8, 3.8), layout="constrained")
        if board.empty:
            return empty_figure(fig, "no model results")
        ax = fig.add_subplot()
        methods = [m for m in METHODS if m in set(board["method"])]
        methods += sorted(set(board["method"]) - set(methods))
        models = ordered_models(board["model"])
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            rows = board[board["model"] == model].set_index("method")
            x = np.array([j for j, m in enumerate(methods) if m in rows.index])
            part = rows.loc[[m for m in methods if m in rows.index]]
            offset = (i - (len(models) - 1) / 2) * width
            fill = model_colour(model, models)
            _bars(ax, x + offset, part, width, fill, model_label(model, names))
        _baseline_lines(ax, baselines)
        ax.set_xticks(range(len(methods)), [method_label(m) for m in methods])
        ax.set_xlabel("expression method")
        ax.set_ylabel("mean total variation (lower is better)")
        ax.set_title("Mean TV per method and model, persona + few-shot (95% CI)")
        # Below the axes: the right margin holds the baselines' labels, the bars the inside.
        ax.legend(
            title="model",
            frameon=False,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
            ncols=min(len(models), 4),
        )
        return fig


def _baseline_lines(ax: Axes, baselines: pd.DataFrame | None) -> None:
    if baselines is None or baselines.empty:
        return
    for k, (_, row) in enumerate(baselines.iterrows()):
        if not np.isfinite(row["mean"]):
            continue
        ax.axhline(row["mean"], color="#555555", linestyle=(0, (4, 2 + k)), linewidth=0.9)
        ax.annotate(
            f"{row['method']} {row['mean']:.3f}",
            xy=(1.0, row["mean"]),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),  # in the right margin, clear of the bars
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=7,
            color="#333333",
        )


# --- Log-p reliability ---------------------------------------------------------------------


def reliability_figure(
    items: pd.DataFrame, n_bins: int = 10, names: Mapping[Any, str] | None = None
) -> Figure:
    """Reliability diagrams of Log-p (left) and TS-Log-p (right), one line per model, ECE in
    the legend: does a predicted option probability of 0.3 come true 30% of the time?"""
    with style():
        fig = Figure(figsize=(8, 3.8), layout="constrained")
        panels = [m for m in ("logp", "ts_logp") if (items["method"] == m).any()]
        if not panels:
            return empty_figure(fig, "no Log-p results")
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        models = ordered_models(items.loc[items["method"].isin(panels), "model"])
        for ax, method in zip(axes, panels, strict=True):
            _reliability_panel(ax, items[items["method"] == method], models, n_bins, names)
            ax.set_title(
                f"{method_label(method)}: {'after' if method == 'ts_logp' else 'before'}"
                " temperature scaling"
            )
        axes[0].set_ylabel("mean true probability")
        return fig


def _reliability_panel(
    ax: Axes, part: pd.DataFrame, models: list[Any], n_bins: int, names: Mapping[Any, str] | None
) -> None:
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="perfect")
    for model in models:
        pred, truth = calibration_points(part[part["model"] == model])
        bins = reliability_bins(pred, truth, n_bins)
        if bins.empty:
            continue
        ece = expected_calibration_error(bins)
        ax.plot(
            bins["mean_pred"],
            bins["mean_true"],
            marker="o",
            markersize=3,
            color=model_colour(model, models),
            label=f"{model_label(model, names)} (ECE {ece:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability (binned)")
    ax.grid(True, axis="both", alpha=0.3)
    # Below the panel: inside, it would hide the points of the upper left.
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16))


# --- majority-answer scatter ---------------------------------------------------------------


def majority_frame(items: pd.DataFrame) -> pd.DataFrame:
    """Per question: the true and predicted probability of the majority answer.

    For each scored item the majority answer is the group's top true option; a question's
    point is the mean over its groups (and steerings), so every question counts once per
    (model, method) instead of once per group.
    """
    ok = items[(items["status"].astype(str) == Status.OK) & items["pred"].notna()]
    rows = []
    keys = zip(ok["model"], ok["method"], ok["dataset"], ok["question_id"], strict=True)
    for key, pred, truth in zip(keys, ok["pred"], ok["truth"], strict=True):
        if pred is None or truth is None or len(pred) != len(truth) or not len(truth):
            continue
        top = int(np.argmax(truth))
        rows.append((*key, float(truth[top]), float(pred[top])))
    columns = ["model", "method", "dataset", "question_id", "true_majority", "pred_majority"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.groupby(columns[:4], sort=False, as_index=False)[columns[4:]].mean()


def majority_scatter(
    items: pd.DataFrame, columns: int = 3, names: Mapping[Any, str] | None = None
) -> Figure:
    """One panel per method: predicted vs true probability of the majority answer, one point
    per question, coloured by model (persona + few-shot items)."""
    points = majority_frame(select(models_only(items), MAIN_STEERINGS))
    methods = [m for m in METHODS if m in set(points["method"])]
    methods += sorted(set(points["method"]) - set(methods))
    ncols = max(1, min(columns, len(methods)))
    nrows = max(1, math.ceil(len(methods) / ncols))
    with style():
        fig = Figure(figsize=(2.9 * ncols + 1.6, 2.9 * nrows + 0.3), layout="constrained")
        if points.empty:
            return empty_figure(fig, "no scored model items")
        grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
        models = ordered_models(points["model"])
        for ax, method in zip(grid.flat, methods, strict=False):
            _scatter_panel(ax, points[points["method"] == method], models)
            ax.set_title(method_label(method))
            ax.set_xlabel("true P(majority answer)")
            ax.set_ylabel("predicted P(majority answer)")
            ax.tick_params(labelbottom=True, labelleft=True)
        for ax in list(grid.flat)[len(methods) :]:
            ax.set_visible(False)
        handles = [
            Line2D([], [], marker="o", linestyle="", color=model_colour(m, models)) for m in models
        ]
        labels = [model_label(m, names) for m in models]
        fig.legend(handles, labels, frameon=False, loc="outside right upper", title="model")
        return fig


def _scatter_panel(ax: Axes, part: pd.DataFrame, models: list[Any]) -> None:
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1)
    for model in models:
        mine = part[part["model"] == model]
        ax.scatter(
            mine["true_majority"],
            mine["pred_majority"],
            s=6 if len(mine) > 100 else 16,  # small runs stay visible
            alpha=0.5,
            color=model_colour(model, models),
            rasterized=True,  # thousands of points would bloat the SVG
            linewidths=0,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.grid(True, axis="both", alpha=0.3)
