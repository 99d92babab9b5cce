"""The biased-coin / biased-die toy: on the real embedded model, a small grid, and by hand."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from distalign.backends import (
    Backend,
    BackendIdentity,
    Capability,
    GenerationRequest,
    Message,
    NextTokenProbs,
    get_backend,
)
from distalign.cli.toy import toy_app
from distalign.store import ResponseCache
from distalign.toy import (
    ToyResult,
    calibration,
    mean_abs_error,
    parse_responses,
    run_experiment,
)
from distalign.toy_experiments import COIN, DIE, EXPERIMENTS, TOY_METHODS, build_messages

SMALL_COIN = dataclasses.replace(
    COIN, targets=tuple(t for t in COIN.targets if t.label in {"p=0.1", "p=0.5", "p=0.9"})
)
REPEATS, N = 2, 10


class CountingBackend(Backend):
    """Passes every call on to a real backend and counts the calls."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def identity(self) -> BackendIdentity:
        return self.inner.identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.inner.capabilities

    def _next_token_probs(
        self, messages: Sequence[Message], candidates: list[str]
    ) -> NextTokenProbs:
        self.calls += 1
        return self.inner.next_token_probs(messages, candidates)

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        self.calls += 1
        return self.inner.generate(
            messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
            n=request.n,
            json_schema=request.json_schema,
            letters=request.letters,
            length=request.length,
            stop=request.stop,
        )


@pytest.fixture(scope="module")
def model() -> Iterator[CountingBackend]:
    with get_backend("embedded") as backend:
        yield CountingBackend(backend)


@pytest.fixture(scope="module")
def coin_run(
    model: CountingBackend, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, ToyResult]:
    cache_path = tmp_path_factory.mktemp("toy") / "cache.sqlite"
    before = model.calls
    with ResponseCache(cache_path) as cache:
        result = run_experiment(SMALL_COIN, model, cache, repeats=REPEATS, n=N)
    # 3 targets x (1 Log-p + 2 Sequence + 2 Verbalize + 2 x 10 Samples)
    assert model.calls - before == result.stats.calls_sent == 3 * (1 + 2 + 2 + 2 * N)
    return cache_path, result


def test_table_has_every_method_and_stated_p(coin_run: tuple[Path, ToyResult]) -> None:
    table = coin_run[1].table
    heads, tails = table[table["outcome"] == "H"], table[table["outcome"] == "T"]
    grid = [(m, p) for m in TOY_METHODS for p in (0.1, 0.5, 0.9)]
    assert sorted(zip(heads["method"], heads["stated"], strict=True)) == sorted(grid)
    assert tails["stated"].to_numpy() == pytest.approx(1 - heads["stated"].to_numpy())
    assert len(table) == len(TOY_METHODS) * 3 * 2
    reps = table.drop_duplicates(["method", "target"]).set_index(["method", "target"])["n_reps"]
    assert set(reps.loc["logp"]) == {1}  # deterministic: asked once
    assert set(reps.drop("logp", level="method")) == {REPEATS}
    assert (table["n_valid"] + table["failures"] == table["n_reps"]).all()


def test_logp_probabilities_sum_to_one(coin_run: tuple[Path, ToyResult]) -> None:
    table = coin_run[1].table
    logp = table[table["method"] == "logp"]
    for _, target in logp.groupby("target"):
        assert target["produced_mean"].sum() == pytest.approx(1.0)
        assert 0 < target["covered_mass"].iloc[0] <= 1
    assert (logp["produced_std"] == 0).all()


def test_produced_values_and_errors_are_in_range(coin_run: tuple[Path, ToyResult]) -> None:
    result = coin_run[1]
    produced = result.table["produced_mean"].dropna()
    assert not produced.empty
    assert ((produced >= 0) & (produced <= 1)).all()
    scores = result.calibration.set_index("method")
    assert list(scores.index) == list(TOY_METHODS)
    for column in ("calibration_error", "tv"):
        values = scores[column].dropna()
        assert ((values >= 0) & (values <= 1)).all()
    assert scores.loc["logp", "targets_scored"] == 3
    # for a coin the mean absolute error over H and T equals the TV distance
    assert scores["calibration_error"].tolist() == pytest.approx(scores["tv"].tolist())


def test_rerun_sends_no_new_calls(model: CountingBackend, coin_run: tuple[Path, ToyResult]) -> None:
    cache_path, first = coin_run
    before = model.calls
    with ResponseCache(cache_path) as cache:
        again = run_experiment(SMALL_COIN, model, cache, repeats=REPEATS, n=N)
    assert model.calls == before
    assert again.stats.calls_sent == 0
    assert again.stats.calls_cached == again.stats.calls_total == first.stats.calls_sent
    pd.testing.assert_frame_equal(again.table, first.table)


def test_die_faces_run_on_the_model(model: CountingBackend, tmp_path: Path) -> None:
    one = dataclasses.replace(DIE, targets=DIE.targets[1:2])  # face 3 at 50%
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        result = run_experiment(one, model, cache, methods=["logp", "samples"], repeats=1, n=4)
    table = result.table
    assert list(table["outcome"].unique()) == list("123456")
    logp = table[table["method"] == "logp"]
    assert logp["failures"].tolist() == [0] * 6
    assert logp["produced_mean"].sum() == pytest.approx(1.0)
    # SmolLM2 writes " 1" as two tokens: only "1" is counted, and the table says so
    assert "not single tokens" in logp["notes"].iloc[0]
    samples = table[table["method"] == "samples"]
    assert samples["produced_mean"].sum() == pytest.approx(1.0)
    assert set((samples["produced_mean"] * 4).round(9)) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_cli_prints_tables_and_saves_files(
    coin_run: tuple[Path, ToyResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The small grid, in the folder whose cache the fixture filled: the CLI sends nothing.
    monkeypatch.setitem(EXPERIMENTS, "coin", SMALL_COIN)
    out = coin_run[0].parent
    args = ["coin", "--out", str(out), "--repeats", str(REPEATS), "--n", str(N)]
    result = CliRunner().invoke(toy_app, args)
    assert result.exit_code == 0, result.output
    total = coin_run[1].stats.calls_total
    assert f"{total} calls: {total} from cache, 0 sent" in result.output
    assert "calibration error per method" in result.output
    assert "stated p" in result.output and "0.5" in result.output
    rows = json.loads((out / "coin_table.json").read_text())
    assert len(rows) == len(TOY_METHODS) * 3 * 2
    saved = pd.read_csv(out / "coin_calibration.csv")
    assert saved["method"].tolist() == list(TOY_METHODS)
    manifest = json.loads((out / "coin_manifest.json").read_text())
    assert manifest["settings"] == {"methods": list(TOY_METHODS), "repeats": REPEATS, "n": N}


def test_cli_rejects_an_unknown_method(tmp_path: Path) -> None:
    result = CliRunner().invoke(toy_app, ["die", "--methods", "logp,guess", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert not (tmp_path / "cache.sqlite").exists()


# ----- by hand, no model ---------------------------------------------------------------------


def _table(
    experiment: str, method: str, targets: dict[str, tuple[list[float], list[float]]]
) -> pd.DataFrame:
    rows = []
    for label, (stated, produced) in targets.items():
        for index, (s, p) in enumerate(zip(stated, produced, strict=True)):
            rows.append(
                {
                    "experiment": experiment,
                    "method": method,
                    "target": label,
                    "outcome": str(index),
                    "stated": s,
                    "produced_mean": p,
                    "n_valid": 5,
                    "failures": 0,
                }
            )
    return pd.DataFrame(rows)


def test_calibration_error_on_hand_computed_coin() -> None:
    # |0.5 - 0.2| = 0.3 and |0.8 - 0.9| = 0.1: mean 0.2; a failed target is left out
    table = _table(
        "coin",
        "sequence",
        {
            "p=0.2": ([0.2, 0.8], [0.5, 0.5]),
            "p=0.9": ([0.9, 0.1], [0.8, 0.2]),
            "p=0.5": ([0.5, 0.5], [float("nan"), float("nan")]),
        },
    )
    (row,) = calibration(table).to_dict("records")
    assert row["calibration_error"] == pytest.approx(0.2)
    assert row["tv"] == pytest.approx(0.2)
    assert (row["targets"], row["targets_scored"]) == (3, 2)


def test_calibration_error_on_hand_computed_die() -> None:
    # stated 3 at 50%, produced uniform: errors 1/15 x 5 and 1/3 -> mean 1/9, TV 1/3
    stated = [0.1, 0.1, 0.5, 0.1, 0.1, 0.1]
    table = _table("die", "logp", {"3 at 50%": (stated, [1 / 6] * 6)})
    (row,) = calibration(table).to_dict("records")
    assert row["calibration_error"] == pytest.approx(1 / 9)
    assert row["tv"] == pytest.approx(1 / 3)
    assert mean_abs_error([1 / 6] * 6, stated) == pytest.approx(1 / 9)
    assert mean_abs_error([0.0, 1.0], [1.0, 0.0]) == 1.0


def test_sequence_rule_rejects_fewer_than_n_minus_one_valid_flips() -> None:
    ok = parse_responses("sequence", [{"text": "HHTTHHTTHX"}], ("H", "T"), n=10)
    assert ok.ok and ok.probs == pytest.approx((5 / 9, 4 / 9))
    short = parse_responses("sequence", [{"text": "HHTTHHTT"}], ("H", "T"), n=10)
    assert not short.ok


def test_die_replies_are_parsed_through_letter_aliases() -> None:
    faces = tuple("123456")
    verbal = '{"1": 0.5, "2": 0.1, "3": 0.1, "4": 0.1, "5": 0.1, "6": 0.1}'
    parsed = parse_responses("verbalize", [{"text": verbal}], faces, n=30)
    assert parsed.probs == pytest.approx((0.5, 0.1, 0.1, 0.1, 0.1, 0.1))
    sequence = parse_responses("sequence", [{"text": "1166"}], faces, n=4)
    assert sequence.probs == pytest.approx((0.5, 0, 0, 0, 0, 0.5))
    samples = parse_responses("samples", [{"text": "3"}, {"text": "3"}, {"text": "6"}], faces, 3)
    assert samples.probs == pytest.approx((0, 0, 2 / 3, 0, 0, 1 / 3))


def test_prompt_states_the_target_and_ends_with_the_question() -> None:
    messages = build_messages(COIN, "sequence", (0.3, 0.7), n=30)
    assert messages[0]["role"] == "system"
    assert messages[-1]["role"] == "user"
    assert "heads up be 30%" in messages[-1]["content"]
    assert "tails up be 70%" in messages[-1]["content"]
    assert "30 times" in messages[-1]["content"]
    examples = [m["content"] for m in messages if m["role"] == "assistant"]
    assert all(len(e) == 30 and set(e) <= {"H", "T"} for e in examples)
