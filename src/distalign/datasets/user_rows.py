"""One row of a user dataset, field by field: every problem is collected, none is fatal.

The problems are numbered and worded as :mod:`distalign.datasets.user` describes; that module
checks the rows against each other and builds the :class:`~distalign.data.Dataset`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from distalign.data import LETTERS, Group
from distalign.errors import DistalignError

PROB_TOLERANCE = 1e-3
MIN_OPTIONS = 2  # a one-option question has nothing to predict: every method scores TV 0
MAX_ERRORS = 50

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


class DatasetError(DistalignError):
    """A user dataset file is invalid. The message lists every problem found."""

    def __init__(self, path: Path, problems: Sequence[str], total: int | None = None) -> None:
        self.path = path
        self.problems = list(problems)
        count = total if total is not None else len(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        more = count - len(self.problems)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{path}: {count} problem(s) found, nothing was loaded:\n{lines}{tail}")


class QuestionRow(Protocol):
    """What the question checks need of a row (a long-format or a microdata row)."""

    @property
    def number(self) -> int: ...
    @property
    def question_id(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def options(self) -> tuple[str, ...]: ...
    @property
    def ordinal(self) -> bool: ...


@dataclass(frozen=True)
class Row:
    number: int
    question_id: str
    question: str
    options: tuple[str, ...]
    group: Group
    option: str
    value: float
    ordinal: bool
    n: float | None


class Problems:
    """Collects ``file, row N, field 'x': message`` lines, keeping the first MAX_ERRORS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown: list[str] = []
        self.total = 0

    def add(self, row: int | str, field: str, message: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_ERRORS:
            where = f"row {row}" if isinstance(row, int) else row
            self.shown.append(f"{self.path.name}, {where}, field '{field}': {message}")

    def raise_if_any(self) -> None:
        if self.total:
            raise DatasetError(self.path, self.shown, self.total)


def parse_rows(
    records: Iterable[tuple[int, dict[str, Any]]], value_column: str, problems: Problems
) -> tuple[list[Row], set[tuple[str, str, str]]]:
    """The valid rows, and the (question, attribute, value) cells that lost a bad row."""
    rows = []
    tainted = set()
    for number, record in records:
        before = problems.total
        row = _parse_row(number, record, value_column, problems)
        if row is not None and problems.total == before:
            rows.append(row)
        else:
            tainted.add(_raw_cell(record))
    return rows, tainted


def _raw_cell(record: dict[str, Any]) -> tuple[str, str, str]:
    def raw(field: str) -> str:
        return str(record.get(field, "")).strip()

    return raw("question_id"), raw("group_attribute"), raw("group_value")


def _parse_row(
    number: int, record: dict[str, Any], value_column: str, problems: Problems
) -> Row | None:
    def text(field: str) -> str:
        return _text(record.get(field), number, field, problems)

    question_id, question = text("question_id"), text("question")
    attribute, group_value, option = text("group_attribute"), text("group_value"), text("option")
    if "=" in attribute:
        problems.add(number, "group_attribute", f"must not contain '=': {attribute!r}")
    if "&" in attribute:  # '&' joins the parts of a conjunction (POLPARTY=Democrat&SEX=Female)
        problems.add(number, "group_attribute", f"must not contain '&': {attribute!r}")
    options = _options(record.get("options"), number, problems)
    value = _number(record.get(value_column), number, value_column, problems)
    if value is not None and value < 0:
        problems.add(number, value_column, f"must not be negative, got {value:g}")
    if value is not None and value_column == "probability" and value > 1 + PROB_TOLERANCE:
        problems.add(number, value_column, f"must be at most 1, got {value:g}")
    n = _optional_n(record.get("n"), number, problems)
    ordinal = _flag(record.get("ordinal"), number, problems)
    if value is None or options is None or ordinal is None:
        return None
    if options and option and option not in options:
        problems.add(number, "option", f"{option!r} is not in this row's options {list(options)}")
    group = Group(attribute, group_value)
    return Row(number, question_id, question, options, group, option, value, ordinal, n)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any, number: int, field: str, problems: Problems) -> str:
    if _is_missing(value) or not str(value).strip():
        problems.add(number, field, "empty value")
        return ""
    if isinstance(value, (list, dict, np.ndarray)):
        problems.add(number, field, f"expected text, got {type(value).__name__}")
        return ""
    return str(value).strip()


def _options(value: Any, number: int, problems: Problems) -> tuple[str, ...] | None:
    items = _option_items(value, number, problems)
    if items is None:
        return None
    options = tuple(str(item).strip() for item in items)
    if not options or any(not o for o in options):
        problems.add(number, "options", "empty option list or empty option text")
        return None
    duplicated = sorted({o for o in options if options.count(o) > 1})
    if duplicated:
        problems.add(number, "options", f"duplicate options {duplicated}")
        return None
    if len(options) > len(LETTERS):
        problems.add(number, "options", f"at most {len(LETTERS)} options, got {len(options)}")
        return None
    if len(options) < MIN_OPTIONS:
        # Every prediction over one option is that option: each method would score TV 0.
        problems.add(
            number,
            "options",
            f"a question needs at least {MIN_OPTIONS} options, got only {options[0]!r}",
        )
        return None
    return options


def _option_items(value: Any, number: int, problems: Problems) -> list[Any] | None:
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if _is_missing(value) or not str(value).strip():
        problems.add(number, "options", "empty value")
        return None
    raw = str(value).strip()
    if not raw.startswith("["):
        return raw.split("|")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        problems.add(number, "options", f"starts with '[' but is not a JSON list: {err.msg}")
        return None
    if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
        problems.add(number, "options", "JSON value must be a list of strings")
        return None
    return parsed


def _number(value: Any, number: int, field: str, problems: Problems) -> float | None:
    if isinstance(value, bool) or _is_missing(value) or isinstance(value, (list, np.ndarray)):
        problems.add(number, field, f"not a number: {value!r}")
        return None
    try:
        parsed = float(str(value).strip())
    except ValueError:
        problems.add(number, field, f"not a number: {value!r}")
        return None
    if not math.isfinite(parsed):
        problems.add(number, field, f"not a finite number: {value!r}")
        return None
    return parsed


def _optional_n(value: Any, number: int, problems: Problems) -> float | None:
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    n = _number(value, number, "n", problems)
    if n is not None and n < 0:
        problems.add(number, "n", f"must not be negative, got {n:g}")
    return n


def _flag(value: Any, number: int, problems: Problems) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_missing(value):
        return False
    word = str(value).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    problems.add(number, "ordinal", f"expected true or false, got {value!r}")
    return None
