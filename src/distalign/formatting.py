"""Plain formatting shared by the terminal (``cli``) and the reports (``report``).

It lives below both, so that ``report`` needs nothing from ``cli``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_frame(frame: pd.DataFrame, out_dir: Path, name: str) -> list[Path]:
    """Write a table as ``name.csv`` and ``name.json`` (records) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{name}.csv", out_dir / f"{name}.json"
    frame.to_csv(csv_path, index=False)
    records = json.loads(frame.to_json(orient="records"))
    json_path.write_text(json.dumps(records, indent=2) + "\n")
    return [csv_path, json_path]
