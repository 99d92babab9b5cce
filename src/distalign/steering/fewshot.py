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

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from distalign.data import Dataset, Group, Question
from distalign.steering.similarity import N_NEIGHBOURS, neighbours, tfidf_neighbours

__all__ = ["N_CANDIDATES", "N_EXAMPLES", "Example", "select_examples", "tfidf_neighbours"]

N_EXAMPLES = 5
N_CANDIDATES = N_NEIGHBOURS


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
        ids = neighbours(dataset, question.id)
    found = []
    for qid in ids:
        for source in sources:
            target = source.target(group, qid)
            if qid in source.questions and target is not None:
                found.append(Example(source.questions[qid], np.asarray(target.probs)))
                break
    return found
