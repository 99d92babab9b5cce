"""The per-item results table shared by every stage after the backend.

One row per (model, dataset, steering, method, group, question). Predicted and true
distributions are stored as lists aligned to ``letters``; ``status`` says whether the item is
scored (``ok``) or why not. Metrics only ever average rows whose status is ``ok``, but every
row stays in the table so failures are counted, never hidden.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd


class Status(StrEnum):
    OK = "ok"
    PARSE_FAILURE = "parse_failure"  # the model's reply could not be read as a distribution
    REQUEST_FAILURE = "request_failure"  # the backend never returned a reply
    EMPTY_TRUTH = "empty_truth"  # the group has no respondents for this question
    NOT_SCORED = "not_scored"  # e.g. the paper's NaN items (length mismatch, NaN after scaling)


ITEM_COLUMNS: list[str] = [
    "mode",  # "paper" or "standard": which rules produced the row
    "model",
    "dataset",
    "steering",  # none | persona | fewshot
    "method",  # verbalize | sequence | logp | ts_logp | samples | <baseline name>
    "group",  # group key, e.g. POLPARTY=Democrat
    "question_id",
    "letters",  # list[str], the option letters pred/truth are aligned to
    "pred",  # list[float] or None
    "truth",  # list[float]
    "status",
    "detail",  # why a row is not ok, or parser notes (renormalized, over-length, ...)
    "tv",
    "js",
    "w1",
    "n",  # respondents behind the truth, when known
    "covered_mass",  # Log-p: probability mass that fell on the option letters
    "raw",  # the raw model reply, when there is one
    "prompt",  # the chat messages sent (JSON), when distalign built the prompt
    "n_valid",  # Sequence / Samples: valid answers counted
    "n_invalid",  # Sequence / Samples: answers that were not an option (lost samples count)
]

STEERINGS = ("none", "persona", "fewshot")
METHODS = ("verbalize", "sequence", "logp", "ts_logp", "samples")


def items_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build an items table with exactly :data:`ITEM_COLUMNS` (missing fields become NA)."""
    frame = pd.DataFrame.from_records(list(rows))
    for column in ITEM_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    extra = [c for c in frame.columns if c not in ITEM_COLUMNS]
    return frame[ITEM_COLUMNS + extra]


ITEMS_FILE = "items.parquet"
MANIFEST_FILE = "manifest.json"


def save_items(frame: pd.DataFrame, out_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """Write an items table (Parquet) and its manifest (JSON) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (ITEMS_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(out_dir / ITEMS_FILE)  # atomic: a crash never leaves half a table
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return out_dir


SURVEY_ORDER = "survey"  # the ``order`` of rows asked in the survey's option order


def survey_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows every table scores: those in the survey's option order.

    A run with ``option_orders`` > 1 also keeps each item's rows in permuted option orders
    (the ``order`` column), for ``distalign.metrics.position`` only; a table without the
    column holds survey-order rows only.
    """
    if "order" not in frame.columns:
        return frame
    keep = frame["order"].isna() | (frame["order"] == SURVEY_ORDER)
    return frame if bool(keep.all()) else frame[keep].reset_index(drop=True)


def failure_pattern(detail: str) -> str:
    """A parse failure's detail without its numbers, so alike failures count together.

    The first note of ``detail`` (notes are ``; ``-separated, ``attempts=`` dropped), with
    every number replaced by ``#``, at most 80 characters: ``"2% of the stated total on
    letters that are not options (D)"`` gives ``"#% of the stated total on letters ..."``.
    """
    first = detail.split("; attempts=")[0].split("; ")[0]
    return re.sub(r"\d+(\.\d+)?", "#", first)[:80]


def load_results(path: str | Path, *, all_orders: bool = False) -> pd.DataFrame:
    """Load an items table from a results folder (or an ``items.parquet`` file) as a DataFrame.

    Only the survey-order rows unless ``all_orders`` (see :func:`survey_rows`).
    """
    target = Path(path)
    file = target / ITEMS_FILE if target.is_dir() else target
    if not file.exists():
        raise FileNotFoundError(f"no results table at {file}")
    frame = pd.read_parquet(file)
    for column in ("letters", "pred", "truth"):
        frame[column] = frame[column].map(_as_list)
    return frame if all_orders else survey_rows(frame)


def load_manifest(path: str | Path) -> dict[str, Any]:
    target = Path(path)
    file = target / MANIFEST_FILE if target.is_dir() else target.with_name(MANIFEST_FILE)
    return dict(json.loads(file.read_text())) if file.exists() else {}


def _as_list(value: Any) -> Any:
    return None if value is None else list(value)
