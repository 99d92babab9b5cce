"""The NYT stereotype diagnostic: the answers each persona produces against the true ones."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from distalign.methods import method_label
from distalign.report.items import display_name, models_only
from distalign.report.plotting import colour, empty_figure, style
from distalign.results import Status


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
            return empty_figure(
                fig, f"no {dataset} {steering} {method} items for {', '.join(groups)}"
            )
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
