"""Log-p: next-token probabilities over the option letters ("A" and " A" pooled)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.backends.base import Capability
from distalign.engine import Call, ProbsCall
from distalign.methods.base import ExpressionMethod, drawn_letter
from distalign.methods.registry import register_label, register_method
from distalign.parsing import Parsed, check_letter_probs
from distalign.steering import Prompt


class LogP(ExpressionMethod):
    name = "logp"
    label = "Log-p"
    instruction = (
        "Answer the multiple-choice question below with a single letter: the answer {who} "
        "would most likely give. Reply with the letter only."
    )
    needs = (Capability.LOGPROBS,)
    retryable = False  # deterministic: asking again gives the same probabilities
    reports_covered_mass = True

    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        return drawn_letter(probs, rng)

    def calls(self, prompt: Prompt, seed: int, attempt: int) -> list[Call]:
        return [ProbsCall(tuple(prompt.letters))]

    def parse(self, prompt: Prompt, responses: Sequence[Any]) -> Parsed:
        (response,) = responses
        # a server's NaN, a repeated token or a mass above 1 is a failure, never a score
        return check_letter_probs(response["probs"], response["covered_mass"], prompt.letters)


register_method(LogP.name, LogP)
# Log-p after temperature scaling: computed from Log-p results, never run on its own
register_label("ts_logp", "TS-Log-p")
