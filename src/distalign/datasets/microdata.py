"""User datasets as microdata: one row per respondent × question (CSV, JSONL or Parquet).

Required columns: ``respondent_id, question_id, question, options, answer``. Optional:
``ordinal`` (true/false, per question, as in the long format) and ``weight`` (the
respondent's survey weight, > 0, the same on all of a respondent's rows). Every other column
is an **attribute** (``POLPARTY``, ``SEX``, ``AGE``, ...): its value on a row is the
respondent's value (the same on all of the respondent's rows; empty = unknown, so the
respondent is in no group of that attribute).

Groups are every attribute value (``SEX=Female``) and any conjunction of them
(``POLPARTY=Democrat&SEX=Female``, built when first asked for). Numeric attributes can be cut
into bands by bin edges, given as ``bins={"AGE": [18, 30, 45, 65]}`` or, for a file loaded by
path, in a JSON file beside it with the same stem (``survey.bins.json`` for ``survey.csv``):
the groups are then ``AGE=18-29``, ``AGE=30-44``, ``AGE=45-64`` and ``AGE=65+``.

Shares are weighted, and ``Target.n`` is Kish's effective n (see
:mod:`distalign.datasets.microdata_targets`). Rows are numbered and problems reported exactly
as for the long format (:mod:`distalign.datasets.user`), whose readers and checks this module
reuses.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distalign.data import Dataset
from distalign.datasets.microdata_targets import (
    Bins,
    Responses,
    bin_label,
    bin_labels,
    microdata_dataset,
)
from distalign.datasets.user import (
    MICRODATA_COLUMN,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    VALUE_COLUMNS,
    _check_questions,
    _question,
    _read_records,
)
from distalign.datasets.user_rows import (
    DatasetError,
    Problems,
    _flag,
    _is_missing,
    _number,
    _options,
    _text,
)

__all__ = [
    "BINS_SUFFIX",
    "MICRODATA_OPTIONAL",
    "MICRODATA_REQUIRED",
    "load_microdata",
    "microdata_from_records",
]

MICRODATA_REQUIRED = (MICRODATA_COLUMN, "question_id", "question", "options", "answer")
MICRODATA_OPTIONAL = ("ordinal", "weight")
BINS_SUFFIX = ".bins.json"
# Long-format columns: in a microdata file they are a mix-up, not attributes.
_LONG_ONLY = tuple(
    c
    for c in (*REQUIRED_COLUMNS, *VALUE_COLUMNS, *OPTIONAL_COLUMNS)
    if c not in MICRODATA_REQUIRED + MICRODATA_OPTIONAL
)


@dataclass(frozen=True)
class MicroRow:
    number: int
    respondent: str
    question_id: str
    question: str
    options: tuple[str, ...]
    answer: int  # index into options
    ordinal: bool
    weight: float
    attributes: tuple[str | None, ...]  # raw values, in attribute-column order


def load_microdata(path: str | Path, bins: Bins | None = None) -> Dataset:
    """Read, validate and convert a microdata file; raises :class:`DatasetError`.

    ``bins`` maps numeric attributes to increasing bin edges; without it, a
    ``<stem>.bins.json`` file beside ``path`` is read when there is one.
    """
    file = Path(path)
    columns, records = _read_records(file)
    if MICRODATA_COLUMN not in columns:
        problems = Problems(file)
        problems.add("header", MICRODATA_COLUMN, "missing column")
        problems.raise_if_any()
    return microdata_from_records(file, columns, records, bins)


def microdata_from_records(
    file: Path,
    columns: Sequence[str],
    records: list[tuple[int, dict[str, Any]]],
    bins: Bins | None = None,
) -> Dataset:
    """The dataset of already-read ``(row number, record)`` pairs of a microdata file."""
    if bins is None:
        bins = _read_bins(file.with_suffix(BINS_SUFFIX))
    problems = Problems(file)
    attributes = _check_header(columns, bins, problems)
    if not records:
        problems.add("row 1", "(all)", "the file has no data rows")
    problems.raise_if_any()
    weighted = "weight" in columns
    rows = [
        row
        for number, record in records
        if (row := _parse(number, record, attributes, bins, weighted, problems)) is not None
    ]
    _check_questions(rows, problems)
    _check_duplicates(rows, problems)
    _check_respondents(rows, attributes, problems)
    problems.raise_if_any()
    return microdata_dataset(
        file.stem,
        _responses(rows, attributes, bins),
        source=str(file),
        notes=[
            f"microdata read from {file} ({len(rows)} rows, "
            f"{len({r.respondent for r in rows})} respondents)",
            "Target.n is Kish's effective n, (sum of weights)^2 / sum of squared weights.",
            *(
                f"{a} binned at edges {list(e)}: {', '.join(bin_labels(e))}"
                for a, e in bins.items()
            ),
        ],
    )


def _read_bins(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (ValueError, OSError) as err:
        raise DatasetError(path, [f"{path.name}: cannot be read as JSON: {err}"]) from err
    if not isinstance(raw, dict):
        raise DatasetError(path, [f"{path.name}: expected a JSON object ATTRIBUTE -> edges"])
    return raw


def _check_header(columns: Sequence[str], bins: Bins, problems: Problems) -> list[str]:
    """Report missing or misplaced columns and bad bins; return the attribute columns."""
    for name in MICRODATA_REQUIRED:
        if name not in columns:
            problems.add("header", name, "missing column")
    for name in _LONG_ONLY:
        if name in columns:
            problems.add("header", name, "a long-format column; not allowed in microdata")
    known = {*MICRODATA_REQUIRED, *MICRODATA_OPTIONAL, *_LONG_ONLY}
    attributes = [c for c in columns if c not in known]
    for name in attributes:
        if "=" in name or "&" in name or not name.strip():
            problems.add("header", name, "an attribute name must be non-empty, without '=' or '&'")
    if not attributes:
        problems.add("header", "(attributes)", "no attribute columns: nothing to group by")
    for name, edges in bins.items():
        if name not in attributes:
            problems.add("header", name, "bins given for a column that is not an attribute")
        elif not _good_edges(edges):
            problems.add("header", name, f"bin edges must be increasing finite numbers: {edges!r}")
    return attributes


def _good_edges(edges: Any) -> bool:
    if not isinstance(edges, (list, tuple)) or not edges:
        return False
    if not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in edges):
        return False
    return all(math.isfinite(e) for e in edges) and all(a < b for a, b in itertools.pairwise(edges))


def _parse(
    number: int,
    record: dict[str, Any],
    attributes: list[str],
    bins: Bins,
    weighted: bool,
    problems: Problems,
) -> MicroRow | None:
    before = problems.total

    def text(field: str) -> str:
        return _text(record.get(field), number, field, problems)

    respondent, question_id, question = (
        text(MICRODATA_COLUMN),
        text("question_id"),
        text("question"),
    )
    answer = text("answer")
    options = _options(record.get("options"), number, problems)
    ordinal = _flag(record.get("ordinal"), number, problems)
    weight = 1.0
    if weighted:
        parsed = _number(record.get("weight"), number, "weight", problems)
        if parsed is not None and parsed <= 0:
            problems.add(number, "weight", f"must be positive, got {parsed:g}")
        weight = parsed if parsed is not None else 1.0
    values = tuple(_attribute(record.get(a), number, a, a in bins, problems) for a in attributes)
    if options is not None and answer and answer not in options:
        problems.add(number, "answer", f"{answer!r} is not in this row's options {list(options)}")
    if problems.total > before or options is None or ordinal is None:
        return None
    return MicroRow(
        number,
        respondent,
        question_id,
        question,
        options,
        options.index(answer),
        ordinal,
        weight,
        values,
    )


def _attribute(value: Any, number: int, field: str, binned: bool, problems: Problems) -> str | None:
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (list, dict)) or hasattr(value, "shape"):
        problems.add(number, field, f"expected a single value, got {type(value).__name__}")
        return None
    text = str(value).strip()
    if binned:
        _number(text, number, field, problems)  # reports a non-number
    return text


def _check_duplicates(rows: Iterable[MicroRow], problems: Problems) -> None:
    first: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row.respondent, row.question_id)
        if key in first:
            problems.add(
                row.number,
                "answer",
                f"duplicate of row {first[key]} (same respondent and question)",
            )
        else:
            first[key] = row.number


def _check_respondents(rows: Iterable[MicroRow], attributes: list[str], problems: Problems) -> None:
    """A respondent's attributes and weight must agree on every row."""
    first: dict[str, MicroRow] = {}
    for row in rows:
        seen = first.setdefault(row.respondent, row)
        where = f"differs from row {seen.number} of respondent {row.respondent!r}"
        for name, mine, theirs in zip(attributes, row.attributes, seen.attributes, strict=True):
            if mine != theirs:
                problems.add(row.number, name, f"{mine!r} {where} ({theirs!r})")
        if row.weight != seen.weight:
            problems.add(row.number, "weight", f"{row.weight:g} {where} ({seen.weight:g})")


def _responses(rows: list[MicroRow], attributes: list[str], bins: Bins) -> Responses:
    questions = {}
    for row in rows:
        if row.question_id not in questions:
            questions[row.question_id] = _question(row)
    held: dict[str, dict[str, str | None]] = {a: {} for a in attributes}
    for row in rows:
        for name, raw in zip(attributes, row.attributes, strict=True):
            edges = bins.get(name)
            label = raw if edges is None or raw is None else bin_label(float(raw), edges)
            held[name][row.respondent] = label
    values = {}
    for name in attributes:
        seen = [v for v in dict.fromkeys(held[name].values()) if v is not None]
        edges = bins.get(name)
        values[name] = [b for b in bin_labels(edges) if b in seen] if edges is not None else seen
    return Responses(
        questions=questions,
        answers=[(r.respondent, r.question_id, r.answer) for r in rows],
        values=values,
        attributes=held,
        weights={r.respondent: r.weight for r in rows},
    )
