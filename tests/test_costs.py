"""The price table, cost arithmetic and the token estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from distalign.costs import (
    DEFAULT_PRICES,
    Price,
    cost,
    estimate_tokens,
    find_price,
    load_prices,
    usage_cost,
)


@pytest.mark.parametrize(
    ("model", "entry"),
    [
        ("gpt-4o", "gpt-4o"),
        ("openai:gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # an exact entry beats the family
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("anthropic:claude-3-opus-20240229", "claude-3-opus"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ],
)
def test_model_names_find_their_price(model: str, entry: str) -> None:
    assert find_price(model) == DEFAULT_PRICES[entry]


@pytest.mark.parametrize("model", ["SmolLM2-135M-Instruct", "claude-opus-4-5", "gpt-4omega"])
def test_unknown_or_newer_models_have_no_price(model: str) -> None:
    assert find_price(model) is None
    assert cost(model, 1000, 1000) is None


def test_cost_is_per_million_tokens() -> None:
    # claude-3-opus: 15 USD per 1M in, 75 USD per 1M out
    assert cost("claude-3-opus-20240229", 2_000, 1_000) == pytest.approx(0.03 + 0.075)
    assert cost("my-model", 10, 10, prices={"my-model": Price(1.0, 2.0)}) == pytest.approx(3e-5)


@pytest.mark.parametrize(
    ("model", "read", "write"),
    [
        # Anthropic: reads 0.1x, 5-minute writes 1.25x the input price
        ("claude-3-opus-20240229", 1.50, 18.75),
        ("claude-3-5-sonnet-latest", 0.30, 3.75),
        ("claude-3-5-haiku-20241022", 0.08, 1.00),
        ("claude-3-haiku-20240307", 0.03, 0.30),  # published, rounded off the rule
        # OpenAI: the cached-input price; writing costs nothing extra
        ("gpt-4o-2024-08-06", 1.25, None),
        ("gpt-4o-mini", 0.075, None),
        ("gpt-4.1-nano", 0.025, None),
        ("gpt-4", None, None),  # no cached-input price: cached tokens cost plain input
    ],
)
def test_cache_prices(model: str, read: float | None, write: float | None) -> None:
    price = find_price(model)
    assert price is not None
    assert price.cache_read == pytest.approx(read)
    assert price.cache_write == pytest.approx(write)


def test_cached_prompt_tokens_cost_their_own_price() -> None:
    # claude-3-opus: 15 in, 75 out, 1.50 cache read, 18.75 cache write (USD per 1M)
    usage = {
        "prompt_tokens": 10_000,  # all of them: 1,000 plain, 3,000 written, 6,000 read
        "completion_tokens": 100,
        "cache_write_tokens": 3_000,
        "cache_read_tokens": 6_000,
    }
    expected = (1_000 * 15 + 3_000 * 18.75 + 6_000 * 1.50 + 100 * 75) / 1e6
    assert usage_cost("claude-3-opus-20240229", usage) == pytest.approx(expected)
    assert cost(
        "claude-3-opus", 10_000, 100, cache_read_tokens=6_000, cache_write_tokens=3_000
    ) == pytest.approx(expected)
    # gpt-4o: 2.50 in, 1.25 cached, 10 out; no write price: written tokens are plain input
    gpt = {"prompt_tokens": 2_000, "completion_tokens": 10, "cache_read_tokens": 1_024}
    expected = (976 * 2.50 + 1_024 * 1.25 + 10 * 10.00) / 1e6
    assert usage_cost("openai:gpt-4o", gpt) == pytest.approx(expected)
    assert usage_cost("gpt-4", gpt) == cost("gpt-4", 2_000, 10)


def test_usage_without_cache_counts_costs_as_before() -> None:
    plain = {"prompt_tokens": 2_000, "completion_tokens": 1_000}
    assert usage_cost("claude-3-opus", plain) == cost("claude-3-opus", 2_000, 1_000)
    nones = {**plain, "cache_read_tokens": None, "cache_write_tokens": None}
    assert usage_cost("claude-3-opus", nones) == cost("claude-3-opus", 2_000, 1_000)
    assert usage_cost("claude-3-opus", {"prompt_tokens": None, "completion_tokens": None}) is None
    assert usage_cost("my-local-model", plain) is None
    # counts that disagree (more cached than sent) never make a cost negative
    odd = {"prompt_tokens": 10, "completion_tokens": 0, "cache_read_tokens": 1_000}
    assert usage_cost("gpt-4o", odd) == pytest.approx(1_000 * 1.25 / 1e6)


def test_a_price_file_overrides_and_extends_the_table(tmp_path: Path) -> None:
    toml = tmp_path / "prices.toml"
    toml.write_text(
        '[gpt-4o]\ninput = 1.0\noutput = 4.0\n\n["Llama-3-70B"]\ninput = 0.5\noutput = 0.5\n'
    )
    prices = load_prices(toml)
    assert find_price("gpt-4o-2024-08-06", prices) == Price(1.0, 4.0)
    assert find_price("llama-3-70b", prices) == Price(0.5, 0.5)
    assert find_price("claude-3-haiku", prices) == DEFAULT_PRICES["claude-3-haiku"]
    as_json = tmp_path / "prices.json"
    as_json.write_text('{"my-model": {"input": 1, "output": 2, "cache_read": 0.1}}')
    assert load_prices(as_json)["my-model"] == Price(1.0, 2.0, cache_read=0.1)
    as_json.write_text('{"gpt-4o": {"input": 2}}')
    with pytest.raises(ValueError, match="'input' and 'output'"):
        load_prices(as_json)
    as_json.write_text('{"gpt-4o": 2.5}')
    with pytest.raises(ValueError, match="'input' and 'output'"):
        load_prices(as_json)


def test_token_estimate_is_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100
