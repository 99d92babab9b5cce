"""Build the chat messages for one (question, group, steering, method, prompt mode).

Prompt modes:

* ``standard`` (default) shows options in the survey's own order (``Question.options``).
* ``paper`` shows them in the order the reference benchmark's prompts used
  (``Question.paper_options``: alphabetical for OpinionQA), with the paper's raw group labels.

Either way the built :class:`Prompt` records how displayed letters map back to the question's
canonical options, so predictions are always aligned by option, never by position.

Steering supplies the group and the few-shot content; the method supplies its own wording
(:class:`MethodWording`: an instruction and the format of an example answer). Steering never
imports methods: a :class:`distalign.methods.ExpressionMethod` is passed in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from distalign.data import Dataset, Group, Question, letters_for
from distalign.steering import templates as t
from distalign.steering.fewshot import Example, select_examples
from distalign.steering.orders import SURVEY, permute

Steering = Literal["none", "persona", "fewshot"]
PromptMode = Literal["standard", "paper"]
STEERINGS: tuple[str, ...] = ("none", "persona", "fewshot")
PROMPT_MODES: tuple[str, ...] = ("standard", "paper")


class MethodWording(Protocol):
    """What a prompt needs from an expression method (an ``ExpressionMethod`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def instruction(self) -> str:
        """What to answer and how; ``{n}``: the sequence length, ``{who}``: the group phrase."""
        ...

    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        """An answer in the method's format for a known distribution over A, B, ..."""
        ...

    def __hash__(self) -> int: ...  # format examples are remembered per method


@dataclass(frozen=True)
class Prompt:
    """Chat messages plus the letter ↔ option mapping they used."""

    messages: list[dict[str, str]]
    letters: list[str]
    order: list[int]  # order[i] = index in Question.options of the option shown as letters[i]
    template_version: int = t.TEMPLATE_VERSION
    examples: list[str] = field(default_factory=list)  # ids of few-shot examples shown
    option_texts: list[str] = field(default_factory=list)  # option text shown as letters[i]

    def to_canonical(self, probs: list[float] | tuple[float, ...]) -> list[float]:
        """Map a distribution over displayed letters onto the question's option order."""
        out = [0.0] * len(self.order)
        for shown, canonical in enumerate(self.order):
            out[canonical] = float(probs[shown])
        return out


def group_phrase(group: Group | None, mode: PromptMode) -> str:
    if group is None:
        return t.NOBODY
    if group.parts:  # a conjunction (the paper has none, so paper mode words it the same)
        return _conjunction_phrase(group.parts)
    if group.attribute == "COUNTRY":
        return f"people in {group.value}"
    if mode == "paper":
        return f'a group of "{group.value}s"'
    return t.GROUP_PHRASES.get((group.attribute, group.value), f"people with {group.key}")


def _conjunction_phrase(parts: tuple[tuple[str, str], ...]) -> str:
    """``Democrats who are women``; parts without a phrase follow as ``with AGE=18-29``."""
    known, unknown = [], []
    for attribute, value in parts:
        phrase = f"people in {value}" if attribute == "COUNTRY" else None
        phrase = phrase or t.GROUP_PHRASES.get((attribute, value))
        if phrase is None:
            unknown.append(f"{attribute}={value}")
        else:
            known.append(phrase)
    words = known[0] if known else "people"
    if len(known) > 1:
        words += " who are " + " and ".join(known[1:])
    if unknown:
        words += (", with " if len(known) > 1 else " with ") + " and ".join(unknown)
    return words


def displayed_order(question: Question, mode: PromptMode) -> list[int]:
    if mode == "paper" and question.paper_options is not None:
        return [question.options.index(o) for o in question.paper_options]
    return list(range(len(question.options)))


def question_block(question: Question, order: list[int], who: str | None) -> str:
    """The question text (with book details for NYT) and its lettered options."""
    lines = []
    if "title" in question.extra:
        lines.append(f"Book title: {question.extra['title']}")
        for key in ("author", "genre", "summary"):
            if question.extra.get(key):
                lines.append(f"Book {key}: {question.extra[key]}")
        subject = who if who else t.NYT_SUBJECT_NONE
        lines.append(f"Question: {t.NYT_QUESTION.format(subject=subject)}")
    else:
        lines.append(f"Question: {question.text}")
    for letter, index in zip(letters_for(len(order)), order, strict=True):
        lines.append(f"{letter}. {question.options[index]}")
    return "\n".join(lines)


def build_prompt(
    dataset: Dataset,
    question: Question,
    group: Group | None,
    steering: Steering,
    method: MethodWording,
    *,
    mode: PromptMode = "standard",
    n_sequence: int = 30,
    seed: int = 0,
    option_order: str = SURVEY,
) -> Prompt:
    """Messages asking ``method`` of the model for ``group`` under ``steering``.

    ``method`` is an expression method (``distalign.methods.get_method(name)``); a method
    name still works for now (see :func:`_wording`). ``option_order`` permutes the evaluated
    question's options (``distalign.steering.orders``; few-shot examples keep theirs).
    """
    if steering not in STEERINGS:
        raise ValueError(f"steering must be one of {STEERINGS}, got {steering!r}")
    if steering != "none" and group is None:
        raise ValueError(f"{steering} steering needs a group")
    who = group_phrase(group if steering != "none" else None, mode)
    order = permute(displayed_order(question, mode), option_order)
    instruction = method.instruction.format(n=n_sequence, who=who)
    examples: list[Example] = []
    if steering == "fewshot":
        assert group is not None
        examples = select_examples(dataset, question, group)
        body = _fewshot_body(examples, who, method, n_sequence, seed, mode)
        turn = t.YOUR_TURN_FEWSHOT.format(who=who)
        parts = [t.FEWSHOT_INTRO.format(who=who), instruction, body, turn]
    else:
        body = _format_examples(method, n_sequence, seed)
        turn = t.YOUR_TURN if steering == "none" else t.YOUR_TURN_GROUP.format(who=who)
        parts = [instruction, t.FORMAT_INTRO, body, turn]
    subject = None if steering == "none" else who
    parts += [question_block(question, order, subject), t.ANSWER_CUE]
    messages = [
        {"role": "system", "content": t.SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]
    letters = letters_for(len(order))
    return Prompt(
        messages,
        letters,
        order,
        examples=[e.question.id for e in examples],
        option_texts=[question.options[i] for i in order],
    )


def _example_answer(
    method: MethodWording, probs: NDArray[np.float64], n_sequence: int, rng: np.random.Generator
) -> str:
    """The method's example answer for a distribution, normalized to sum to 1 first."""
    p = np.asarray(probs, dtype=np.float64) / np.sum(probs)
    return method.example_answer(p, n_sequence, rng)


@functools.lru_cache(maxsize=64)
def _format_examples(method: MethodWording, n_sequence: int, seed: int) -> str:
    """Formatting examples: invented questions with random answers (format only).

    The same for every item of a run's method and seed, so made once (a grid has thousands).
    """
    rng = np.random.default_rng(seed)
    blocks = []
    for text, options in t.FORMAT_EXAMPLES:
        probs = rng.dirichlet(np.ones(len(options)))
        question = Question("example", text, tuple(options))
        shown = question_block(question, list(range(len(options))), None)
        answer = _example_answer(method, probs, n_sequence, rng)
        blocks.append(f"{shown}\n{t.ANSWER_CUE} {answer}")
    return "\n\n".join(blocks)


def _fewshot_body(
    examples: list[Example],
    who: str,
    method: MethodWording,
    n_sequence: int,
    seed: int,
    mode: PromptMode,
) -> str:
    rng = np.random.default_rng(seed)
    blocks = []
    for example in examples:
        order = displayed_order(example.question, mode)
        probs = example.probs[order]
        shares = ", ".join(
            f"{example.question.options[i]}: {p:.0%}" for i, p in zip(order, probs, strict=True)
        )
        context = t.DISTRIBUTION_CONTEXT.format(who=who, shares=shares)
        shown = question_block(example.question, order, who)
        answer = _example_answer(method, probs, n_sequence, rng)
        blocks.append(f"{context}\n{shown}\n{t.ANSWER_CUE} {answer}")
    return "\n\n------\n\n".join(blocks)
