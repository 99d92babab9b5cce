"""The viewer's data: every item loaded once, filtered and paged with pandas masks.

:class:`ViewData` loads the results folders once (:func:`distalign.report.items.load_items`,
so TS-Log-p and baselines are there as in the report), computes the leaderboards once, and
answers each request from that frame: a page of a filtered, sorted table
(:meth:`ViewData.page`) or one item (:meth:`ViewData.item`). Nothing here writes a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.report.items import display_name, load_items, modes_of
from distalign.report.leaderboards import baseline_board, main_leaderboard, wide_leaderboard
from distalign.report.lookup import DatasetLookup, messages_text
from distalign.results import Status, failure_pattern

# query parameter -> items column; each is an exact-match filter with an "all" choice
FILTERS: dict[str, str] = {
    "mode": "mode",
    "model": "model",
    "method": "method",
    "dataset": "dataset",
    "steering": "steering",
    "group": "group",
    "status": "status",
    "reason": "reason",
}
SORTS = {"": "as loaded", "tv": "TV, lowest first", "-tv": "TV, highest first"}
PAGE_SIZES = (10, 25, 50, 100, 200)
MAX_CHOICES = 300  # at most this many values in a filter's list (the most frequent ones)
USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")


@dataclass(frozen=True)
class Query:
    """One request's filters, sort and page, read from the URL's query parameters."""

    filters: dict[str, str] = field(default_factory=dict)
    sort: str = ""
    page: int = 1
    size: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        filters = {k: str(params[k]) for k in FILTERS if params.get(k)}
        sort = str(params.get("sort", ""))
        return cls(
            filters=filters,
            sort=sort if sort in SORTS else "",
            page=max(1, _int(params.get("page"), 1)),
            size=min(PAGE_SIZES, key=lambda s: abs(s - _int(params.get("size"), 50))),
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters of this query with ``changes`` (e.g. ``page=3``) applied."""
        out: dict[str, Any] = {**self.filters, "sort": self.sort, "size": self.size}
        out["page"] = self.page
        out.update(changes)
        return {k: str(v) for k, v in out.items() if v not in ("", None)}


@dataclass(frozen=True)
class Page:
    """One page of the filtered item table."""

    rows: list[dict[str, Any]]
    total: int  # rows matching the filters
    page: int  # 1-based, clamped to the last page
    pages: int


@dataclass(frozen=True)
class Board:
    """A mode's leaderboard and baselines, as display rows."""

    mode: str
    models: list[dict[str, Any]]  # one row per (model, method), with counts
    baselines: list[dict[str, Any]]
    wide_columns: list[str]  # the paper's Table 1 layout: a row per model, a cell per method
    wide: list[dict[str, Any]]


class ViewData:
    """The items of some results folders, loaded once, and the queries the viewer asks."""

    def __init__(self, folders: Sequence[Path], *, n_boot: int = 1000, seed: int = 0) -> None:
        items, self.sources = load_items(folders)
        items = items.reset_index(drop=True)
        reason = pd.Series("", index=items.index, dtype=object)
        failed = items["status"] == Status.PARSE_FAILURE
        reason[failed] = items.loc[failed, "detail"].fillna("").astype(str).map(failure_pattern)
        items["reason"] = reason
        # Categories make each filter a fast integer comparison on 180,000 rows.
        for column in FILTERS.values():
            items[column] = items[column].fillna("").astype(str).astype("category")
        self.items = items
        self.lookup = DatasetLookup(self.sources)
        self.boards = [self._board(mode, n_boot, seed) for mode in modes_of(items)]
        self.choices = {name: _choices(items[column]) for name, column in FILTERS.items()}

    def _board(self, mode: str, n_boot: int, seed: int) -> Board:
        rows = self.items[self.items["mode"] == mode]
        rows = rows.assign(**{c: rows[c].astype(str) for c in FILTERS.values()})
        models = main_leaderboard(rows, mode, n_boot=n_boot, seed=seed)
        baselines = baseline_board(rows, mode, n_boot=n_boot, seed=seed)
        wide = wide_leaderboard(models.drop(columns=["model_name"], errors="ignore"))
        columns = [c for c in wide.columns if c != "model"]
        return Board(mode, _records(models), _records(baselines), columns, _records(wide))

    def page(self, query: Query) -> Page:
        """The rows of ``query``'s page: filtered by masks, sorted, then sliced."""
        mask = np.ones(len(self.items), dtype=bool)
        for name, value in query.filters.items():
            mask &= (self.items[FILTERS[name]] == value).to_numpy()
        index = np.flatnonzero(mask)
        if query.sort:
            tv = self.items["tv"].to_numpy(dtype=float)[index]
            order = np.argsort(-tv if query.sort == "-tv" else tv, kind="stable")
            index = index[order]  # NaN (unscored) rows sort last either way
        total = len(index)
        pages = max(1, math.ceil(total / query.size))
        page = min(query.page, pages)
        chosen = index[(page - 1) * query.size : page * query.size]
        rows = self.items.iloc[chosen]
        return Page([_summary(i, r) for i, r in zip(chosen, _records(rows), strict=True)],
                    total, page, pages)  # fmt: skip

    def item(self, row: int) -> dict[str, Any] | None:
        """Everything the item page shows about row ``row``, or None when there is none."""
        if not 0 <= row < len(self.items):
            return None
        item = {str(k): v for k, v in self.items.iloc[row].items()}
        source = str(item.get("source", ""))
        dataset, question_id = str(item["dataset"]), str(item["question_id"])
        question = self.lookup.question(source, dataset, question_id)
        options = self.lookup.options(dataset, question_id)
        messages, prompt_note = self._prompt(source, item)
        return {
            **{k: _plain(v) for k, v in item.items() if k not in ("pred", "truth", "letters")},
            "row": row,
            "scored": item.get("pred") is not None,
            "model_name": display_name(item["model"]),
            "question_text": getattr(question, "text", None),
            "messages": messages,
            "prompt_note": prompt_note,
            "bars": bars(item.get("letters"), item.get("pred"), item.get("truth"), options),
            "usage": {c: _plain(item.get(c)) for c in USAGE_COLUMNS if _plain(item.get(c))},
        }

    def _prompt(self, source: str, item: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
        stored = _plain(item.get("prompt"))
        if stored is not None:
            return _messages(stored), "the exact messages sent, as stored in the results"
        rebuilt = self.lookup.prompt(source, pd.Series(item))
        if rebuilt:
            note = (
                "not stored in the results: rebuilt from the run's manifest with "
                "distalign.steering.build_prompt (the same settings, not necessarily the "
                "bytes sent)"
            )
            return [{"role": "rebuilt", "content": rebuilt}], note
        if item.get("model") == "baseline":
            return [], "a baseline: no model was prompted"
        return [], "not stored in the results (e.g. the paper's imported replies)"


def bars(
    letters: Any, pred: Any, truth: Any, options: Sequence[str] | None
) -> list[dict[str, Any]]:
    """One entry per option: its letter, text and predicted / true probabilities."""
    letters = [] if letters is None else [str(x) for x in letters]
    pred_list = [None] * len(letters) if pred is None else [float(x) for x in pred]
    truth_list = [None] * len(letters) if truth is None else [float(x) for x in truth]
    texts = list(options or [])
    return [
        {
            "letter": letter,
            "text": texts[i] if i < len(texts) else "",
            "pred": pred_list[i] if i < len(pred_list) else None,
            "truth": truth_list[i] if i < len(truth_list) else None,
        }
        for i, letter in enumerate(letters)
    ]


def _messages(stored: Any) -> list[dict[str, str]]:
    value = stored
    if isinstance(stored, str):
        try:
            value = json.loads(stored)
        except json.JSONDecodeError:
            return [{"role": "prompt", "content": stored}]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return [
            {"role": str(m.get("role", "?")), "content": str(m.get("content", ""))} for m in value
        ]
    return [{"role": "prompt", "content": messages_text(value)}]


def _summary(row: int, record: dict[str, Any]) -> dict[str, Any]:
    keys = ("mode", "model", "method", "dataset", "steering", "group", "question_id", "status")
    return {
        "row": int(row),
        **{k: record.get(k) for k in keys},
        "model_name": display_name(record.get("model")),
        "reason": record.get("reason") or "",
        "tv": record.get("tv"),
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _choices(column: pd.Series) -> list[str]:
    counts = column.astype(str).value_counts()
    values = [str(v) for v in counts.index[:MAX_CHOICES] if str(v)]
    return sorted(values)


def _plain(value: Any) -> Any:
    """A cell as a plain Python value; NaN and NA become None."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default
