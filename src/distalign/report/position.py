"""The report's position-bias table and figure, for results asked in several option orders.

Reads each results folder with all its option orders (the report's other tables see the
survey order only) and shows :func:`distalign.metrics.position.position_table`: per model ×
method the position-bias index (mean TV between the orders' predictions of an item; 0 =
answers follow content only) and the TV of the debiased prediction (the mean over orders).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from distalign.methods import method_label
from distalign.metrics.position import load_all_orders, position_table
from distalign.report.items import Source, ci_mode_for
from distalign.report.plotting import (
    empty_figure,
    model_colour,
    model_label,
    ordered_models,
    style,
)
from distalign.report.tables import ReportTable

NAME = "position_bias"
COLUMNS = [
    "model",
    "method",
    "position_bias",
    "bias_ci_low",
    "bias_ci_high",
    "tv_debiased",
    "debiased_ci_low",
    "debiased_ci_high",
    "tv_survey",
    "n_items",
    "orders",
]


def position_tables(sources: Sequence[Source], *, n_boot: int, seed: int) -> list[ReportTable]:
    """The position-bias table of the sources that asked items in several orders (else none)."""
    frames = [f for f in (load_all_orders(s.path) for s in sources) if f is not None]
    if not frames:
        return []
    items = pd.concat(frames, ignore_index=True)
    ci = ci_mode_for("standard")
    table = position_table(items, steerings=None, ci_mode=ci, n_boot=n_boot, seed=seed)
    return [
        ReportTable(
            NAME,
            "Position bias and debiased TV (items asked in several option orders)",
            table,
            COLUMNS,
            note="position_bias: mean TV between the predictions of one item in different "
            "option orders (survey, reversed, cyclic shifts), mapped back to the options; 0 = "
            f"answers follow content only. tv_debiased: TV of the mean over orders; tv_survey: "
            f"the survey order's TV on the same items. CIs: {ci} bootstrap, all steerings.",
        )
    ]


def position_figures(
    tables: Mapping[str, pd.DataFrame], names: Mapping[Any, str] | None = None
) -> list[tuple[str, str, str, Figure]]:
    """(name, title, caption, figure) for the report, when it has a position-bias table."""
    table = tables.get(NAME)
    if table is None:
        return []
    caption = (
        "Left: position-bias index per method and model (mean pairwise TV between option "
        "orders, 95% CI; 0 = content only). Right: TV to the truth in the survey order "
        "(hatched) and of the prediction averaged over orders (solid)."
    )
    return [(NAME, "Position bias and debiased TV", caption, position_figure(table, names))]


def position_figure(table: pd.DataFrame, names: Mapping[Any, str] | None = None) -> Figure:
    """Bars per method (x) and model: bias index with CIs, and survey vs debiased TV."""
    with style():
        fig = Figure(figsize=(9, 3.6), layout="constrained")
        if table.empty:
            return empty_figure(fig, "no item was asked in more than one option order")
        bias_ax, tv_ax = fig.subplots(1, 2)
        methods = list(dict.fromkeys(table["method"]))
        models = ordered_models(table["model"])
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            rows = table[table["model"] == model].set_index("method")
            present = [m for m in methods if m in rows.index]
            x = np.array([methods.index(m) for m in present]) + (i - (len(models) - 1) / 2) * width
            part = rows.loc[present]
            fill = model_colour(model, models)
            mean = part["position_bias"].to_numpy(dtype=float)
            err = np.vstack(
                [
                    mean - part["bias_ci_low"].to_numpy(dtype=float),
                    part["bias_ci_high"].to_numpy(dtype=float) - mean,
                ]
            )
            bias_ax.bar(x, mean, width, color=fill, label=model_label(model, names))
            bias_ax.errorbar(x, mean, np.clip(err, 0, None), fmt="none", ecolor="#333", capsize=2)
            half = width / 2
            survey = part["tv_survey"].to_numpy(dtype=float)
            tv_ax.bar(x - half / 2, survey, half, color="white", edgecolor=fill, hatch="//")
            tv_ax.bar(x + half / 2, part["tv_debiased"].to_numpy(dtype=float), half, color=fill)
        labels = [method_label(m) for m in methods]
        for ax in (bias_ax, tv_ax):
            ax.set_xticks(range(len(methods)), labels)
            ax.set_xlabel("expression method")
        bias_ax.set_ylabel("position-bias index (0 = content only)")
        tv_ax.set_ylabel("mean TV: survey order vs debiased")
        tv_ax.legend(
            *bias_ax.get_legend_handles_labels(),
            title="model",
            frameon=False,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
        return fig
