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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets.user_rows import (
    MAX_ERRORS,
    MIN_OPTIONS,
    PROB_TOLERANCE,
    DatasetError,
    Problems,
    QuestionRow,
    Row,
    parse_rows,
)

__all__ = [
    "MAX_ERRORS",
    "MICRODATA_COLUMN",
    "MIN_OPTIONS",
    "OPTIONAL_COLUMNS",
    "PROB_TOLERANCE",
    "REQUIRED_COLUMNS",
    "USER_SUFFIXES",
    "VALUE_COLUMNS",
    "DatasetError",
    "load_user_dataset",
]

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
MICRODATA_COLUMN = "respondent_id"  # a file with this column is microdata


def load_user_dataset(path: str | Path) -> Dataset:
    """Read, validate and convert a long-format or microdata file (a file with a
    ``respondent_id`` column, see :mod:`distalign.datasets.microdata`); raises
    :class:`DatasetError`."""
    file = Path(path)
    problems = Problems(file)
    columns, records = _read_records(file)
    if MICRODATA_COLUMN in columns:
        # Imported here: the microdata module reuses this module's readers and checks.
        from distalign.datasets.microdata import microdata_from_records

        return microdata_from_records(file, columns, records)
    value_column = _check_columns(columns, problems)
    if not records:
        problems.add("row 1", "(all)", "the file has no data rows")
    problems.raise_if_any()
    rows, tainted = parse_rows(records, value_column, problems)
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


def _check_columns(columns: Sequence[str], problems: Problems) -> str:
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


def _check_consistency(
    rows: list[Row], tainted: set[tuple[str, str, str]], value_column: str, problems: Problems
) -> None:
    _check_questions(rows, problems)
    _check_duplicates(rows, problems)
    # A cell that lost a bad row would also fail its sum check: report only the bad row.
    clean = [r for r in rows if (r.question_id, r.group.attribute, r.group.value) not in tainted]
    _check_cells(clean, value_column, problems)


def _check_questions(rows: Sequence[QuestionRow], problems: Problems) -> None:
    """The text, options and ordinal flag of a question must agree on every row."""
    first: dict[str, QuestionRow] = {}
    for row in rows:
        seen = first.setdefault(row.question_id, row)
        where = f"differs from row {seen.number} of question {row.question_id!r}"
        if row.question != seen.question:
            problems.add(row.number, "question", where)
        if row.options != seen.options:
            problems.add(row.number, "options", where)
        if row.ordinal != seen.ordinal:
            problems.add(row.number, "ordinal", where)


def _check_duplicates(rows: list[Row], problems: Problems) -> None:
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


def _cells(rows: list[Row]) -> dict[tuple[Group, str], list[Row]]:
    cells: dict[tuple[Group, str], list[Row]] = {}
    for row in rows:
        cells.setdefault((row.group, row.question_id), []).append(row)
    return cells


def _check_cells(rows: list[Row], value_column: str, problems: Problems) -> None:
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


def _row_list(cell: list[Row]) -> str:
    numbers = [str(r.number) for r in cell]
    return ", ".join(numbers) if len(numbers) <= 6 else f"{', '.join(numbers[:6])}, ..."


def _build(file: Path, rows: list[Row], value_column: str) -> Dataset:
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


def _question(row: QuestionRow) -> Question:
    ordinal = tuple(float(i + 1) for i in range(len(row.options))) if row.ordinal else None
    return Question(id=row.question_id, text=row.question, options=row.options, ordinal=ordinal)


def _target(question: Question, cell: list[Row], value_column: str) -> Target:
    amounts = dict.fromkeys(question.options, 0.0)  # options absent for the group get 0
    for row in cell:
        amounts[row.option] = row.value
    values = np.array(list(amounts.values()), dtype=np.float64)
    total = float(values.sum())
    # Probabilities within tolerance of 1 are renormalised so every target sums to 1 exactly.
    n = total if value_column == "count" else cell[0].n
    return Target(probs=values / total, n=n)
