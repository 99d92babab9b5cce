"""The report's figures (matplotlib, Agg, one style, Okabe–Ito colours).

Each ``*_figure`` function takes a table (an items table or one of :mod:`.tables`' frames) and
returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG and SVG and
:func:`png_base64` gives the PNG for embedding. Figures are built with the object-oriented API
(``Figure()``, never ``pyplot``), so no global backend or open-figure state is touched and the
Agg renderer is used whatever backend the caller configured.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from distalign.metrics.aggregate import MAIN_STEERINGS, select
from distalign.reference.files import MODEL_DISPLAY_NAMES
from distalign.report.tables import (
    calibration_points,
    display_name,
    expected_calibration_error,
    models_only,
    reliability_bins,
)
from distalign.results import METHODS, STEERINGS, Status

PAPER_MODELS = list(MODEL_DISPLAY_NAMES)

# Okabe & Ito (2008), ordered so the first colours differ most for every colour-vision type;
# yellow is last because it is faint on white.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
STYLE: dict[Any, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.alpha": 0.3,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",  # text stays text in the SVG (searchable, no embedded glyphs)
}
METHOD_LABELS = {
    "verbalize": "Verbalize",
    "sequence": "Sequence",
    "logp": "Log-p",
    "ts_logp": "TS-Log-p",
    "samples": "Samples",
}


@contextmanager
def style() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def ordered_models(models: Iterable[Any]) -> list[Any]:
    """The paper's models in the paper's order, then any other model alphabetically."""
    present = list(dict.fromkeys(models))
    paper = [m for m in PAPER_MODELS if m in present]
    return paper + sorted((m for m in present if m not in PAPER_MODELS), key=str)


def model_colour(model: Any, models: Sequence[Any]) -> str:
    """A model keeps its colour in every figure: paper models by their fixed position, others
    after them in alphabetical order."""
    if model in PAPER_MODELS:
        return colour(PAPER_MODELS.index(model))
    others = [m for m in ordered_models(models) if m not in PAPER_MODELS]
    return colour(len(PAPER_MODELS) + others.index(model))


def method_label(method: Any) -> str:
    return METHOD_LABELS.get(str(method), str(method))


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    with style():
        for path in paths:
            fig.savefig(path, metadata=_metadata(path.suffix))
    return paths


def _metadata(suffix: str) -> dict[str, Any]:
    # No creation date, so the same results give byte-identical files.
    return {"Date": None} if suffix == ".svg" else {"Software": "distalign"}


def png_base64(fig: Figure) -> str:
    buffer = io.BytesIO()
    with style():
        fig.savefig(buffer, format="png", metadata=_metadata(".png"))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _empty(fig: Figure, message: str) -> Figure:
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


# --- mean TV per steering per dataset ------------------------------------------------------


def steering_figure(summary: pd.DataFrame) -> Figure:
    """Bars of mean TV per steering within each dataset, with 95% CI whiskers.

    ``summary`` is :func:`distalign.report.tables.steering_summary` (dataset, steering, mean,
    ci_low, ci_high).
    """
    with style():
        fig = Figure(figsize=(7, 3.4), layout="constrained")
        if summary.empty:
            return _empty(fig, "no steered results")
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
        ax.legend(title="steering", frameon=False)
        return fig


def _bars(ax: Axes, x: np.ndarray, part: pd.DataFrame, width: float, fill: str, label: str) -> None:
    mean = part["mean"].to_numpy(dtype=float)
    err = np.vstack(
        [mean - part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float) - mean]
    )
    ax.bar(x, mean, width, color=fill, label=label)
    ax.errorbar(x, mean, yerr=np.clip(err, 0, None), fmt="none", ecolor="#333333", capsize=2)


# --- TV per method per model, baselines as reference lines -----------------------------------


def method_figure(board: pd.DataFrame, baselines: pd.DataFrame | None = None) -> Figure:
    """Mean TV per method (x) and model (bars) with CIs; baselines drawn as dashed lines."""
    with style():
        fig = Figure(figsize=(8, 3.8), layout="constrained")
        if board.empty:
            return _empty(fig, "no model results")
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
            _bars(ax, x + offset, part, width, model_colour(model, models), display_name(model))
        _baseline_lines(ax, baselines)
        ax.set_xticks(range(len(methods)), [method_label(m) for m in methods])
        ax.set_xlabel("expression method")
        ax.set_ylabel("mean total variation (lower is better)")
        ax.set_title("Mean TV per method and model, persona + few-shot (95% CI)")
        ax.legend(title="model", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
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
            xytext=(-2, 2),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color="#333333",
        )


# --- Log-p reliability ---------------------------------------------------------------------


def reliability_figure(items: pd.DataFrame, n_bins: int = 10) -> Figure:
    """Reliability diagrams of Log-p (left) and TS-Log-p (right), one line per model, ECE in
    the legend: does a predicted option probability of 0.3 come true 30% of the time?"""
    with style():
        fig = Figure(figsize=(8, 3.8), layout="constrained")
        panels = [m for m in ("logp", "ts_logp") if (items["method"] == m).any()]
        if not panels:
            return _empty(fig, "no Log-p results")
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        models = ordered_models(items.loc[items["method"].isin(panels), "model"])
        for ax, method in zip(axes, panels, strict=True):
            _reliability_panel(ax, items[items["method"] == method], models, n_bins)
            ax.set_title(
                f"{method_label(method)}: {'after' if method == 'ts_logp' else 'before'}"
                " temperature scaling"
            )
        axes[0].set_ylabel("mean true probability")
        return fig


def _reliability_panel(ax: Axes, part: pd.DataFrame, models: list[Any], n_bins: int) -> None:
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
            label=f"{display_name(model)} (ECE {ece:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("mean predicted probability (binned)")
    ax.grid(True, axis="both", alpha=0.3)
    ax.legend(frameon=False, loc="upper left")


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


def majority_scatter(items: pd.DataFrame, columns: int = 3) -> Figure:
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
            return _empty(fig, "no scored model items")
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
        labels = [display_name(m) for m in models]
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


# --- NYT stereotype diagnostic -------------------------------------------------------------


@dataclass(frozen=True)
class Marginals:
    letters: list[str]
    produced: dict[str, np.ndarray]  # group -> mean predicted distribution over its questions
    true: dict[str, np.ndarray]


def marginals(items: pd.DataFrame, groups: Sequence[str]) -> Marginals:
    """Mean predicted and mean true distribution over questions, per group.

    Only items whose option letters are the dataset's most common letter set are averaged
    (NYT books all use the same 4-point Likert scale).
    """
    ok = items[(items["status"].astype(str) == Status.OK) & items["group"].isin(list(groups))]
    ok = ok[ok["pred"].notna()]
    if ok.empty:
        return Marginals([], {}, {})
    common = ok["letters"].map(tuple).mode().iloc[0]
    ok = ok[ok["letters"].map(tuple) == common]
    produced, true = {}, {}
    for group in groups:
        mine = ok[ok["group"] == group]
        if not mine.empty:
            produced[group] = np.mean(np.stack(mine["pred"].map(np.asarray).tolist()), axis=0)
            true[group] = np.mean(np.stack(mine["truth"].map(np.asarray).tolist()), axis=0)
    return Marginals(list(common), produced, true)


def stereotype_figure(
    items: pd.DataFrame,
    groups: tuple[str, str] = ("POLPARTY=Democrat", "POLPARTY=Republican"),
    *,
    model: str | None = None,
    method: str = "verbalize",
    dataset: str = "nytimes",
    steering: str = "persona",
    labels: Sequence[str] | None = None,
) -> Figure:
    """The marginal Likert distribution each group's persona produces against the true one.

    A model that stereotypes pushes the two groups' produced marginals apart (or together)
    while their true marginals barely differ. ``model`` defaults to the first model with
    ``method`` rows for ``dataset``.
    """
    part = items[
        (items["dataset"] == dataset)
        & (items["method"] == method)
        & (items["steering"] == steering)
    ]
    part = models_only(part)
    chosen = model if model is not None else (str(part["model"].iloc[0]) if len(part) else "")
    found = marginals(part[part["model"] == chosen], groups)
    with style():
        fig = Figure(figsize=(6.5, 3.4), layout="constrained")
        if not found.produced:
            return _empty(fig, f"no {dataset} {steering} {method} items for {', '.join(groups)}")
        ax = fig.add_subplot()
        _marginal_bars(ax, found, groups)
        ticks = (
            labels if labels is not None and len(labels) == len(found.letters) else found.letters
        )
        # Likert labels ("2: Somewhat unlikely") are long: wrap them instead of overlapping.
        ax.set_xticks(range(len(found.letters)), [textwrap.fill(str(t), 14) for t in ticks])
        ax.set_xlabel("answer option")
        ax.set_ylabel("mean probability over questions")
        ax.set_title(
            f"Stereotype check: {display_name(chosen)} · {method_label(method)} · "
            f"{steering} · {dataset}"
        )
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return fig


def _marginal_bars(ax: Axes, found: Marginals, groups: Sequence[str]) -> None:
    x = np.arange(len(found.letters))
    width = 0.8 / (2 * len(groups))
    slot = 0
    for i, group in enumerate(groups):
        if group not in found.produced:
            continue
        for kind, values, hatch in (
            ("true", found.true[group], None),
            ("persona", found.produced[group], "///"),
        ):
            offset = (slot - (2 * len(groups) - 1) / 2) * width
            ax.bar(
                x + offset,
                values,
                width,
                label=f"{group} ({kind})",
                color=colour(i) if hatch is None else "white",
                edgecolor=colour(i),
                hatch=hatch,
            )
            slot += 1


# --- biased-coin calibration (``distalign toy``) -------------------------------------------

COIN_COLUMNS = {
    "stated_p": ("stated_p", "stated", "p", "stated_probability"),
    "produced_mean": ("produced_mean", "mean", "produced"),
    "produced_std": ("produced_std", "std", "sd"),
}


def coin_columns(table: pd.DataFrame) -> dict[str, str]:
    """Map the coin table's own column names onto stated_p / produced_mean / produced_std."""
    found = {}
    for wanted, aliases in COIN_COLUMNS.items():
        match = next((c for c in aliases if c in table.columns), None)
        if match is None and wanted != "produced_std":
            raise ValueError(f"the toy table has no {wanted} column (looked for {aliases})")
        if match is not None:
            found[wanted] = match
    return found


def coin_figure(table: pd.DataFrame) -> Figure:
    """Stated vs produced probability per method (± one std), one panel per experiment.

    ``table`` has columns experiment, method, stated (or stated_p), produced_mean and
    optionally produced_std and outcome, as ``distalign toy`` writes them (one row per target
    and outcome). A two-outcome experiment (the coin) is plotted as P(first outcome), e.g.
    P(heads), joined by lines; with more outcomes (the die) every outcome is a point. A
    calibrated method lies on y = x.
    """
    cols = coin_columns(table)
    experiments = list(dict.fromkeys(table["experiment"])) if "experiment" in table else ["toy"]
    with style():
        fig = Figure(figsize=(3.4 * len(experiments) + 1.5, 3.4), layout="constrained")
        axes = fig.subplots(1, len(experiments), sharey=True, squeeze=False)[0]
        methods = list(dict.fromkeys(table["method"]))
        for ax, experiment in zip(axes, experiments, strict=True):
            mine = table[table["experiment"] == experiment] if "experiment" in table else table
            mine, title = _first_of_two_outcomes(mine, str(experiment))
            _coin_panel(ax, mine, methods, cols)
            ax.set_title(title)
            ax.set_xlabel("stated probability")
        axes[0].set_ylabel("produced probability (mean ± sd)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, loc="outside right upper")
        return fig


def _first_of_two_outcomes(part: pd.DataFrame, title: str) -> tuple[pd.DataFrame, str]:
    # P(tails) = 1 - P(heads) adds nothing but a mirrored copy of every point.
    if "outcome" not in part or part["outcome"].nunique() != 2:
        return part, title
    first = part["outcome"].iloc[0]
    return part[part["outcome"] == first], f"{title}: P({first})"


def _coin_panel(ax: Axes, part: pd.DataFrame, methods: list[Any], cols: dict[str, str]) -> None:
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1, label="calibrated")
    several = "outcome" in part and part["outcome"].nunique() > 2
    for i, method in enumerate(methods):
        mine = part[part["method"] == method].sort_values(cols["stated_p"])
        std = mine[cols["produced_std"]] if "produced_std" in cols else None
        ax.errorbar(
            mine[cols["stated_p"]],
            mine[cols["produced_mean"]],
            yerr=std,
            marker="o",
            markersize=3,
            capsize=2,
            linestyle="none" if several else "-",  # die points share stated values: no line
            color=colour(i),
            label=method_label(method),
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.grid(True, axis="both", alpha=0.3)


def read_toy_table(path: Path) -> pd.DataFrame:
    """A toy results file (CSV, or JSON records) as a DataFrame."""
    if path.suffix.lower() == ".json":
        return pd.read_json(path)
    return pd.read_csv(path)
