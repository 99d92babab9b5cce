"""Argmax: a method defined in this one file, the way docs/methods.md says to add one.

The model names the answer its group would most often give, in one greedy generation; the
prediction puts all the probability on that letter. Importing this file registers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.backends.base import Capability
from distalign.data import letters_for
from distalign.engine import Call, GenerateCall
from distalign.methods import ExpressionMethod, register_method
from distalign.parsing import Parsed, parse_single_letter
from distalign.steering import Prompt


class Argmax(ExpressionMethod):
    name = "argmax"
    label = "Argmax"
    instruction = (
        "Which single answer to the multiple-choice question below would {who} give most "
        "often? Reply with that one option letter only."
    )
    needs = (Capability.GENERATE,)
    retryable = False  # greedy: asking again gives the same answer

    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        return letters_for(len(probs))[int(np.argmax(probs))]

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        return [GenerateCall(temperature=0.0, **self._letters_call(prompt, 1))]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        text = str(responses[0]["text"])
        letter = parse_single_letter(text, prompt.letters, prompt.option_texts or None)
        if letter is None:
            return Parsed.failure(f"not one option letter: {text[:40]!r}")
        probs = [float(shown == letter) for shown in prompt.letters]
        return Parsed.success(probs, f"argmax {letter}", raw_sum=1.0)


register_method(Argmax.name, Argmax)
