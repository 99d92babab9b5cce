"""Steering: the prompt content (none, persona, few-shot) around an expression method's wording."""

from distalign.steering.fewshot import Example, select_examples, tfidf_neighbours
from distalign.steering.prompts import (
    PROMPT_MODES,
    STEERINGS,
    MethodWording,
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
    "MethodWording",
    "Prompt",
    "build_prompt",
    "group_phrase",
    "select_examples",
    "tfidf_neighbours",
]
