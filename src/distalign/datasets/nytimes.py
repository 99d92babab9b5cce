"""The NYT books reference dataset: 235 best books rated 1-4 by four overlapping groups."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets import register_dataset
from distalign.datasets.reading import SIMILARITY_FILE, counts_target, read_json

NYT_FILE = "nytimes/POLPARTY_data.json"
NYT_SIMILARITY = f"nytimes/{SIMILARITY_FILE}"
NYT_GROUPS = (
    Group("POLPARTY", "Democrat"),
    Group("POLPARTY", "Republican"),
    Group("SEX", "Male"),
    Group("SEX", "Female"),
)
NYT_QUESTION = "Given the information about this book, how likely are you to read it?"
NYTIMES_FILES = (NYT_FILE, NYT_SIMILARITY)


@register_dataset("nytimes", files=NYTIMES_FILES)
def load_nytimes(data_dir: Path) -> Dataset:
    """235 NYT best books, rated 1-4 ("how likely are you to read it") by four groups."""
    raw: dict[str, dict[str, Any]] = read_json(data_dir / NYT_FILE)
    questions: dict[str, Question] = {}
    targets: dict[tuple[str, str], Target] = {}
    for key, record in raw.items():
        question = _nyt_question(key, record)
        questions[key] = question
        for group in NYT_GROUPS:
            target = counts_target(record.get(group.value, {}), question.options)
            if target is not None:
                targets[(group.key, key)] = target
    similar = read_json(data_dir / NYT_SIMILARITY)
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
