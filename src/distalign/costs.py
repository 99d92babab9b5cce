"""Token prices and rough token counts, for cost accounting and ``--dry-run`` estimates.

``DEFAULT_PRICES`` holds list prices in USD per million tokens (input, output, and where the
provider has them the prompt-cache prices) for common API models, as published on OpenAI's and
Anthropic's pricing pages; compiled in June 2025. Prices change and batch discounts are not
modelled: check them before relying on a figure, and override them with a file of your own
(:func:`load_prices`), TOML or JSON::

    # prices.toml
    [gpt-4o]
    input = 2.5         # USD per 1M prompt tokens
    output = 10.0       # USD per 1M completion tokens
    cache_read = 1.25   # optional: USD per 1M prompt tokens read from the prompt cache
    cache_write = 2.5   # optional: USD per 1M prompt tokens written to it

Prompt caching (see ``docs/backends.md``): ``prompt_tokens`` counts every prompt token; the
parts of them read from / written to the provider's prompt cache (``cache_read_tokens``,
``cache_write_tokens``) are billed at ``cache_read`` / ``cache_write`` instead of ``input``.
Anthropic: reads 0.1x and (5-minute) writes 1.25x the input price. OpenAI caches long prompts
automatically: cached tokens at the model's cached-input price, writes at no extra charge. A
price without a cache price bills those tokens as plain input.

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
    cache_read: float | None = None  # prompt tokens read from the prompt cache; None: input
    cache_write: float | None = None  # prompt tokens written to the prompt cache; None: input


def _claude(input: float, output: float) -> Price:
    # Anthropic's rule: cache reads 0.1x, 5-minute cache writes 1.25x the input price
    return Price(
        input, output, cache_read=round(input * 0.1, 6), cache_write=round(input * 1.25, 6)
    )


PRICES_DATE = "2025-06"

DEFAULT_PRICES: dict[str, Price] = {
    # OpenAI (cache_read: the "cached input" price, for models that have one)
    "gpt-4o": Price(2.50, 10.00, cache_read=1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),  # the first gpt-4o snapshot kept its launch price
    "gpt-4o-mini": Price(0.15, 0.60, cache_read=0.075),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),  # the paper's GPT-4
    "gpt-4-32k": Price(60.00, 120.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),  # the paper's GPT-3.5
    "gpt-4.1": Price(2.00, 8.00, cache_read=0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, cache_read=0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, cache_read=0.025),
    # Anthropic
    "claude-3-opus": _claude(15.00, 75.00),  # the paper's Claude 3 Opus
    "claude-3-sonnet": _claude(3.00, 15.00),
    # the paper's Claude 3 Haiku; its published cache prices are rounded off the rule
    "claude-3-haiku": Price(0.25, 1.25, cache_read=0.03, cache_write=0.30),
    "claude-3-5-sonnet": _claude(3.00, 15.00),
    "claude-3-5-haiku": _claude(0.80, 4.00),
    "claude-3-7-sonnet": _claude(3.00, 15.00),
    "claude-sonnet-4": _claude(3.00, 15.00),
    "claude-opus-4": _claude(15.00, 75.00),
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
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> float | None:
    """USD for the tokens at the model's price; None for a model without a price.

    ``prompt_tokens`` counts every prompt token; ``cache_read_tokens`` and
    ``cache_write_tokens`` are the parts of them the provider's prompt cache read or wrote,
    billed at the cache prices (plain input where the price has none).
    """
    price = find_price(model, prices)
    if price is None:
        return None
    read = _cache_price(price.cache_read, price.input)
    write = _cache_price(price.cache_write, price.input)
    # a provider's counts that disagree (more cached than sent) never make a cost negative
    plain = max(0, prompt_tokens - cache_read_tokens - cache_write_tokens)
    total = (
        plain * price.input
        + cache_read_tokens * read
        + cache_write_tokens * write
        + completion_tokens * price.output
    )
    return total / 1_000_000


_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")


def usage_cost(
    model: str,
    usage: Mapping[str, int | None],
    prices: Mapping[str, Price] | None = None,
) -> float | None:
    """USD for a usage record, e.g. the ``usage`` a cache entry stores; None without a price.

    ``usage`` holds ``prompt_tokens`` and ``completion_tokens`` and, optionally,
    ``cache_read_tokens`` and ``cache_write_tokens`` (see :func:`cost`); missing or None
    counts are 0. A record with no counts at all costs None: nothing is known.
    """
    counts = {name: usage.get(name) for name in _USAGE_FIELDS}
    if all(value is None for value in counts.values()):
        return None
    prompt, completion, read, write = (int(counts[name] or 0) for name in _USAGE_FIELDS)
    return cost(model, prompt, completion, prices, cache_read_tokens=read, cache_write_tokens=write)


def _cache_price(price: float | None, input: float) -> float:
    return input if price is None else price


def load_prices(path: str | Path, base: Mapping[str, Price] | None = None) -> dict[str, Price]:
    """``base`` (default: the built-in table) updated with the prices in a TOML or JSON file.

    The file maps model names to ``{"input": USD per 1M, "output": USD per 1M}``, optionally
    with ``"cache_read"`` and ``"cache_write"`` (USD per 1M prompt tokens read from / written
    to the prompt cache).
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    table = dict(DEFAULT_PRICES if base is None else base)
    for model, entry in data.items():
        try:
            table[model.lower()] = _price(entry)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{file}: the price of {model!r} needs numbers 'input' and 'output' "
                f"(USD per 1M tokens; 'cache_read' and 'cache_write' are optional), "
                f"got {entry!r}"
            ) from error
    return table


def _price(entry: object) -> Price:
    if not isinstance(entry, Mapping):
        raise TypeError(f"not a table: {entry!r}")
    cache = {k: float(entry[k]) for k in ("cache_read", "cache_write") if entry.get(k) is not None}
    return Price(float(entry["input"]), float(entry["output"]), **cache)
