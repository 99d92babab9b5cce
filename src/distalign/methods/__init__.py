"""Expression methods: what to ask the backend for, and how to read its answer.

Each method turns a :class:`~distalign.steering.Prompt` into one or more backend
:class:`Call` s (plain JSON-able dicts, so they can be hashed into cache keys) and parses the
backend's responses into a :class:`~distalign.parsing.Parsed` distribution over the prompt's
letters. Register a new method with :func:`register_method`.

* ``logp``: next-token probabilities over the option letters ("A" and " A" pooled).
* ``sequence``: one generation of N letters (letters-only constrained where the backend can).
* ``verbalize``: one JSON object letter -> probability (JSON-schema constrained where it can).
* ``samples``: N independent single-letter answers at temperature 1 (not in the paper).
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from distalign.backends.base import Backend, Capability
from distalign.engine import Call, GenerateCall, ProbsCall, schema_text
from distalign.errors import UnknownNameError
from distalign.parsing import (
    Parsed,
    check_letter_probs,
    parse_sequence,
    parse_single_letter,
    parse_verbalized,
    samples_distribution,
)
from distalign.steering import Prompt


class ExpressionMethod(ABC):
    """How a model expresses a distribution over answer letters."""

    name: str = ""
    needs: tuple[Capability, ...] = ()
    retryable: bool = True  # a malformed output is worth asking again
    # True: ``parse`` gets ``None`` for a call that failed for good and may still succeed
    # (one lost sample of 30 does not void a Samples item); False: any lost call voids it.
    tolerates_lost_calls: bool = False

    def __init__(self, n: int = 30) -> None:
        self.n = n
        self.caps: frozenset[Capability] = frozenset()

    def check(self, backend: Backend) -> None:
        """Fail before any request if the backend lacks a capability this method needs.

        Also records what the backend can do, so calls use constrained decoding and seeds
        where the backend has them and fall back to plain prompting where it does not.
        """
        backend.require(*self.needs, purpose=f"the {self.name} method")
        self.caps = backend.capabilities

    def _seed(self, seed: int, attempt: int, sample: int = 0) -> int | None:
        return _generation_seed(seed, attempt, sample) if Capability.SEED in self.caps else None

    def _letters_call(self, prompt: Prompt, length: int) -> dict[str, Any]:
        if Capability.LETTER_GRAMMAR in self.caps:
            return {"letters": tuple(prompt.letters), "length": length}
        # unconstrained: room for separators and a little stray text, parsed robustly
        return {"max_tokens": 4 * length + 16}

    @abstractmethod
    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]: ...

    @abstractmethod
    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        """Read the responses of one attempt (``None`` for a lost call, see above)."""


def _generation_seed(seed: int, attempt: int, sample: int = 0) -> int:
    # independent, reproducible seeds for each retry and each sample
    return (seed * 1_000_003 + attempt * 10_007 + sample) % (2**31 - 1)


class LogP(ExpressionMethod):
    name = "logp"
    needs = (Capability.LOGPROBS,)
    retryable = False  # deterministic: asking again gives the same probabilities

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        return [ProbsCall(tuple(prompt.letters))]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        (response,) = responses
        # a server's NaN, a repeated token or a mass above 1 is a failure, never a score
        return check_letter_probs(response["probs"], response["covered_mass"], prompt.letters)


class Sequence_(ExpressionMethod):
    name = "sequence"
    needs = (Capability.GENERATE,)

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        return [GenerateCall(seed=self._seed(seed, attempt), **self._letters_call(prompt, self.n))]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        return parse_sequence(str(responses[0]["text"]), prompt.letters, n_expected=self.n)


class Verbalize(ExpressionMethod):
    name = "verbalize"
    needs = (Capability.GENERATE,)

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        schema = {
            "type": "object",
            "properties": {letter: {"type": "number"} for letter in prompt.letters},
            "required": list(prompt.letters),
            "additionalProperties": False,
        }
        if Capability.JSON_SCHEMA in self.caps:
            constraint: dict[str, Any] = {
                "json_schema": schema_text(schema),
                "max_tokens": 16 + 12 * len(prompt.letters),
            }
        else:  # prompt-only: leave room for a preamble the parser skips
            constraint = {"max_tokens": 256}
        return [GenerateCall(seed=self._seed(seed, attempt), **constraint)]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        return parse_verbalized(str(responses[0]["text"]), prompt.letters)


class Samples(ExpressionMethod):
    name = "samples"
    needs = (Capability.GENERATE,)
    # Invalid and lost samples are counted, not redrawn: excluding them already conditions on
    # a valid answer, and the item fails below the parser's minimum share of valid samples.
    retryable = False
    tolerates_lost_calls = True

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        return [
            GenerateCall(
                seed=self._seed(seed, attempt, sample),
                sample=sample,  # 30 samples are 30 cache entries, never one
                **self._letters_call(prompt, 1),
            )
            for sample in range(self.n)
        ]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        options = prompt.option_texts or None
        answers = [
            None if r is None else parse_single_letter(str(r["text"]), prompt.letters, options)
            for r in responses
        ]
        return samples_distribution(answers, prompt.letters)


_METHODS: dict[str, Callable[..., ExpressionMethod]] = {}


def register_method(name: str, factory: Callable[..., ExpressionMethod]) -> None:
    _METHODS[name] = factory


def get_method(name: str, n: int = 30) -> ExpressionMethod:
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown method {name!r}; known: {', '.join(_METHODS)}.{hint}")
    return _METHODS[name](n=n)


def available_methods() -> list[str]:
    return list(_METHODS)


for _cls in (LogP, Sequence_, Verbalize, Samples):
    register_method(_cls.name, _cls)
