"""Option orders: every order a separate cached request, predictions mapped back, position bias.

Scripted backends answer what a real model will not on demand: always the letter A (pure
position bias) or by the options' content (no position bias at all). One small run on the
embedded model checks the real path end to end.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from distalign import backends
from distalign.backends import (
    Backend,
    BackendIdentity,
    Capability,
    GenerationRequest,
    Message,
    NextTokenProbs,
    ProbsJob,
)
from distalign.cli import app
from distalign.cli.run import build_run_config, run_settings
from distalign.datasets import load_dataset
from distalign.errors import ConfigError
from distalign.methods import get_method
from distalign.metrics.position import order_items, pairwise_tv, position_table
from distalign.results import load_results
from distalign.runner import RunConfig, Runner
from distalign.steering import build_prompt
from distalign.steering.orders import distinct_orders, order_names, permute

OPTION_LINE = re.compile(r"^([A-Z])\. (.*)$", re.MULTILINE)


class Scripted(Backend):
    """Log-p replies by a rule: ``"first"`` puts 0.9 on A, ``"content"`` weighs option texts."""

    def __init__(self, rule: str) -> None:
        self.rule = rule

    @property
    def identity(self) -> BackendIdentity:
        return BackendIdentity(backend="scripted", model=self.rule)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset({Capability.LOGPROBS})

    def _next_token_probs_many(self, jobs: list[ProbsJob]) -> Iterator[NextTokenProbs | Exception]:
        for job in jobs:
            letters = list(job.candidates)
            if self.rule == "first":
                weights = np.array([9.0] + [1.0 / len(letters)] * (len(letters) - 1))
            else:  # the question's own options are the last lettered lines of the prompt
                shown = dict(OPTION_LINE.findall(job.messages[-1]["content"]))
                weights = np.array([1.0 + len(shown[letter]) for letter in letters])
            probs = weights / weights.sum()
            yield NextTokenProbs(dict(zip(letters, probs.tolist(), strict=True)), 1.0, {})

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        raise AssertionError("Log-p only")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    """``scripted:first`` and ``scripted:content`` become model specs."""

    def factory(argument: str) -> Backend:
        return Scripted(argument)

    monkeypatch.setitem(backends._FACTORIES, "scripted", factory)


def _config(tmp_path: Path, reference_dir: Path, **overrides: object) -> RunConfig:
    settings: dict[str, object] = {
        "models": ["scripted:first"],
        "datasets": ["opinionqa"],
        "groups": ["POLPARTY=Democrat", "POLPARTY=Republican"],
        "steerings": ["persona"],
        "methods": ["logp"],
        "questions": 4,
        "data_dir": str(reference_dir),
        "out": str(tmp_path / "run"),
    }
    settings.update(overrides)
    return RunConfig(**settings)  # type: ignore[arg-type]


# --- the orders themselves ---------------------------------------------------------------


def test_order_names_count_and_list() -> None:
    assert order_names(1) == ["survey"]
    assert order_names(2) == ["survey", "reversed"]
    assert order_names(4) == ["survey", "reversed", "shift1", "shift2"]
    assert order_names(["survey", "shift2"]) == ["survey", "shift2"]
    with pytest.raises(ValueError, match="start with 'survey'"):
        order_names(["reversed"])
    with pytest.raises(ValueError, match="unknown option order 'shift0'"):
        order_names(["survey", "shift0"])
    with pytest.raises(ValueError, match="at least 1"):
        order_names(0)


def test_permutations_and_duplicates_for_few_options() -> None:
    assert permute([0, 1, 2, 3], "reversed") == [3, 2, 1, 0]
    assert permute([0, 1, 2, 3], "shift1") == [1, 2, 3, 0]
    assert permute([0, 1, 2, 3], "shift5") == [1, 2, 3, 0]
    # with two options reversed and shift1 are one permutation: asked once
    assert distinct_orders(order_names(4), 2) == ["survey", "reversed"]
    assert distinct_orders(order_names(4), 5) == order_names(4)


def test_survey_prompt_is_todays_and_others_permute_the_options(reference_dir: Path) -> None:
    dataset = load_dataset("opinionqa", reference_dir)
    question = next(q for q in dataset.questions.values() if len(q.options) >= 3)
    group = dataset.groups[0]
    method = get_method("logp")
    today = build_prompt(dataset, question, group, "persona", method)
    survey = build_prompt(dataset, question, group, "persona", method, option_order="survey")
    assert survey == today
    shifted = build_prompt(dataset, question, group, "persona", method, option_order="shift1")
    shown = OPTION_LINE.findall(shifted.messages[-1]["content"])[-len(question.options) :]
    assert [text for _, text in shown] == list(question.options[1:]) + [question.options[0]]
    assert [letter for letter, _ in shown] == shifted.letters == today.letters
    # a reply "all on A" is the survey's second option once mapped back
    assert shifted.to_canonical([1.0] + [0.0] * (len(question.options) - 1))[1] == 1.0


def test_paper_mode_keeps_the_papers_order() -> None:
    with pytest.raises(ValidationError, match="paper mode keeps the paper's option order"):
        RunConfig(prompt_mode="paper", option_orders=2)
    assert RunConfig(prompt_mode="paper", option_orders=1).order_names() == ["survey"]
    settings = run_settings(None, prompt_mode="paper", option_orders="survey,reversed")
    with pytest.raises(ConfigError, match="^--option-orders .*paper mode keeps"):
        build_run_config(settings, None, {"prompt_mode", "option_orders"})
    assert run_settings(None, option_orders="3")["option_orders"] == 3


# --- mapping back and the index ------------------------------------------------------------


def _synthetic(rule: str) -> pd.DataFrame:
    """Items asked in three orders, the prediction mapped back as the runner does."""
    rows = []
    truth = [0.5, 0.3, 0.2]
    for q in range(4):
        for group in ("a", "b"):
            for name in ("survey", "reversed", "shift1"):
                order = permute([0, 1, 2], name)
                # "A": all on the first letter shown; "content": the same on every option
                shown = [1.0, 0.0, 0.0] if rule == "A" else [[0.6, 0.3, 0.1][i] for i in order]
                pred = [0.0] * 3
                for position, option in enumerate(order):
                    pred[option] = shown[position]
                tv = 0.5 * sum(abs(p - t) for p, t in zip(pred, truth, strict=True))
                rows.append(
                    {
                        "mode": "standard",
                        "model": "m",
                        "dataset": "d",
                        "steering": "persona",
                        "method": "logp",
                        "group": group,
                        "question_id": str(q),
                        "seed": 0,
                        "order": name,
                        "letters": ["A", "B", "C"],
                        "pred": pred,
                        "truth": truth,
                        "status": "ok",
                        "tv": tv,
                    }
                )
    return pd.DataFrame(rows)


def test_always_a_is_biased_and_content_is_not() -> None:
    always_a = _synthetic("A")
    preds = always_a[always_a["question_id"] == "0"].drop_duplicates("order")["pred"].tolist()
    assert len({tuple(p) for p in preds}) == 3  # mapped back, "A" is a different option each time
    table = position_table(always_a, n_boot=200)
    assert table.loc[0, "position_bias"] == pytest.approx(1.0)
    assert table.loc[0, "tv_debiased"] == pytest.approx(0.5 * (1 / 6 + 1 / 30 + 2 / 15))
    assert table.loc[0, "orders"] == 3 and table.loc[0, "n_items"] == 8
    content = position_table(_synthetic("content"), n_boot=200)
    assert content.loc[0, "position_bias"] == pytest.approx(0.0)
    assert content.loc[0, "bias_ci_high"] == pytest.approx(0.0)
    assert content.loc[0, "tv_debiased"] == pytest.approx(content.loc[0, "tv_survey"])
    items = order_items(always_a)
    assert np.allclose(np.stack(items["debiased"].tolist()).sum(axis=1), 1.0)
    assert np.isnan(pairwise_tv(np.array([[1.0, 0.0]])))  # one order: no pair


def test_a_survey_only_table_has_no_position_rows() -> None:
    survey = _synthetic("A")
    survey = survey[survey["order"] == "survey"]
    assert position_table(survey).empty


# --- through the runner: requests, cache, tables ------------------------------------------


def test_orders_are_separate_cached_requests_and_order_0_keys_are_unchanged(
    tmp_path: Path, reference_dir: Path, scripted: None
) -> None:
    one = Runner(_config(tmp_path, reference_dir))
    frame = one.run()
    assert set(frame["order"]) == {"survey"}
    n_items = len(frame)
    assert one.stats.calls_sent == n_items
    three = Runner(_config(tmp_path, reference_dir, option_orders=3))
    survey_only = three.run()
    # the K=1 run's requests are exactly the survey order's: all answered from the cache
    assert three.stats.calls_cached == n_items
    assert three.stats.calls_total == 3 * n_items  # opinionqa questions have >= 3 options
    assert three.stats.calls_sent == 2 * n_items
    pd.testing.assert_frame_equal(
        survey_only.drop(columns=["detail"]), frame.drop(columns=["detail"])
    )
    full = load_results(tmp_path / "run", all_orders=True)
    assert sorted(full["order"].unique()) == ["reversed", "shift1", "survey"]
    per_item = full.groupby(["group", "question_id"])["prompt"].nunique()
    assert (per_item == 3).all()  # K orders: K different prompts per item
    assert len(load_results(tmp_path / "run")) == n_items  # tables see the survey order only
    again = Runner(_config(tmp_path, reference_dir, option_orders=3))
    again.run()
    assert again.stats.calls_sent == 0


def test_position_bias_follows_the_model(
    tmp_path: Path, reference_dir: Path, scripted: None
) -> None:
    tables = {}
    for rule in ("first", "content"):
        config = _config(tmp_path / rule, reference_dir, models=[f"scripted:{rule}"])
        Runner(config.model_copy(update={"option_orders": ["survey", "reversed"]})).run()
        items = load_results(tmp_path / rule / "run", all_orders=True)
        tables[rule] = position_table(items, n_boot=200)
    first, content = tables["first"].iloc[0], tables["content"].iloc[0]
    assert first["position_bias"] > 0.5
    assert first["bias_ci_low"] > 0.3
    assert content["position_bias"] == pytest.approx(0.0, abs=1e-12)
    assert content["tv_debiased"] == pytest.approx(content["tv_survey"])


def test_leaderboard_and_report_show_position_bias(
    tmp_path: Path, reference_dir: Path, scripted: None
) -> None:
    from distalign.report.html import build_report

    run = ["run", "-m", "scripted:first", "--group", "POLPARTY=Democrat", "--questions", "3"]
    run += ["--method", "logp", "--option-orders", "survey,shift1", "--n-boot", "50"]
    run += ["--data-dir", str(reference_dir), "-o", str(tmp_path / "run")]
    result = CliRunner().invoke(app, run)
    assert result.exit_code == 0, result.output
    assert "Position bias" in result.output
    assert (tmp_path / "run" / "position_bias.csv").exists()
    result = CliRunner().invoke(
        app, ["leaderboard", str(tmp_path / "run"), "--n-boot", "50", "-o", str(tmp_path / "t")]
    )
    assert result.exit_code == 0, result.output
    assert "Position bias" in result.output
    written = pd.read_csv(tmp_path / "t" / "position_bias.csv")
    assert written.loc[0, "position_bias"] > 0
    report = build_report([tmp_path / "run"], tmp_path / "report.html", n_boot=50)
    assert "position_bias" in [t.name for t in report.tables]
    assert "position_bias" in [f.name for f in report.figures]


def test_embedded_model_two_orders(tmp_path: Path, reference_dir: Path) -> None:
    config = RunConfig(
        datasets=["opinionqa"],
        groups=["POLPARTY=Democrat"],
        steerings=["persona"],
        methods=["logp"],
        questions=2,
        option_orders=2,
        data_dir=str(reference_dir),
        out=str(tmp_path / "run"),
    )
    first = Runner(config)
    first.run()
    assert first.stats.calls_sent == 4
    items = load_results(tmp_path / "run", all_orders=True)
    assert sorted(items["order"]) == ["reversed", "reversed", "survey", "survey"]
    table = position_table(items, n_boot=100)
    assert len(table) == 1
    assert np.isfinite(table.loc[0, "position_bias"])
    assert 0 <= table.loc[0, "position_bias"] <= 1
    again = Runner(config)
    again.run()
    assert again.stats.calls_sent == 0
    assert again.stats.calls_cached == 4
