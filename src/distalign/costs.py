"""Token prices and rough token counts, for cost accounting and ``--dry-run`` estimates.

``DEFAULT_PRICES`` holds list prices in USD per million tokens (input, output) for common API
models, as published on OpenAI's and Anthropic's pricing pages; compiled in June 2025. Prices
change and batch or cached-input discounts are not modelled: check them before relying on a
figure, and override them with a file of your own (:func:`load_prices`), TOML or JSON::

    # prices.toml
    [gpt-4o]
    input = 2.5    # USD per 1M prompt tokens
    output = 10.0  # USD per 1M completion tokens

A model name matches a table entry that it equals, or that it extends by a snapshot suffix: a
date or a number ("gpt-4o-2024-08-06", "gpt-4-0613", "claude-3-opus-20240229"), "latest" or
"preview". A newer model that merely starts like an entry ("claude-opus-4-5") does not match:
its price may differ. Local models and unknown names have no price: :func:`cost` returns None,
never a guess.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float


PRICES_DATE = "2025-06"

DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),  # the paper's GPT-4
    "gpt-4-32k": Price(60.00, 120.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),  # the paper's GPT-3.5
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    # Anthropic
    "claude-3-opus": Price(15.00, 75.00),  # the paper's Claude 3 Opus
    "claude-3-sonnet": Price(3.00, 15.00),
    "claude-3-haiku": Price(0.25, 1.25),  # the paper's Claude 3 Haiku
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
}

CHARS_PER_TOKEN = 4

# what may follow a table entry in a model name: a snapshot date or number, "latest", "preview"
_SNAPSHOT = re.compile(r"-(\d{4}|\d{8}|\d{4}-\d{2}-\d{2}|latest|preview)")


def estimate_tokens(text: str) -> int:
    """A rough token count: one token per 4 characters, rounded up.

    4 characters per token is OpenAI's rule of thumb for English text with its tokenizers;
    expect about ±30 % on survey prompts, more for other languages or digits. Good enough for
    a ``--dry-run`` budget, not for billing (the API's reported usage is used for that).
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def find_price(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of a model name or spec ("gpt-4o", "openai:gpt-4o-2024-08-06"), or None."""
    table = DEFAULT_PRICES if prices is None else prices
    name = model.split(":", 1)[-1].split("@", 1)[0].strip().lower()  # drop "openai:" and "@URL"
    if name in table:
        return table[name]
    for key in sorted(table, key=len, reverse=True):
        if name.startswith(key) and _SNAPSHOT.fullmatch(name[len(key) :]):
            return table[key]
    return None


def cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, Price] | None = None,
) -> float | None:
    """USD for the tokens at the model's price; None for a model without a price."""
    price = find_price(model, prices)
    if price is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


def load_prices(path: str | Path, base: Mapping[str, Price] | None = None) -> dict[str, Price]:
    """``base`` (default: the built-in table) updated with the prices in a TOML or JSON file.

    The file maps model names to ``{"input": USD per 1M, "output": USD per 1M}``.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    table = dict(DEFAULT_PRICES if base is None else base)
    for model, entry in data.items():
        try:
            table[model.lower()] = Price(float(entry["input"]), float(entry["output"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{file}: the price of {model!r} needs numbers 'input' and 'output' "
                f"(USD per 1M tokens), got {entry!r}"
            ) from error
    return table
