"""Loaders for the paper's three reference datasets: opinionqa, nytimes, globalvalues.

Each loader reads the files of the paper repository (see ``location.py`` for where they
come from), handles that dataset's quirks (BENCHMARK_SPEC §11, D1-D11) explicitly and
records every decision in ``Dataset.notes``. ``docs/datasets.md`` explains the quirks.

These loaders build the *standard* view: survey option order, one option set per question,
probabilities that sum to 1. What a paper-faithful mode needs to rebuild the paper's own view
is kept alongside (``Question.paper_options``, ``Question.extra``).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets import register_dataset

PEW_ROOT = "opinions_qa/data/human_resp"
PEW_100 = f"{PEW_ROOT}/Pew_American_Trends_Panel_disagreement_100"
PEW_500 = f"{PEW_ROOT}/Pew_American_Trends_Panel_disagreement_500"
PEW_ATTRIBUTES = ("POLPARTY", "SEX", "RACE")
PEW_INFO = f"{PEW_500}/info.csv"
SIMILARITY_FILE = "question_similarity_top10.json"
# Keys of a Pew question record that are not groups.
PEW_FIELDS = ("MC_options", "question_text")

NYT_FILE = "nytimes/POLPARTY_data.json"
NYT_SIMILARITY = f"nytimes/{SIMILARITY_FILE}"
NYT_GROUPS = (
    Group("POLPARTY", "Democrat"),
    Group("POLPARTY", "Republican"),
    Group("SEX", "Male"),
    Group("SEX", "Female"),
)
NYT_QUESTION = "Given the information about this book, how likely are you to read it?"

GV_FILE = "Global_Values/data/data.json"
GV_SIMILARITY = "Global_Values/data/question_similarity.json"
GV_ATTRIBUTE = "COUNTRY"
GV_SUM_TOLERANCE = 0.0025

OPINIONQA_FILES = tuple(
    f"{folder}/{attribute}_data.json"
    for folder in (PEW_100, PEW_500)
    for attribute in PEW_ATTRIBUTES
) + (f"{PEW_100}/{SIMILARITY_FILE}", f"{PEW_500}/{SIMILARITY_FILE}", PEW_INFO)
NYTIMES_FILES = (NYT_FILE, NYT_SIMILARITY)
GLOBALVALUES_FILES = (GV_FILE, GV_SIMILARITY)

# The groups of the paper's tables. Global values has none fixed: its groups are the
# per-question country slots 0/1/2 (quirk D10), so every country counts.
MAIN_GROUPS: dict[str, tuple[Group, ...]] = {
    "opinionqa": (
        Group("POLPARTY", "Democrat"),
        Group("POLPARTY", "Republican"),
        Group("SEX", "Male"),
        Group("SEX", "Female"),
        Group("RACE", "Black"),
        Group("RACE", "White"),
    ),
    "nytimes": NYT_GROUPS,
}


def main_groups(dataset: Dataset) -> list[Group]:
    """The paper's main groups of a reference dataset; all groups for other datasets."""
    chosen = MAIN_GROUPS.get(dataset.name)
    if chosen is None:
        return list(dataset.groups)
    return [g for g in chosen if g in dataset.groups]


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _counts_target(counts: Mapping[str, float], options: tuple[str, ...]) -> Target | None:
    """Counts -> distribution over ``options`` (absent options get 0); None if no one answered."""
    values = np.array([float(counts.get(o, 0.0)) for o in options], dtype=np.float64)
    total = float(values.sum())
    if total <= 0:
        return None
    return Target(probs=values / total, n=total)


# ----------------------------------------------------------------------------- OpinionQA


@dataclass(frozen=True)
class _PewInfo:
    """One key of the ``_500`` info.csv: survey option order and Likert positions."""

    references: tuple[str, ...]
    ordinal: dict[str, float]
    survey: str


@register_dataset("opinionqa", files=OPINIONQA_FILES)
def load_opinionqa(data_dir: Path) -> Dataset:
    """The 100 evaluated OpinionQA questions, with the 494-question pool as ``pool``."""
    info, info_notes = _read_pew_info(data_dir / PEW_INFO)
    dataset = _load_pew_folder(data_dir / PEW_100, "opinionqa", info)
    dataset.pool = _load_pew_folder(data_dir / PEW_500, "opinionqa-pool", info)
    dataset.notes[:0] = _opinionqa_notes() + info_notes
    dataset.notes += _piped_question_notes(dataset)
    return dataset


def _opinionqa_notes() -> list[str]:
    return [
        "D7: the _100 folder's info.csv is stale (a different question set) and is not read; "
        "survey order and Likert positions come from the _500 folder's info.csv.",
        "D1: options are in survey order (info.csv 'references'); paper_options holds the "
        "alphabetical order the paper's prompts used.",
        "D2: a question's options are the union over all groups; a group without "
        "respondents for an option gets probability 0 (the paper dropped such options "
        "per group: paper_options filtered to probs > 0 gives the paper's per-group list).",
        "D3: 'Refused' is kept as an ordinary option (97 of 100 questions); its ordinal "
        "position is None, like every option outside info.csv's option_ordinal.",
        "D4: MC_options is not used for ordering (broken in 14 of 100 questions); the raw "
        "list is kept in Question.extra['mc_options'] for paper mode.",
        "D5: groups with zero respondents for a question have no target (FEM2_W29 has no "
        "Male target); tiny groups (MAN1C_W29, MAN1E_W29: 2 Female respondents) are kept, "
        "with Target.n so callers can filter.",
        "Target.probs = counts / their sum; Target.n = the group's respondent count.",
        "Options listed in info.csv that no respondent in any group chose are dropped, "
        "keeping survey order (listed below). For 'None' this is most likely an upstream "
        "loss (the answer text 'None' read as a missing value); the distributions are over "
        "the remaining answers, as in the paper.",
    ]


def _read_pew_info(path: Path) -> tuple[dict[str, _PewInfo], list[str]]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    info: dict[str, _PewInfo] = {}
    notes: list[str] = []
    for row in frame.itertuples(index=False):
        key = str(row.key)
        parsed = _parse_info_row(row)
        if parsed is None:
            notes.append(f"{key}: info.csv row unreadable, ignored")
        elif key in info and info[key].references != parsed.references:
            notes.append(f"{key}: info.csv has conflicting rows; the first is used")
        else:
            info.setdefault(key, parsed)
    return info, notes


def _parse_info_row(row: Any) -> _PewInfo | None:
    try:
        references = ast.literal_eval(row.references)
        mapping = ast.literal_eval(row.option_mapping)
        on_scale = set(ast.literal_eval(row.option_ordinal))
    except (ValueError, SyntaxError):
        return None
    # option_mapping is {code: text}; option_ordinal lists the codes on the Likert scale
    # (e.g. 1..4), so codes like 99 (Refused) are off-scale.
    ordinal = {str(text): float(code) for code, text in mapping.items() if code in on_scale}
    return _PewInfo(tuple(str(r) for r in references), ordinal, str(row.survey))


def _load_pew_folder(folder: Path, name: str, info: Mapping[str, _PewInfo]) -> Dataset:
    raw = {attribute: _read_json(folder / f"{attribute}_data.json") for attribute in PEW_ATTRIBUTES}
    question_ids = _pew_question_ids(raw)
    groups = _pew_groups(raw)
    questions: dict[str, Question] = {}
    targets: dict[tuple[str, str], Target] = {}
    notes: list[str] = []
    for qid in question_ids:
        counts = {g: raw[g.attribute][qid].get(g.value, {}) for g in groups}
        question, note = _pew_question(qid, raw["POLPARTY"][qid], counts, info.get(qid))
        questions[qid] = question
        notes += [note] if note else []
        for group, group_counts in counts.items():
            target = _counts_target(group_counts, question.options)
            if target is not None:
                targets[(group.key, qid)] = target
    similar = _read_json(folder / SIMILARITY_FILE)
    return Dataset(
        name=name,
        questions=questions,
        groups=groups,
        targets=targets,
        source=str(folder),
        similar={qid: list(similar[qid]) for qid in question_ids if qid in similar},
        notes=notes,
    )


def _pew_question_ids(raw: Mapping[str, dict[str, Any]]) -> list[str]:
    """Key order of the data files = question order (identical across the three files)."""
    orders = {attribute: list(data) for attribute, data in raw.items()}
    first = orders[PEW_ATTRIBUTES[0]]
    if any(order != first for order in orders.values()):
        raise ValueError("the OpinionQA attribute files list different questions")
    return first


def _pew_groups(raw: Mapping[str, dict[str, Any]]) -> list[Group]:
    """Every group value that occurs in the files, in file order."""
    groups: dict[Group, None] = {}
    for attribute, data in raw.items():
        for record in data.values():
            for value in record:
                if value not in PEW_FIELDS:
                    groups.setdefault(Group(attribute, value))
    return list(groups)


def _pew_question(
    qid: str,
    record: Mapping[str, Any],
    counts: Mapping[Group, Mapping[str, float]],
    info: _PewInfo | None,
) -> tuple[Question, str | None]:
    union = {option for group_counts in counts.values() for option in group_counts}
    options, note = _survey_order(qid, union, info)
    ordinal = None
    if info is not None and info.ordinal:
        ordinal = tuple(info.ordinal.get(o) for o in options)
    extra = {"mc_options": json.dumps(record["MC_options"])}
    if info is not None:
        extra["survey"] = info.survey
    question = Question(
        id=qid,
        text=record["question_text"],
        options=tuple(options),
        ordinal=ordinal,
        paper_options=tuple(sorted(options)),
        extra=extra,
    )
    return question, note


def _survey_order(qid: str, union: set[str], info: _PewInfo | None) -> tuple[list[str], str | None]:
    """The options in survey order, and a note when the survey order had to be adapted."""
    if info is None:
        return sorted(union), f"{qid}: not in info.csv; options in alphabetical order"
    references = set(info.references)
    if union == references:
        return list(info.references), None
    if union < references:
        # 'None' answers were lost upstream (the text 'None' read as a missing value) and
        # some 'Refused' options have no respondents at all: the survey order still holds.
        dropped = [o for o in info.references if o not in union]
        kept = [o for o in info.references if o in union]
        return (
            kept,
            f"{qid}: info.csv option(s) {dropped} have no respondents in any group; dropped",
        )
    unknown = sorted(union - references)
    return sorted(union), (
        f"{qid}: count options {unknown} are not in info.csv references; "
        "options in alphabetical order"
    )


def _piped_question_notes(dataset: Dataset) -> list[str]:
    """D6: a question whose wording differs between the 100 file and the pool file."""
    if dataset.pool is None:
        return []
    notes = []
    for qid, question in dataset.questions.items():
        pooled = dataset.pool.questions.get(qid)
        if pooled is not None and pooled.text != question.text:
            notes.append(
                f"D6: {qid} reads {question.text!r} here but {pooled.text!r} in the pool "
                "(a piped question); each keeps its own file's wording."
            )
    return notes


# ----------------------------------------------------------------------------- NYT


@register_dataset("nytimes", files=NYTIMES_FILES)
def load_nytimes(data_dir: Path) -> Dataset:
    """235 NYT best books, rated 1-4 ("how likely are you to read it") by four groups."""
    raw: dict[str, dict[str, Any]] = _read_json(data_dir / NYT_FILE)
    questions: dict[str, Question] = {}
    targets: dict[tuple[str, str], Target] = {}
    for key, record in raw.items():
        question = _nyt_question(key, record)
        questions[key] = question
        for group in NYT_GROUPS:
            target = _counts_target(record.get(group.value, {}), question.options)
            if target is not None:
                targets[(group.key, key)] = target
    similar = _read_json(data_dir / NYT_SIMILARITY)
    return Dataset(
        name="nytimes",
        questions=questions,
        groups=list(NYT_GROUPS),
        targets=targets,
        source=str(data_dir / NYT_FILE),
        similar={key: list(similar[key]) for key in questions if key in similar},
        notes=_nyt_notes(),
    )


def _nyt_question(key: str, record: Mapping[str, Any]) -> Question:
    title, _, author = key.rpartition(" By ")
    options = tuple(str(o) for o in record["MC_options"])
    return Question(
        id=key,
        text=NYT_QUESTION,
        options=options,
        ordinal=tuple(float(i + 1) for i in range(len(options))),
        extra={
            "title": title or key,
            "author": author if title else "",
            "genre": str(record.get("genre", "")),
            "summary": str(record.get("summary", "")),
        },
    )


def _nyt_notes() -> list[str]:
    return [
        "D8: read from POLPARTY_data.json, one of four byte-identical zero-filled copies "
        "(POLPARTY/SEX/NONE_data.json, NYTIMES_proportions.json); data.json, which omits "
        "zero-count options, is not used.",
        "Question ids are the file keys '<Title> By <Author>'; title, author, genre and "
        "summary are in Question.extra.",
        "Options in MC order (1: Very unlikely .. 4: Very likely), ordinal 1..4.",
        "Groups overlap: every rater has both a party and a sex. Target.n = raters (6 to 31).",
    ]


# ----------------------------------------------------------------------------- Global values


def globalvalues_id(source_key: str) -> str:
    """Short stable id of a Global-values question (the file keys it by its full text)."""
    return "gv-" + hashlib.sha1(source_key.encode("utf-8")).hexdigest()[:10]


@register_dataset("globalvalues", files=GLOBALVALUES_FILES)
def load_globalvalues(data_dir: Path) -> Dataset:
    """100 GlobalOpinionQA questions; groups are countries, sparse per question."""
    raw: dict[str, dict[str, Any]] = _read_json(data_dir / GV_FILE)
    questions: dict[str, Question] = {}
    targets: dict[tuple[str, str], Target] = {}
    countries: set[str] = set()
    for key, record in raw.items():
        question = _gv_question(key, record)
        questions[question.id] = question
        for country in record["countries"]:
            countries.add(country)
            targets[(Group(GV_ATTRIBUTE, country).key, question.id)] = _gv_target(
                question, country, record[country]
            )
    pool, similar = _gv_example_pool(data_dir)
    return Dataset(
        name="globalvalues",
        questions=questions,
        groups=[Group(GV_ATTRIBUTE, c) for c in sorted(countries)],
        targets=targets,
        source=str(data_dir / GV_FILE),
        similar=similar,
        pool=pool,
        notes=_gv_notes(),
    )


def _gv_question(key: str, record: Mapping[str, Any]) -> Question:
    options = tuple(str(o) for o in ast.literal_eval(record["MC_options"]))
    return Question(
        id=globalvalues_id(key),
        text=key.strip(),
        options=options,
        extra={"countries": json.dumps(list(record["countries"])), "source_key": key},
    )


def _gv_target(question: Question, country: str, probs: list[float]) -> Target:
    values = np.asarray(probs, dtype=np.float64)
    if len(values) != len(question.options):
        raise ValueError(f"{question.id} ({country}): {len(values)} probabilities")
    total = float(values.sum())
    if abs(total - 1) > GV_SUM_TOLERANCE:
        raise ValueError(f"{question.id} ({country}): probabilities sum to {total}")
    return Target(probs=values / total, n=None)


def _gv_notes() -> list[str]:
    return [
        "D10: MC_options is a Python list literal (read with ast.literal_eval); groups are "
        "COUNTRY=<name>, each question has targets only for its listed countries. The "
        "paper's groups 0/1/2 are slots: Question.extra['countries'] (JSON list) maps them.",
        "Two questions list a 4th country, which the paper never used; it is included as a "
        "target here.",
        "D9: option lists merge wording variants across survey waves; countries have 0 for "
        "variants they were not asked. Kept as given, in MC_options order.",
        "Probabilities sum to 1 within +-0.002 in the file; they are renormalised to sum to 1 "
        "(the paper scored them as given). No respondent counts: Target.n is None.",
        "Question ids are 'gv-' + the first 10 hex digits of sha1(file key); the key (the "
        "full question text) is in Question.extra['source_key'], the text is stripped of "
        "surrounding whitespace.",
        "D11: data_global_opinions.csv is missing from the mirror and not needed.",
        "Few-shot examples (question_similarity.json) are per (question, country) and "
        "outside the dataset: see globalvalues_examples().",
    ]


GvExample = tuple[str, list[str], list[float]]


def globalvalues_examples(data_dir: Path) -> dict[tuple[str, str], list[GvExample]]:
    """Similar questions per (question id, country), most similar first.

    Each example is (question text, options, that country's probabilities as given in
    ``question_similarity.json``, not renormalised).
    """
    similarity: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = _read_json(
        data_dir / GV_SIMILARITY
    )
    examples: dict[tuple[str, str], list[GvExample]] = {}
    for key, by_country in similarity.items():
        for country, neighbours in by_country.items():
            examples[(globalvalues_id(key), country)] = [
                (text, list(dist[0]), [float(p) for p in dist[0].values()])
                for text, dist in neighbours.items()
            ]
    return examples


def _gv_example_pool(data_dir: Path) -> tuple[Dataset, dict[str, list[str]]]:
    """The few-shot examples as a pool dataset, with similarity keyed ``"<group>|<question>"``.

    GV similar questions are per (question, country) and mostly outside the 100, so they
    become questions of a pool dataset ("gvx-" ids) holding each country's distribution.
    """
    questions: dict[str, Question] = {}
    targets: dict[tuple[str, str], Target] = {}
    similar: dict[str, list[str]] = {}
    for (qid, country), examples in globalvalues_examples(data_dir).items():
        group = Group(GV_ATTRIBUTE, country)
        ids = []
        for text, options, probs in examples:
            total = sum(probs)
            if total <= 0 or len(set(options)) != len(options) or not 1 <= len(options) <= 26:
                continue  # an example without a usable distribution is not shown
            example_id = "gvx-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]
            questions.setdefault(example_id, Question(example_id, text.strip(), tuple(options)))
            targets[(group.key, example_id)] = Target(np.asarray(probs) / total)
            ids.append(example_id)
        similar[f"{group.key}|{qid}"] = ids
    groups = sorted({Group.parse(key) for key, _ in targets})
    pool = Dataset(
        "globalvalues-examples", questions, groups, targets, source=str(data_dir / GV_SIMILARITY)
    )
    return pool, similar
