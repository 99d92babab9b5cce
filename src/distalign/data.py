"""The canonical in-memory form of a survey dataset.

Every loader (reference datasets or a user's own file) produces a :class:`Dataset`:
questions with lettered options, groups (attribute + value), and for each (group, question)
a :class:`Target` — the group's answer distribution over the question's options, aligned to
``Question.options`` and with the respondent count when it is known.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

LETTERS = string.ascii_uppercase

FloatArray = NDArray[np.float64]


def letters_for(n_options: int) -> list[str]:
    """Option letters A, B, C, ... for a question with ``n_options`` options."""
    if not 1 <= n_options <= len(LETTERS):
        raise ValueError(f"a question needs 1 to {len(LETTERS)} options, got {n_options}")
    return list(LETTERS[:n_options])


@dataclass(frozen=True, order=True)
class Group:
    """A demographic group: an attribute and one of its values (``POLPARTY=Democrat``)."""

    attribute: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.attribute}={self.value}"

    @classmethod
    def parse(cls, key: str) -> Group:
        attribute, sep, value = key.partition("=")
        if not sep or not attribute or not value:
            raise ValueError(f"group key must look like ATTRIBUTE=value, got {key!r}")
        return cls(attribute, value)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Question:
    """One survey item.

    ``options`` are in the survey's own order (the order ``standard`` prompts show).
    ``ordinal`` gives each option's position on an ordered scale, or None for options
    outside the scale (e.g. "Refused"); ``ordinal is None`` means the question is not ordinal.
    ``paper_options`` is the order the reference benchmark's prompts used, when it differs.
    """

    id: str
    text: str
    options: tuple[str, ...]
    ordinal: tuple[float | None, ...] | None = None
    paper_options: tuple[str, ...] | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        letters_for(len(self.options))
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"question {self.id!r} has duplicate options")
        if self.ordinal is not None and len(self.ordinal) != len(self.options):
            raise ValueError(f"question {self.id!r}: ordinal has the wrong length")

    @property
    def letters(self) -> list[str]:
        return letters_for(len(self.options))


@dataclass(frozen=True)
class Target:
    """A group's answer distribution for one question, aligned to ``Question.options``.

    ``n`` is the number of respondents (or Kish's effective sample size for weighted data)
    when known; None otherwise.
    """

    probs: FloatArray
    n: float | None = None

    def __post_init__(self) -> None:
        probs = np.asarray(self.probs, dtype=np.float64)
        probs.setflags(write=False)
        object.__setattr__(self, "probs", probs)


@dataclass
class Dataset:
    """Questions, groups and the (group, question) targets of one benchmark dataset.

    ``similar`` maps a question id to its most similar question ids (most similar first),
    which may point into ``pool`` (a larger dataset used only to draw few-shot examples).
    """

    name: str
    questions: dict[str, Question]
    groups: list[Group]
    targets: dict[tuple[str, str], Target]
    source: str = ""
    similar: dict[str, list[str]] = field(default_factory=dict)
    pool: Dataset | None = None
    notes: list[str] = field(default_factory=list)

    def target(self, group: Group | str, question_id: str) -> Target | None:
        key = group.key if isinstance(group, Group) else group
        return self.targets.get((key, question_id))

    def items(self) -> Iterator[tuple[Group, Question, Target]]:
        """Every (group, question, target) cell that has a target, group-major."""
        for group in self.groups:
            for question in self.questions.values():
                target = self.targets.get((group.key, question.id))
                if target is not None:
                    yield group, question, target

    def population(self, question_id: str, groups: list[Group] | None = None) -> FloatArray:
        """The group-pooled distribution of a question.

        Weighted by respondent counts when every contributing target has one, otherwise the
        plain mean of the group distributions.
        """
        chosen = groups if groups is not None else self.groups
        found = [t for g in chosen if (t := self.target(g, question_id)) is not None]
        if not found:
            raise KeyError(f"no group has a target for question {question_id!r}")
        stacked = np.stack([t.probs for t in found])
        counts = [t.n for t in found]
        if all(n is not None and n > 0 for n in counts):
            weights = np.asarray(counts, dtype=np.float64)
        else:
            weights = np.ones(len(found))
        pooled: FloatArray = weights @ stacked / weights.sum()
        return pooled

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.questions)} questions, {len(self.groups)} groups, "
            f"{len(self.targets)} (group, question) targets"
        )
