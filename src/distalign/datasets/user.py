"""User datasets in the long format (CSV, JSONL or Parquet).

One row per (question, group, option). Required columns:

``question_id, question, options, group_attribute, group_value, option``, plus exactly one of
``probability`` or ``count``. Optional: ``ordinal`` (true/false, per question) and ``n``
(respondents of the group for the question; only with ``probability``).

``options`` is the question's full option list (at least 2 options), in the order prompts
should show it, either as a JSON list (``["Yes", "No"]``) or ``|``-separated (``Yes|No``). A
value starting with ``[`` is read as JSON. In JSONL and Parquet it may also be a real list.
Counts and probabilities must be finite and non-negative, and a group's counts for a question
must add up to a finite, non-zero total.

Rows are numbered from 1 at the first data row: in a CSV the header is not counted (row N is
line N+1 when no quoted field spans lines); in JSONL row N is line N (blank lines are
skipped but counted); in Parquet row N is the N-th record.

Everything is validated before a :class:`Dataset` is built; all problems (up to
:data:`MAX_ERRORS`) are reported together in one :class:`DatasetError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.data import LETTERS, Dataset, Group, Question, Target
from distalign.errors import DistalignError

REQUIRED_COLUMNS = (
    "question_id",
    "question",
    "options",
    "group_attribute",
    "group_value",
    "option",
)
VALUE_COLUMNS = ("probability", "count")
OPTIONAL_COLUMNS = ("ordinal", "n")
USER_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet")
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


@dataclass(frozen=True)
class _Row:
    number: int
    question_id: str
    question: str
    options: tuple[str, ...]
    group: Group
    option: str
    value: float
    ordinal: bool
    n: float | None


class _Problems:
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


def load_user_dataset(path: str | Path) -> Dataset:
    """Read, validate and convert a long-format file; raises :class:`DatasetError`."""
    file = Path(path)
    problems = _Problems(file)
    columns, records = _read_records(file)
    value_column = _check_columns(columns, problems)
    if not records:
        problems.add("row 1", "(all)", "the file has no data rows")
    problems.raise_if_any()
    rows, tainted = _parse_rows(records, value_column, problems)
    _check_consistency(rows, tainted, value_column, problems)
    problems.raise_if_any()
    return _build(file, rows, value_column)


def _read_records(file: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Column names and ``(row number, record)`` pairs."""
    if not file.is_file():
        raise DatasetError(file, [f"{file.name}: no such file"])
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(file, dtype=str, keep_default_na=False)
            return _frame_records(frame)
        if suffix == ".parquet":
            return _frame_records(pd.read_parquet(file))
        if suffix in (".jsonl", ".ndjson"):
            return _jsonl_records(file)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise DatasetError(file, [f"{file.name}: cannot be read: {err}"]) from err
    raise DatasetError(
        file, [f"{file.name}: unsupported file type {suffix!r}; use {', '.join(USER_SUFFIXES)}"]
    )


def _frame_records(frame: pd.DataFrame) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    columns = [str(c) for c in frame.columns]
    records = frame.to_dict(orient="records")
    return columns, [(i + 1, {str(k): v for k, v in r.items()}) for i, r in enumerate(records)]


def _jsonl_records(file: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    columns: dict[str, None] = {}
    records: list[tuple[int, dict[str, Any]]] = []
    bad: list[str] = []
    for number, line in enumerate(file.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            bad.append(f"{file.name}, row {number}, field '(line)': invalid JSON: {err.msg}")
            continue
        if not isinstance(record, dict):
            bad.append(f"{file.name}, row {number}, field '(line)': not a JSON object")
            continue
        columns.update(dict.fromkeys(record))
        records.append((number, record))
    if bad:
        raise DatasetError(file, bad[:MAX_ERRORS], len(bad))
    return list(columns), records


def _check_columns(columns: Sequence[str], problems: _Problems) -> str:
    """Report missing or conflicting columns; return the value column's name."""
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            problems.add("header", name, "missing column")
    present = [c for c in VALUE_COLUMNS if c in columns]
    if len(present) != 1:
        what = "both columns given" if present else "missing column"
        problems.add("header", "probability/count", f"need exactly one of them; {what}")
    if "n" in columns and present == ["count"]:
        problems.add("header", "n", "'n' is only allowed with 'probability' (counts give n)")
    return present[0] if present else "probability"


def _parse_rows(
    records: Iterable[tuple[int, dict[str, Any]]], value_column: str, problems: _Problems
) -> tuple[list[_Row], set[tuple[str, str, str]]]:
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
    number: int, record: dict[str, Any], value_column: str, problems: _Problems
) -> _Row | None:
    def text(field: str) -> str:
        return _text(record.get(field), number, field, problems)

    question_id, question = text("question_id"), text("question")
    attribute, group_value, option = text("group_attribute"), text("group_value"), text("option")
    if "=" in attribute:
        problems.add(number, "group_attribute", f"must not contain '=': {attribute!r}")
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
    return _Row(number, question_id, question, options, group, option, value, ordinal, n)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any, number: int, field: str, problems: _Problems) -> str:
    if _is_missing(value) or not str(value).strip():
        problems.add(number, field, "empty value")
        return ""
    if isinstance(value, (list, dict, np.ndarray)):
        problems.add(number, field, f"expected text, got {type(value).__name__}")
        return ""
    return str(value).strip()


def _options(value: Any, number: int, problems: _Problems) -> tuple[str, ...] | None:
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


def _option_items(value: Any, number: int, problems: _Problems) -> list[Any] | None:
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


def _number(value: Any, number: int, field: str, problems: _Problems) -> float | None:
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


def _optional_n(value: Any, number: int, problems: _Problems) -> float | None:
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    n = _number(value, number, "n", problems)
    if n is not None and n < 0:
        problems.add(number, "n", f"must not be negative, got {n:g}")
    return n


def _flag(value: Any, number: int, problems: _Problems) -> bool | None:
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


def _check_consistency(
    rows: list[_Row], tainted: set[tuple[str, str, str]], value_column: str, problems: _Problems
) -> None:
    _check_questions(rows, problems)
    _check_duplicates(rows, problems)
    # A cell that lost a bad row would also fail its sum check: report only the bad row.
    clean = [r for r in rows if (r.question_id, r.group.attribute, r.group.value) not in tainted]
    _check_cells(clean, value_column, problems)


def _check_questions(rows: list[_Row], problems: _Problems) -> None:
    """The text, options and ordinal flag of a question must agree on every row."""
    first: dict[str, _Row] = {}
    for row in rows:
        seen = first.setdefault(row.question_id, row)
        where = f"differs from row {seen.number} of question {row.question_id!r}"
        if row.question != seen.question:
            problems.add(row.number, "question", where)
        if row.options != seen.options:
            problems.add(row.number, "options", where)
        if row.ordinal != seen.ordinal:
            problems.add(row.number, "ordinal", where)


def _check_duplicates(rows: list[_Row], problems: _Problems) -> None:
    first: dict[tuple[str, Group, str], int] = {}
    for row in rows:
        key = (row.question_id, row.group, row.option)
        if key in first:
            problems.add(
                row.number,
                "option",
                f"duplicate of row {first[key]} (same question, group and option)",
            )
        else:
            first[key] = row.number


def _cells(rows: list[_Row]) -> dict[tuple[Group, str], list[_Row]]:
    cells: dict[tuple[Group, str], list[_Row]] = {}
    for row in rows:
        cells.setdefault((row.group, row.question_id), []).append(row)
    return cells


def _check_cells(rows: list[_Row], value_column: str, problems: _Problems) -> None:
    """Per (group, question): probabilities sum to 1, counts are not all 0 and their total is a
    finite number (each count is finite, but two counts of 1e308 add up to infinity), n agrees."""
    for (group, question_id), cell in _cells(rows).items():
        total = sum(r.value for r in cell)
        where = f"for group {group.key}, question {question_id!r} (rows {_row_list(cell)})"
        if value_column == "probability" and abs(total - 1) > PROB_TOLERANCE:
            problems.add(cell[0].number, value_column, f"sums to {total:.6g}, not 1, {where}")
        if value_column == "count" and total == 0:
            problems.add(cell[0].number, value_column, f"all counts are 0 (empty group) {where}")
        if value_column == "count" and not math.isfinite(total):
            problems.add(
                cell[0].number,
                value_column,
                f"counts add up to more than the largest number ({total:g}); "
                f"scale them down, {where}",
            )
        given = {r.n for r in cell}
        if len(given) > 1:
            problems.add(cell[0].number, "n", f"differs between rows {where}")


def _row_list(cell: list[_Row]) -> str:
    numbers = [str(r.number) for r in cell]
    return ", ".join(numbers) if len(numbers) <= 6 else f"{', '.join(numbers[:6])}, ..."


def _build(file: Path, rows: list[_Row], value_column: str) -> Dataset:
    questions: dict[str, Question] = {}
    groups: dict[Group, None] = {}
    for row in rows:
        groups.setdefault(row.group)
        if row.question_id not in questions:
            questions[row.question_id] = _question(row)
    targets = {
        (group.key, qid): _target(questions[qid], cell, value_column)
        for (group, qid), cell in _cells(rows).items()
    }
    return Dataset(
        name=file.stem,
        questions=questions,
        groups=list(groups),
        targets=targets,
        source=str(file),
        notes=[f"user dataset read from {file} ({len(rows)} rows)"],
    )


def _question(row: _Row) -> Question:
    ordinal = tuple(float(i + 1) for i in range(len(row.options))) if row.ordinal else None
    return Question(id=row.question_id, text=row.question, options=row.options, ordinal=ordinal)


def _target(question: Question, cell: list[_Row], value_column: str) -> Target:
    amounts = dict.fromkeys(question.options, 0.0)  # options absent for the group get 0
    for row in cell:
        amounts[row.option] = row.value
    values = np.array(list(amounts.values()), dtype=np.float64)
    total = float(values.sum())
    # Probabilities within tolerance of 1 are renormalised so every target sums to 1 exactly.
    n = total if value_column == "count" else cell[0].n
    return Target(probs=values / total, n=n)
