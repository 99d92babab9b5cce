"""The OpinionQA reference dataset: Pew American Trends Panel questions, three attributes.

Quirks D1-D7 of BENCHMARK_SPEC §11 are handled here and recorded in ``Dataset.notes``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets import register_dataset
from distalign.datasets.reading import SIMILARITY_FILE, counts_target, read_json

PEW_ROOT = "opinions_qa/data/human_resp"
PEW_100 = f"{PEW_ROOT}/Pew_American_Trends_Panel_disagreement_100"
PEW_500 = f"{PEW_ROOT}/Pew_American_Trends_Panel_disagreement_500"
PEW_ATTRIBUTES = ("POLPARTY", "SEX", "RACE")
PEW_INFO = f"{PEW_500}/info.csv"
# Keys of a Pew question record that are not groups.
PEW_FIELDS = ("MC_options", "question_text")

OPINIONQA_FILES = tuple(
    f"{folder}/{attribute}_data.json"
    for folder in (PEW_100, PEW_500)
    for attribute in PEW_ATTRIBUTES
) + (f"{PEW_100}/{SIMILARITY_FILE}", f"{PEW_500}/{SIMILARITY_FILE}", PEW_INFO)


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
    raw = {attribute: read_json(folder / f"{attribute}_data.json") for attribute in PEW_ATTRIBUTES}
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
            target = counts_target(group_counts, question.options)
            if target is not None:
                targets[(group.key, qid)] = target
    similar = read_json(folder / SIMILARITY_FILE)
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
