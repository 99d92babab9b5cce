"""The report on comparable rows: when its folders cover different items, say so, and (by
default) score every row on the items all folders share (:mod:`distalign.metrics.common`).

Even then one model can cover fewer items than the others beside it (a run cut short, a
dataset left out, one model's missing replies inside a folder): :func:`fewer_items` finds
those, and :func:`flag_table` / :func:`flagged_names` mark them with :data:`MARK` wherever a
table or figure shows them next to the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from distalign.metrics.common import common_items, coverage, n_items
from distalign.report.items import display_name, models_only
from distalign.report.tables import ReportTable

MARK = "†"
Shortfall = dict[tuple[str, str], tuple[int, int]]  # (mode, model) -> (its items, the most)


def comparable_items(
    items: pd.DataFrame, common: bool | None = None
) -> tuple[pd.DataFrame, ReportTable | None]:
    """``items`` restricted to the shared items when asked (``None``: when the sets differ),
    and a table saying how many items each folder covers (None when they cover the same)."""
    shared = coverage(items)
    if not shared.differ:
        return items, None
    restrict = common is not False
    if restrict:
        note = (
            "The results cover different items, so every table and figure of this report "
            "scores each row on the (dataset, group, question, steering) items all folders "
            "share (n_common; --all-items shows each row on all of its own items)."
        )
    else:
        note = (
            "The results cover different items and this report shows each row on all of its "
            "own items (--all-items): rows of different folders are not comparable cell for "
            "cell. --common-items scores them on the n_common shared items."
        )
    table = ReportTable(
        "coverage",
        "Items per results folder",
        shared.table,
        ["mode", "source", "n_items", "n_common"],
        note,
        headline=True,
    )
    return (common_items(items) if restrict else items), table


def fewer_items(items: pd.DataFrame) -> Shortfall:
    """``(mode, model) -> (n, N)`` for each model that attempted fewer (dataset, group,
    question, steering) items (n) than the model with the most of its mode (N)."""
    short: Shortfall = {}
    for mode, part in models_only(items).groupby("mode", sort=True):
        counts = {str(m): n_items(rows) for m, rows in part.groupby("model", sort=True)}
        most = max(counts.values(), default=0)
        short |= {(str(mode), m): (n, most) for m, n in counts.items() if n < most}
    return short


def mark(n: int) -> str:
    """What follows a flagged model's name: `` † (n=40)``."""
    return f" {MARK} (n={n})"


def fewer_note(flagged: Iterable[tuple[str, tuple[int, int]]]) -> str:
    """``† evaluated on fewer items than the others (GPT-4: 40 of 64)`` for (name, (n, N))."""
    counts = "; ".join(f"{name}: {n} of {most}" for name, (n, most) in dict(flagged).items())
    return (
        f"{MARK} evaluated on fewer items than the others ({counts}). An item is a (dataset, "
        "group, question, steering) the model attempted; a flagged model's numbers do not "
        "average over the same items as the others'."
    )


def flag_table(table: ReportTable, short: Shortfall, modes: Sequence[str]) -> ReportTable:
    """``table`` with a ``display`` frame that marks each model of ``short`` (in the model
    name column it shows) and a note that says by how much; unchanged when none is in it.
    ``modes`` are the report's modes, for a table without a ``mode`` column."""
    frame = table.frame
    column = next((c for c in ("model_name", "model") if c in table.shown), None)
    if not short or column is None or "model" not in frame or frame.empty:
        return table
    rows = _row_modes(table, frame, modes)
    found = [
        short.get((mode, str(model))) for mode, model in zip(rows, frame["model"], strict=True)
    ]
    if not any(found):
        return table
    display = frame.copy()
    display[column] = [
        f"{name}{mark(hit[0])}" if hit else name
        for name, hit in zip(frame[column].astype(str), found, strict=True)
    ]
    flagged = [
        (display_name(model), hit) for model, hit in zip(frame["model"], found, strict=True) if hit
    ]
    note = " ".join(p for p in (table.note, fewer_note(flagged)) if p)
    return replace(table, display=display, note=note)


def _row_modes(table: ReportTable, frame: pd.DataFrame, modes: Sequence[str]) -> list[str]:
    """Each row's mode: its ``mode`` cell, else the mode the table's name ends in (tables
    are named ``<what>_<mode>``), else the report's only mode ("" when it has several)."""
    if "mode" in frame:
        return [str(m) for m in frame["mode"]]
    named = [m for m in modes if m in table.name.split("_")]
    mode = named[0] if len(named) == 1 else (modes[0] if len(modes) == 1 else "")
    return [mode] * len(frame)


def flagged_names(short: Shortfall, mode: str, models: Iterable[Any]) -> Mapping[Any, str]:
    """Legend labels for a figure of ``mode``: display names, flagged models marked."""
    names = {}
    for model in models:
        hit = short.get((mode, str(model)))
        names[model] = display_name(model) + (mark(hit[0]) if hit else "")
    return names
