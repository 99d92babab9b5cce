"""The biased-coin calibration figure of ``distalign toy``: stated against produced probability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from distalign.methods import method_label
from distalign.report.plotting import colour, style

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
