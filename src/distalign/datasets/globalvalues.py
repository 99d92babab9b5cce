"""The Global values reference dataset: 100 GlobalOpinionQA questions, groups are countries.

Quirks D9-D11 of BENCHMARK_SPEC §11 are handled here and recorded in ``Dataset.notes``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets import register_dataset
from distalign.datasets.reading import read_json

GV_FILE = "Global_Values/data/data.json"
GV_SIMILARITY = "Global_Values/data/question_similarity.json"
GV_ATTRIBUTE = "COUNTRY"
GV_SUM_TOLERANCE = 0.0025
GLOBALVALUES_FILES = (GV_FILE, GV_SIMILARITY)


def globalvalues_id(source_key: str) -> str:
    """Short stable id of a Global-values question (the file keys it by its full text)."""
    return "gv-" + hashlib.sha1(source_key.encode("utf-8")).hexdigest()[:10]


@register_dataset("globalvalues", files=GLOBALVALUES_FILES)
def load_globalvalues(data_dir: Path) -> Dataset:
    """100 GlobalOpinionQA questions; groups are countries, sparse per question."""
    raw: dict[str, dict[str, Any]] = read_json(data_dir / GV_FILE)
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
    similarity: dict[str, dict[str, dict[str, list[dict[str, float]]]]] = read_json(
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
