"""Targets from individual responses: weighted shares, Kish effective n, binned attributes.

A :class:`Responses` holds validated microdata (one answer per respondent × question, each
respondent's attribute values and survey weight). The target of a group for a question is
the weighted share of its respondents choosing each option,

    p_k = Σ_{i answered k} w_i / Σ_i w_i,

and its ``Target.n`` is Kish's effective sample size n_eff = (Σ w_i)² / Σ w_i², which is the
respondent count when all weights are equal. The noise floor and the confidence intervals
read ``Target.n``, so a small or unevenly weighted group is as noisy there as it really is.

A group is any conjunction of attribute values (``POLPARTY=Democrat&SEX=Female``); numeric
attributes can be cut into bands by bin edges (:func:`bin_labels`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from distalign.data import Dataset, Group, Question, Target

__all__ = ["Bins", "Responses", "bin_label", "bin_labels", "kish_n", "microdata_dataset"]

Bins = Mapping[str, Sequence[float]]  # attribute -> increasing bin edges


def kish_n(weights: Sequence[float] | NDArray[np.float64]) -> float:
    """Kish's effective sample size (Σw)² / Σw² (the count for equal weights)."""
    w = np.asarray(weights, dtype=np.float64)
    squares = float((w * w).sum())
    return float(w.sum()) ** 2 / squares if squares > 0 else 0.0


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Band labels for increasing ``edges``: [18, 30, 65] -> 18-29, 30-64, 65+.

    Bands are ``[lo, hi)``; with integer edges the label shows the last integer in the band
    (``18-29``), otherwise the edges themselves (``1.5-2.5``). The last band is open.
    """
    labels = []
    for lo, hi in itertools.pairwise(edges):
        top = _number(hi - 1) if _is_integer(lo) and _is_integer(hi) else _number(hi)
        labels.append(f"{_number(lo)}-{top}")
    labels.append(f"{_number(edges[-1])}+")
    return labels


def bin_label(value: float, edges: Sequence[float]) -> str | None:
    """The band of ``value``, or None below the first edge."""
    if value < edges[0]:
        return None
    index = int(np.searchsorted(np.asarray(edges, dtype=np.float64), value, side="right")) - 1
    return bin_labels(edges)[index]


def _is_integer(x: float) -> bool:
    return math.isfinite(x) and float(x).is_integer()


def _number(x: float) -> str:
    return str(int(x)) if _is_integer(x) else f"{x:g}"


@dataclass
class Responses:
    """Validated microdata, ready to build the target of any group.

    ``answers`` are ``(respondent, question id, option index)``; ``attributes`` maps each
    attribute to its values in display order and to each respondent's value (None: unknown,
    so the respondent is in no group of that attribute); ``weights`` maps respondents to
    their survey weight (1 when absent).
    """

    questions: dict[str, Question]
    answers: list[tuple[str, str, int]]
    values: dict[str, list[str]]
    attributes: dict[str, dict[str, str | None]]
    weights: dict[str, float]

    def __post_init__(self) -> None:
        self._respondents = {
            r: i for i, r in enumerate(dict.fromkeys(r for r, _, _ in self.answers))
        }
        question_index = {q: i for i, q in enumerate(self.questions)}
        sizes = [len(q.options) for q in self.questions.values()]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._row_respondent = np.array([self._respondents[r] for r, _, _ in self.answers])
        self._row_question = np.array([question_index[q] for _, q, _ in self.answers])
        self._row_cell = self._offsets[self._row_question] + np.array(
            [k for _, _, k in self.answers]
        )
        self._weight = np.array([self.weights.get(r, 1.0) for r in self._respondents])

    def single_groups(self) -> list[Group]:
        """Every attribute value held by some respondent, attribute by attribute."""
        return [Group(a, v) for a, values in self.values.items() for v in values]

    def targets(self, group: Group) -> dict[str, Target]:
        """The group's target for each question at least one of its respondents answered."""
        member = np.ones(len(self._respondents), dtype=bool)
        for attribute, value in group.conditions:
            held = self.attributes.get(attribute, {})
            member &= np.array([held.get(r) == value for r in self._respondents])
        rows = member[self._row_respondent]
        weight = self._weight[self._row_respondent][rows]
        sums = np.bincount(self._row_cell[rows], weights=weight, minlength=int(self._offsets[-1]))
        squares = np.bincount(
            self._row_question[rows], weights=weight * weight, minlength=len(self.questions)
        )
        targets = {}
        for i, qid in enumerate(self.questions):
            values = sums[self._offsets[i] : self._offsets[i + 1]]
            total = float(values.sum())
            if total > 0:
                targets[qid] = Target(probs=values / total, n=total * total / float(squares[i]))
        return targets

    def family(self, group: Group) -> dict[Group, dict[str, Target]]:
        """Every group over ``group``'s attributes that has targets, in value order."""
        attributes = [a for a, _ in group.conditions]
        if any(a not in self.values for a in attributes):
            return {}
        present = {tuple(self.attributes[a].get(r) for a in attributes) for r in self._respondents}
        found: dict[Group, dict[str, Target]] = {}
        for combo in itertools.product(*(self.values[a] for a in attributes)):
            if combo not in present:
                continue
            member = Group.of(zip(attributes, combo, strict=True))
            targets = self.targets(member)
            if targets:
                found[member] = targets
        return found


def microdata_dataset(
    name: str,
    responses: Responses,
    *,
    conjunctions: Sequence[Group] = (),
    source: str = "",
    notes: Sequence[str] = (),
    similar: Mapping[str, list[str]] | None = None,
) -> Dataset:
    """A :class:`Dataset` listing every single-attribute group, then the groups over the
    attributes of each of ``conjunctions``; any other conjunction is built on first use
    (:meth:`Dataset.has_group`, :meth:`Dataset.target`)."""
    dataset = Dataset(
        name=name,
        questions=dict(responses.questions),
        groups=[],
        targets={},
        source=source,
        similar=dict(similar or {}),
        notes=list(notes),
        microdata=responses,
    )
    for group in [*responses.single_groups(), *conjunctions]:
        dataset.has_group(group)
    return dataset
