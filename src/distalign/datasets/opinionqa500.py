"""``opinionqa-500``: the OpinionQA high-disagreement wave set, 494 questions, as an evaluation set.

``Pew_American_Trends_Panel_disagreement_500`` is the pool the paper drew few-shot examples
from; it holds the 100 evaluated questions of ``opinionqa`` and 394 more. It is read with the
``opinionqa`` rules (quirks D1-D7: survey order from its ``info.csv``, union option sets, tiny
groups kept, empty groups without a target). The pool's wording is kept where it differs from
the 100's (IDIMPORT_W43, quirk D6).

Few-shot examples come from the set itself, through ``question_similarity_top10.json`` (10
most similar questions per question). No list names its own question; a neighbour with the same
text *and* options as the evaluated question would be the same question and is dropped (none
is, in the shipped file; same-text questions such as MASC2_W29/FEM2_W29 have different options).
"""

from __future__ import annotations

from pathlib import Path

from distalign.data import Dataset, Question
from distalign.datasets import register_dataset
from distalign.datasets.opinionqa import (
    PEW_500,
    PEW_ATTRIBUTES,
    PEW_INFO,
    _load_pew_folder,
    _read_pew_info,
)
from distalign.datasets.reading import SIMILARITY_FILE

OPINIONQA_500_FILES = tuple(f"{PEW_500}/{a}_data.json" for a in PEW_ATTRIBUTES) + (
    f"{PEW_500}/{SIMILARITY_FILE}",
    PEW_INFO,
)


@register_dataset("opinionqa-500", files=OPINIONQA_500_FILES)
def load_opinionqa_500(data_dir: Path) -> Dataset:
    """The 494 questions of the ``_500`` folder; few-shot examples from the same set."""
    info, info_notes = _read_pew_info(data_dir / PEW_INFO)
    dataset = _load_pew_folder(data_dir / PEW_500, "opinionqa-500", info)
    dataset.similar = {
        qid: [
            other
            for other in ids
            if other != qid
            and other in dataset.questions
            and not _same_question(dataset.questions[qid], dataset.questions[other])
        ]
        for qid, ids in dataset.similar.items()
    }
    dataset.notes[:0] = [
        f"{len(dataset.questions)} questions of Pew_American_Trends_Panel_disagreement_500 "
        "(a superset of the 100 of 'opinionqa'), read with the opinionqa rules D1-D7.",
        "Few-shot examples are drawn from this set (question_similarity_top10.json); the "
        "evaluated question (same id, or same text and options) is never its own example.",
        "Target.probs = counts / their sum; Target.n = the group's respondent count.",
        *info_notes,
    ]
    return dataset


def _same_question(a: Question, b: Question) -> bool:
    return a.text.strip().lower() == b.text.strip().lower() and a.options == b.options
