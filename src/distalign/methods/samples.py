"""Samples: N independent single-letter answers at temperature 1 (not in the paper)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.backends.base import Capability
from distalign.engine import Call, GenerateCall
from distalign.methods.base import ExpressionMethod, drawn_letter
from distalign.methods.registry import register_method
from distalign.parsing import Parsed, parse_single_letter, samples_distribution
from distalign.steering import Prompt


class Samples(ExpressionMethod):
    name = "samples"
    label = "Samples"
    instruction = (
        "Answer the multiple-choice question below as one randomly chosen member of {who} "
        "would. Reply with a single letter only."
    )
    needs = (Capability.GENERATE,)
    # Invalid and lost samples are counted, not redrawn: excluding them already conditions on
    # a valid answer, and the item fails below the parser's minimum share of valid samples.
    retryable = False
    tolerates_lost_calls = True

    def __init__(self, n: int = 30) -> None:
        super().__init__(n)
        self._made: dict[tuple[Any, ...], tuple[Call, ...]] = {}

    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        return drawn_letter(probs, rng)

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        shape = self._letters_call(prompt, 1)
        key = (self.n, seed, attempt, *sorted(shape.items()))
        if key not in self._made:  # the same N calls for every item of a seed and letters
            self._made[key] = tuple(
                GenerateCall(
                    seed=self._seed(seed, attempt, sample),
                    sample=sample,  # 30 samples are 30 cache entries, never one
                    **shape,
                )
                for sample in range(self.n)
            )
        return list(self._made[key])

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        options = prompt.option_texts or None
        answers = [
            None if r is None else parse_single_letter(str(r["text"]), prompt.letters, options)
            for r in responses
        ]
        return samples_distribution(answers, prompt.letters)


register_method(Samples.name, Samples)
