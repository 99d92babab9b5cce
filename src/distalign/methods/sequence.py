"""Sequence: one generation of N letters (letters-only constrained where the backend can)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.backends.base import Capability
from distalign.data import letters_for
from distalign.engine import Call, GenerateCall
from distalign.methods.base import ExpressionMethod
from distalign.methods.registry import register_method
from distalign.parsing import Parsed, parse_sequence
from distalign.steering import Prompt


class Sequence_(ExpressionMethod):  # the underscore keeps collections.abc.Sequence free
    name = "sequence"
    label = "Sequence"
    instruction = (
        "Simulate {n} independent answers to the multiple-choice question below, as {n} "
        "randomly chosen members of {who} would give them. Reply with exactly {n} option "
        "letters and nothing else."
    )
    needs = (Capability.GENERATE,)

    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        return "".join(rng.choice(letters_for(len(probs)), size=n, p=probs))

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        return [GenerateCall(seed=self._seed(seed, attempt), **self._letters_call(prompt, self.n))]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        return parse_sequence(str(responses[0]["text"]), prompt.letters, n_expected=self.n)


register_method(Sequence_.name, Sequence_)
