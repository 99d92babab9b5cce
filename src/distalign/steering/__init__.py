"""Steering: the prompt content (none, persona, few-shot) for each expression method."""

from distalign.steering.fewshot import Example, select_examples, tfidf_neighbours
from distalign.steering.prompts import (
    PROMPT_MODES,
    STEERINGS,
    Prompt,
    build_prompt,
    group_phrase,
)
from distalign.steering.templates import TEMPLATE_VERSION

__all__ = [
    "PROMPT_MODES",
    "STEERINGS",
    "TEMPLATE_VERSION",
    "Example",
    "Prompt",
    "build_prompt",
    "group_phrase",
    "select_examples",
    "tfidf_neighbours",
]
