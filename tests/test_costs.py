"""The price table, cost arithmetic and the token estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from distalign.costs import DEFAULT_PRICES, Price, cost, estimate_tokens, find_price, load_prices


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
    as_json.write_text('{"gpt-4o": {"input": 2}}')
    with pytest.raises(ValueError, match="'input' and 'output'"):
        load_prices(as_json)


def test_token_estimate_is_four_characters_per_token() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100
