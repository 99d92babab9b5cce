"""The per-item results table shared by every stage after the backend.

One row per (model, dataset, steering, method, group, question). Predicted and true
distributions are stored as lists aligned to ``letters``; ``status`` says whether the item is
scored (``ok``) or why not. Metrics only ever average rows whose status is ``ok``, but every
row stays in the table so failures are counted, never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
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
