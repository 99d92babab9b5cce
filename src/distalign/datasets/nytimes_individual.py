"""``nytimes-individual``: the NYT book ratings built from each rater's own answers.

``nytimes/individual_annotations/NYTIMES_proportions_ID.json`` keeps, per book and per paper
group, every rater's answer keyed by rater id; ``nytimes_annotator_demographics.csv`` gives
each rater's party, gender, race, income and age. From these the loader builds microdata
(:mod:`distalign.datasets.microdata_targets`), so any group, conjunctions included
(``POLPARTY=Democrat&SEX=Female``), has a target. No survey weights: ``Target.n`` is the
rater count.

Attributes and their values (relabelled from the survey's wording so that a group key has no
comma, which ``--group`` would split):

* ``POLPARTY``: Democrat, Republican, Other;  ``SEX``: Male, Female, Other;
* ``RACE``: White, Black, Hispanic, Asian, Native American, Other;
* ``INCOME``: ``Less than $30k``, ``$30k to $99k``, ``$100k or more``;
* ``AGE``: bands 18-29, 30-44, 45-64, 65+.

Quirk D12 (double ratings): one rater (:data:`DOUBLE_RATER`) took two survey batches that
shared 7 books and rated each of them twice. The aggregated files count both ratings; the
individual file, keyed by rater id, kept one. The loader restores each lost rating from the
difference between the aggregated and individual counts (one rating, in the rater's party and
sex tables alike, checked) as respondent ``<id>#2``, so the single-attribute targets equal the
``nytimes`` ones exactly. Quirk D13: another rater appears twice in the demographics file with
two incomes; their ``INCOME`` is unknown. Quirk D14: party and sex follow the paper's group
tables; 8 raters the party tables leave out (their demographics row names a party) get an
unknown party.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from distalign.data import Dataset, Group
from distalign.datasets import register_dataset
from distalign.datasets.microdata_targets import Responses, bin_label, bin_labels, microdata_dataset
from distalign.datasets.nytimes import NYT_FILE, NYT_GROUPS, NYTIMES_FILES, load_nytimes
from distalign.datasets.reading import read_json
from distalign.errors import DistalignError

NYT_INDIVIDUAL_FILE = "nytimes/individual_annotations/NYTIMES_proportions_ID.json"
NYT_DEMOGRAPHICS = "nytimes/individual_annotations/nytimes_annotator_demographics.csv"
NYT_INDIVIDUAL_FILES = (*NYTIMES_FILES, NYT_INDIVIDUAL_FILE, NYT_DEMOGRAPHICS)
AGE_EDGES = (18, 30, 45, 65)
DOUBLE_RATER = "6650fb32b9c2d7fcec77a250"
PARTY_BY_SEX = tuple(
    Group.of([("POLPARTY", party), ("SEX", sex)])
    for party in ("Democrat", "Republican")
    for sex in ("Male", "Female")
)
# The paper's four groups, then party × sex: the default groups of a run.
NYT_INDIVIDUAL_MAIN_GROUPS = (*NYT_GROUPS, *PARTY_BY_SEX)

# attribute -> (demographics column, {survey answer: label}); AGE is binned instead.
_COLUMNS: dict[str, tuple[str, dict[str, str]]] = {
    "POLPARTY": (
        "Q_DemRepub",
        {"Democrat": "Democrat", "Republican": "Republican", "Other (please specify)": "Other"},
    ),
    "SEX": ("QDem_Gend", {"Male": "Male", "Female": "Female", "Other": "Other"}),
    "RACE": (
        "QDem_Race",
        {
            "White or Caucasian American": "White",
            "Black or African American": "Black",
            "Hispanic or Latino": "Hispanic",
            "Asian or Asian American": "Asian",
            "Native American or Alaskan Native": "Native American",
            "Other (please specify)": "Other",
        },
    ),
    "INCOME": (
        "QDem_Income",
        {
            "Less than $30,000": "Less than $30k",
            "$30,000 - $99,999": "$30k to $99k",
            "$100,000 or more": "$100k or more",
        },
    ),
}
_AGE_COLUMN = "QDem_Age"
_ID_COLUMN = "Q84"
_PAPER_GROUPS = {"Democrat": "POLPARTY", "Republican": "POLPARTY", "Male": "SEX", "Female": "SEX"}


class NytIndividualError(DistalignError):
    """The NYT individual files disagree with each other in a way the loader does not know."""


@register_dataset("nytimes-individual", files=NYT_INDIVIDUAL_FILES)
def load_nytimes_individual(data_dir: Path) -> Dataset:
    """The 235 NYT books with targets built from individual ratings (any conjunction)."""
    aggregated = load_nytimes(data_dir)
    people, income_conflicts = _read_demographics(data_dir / NYT_DEMOGRAPHICS)
    answers, listed = _read_answers(read_json(data_dir / NYT_INDIVIDUAL_FILE), aggregated.questions)
    unlisted = _follow_paper_tables(people, listed)
    restored = _restore_double_ratings(answers, read_json(data_dir / NYT_FILE), people)
    answers += restored
    people[f"{DOUBLE_RATER}#2"] = people[DOUBLE_RATER]
    values = {a: list(dict.fromkeys(labels.values())) for a, (_, labels) in _COLUMNS.items()}
    values["AGE"] = bin_labels(AGE_EDGES)
    responses = Responses(
        questions=dict(aggregated.questions),
        answers=answers,
        values=values,
        attributes={a: {r: person.get(a) for r, person in people.items()} for a in values},
        weights={},
    )
    return microdata_dataset(
        "nytimes-individual",
        responses,
        conjunctions=PARTY_BY_SEX[:1],
        source=str(data_dir / NYT_INDIVIDUAL_FILE),
        similar=aggregated.similar,
        notes=_notes(len(listed), restored, income_conflicts, unlisted),
    )


def _read_demographics(path: Path) -> tuple[dict[str, dict[str, str | None]], list[str]]:
    """Each rater's labels; a rater listed twice with different values gets None for it."""
    people: dict[str, dict[str, str | None]] = {}
    conflicts: list[str] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            person = _person(record)
            rater = record[_ID_COLUMN].strip()
            seen = people.setdefault(rater, person)
            for attribute, label in person.items():
                if seen[attribute] != label:
                    seen[attribute] = None
                    conflicts.append(f"{attribute} of {rater}")
    return people, conflicts


def _person(record: Mapping[str, str]) -> dict[str, str | None]:
    person: dict[str, str | None] = {}
    for attribute, (column, labels) in _COLUMNS.items():
        raw = record[column].strip()
        if raw not in labels:
            raise NytIndividualError(f"{NYT_DEMOGRAPHICS}: unknown {column} value {raw!r}")
        person[attribute] = labels[raw]
    person["AGE"] = bin_label(float(record[_AGE_COLUMN]), AGE_EDGES)
    return person


def _read_answers(
    raw: Mapping[str, Mapping[str, Any]], questions: Mapping[str, Any]
) -> tuple[list[tuple[str, str, int]], dict[str, set[str]]]:
    """``(rater, book, option index)``, each rater once per book (the paper's tables list a
    rater under both their party and their sex), and the paper groups each rater is in."""
    answers = []
    listed: dict[str, set[str]] = {}
    for book, question in questions.items():
        given: dict[str, str] = {}
        for group in _PAPER_GROUPS:
            for rater, answer in raw[book].get(group, {}).items():
                listed.setdefault(rater, set()).add(group)
                if given.setdefault(rater, answer) != answer:
                    raise NytIndividualError(f"{NYT_INDIVIDUAL_FILE}: {rater} differs on {book!r}")
        answers += [(r, book, question.options.index(a)) for r, a in given.items()]
    return answers, listed


def _follow_paper_tables(
    people: dict[str, dict[str, str | None]], listed: Mapping[str, set[str]]
) -> list[str]:
    """Party and sex as the paper's tables have them (quirk D14): a rater the tables leave
    out of their demographics party gets an unknown party. Returns those raters."""
    unlisted = []
    for rater, groups in listed.items():
        person = people.get(rater)
        if person is None:
            raise NytIndividualError(f"{NYT_DEMOGRAPHICS}: no demographics for rater {rater}")
        for attribute in ("POLPARTY", "SEX"):
            tables = {g for g in groups if _PAPER_GROUPS[g] == attribute}
            if tables and tables != {person[attribute]}:
                raise NytIndividualError(
                    f"rater {rater}: {attribute} {person[attribute]!r} in {NYT_DEMOGRAPHICS}, "
                    f"{sorted(tables)} in {NYT_INDIVIDUAL_FILE}"
                )
            if not tables and person[attribute] in _PAPER_GROUPS:
                person[attribute] = None
                unlisted.append(f"{attribute} of {rater}")
    return unlisted


def _restore_double_ratings(
    answers: list[tuple[str, str, int]],
    aggregated: Mapping[str, Mapping[str, Any]],
    people: Mapping[str, Mapping[str, str | None]],
) -> list[tuple[str, str, int]]:
    """The ratings the aggregated counts hold and the individual file lost (quirk D12)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    raters: dict[str, set[str]] = {}
    for rater, book, index in answers:
        raters.setdefault(book, set()).add(rater)
        options = aggregated[book]["MC_options"]
        for group, attribute in _PAPER_GROUPS.items():
            if people[rater][attribute] == group:
                counts[(book, group, options[index])] += 1
    double = people[DOUBLE_RATER]
    restored = []
    for book, record in aggregated.items():
        missing = {
            (group, option): int(n) - counts[(book, group, option)]
            for group in _PAPER_GROUPS
            for option, n in record[group].items()
            if int(n) != counts[(book, group, option)]
        }
        if not missing:
            continue
        lost = {option for _, option in missing}
        expected = {(double["POLPARTY"], o) for o in lost} | {(double["SEX"], o) for o in lost}
        if (
            len(lost) != 1
            or set(missing) != expected
            or set(missing.values()) != {1}
            or DOUBLE_RATER not in raters.get(book, set())
        ):
            raise NytIndividualError(
                f"{NYT_INDIVIDUAL_FILE} and {NYT_FILE} disagree on {book!r}: {missing}"
            )
        restored.append((f"{DOUBLE_RATER}#2", book, record["MC_options"].index(lost.pop())))
    return restored


def _notes(
    raters: int, restored: list[Any], income_conflicts: list[str], unlisted: list[str]
) -> list[str]:
    return [
        f"Built from {NYT_INDIVIDUAL_FILE} ({raters} raters) and {NYT_DEMOGRAPHICS}; questions, "
        "options and similar questions as in 'nytimes'.",
        "Groups: POLPARTY, SEX, RACE, INCOME, AGE (bands 18-29, 30-44, 45-64, 65+) and any "
        "conjunction of them (e.g. POLPARTY=Democrat&SEX=Female), built on first use.",
        f"D12: restored {len(restored)} ratings that {DOUBLE_RATER} gave a second time (two "
        "survey batches) and the id-keyed individual file lost, from the aggregated counts; "
        "the single-attribute targets equal 'nytimes' exactly.",
        "D13: unknown (the rater is listed twice in the demographics file with different "
        f"values): {', '.join(income_conflicts) or 'none'}.",
        f"D14: unknown (the demographics give a value, the paper's group tables leave the rater "
        f"out; {len(unlisted)} raters): {', '.join(unlisted) or 'none'}.",
        "No survey weights: Target.n is the rater count.",
    ]
