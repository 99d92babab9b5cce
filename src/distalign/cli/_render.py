"""Rich tables for the terminal, and the CSV/JSON files written beside them."""

from __future__ import annotations

import sys

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Shared with the reports, so kept below both cli and report; re-exported for the commands.
from distalign.formatting import fmt, write_frame

__all__ = ["console", "fmt", "print_frame", "write_frame"]

# Pipes and CI logs get a fixed, wide layout instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)


def print_frame(frame: pd.DataFrame, title: str, columns: list[str] | None = None) -> None:
    """Print selected columns of a DataFrame as a rich table."""
    shown = columns or list(frame.columns)
    table = Table(title=escape(title), title_justify="left")  # titles hold "[...]" literally
    for column in shown:
        numeric = pd.api.types.is_numeric_dtype(frame[column]) if column in frame else False
        table.add_column(column, justify="right" if numeric else "left")
    for _, row in frame.iterrows():
        table.add_row(*(escape(fmt(row.get(c))) for c in shown))
    console.print(table)
