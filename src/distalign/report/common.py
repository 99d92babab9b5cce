"""The report on comparable rows: when its folders cover different items, say so, and (by
default) score every row on the items all folders share (:mod:`distalign.metrics.common`)."""

from __future__ import annotations

import pandas as pd

from distalign.metrics.common import common_items, coverage
from distalign.report.tables import ReportTable


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
