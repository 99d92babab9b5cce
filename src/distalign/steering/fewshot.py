"""Choose the 5 solved examples a few-shot prompt shows for a (question, group).

Candidates are the question's most similar questions: the dataset's similarity lists when it
has them (the reference files; for Global values they are per country, keyed
``"<group key>|<question id>"``), otherwise the nearest question texts by all-MiniLM-L6-v2
sentence embeddings (offline, ``distalign[embed]``), or TF-IDF cosine when that is not installed.
The evaluated question itself is never a candidate.

From the 10 nearest candidates the paper's intended "hard" rule picks the 5 shown
(BENCHMARK_SPEC §3.5): prefer candidates whose option count differs from the target's; when
fewer than 5 differ, fill up with the same-count candidates whose distribution is farthest
(TV) from the target's. The rule reads the target's true distribution, as the paper's did.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from distalign.data import Dataset, Group, Question

N_EXAMPLES = 5
N_CANDIDATES = 10


@dataclass(frozen=True)
class Example:
    question: Question
    probs: NDArray[np.float64]


def select_examples(
    dataset: Dataset, question: Question, group: Group, k: int = N_EXAMPLES
) -> list[Example]:
    candidates = [c for c in _candidates(dataset, question, group) if c.question.id != question.id]
    candidates = candidates[:N_CANDIDATES]
    target = dataset.target(group, question.id)
    if target is None:
        return candidates[:k]
    return _hard(candidates, question, target.probs, k)


def _hard(
    candidates: list[Example], question: Question, truth: NDArray[np.float64], k: int
) -> list[Example]:
    different = [c for c in candidates if len(c.question.options) != len(question.options)]
    same = [c for c in candidates if len(c.question.options) == len(question.options)]
    if len(different) >= k:
        return different[-k:]  # the least text-similar of the different-option candidates
    farthest = sorted(same, key=lambda c: -0.5 * float(np.abs(c.probs - truth).sum()))
    return (different + farthest)[:k]


def _candidates(dataset: Dataset, question: Question, group: Group) -> list[Example]:
    ids = dataset.similar.get(f"{group.key}|{question.id}") or dataset.similar.get(question.id)
    sources = [d for d in (dataset.pool, dataset) if d is not None]
    if ids is None:
        # no similarity lists (user data): offline sentence embeddings, else TF-IDF
        from distalign.steering.similarity import neighbours

        ids = neighbours(dataset, question.id)
    found = []
    for qid in ids:
        for source in sources:
            target = source.target(group, qid)
            if qid in source.questions and target is not None:
                found.append(Example(source.questions[qid], np.asarray(target.probs)))
                break
    return found


def tfidf_neighbours(dataset: Dataset, question_id: str, k: int = N_CANDIDATES) -> list[str]:
    """Question ids ranked by TF-IDF cosine similarity of their texts (self excluded)."""
    ids = list(dataset.questions)
    docs = [Counter(_words(dataset.questions[q].text)) for q in ids]
    df = Counter(word for doc in docs for word in doc)
    vocab = {word: i for i, word in enumerate(df)}
    matrix = np.zeros((len(ids), len(vocab)))
    for row, doc in enumerate(docs):
        for word, count in doc.items():
            matrix[row, vocab[word]] = count * math.log((1 + len(ids)) / (1 + df[word]))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms > 0, norms, 1.0)
    me = ids.index(question_id)
    scores = matrix @ matrix[me]
    ranked = [ids[i] for i in np.argsort(-scores, kind="stable") if i != me]
    return ranked[:k]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())
