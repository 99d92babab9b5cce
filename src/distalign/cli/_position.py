"""The position-bias table that ``run`` and ``leaderboard`` print for runs with option orders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from distalign.cli._render import print_frame, write_frame
from distalign.metrics.bootstrap import CIMode
from distalign.metrics.position import has_orders, load_all_orders, position_table

COLUMNS = [
    "model",
    "method",
    "position_bias",
    "bias_ci_low",
    "bias_ci_high",
    "tv_debiased",
    "tv_survey",
    "n_items",
    "orders",
]
TITLE = (
    "Position bias (mean TV between option orders, 0 = content only; CI: {ci}) "
    "and debiased TV (mean over orders)"
)


def parse_orders(value: str | None) -> int | list[str] | None:
    """``--option-orders``: a count (``3``) or order names (``survey,reversed,shift1``)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    return [part.strip() for part in text.split(",") if part.strip()]


def show_position_bias(
    folders: Sequence[Path],
    target: Path,
    *,
    ci: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Print and write (``position_bias.csv/json``) the table for folders with option orders.

    Prints nothing when no folder asked an item in more than the survey order.
    """
    frames = [f for f in map(load_all_orders, folders) if f is not None]
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    return show_frame(frame, target, ci=ci, n_boot=n_boot, seed=seed)


def show_frame(
    frame: Any, target: Path, *, ci: CIMode = "cluster", n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The same for an items table in memory (all its option orders)."""
    if frame.empty or not has_orders(frame):
        return pd.DataFrame()
    table = position_table(frame, steerings=None, ci_mode=ci, n_boot=n_boot, seed=seed)
    print_frame(table, TITLE.format(ci=ci), COLUMNS)
    write_frame(table, target, "position_bias")
    return table
