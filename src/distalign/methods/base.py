"""The interface every expression method implements, and helpers the built-in ones share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.backends.base import Backend, Capability
from distalign.data import letters_for
from distalign.engine import Call
from distalign.parsing import Parsed
from distalign.steering import Prompt


class ExpressionMethod(ABC):
    """How a model expresses a distribution over answer letters.

    A subclass holds everything about one method: the wording that asks for it, the format of
    its example answers, the calls it makes and how it reads their replies. An instance
    satisfies :class:`distalign.steering.MethodWording`, so it is what ``build_prompt`` takes.
    """

    name: str = ""  # the name configs and result tables use
    label: str = ""  # the name figures and tables show
    # What the method asks of the model; ``{n}`` is the sequence length, ``{who}`` the group
    # phrase (literal braces doubled). The rendered messages are part of every cache key, so
    # a change here never reuses replies to the old wording.
    instruction: str = ""
    needs: tuple[Capability, ...] = ()
    retryable: bool = True  # a malformed output is worth asking again
    # True: ``parse`` gets ``None`` for a call that failed for good and may still succeed
    # (one lost sample of 30 does not void a Samples item); False: any lost call voids it.
    tolerates_lost_calls: bool = False
    # True: the parsed ``raw_sum`` is the probability mass the option letters covered, which
    # result tables keep as ``covered_mass`` (Log-p).
    reports_covered_mass: bool = False

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

    @abstractmethod
    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        """An answer in this method's format for a known distribution (prompt examples).

        ``probs`` sums to 1 over the letters A, B, ...; ``n`` is the sequence length.
        """

    @abstractmethod
    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        """What to ask the backend for one attempt at one prompt."""

    @abstractmethod
    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        """Read the responses of one attempt (``None`` for a lost call, see above)."""

    def _seed(self, seed: int, attempt: int, sample: int = 0) -> int | None:
        return generation_seed(seed, attempt, sample) if Capability.SEED in self.caps else None

    def _letters_call(self, prompt: Prompt, length: int) -> dict[str, Any]:
        if Capability.LETTER_GRAMMAR in self.caps:
            return {"letters": tuple(prompt.letters), "length": length}
        # unconstrained: room for separators and a little stray text, parsed robustly
        return {"max_tokens": 4 * length + 16}


def generation_seed(seed: int, attempt: int, sample: int = 0) -> int:
    # independent, reproducible seeds for each retry and each sample
    return (seed * 1_000_003 + attempt * 10_007 + sample) % (2**31 - 1)


def drawn_letter(probs: NDArray[np.float64], rng: np.random.Generator) -> str:
    """One letter drawn from ``probs``: the example answer of single-letter methods."""
    return str(rng.choice(letters_for(len(probs)), p=probs))
