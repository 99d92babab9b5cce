"""The canonical in-memory form of a survey dataset.

Every loader (reference datasets or a user's own file) produces a :class:`Dataset`:
questions with lettered options, groups (attribute + value), and for each (group, question)
a :class:`Target` — the group's answer distribution over the question's options, aligned to
``Question.options`` and with the respondent count when it is known.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

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
    """A demographic group: an attribute and one of its values (``POLPARTY=Democrat``), or a
    conjunction of several (``POLPARTY=Democrat&SEX=Female``; build it with :meth:`of` or
    :meth:`parse`).

    A conjunction keeps its (attribute, value) pairs in ``parts``, sorted by attribute, and
    joins them with ``&`` in ``attribute`` (``POLPARTY&SEX``) and ``value``
    (``Democrat&Female``). So the groups over the same attributes share an ``attribute``, and
    code that compares the values of one attribute (population and other-group baselines)
    treats the cells of party × sex the same way. A single-attribute group has ``parts == ()``.
    """

    attribute: str
    value: str
    parts: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.parts:
            return
        attributes = [a for a, _ in self.parts]
        if (
            len(self.parts) < 2
            or attributes != sorted(set(attributes))
            or self.attribute != "&".join(attributes)
            or self.value != "&".join(v for _, v in self.parts)
        ):
            raise ValueError(f"inconsistent conjunction {self.parts!r}; build it with Group.of")

    @classmethod
    def of(cls, parts: Iterable[tuple[str, str]]) -> Group:
        """The group of every (attribute, value) pair: a plain group for one pair."""
        ordered = sorted(parts)
        attributes = [a for a, _ in ordered]
        if not ordered:
            raise ValueError("a group needs at least one ATTRIBUTE=value")
        repeated = sorted({a for a in attributes if attributes.count(a) > 1})
        if repeated:
            raise ValueError(f"a conjunction names each attribute once; repeated: {repeated}")
        for attribute, value in ordered:
            if not attribute or not value or "=" in attribute or "&" in attribute:
                raise ValueError(f"bad group part {attribute}={value!r}")
        if len(ordered) == 1:
            return cls(*ordered[0])
        return cls("&".join(attributes), "&".join(v for _, v in ordered), tuple(ordered))

    @property
    def conditions(self) -> tuple[tuple[str, str], ...]:
        """The (attribute, value) pairs a respondent must match: one for a plain group."""
        return self.parts or ((self.attribute, self.value),)

    @functools.cached_property
    def key(self) -> str:  # cached: looked up for every target of every item
        return "&".join(f"{a}={v}" for a, v in self.conditions)

    @classmethod
    def parse(cls, key: str) -> Group:
        """``ATTRIBUTE=value``, or a conjunction ``A=x&B=y`` (in any order; stored sorted).

        An ``&`` starts a new part only when ``NAME=`` follows it, so a value such as
        ``Bosnia & Herzegovina`` stays whole.
        """
        pieces = _CONJUNCTION.split(key)
        if len(pieces) == 1:
            attribute, sep, value = key.partition("=")
            if not sep or not attribute or not value:
                raise ValueError(f"group key must look like ATTRIBUTE=value, got {key!r}")
            return cls(attribute, value)
        parts = []
        for piece in pieces:
            attribute, sep, value = piece.partition("=")
            if not sep or not attribute or not value:
                raise ValueError(
                    f"group key must look like ATTRIBUTE=value or A=x&B=y, got {key!r}"
                )
            parts.append((attribute, value))
        return cls.of(parts)

    def __str__(self) -> str:
        return self.key


_CONJUNCTION = re.compile(r"&(?=[^&=]+=)")


class GroupSource(Protocol):
    """Targets for groups a dataset does not list up front (microdata: any conjunction)."""

    def family(self, group: Group) -> dict[Group, dict[str, Target]]:
        """Every group over ``group``'s attributes that has targets (``group`` among them
        when it has any), with its targets by question id; empty for unknown attributes."""
        ...


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
    ``microdata``, for datasets built from individual responses, builds the targets of
    groups not listed in ``groups`` (conjunctions) when they are first asked for.
    """

    name: str
    questions: dict[str, Question]
    groups: list[Group]
    targets: dict[tuple[str, str], Target]
    source: str = ""
    similar: dict[str, list[str]] = field(default_factory=dict)
    pool: Dataset | None = None
    notes: list[str] = field(default_factory=list)
    microdata: GroupSource | None = None
    _resolved: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def target(self, group: Group | str, question_id: str) -> Target | None:
        key = group.key if isinstance(group, Group) else group
        found = self.targets.get((key, question_id))
        if found is None and self.microdata is not None:
            try:
                parsed = group if isinstance(group, Group) else Group.parse(key)
            except ValueError:
                return None
            if parsed.key not in self._resolved:
                self._resolve(parsed)
            found = self.targets.get((parsed.key, question_id))
        return found

    def has_group(self, group: Group) -> bool:
        """Whether ``group`` is listed, or (with microdata) can be built from respondents.

        A group built from microdata is added to ``groups`` together with the other groups
        over the same attributes (so ``POLPARTY=Democrat&SEX=Female`` brings every party ×
        sex cell), and its targets to ``targets``.
        """
        if group in self.groups:
            return True
        if self.microdata is not None and group.key not in self._resolved:
            self._resolve(group)
        return group in self.groups

    def _resolve(self, group: Group) -> None:
        self._resolved.add(group.key)
        if self.microdata is None or group in self.groups:
            return
        for member, targets in self.microdata.family(group).items():
            self._resolved.add(member.key)
            if member in self.groups:
                continue
            self.groups.append(member)
            self.targets.update({(member.key, qid): t for qid, t in targets.items()})

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
