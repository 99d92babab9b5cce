"""``globalvalues-all``: every GlobalOpinionQA question on disk, the 558-question example pool.

The paper evaluated 100 GlobalOpinionQA questions (``globalvalues``) and drew few-shot examples
from ``question_similarity.json``: per (question, country), up to 10 similar questions with that
country's distribution. Those example questions, 558 distinct texts, form this dataset. 79 of them
are among the 100; they keep the 100's ``gv-`` ids (and gain the 100's targets for their listed
countries, which agree with the pool's wherever both exist), the others get ``gvx-`` ids, the ids
the ``globalvalues`` pool already uses. Groups are countries, sparse per question.

Few-shot candidates come from the dataset's own ``similar`` lists, keyed
``"COUNTRY=<name>|<question id>"``: the paper's list where the question is one of the 100, else
the other questions with a target for that country ranked by TF-IDF cosine similarity of their
texts. The evaluated question (its id, or the same text and options under any id) is never in
its own list.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from distalign.data import Dataset, Group, Question, Target
from distalign.datasets import register_dataset
from distalign.datasets.globalvalues import (
    GLOBALVALUES_FILES,
    GV_SIMILARITY,
    load_globalvalues,
)

N_SIMILAR = 10


@register_dataset("globalvalues-all", files=GLOBALVALUES_FILES)
def load_globalvalues_all(data_dir: Path) -> Dataset:
    """The 558 GlobalOpinionQA example-pool questions as an evaluation set."""
    hundred = load_globalvalues(data_dir)
    pool = hundred.pool
    if pool is None:  # pragma: no cover - load_globalvalues always builds the pool
        raise ValueError("the globalvalues loader returned no example pool")
    by_text = {q.text: q for q in hundred.questions.values()}
    rename: dict[str, str] = {}
    questions: dict[str, Question] = {}
    for pid, question in pool.questions.items():
        shared = by_text.get(question.text)
        if shared is not None and shared.options == question.options:
            rename[pid] = shared.id
            questions[shared.id] = shared
        else:
            questions[pid] = question
    targets: dict[tuple[str, str], Target] = {
        (group, rename.get(qid, qid)): target for (group, qid), target in pool.targets.items()
    }
    shared_ids = set(rename.values())
    for (group, qid), target in hundred.targets.items():
        if qid in shared_ids:
            targets[(group, qid)] = target  # equal to the pool's where both exist (tested)
    similar = _similar_lists(questions, targets, hundred.similar, rename)
    groups = sorted({Group.parse(key) for key, _ in targets}, key=lambda g: g.value)
    return Dataset(
        name="globalvalues-all",
        questions=questions,
        groups=groups,
        targets=targets,
        source=str(data_dir / GV_SIMILARITY),
        similar=similar,
        notes=_notes(len(questions), len(shared_ids), len(targets)),
    )


def _similar_lists(
    questions: dict[str, Question],
    targets: dict[tuple[str, str], Target],
    paper: dict[str, list[str]],
    rename: dict[str, str],
) -> dict[str, list[str]]:
    """Per (country, question): up to 10 other questions with that country's target."""
    ids = list(questions)
    scores = _tfidf_similarity([questions[q].text for q in ids])
    position = {qid: i for i, qid in enumerate(ids)}
    by_group: dict[str, list[str]] = {}
    for group, qid in targets:
        by_group.setdefault(group, []).append(qid)
    similar: dict[str, list[str]] = {}
    for group, members in by_group.items():
        for qid in members:
            listed = paper.get(f"{group}|{qid}")
            if listed is not None:
                ranked = [rename.get(other, other) for other in listed]
            else:
                row = scores[position[qid]]
                ranked = sorted(members, key=lambda other: -row[position[other]])
            me = questions[qid]
            similar[f"{group}|{qid}"] = [
                other
                for other in ranked
                if other != qid
                and (group, other) in targets
                and not _same_question(me, questions[other])
            ][:N_SIMILAR]
    return similar


def _same_question(a: Question, b: Question) -> bool:
    return a.text.strip().lower() == b.text.strip().lower() and a.options == b.options


def _tfidf_similarity(texts: list[str]) -> np.ndarray:
    """Cosine similarity of TF-IDF vectors of ``texts`` (smoothed idf, word tokens)."""
    docs = [Counter(re.findall(r"[a-z0-9']+", t.lower())) for t in texts]
    df = Counter(word for doc in docs for word in doc)
    vocab = {word: i for i, word in enumerate(df)}
    matrix = np.zeros((len(docs), len(vocab)))
    for row, doc in enumerate(docs):
        for word, count in doc.items():
            matrix[row, vocab[word]] = count * math.log((1 + len(docs)) / (1 + df[word]))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms > 0, norms, 1.0)
    return np.asarray(matrix @ matrix.T)


def _notes(n_questions: int, n_shared: int, n_targets: int) -> list[str]:
    return [
        f"{n_questions} questions: the distinct example questions of question_similarity.json "
        f"(the paper's few-shot pool); {n_shared} of them are among the 100 of 'globalvalues' "
        "and keep its 'gv-' ids, the others have 'gvx-' ids.",
        f"{n_targets} (country, question) targets: each example's country distribution "
        "(renormalised), plus the data.json targets of the shared questions (equal where both "
        "exist). No respondent counts: Target.n is None.",
        "Groups are COUNTRY=<name>; a question has targets only for some countries.",
        "Few-shot candidates: the paper's per-country list for shared questions, else the "
        "other questions with that country's target ranked by TF-IDF cosine similarity. The "
        "evaluated question (same id, or same text and options) is never a candidate.",
        "Options are as given (merged wording variants, quirk D9), in the example's order.",
    ]
