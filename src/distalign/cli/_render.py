"""Rich tables for the terminal, and the CSV/JSON files written beside them."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Pipes and CI logs get a fixed, wide layout instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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


def write_frame(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Write a table as ``name.csv`` and ``name.json`` (records) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    frame.to_csv(csv_path, index=False)
    records = json.loads(frame.to_json(orient="records"))
    json_path.write_text(json.dumps(records, indent=2) + "\n")
    return [csv_path, json_path]
