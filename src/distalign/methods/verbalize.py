"""Verbalize: one JSON object letter -> probability (JSON-schema constrained where it can)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from distalign.backends.base import Capability
from distalign.data import letters_for
from distalign.engine import Call, GenerateCall, schema_text
from distalign.methods.base import ExpressionMethod
from distalign.methods.registry import register_method
from distalign.parsing import Parsed, parse_verbalized
from distalign.steering import Prompt


class Verbalize(ExpressionMethod):
    name = "verbalize"
    label = "Verbalize"
    instruction = (
        "Estimate how {who} would answer the multiple-choice question below: give the share "
        "of that group choosing each option. Reply only with a JSON object that maps each "
        'option letter to a probability between 0 and 1, e.g. {{"A": <probability>, ...}}. '
        "The probabilities must sum to 1. No other text."
    )
    needs = (Capability.GENERATE,)

    def example_answer(self, probs: NDArray[np.float64], n: int, rng: np.random.Generator) -> str:
        letters = letters_for(len(probs))
        return json.dumps(
            {letter: round(float(v), 2) for letter, v in zip(letters, probs, strict=True)}
        )

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


register_method(Verbalize.name, Verbalize)
