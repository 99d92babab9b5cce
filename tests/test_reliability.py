"""Retries that really happen, failures that are seen, and no unreadable reply ever scored.

Every test runs distalign against a misbehaving OpenAI-compatible server on 127.0.0.1
(``tests/fault_server.py``): real HTTP, real SDK, real cache file; only the replies are faked.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from distalign.backends.openai_compat import OpenAICompatibleBackend, RequestError
from distalign.cli import app
from distalign.errors import EXIT_INCOMPLETE
from distalign.runner import RunConfig, Runner
from fault_server import FaultServer, run_config, serving

MESSAGES = [{"role": "user", "content": "Pick A or B."}]


@pytest.fixture
def server() -> Iterator[tuple[FaultServer, str]]:
    state = FaultServer()
    with serving(state) as url:
        yield state, url


# fail fast: no transport retries, one call at a time, so a script of faults maps onto calls
FAIL_FAST = {"timeout": 5.0, "max_retries": 0, "concurrency": 1}


def fail_fast_run(tmp_path: Path, reference_dir: Path, url: str, **overrides: Any) -> RunConfig:
    return run_config(
        tmp_path,
        reference_dir,
        f"openai-compatible:fake@{url}",
        backend_options=FAIL_FAST,
        **overrides,
    )


def posts(state: FaultServer) -> int:
    return len(state.hits)


# ----- a retry is a new request -----------------------------------------------------------------


def test_a_retry_after_an_unreadable_reply_is_sent_and_billed_once(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.reply = lambda body: "I am not sure."  # never a distribution
    run = run_config(
        tmp_path, reference_dir, f"openai-compatible:fake@{url}", methods=["verbalize"], retries=2
    )
    frame = Runner(run).run()
    # a generic server has no seeds: before, the 2 retries were cache hits and never sent
    assert posts(state) == 3
    row = frame.iloc[0]
    assert row["status"] == "parse_failure"
    assert row["calls"] == 3
    assert row["prompt_tokens"] == 3 * 50  # each request that was sent, once
    assert "attempts=3" in row["detail"]
    # every attempt is its own cache entry: a rerun sends nothing
    Runner(run).run()
    assert posts(state) == 3


def test_tokens_count_each_request_once_when_a_retry_succeeds(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    replies = iter(["nonsense", '{"A": 1.0}'])
    state.reply = lambda body: next(replies, '{"A": 1.0}')
    run = run_config(
        tmp_path, reference_dir, f"openai-compatible:fake@{url}", methods=["verbalize"], retries=2
    )
    row = Runner(run).run().iloc[0]
    assert posts(state) == 2
    assert row["status"] == "ok"
    assert row["prompt_tokens"] == 2 * 50


# ----- transport failures: replicas, passes, samples -------------------------------------------


def test_dropped_connections_on_every_replica_are_retried_with_backoff() -> None:
    first, second = FaultServer(script=["drop", "drop"]), FaultServer(script=["drop", "drop"])
    with serving(first) as url1, serving(second) as url2:
        backend = OpenAICompatibleBackend("fake", [url1, url2], timeout=5.0)
        with backend:
            result = backend.next_token_probs(MESSAGES, ["A", "B"])
    # before: once each replica had dropped the call, it failed for good
    assert posts(first) + posts(second) == 5
    assert result.probs["A"] > result.probs["B"]


def test_two_flaky_replicas_lose_no_call_in_a_run(tmp_path: Path, reference_dir: Path) -> None:
    flaky = ["drop", "ok", "ok"] * 20
    first, second = FaultServer(script=list(flaky)), FaultServer(script=list(flaky))
    with serving(first) as url1, serving(second) as url2:
        run = run_config(
            tmp_path, reference_dir, f"openai-compatible:fake@{url1},{url2}", questions=20
        )
        runner = Runner(run)
        frame = runner.run()
    assert runner.stats.calls_failed == 0
    assert (frame["status"] == "ok").all(), frame["detail"].tolist()


def test_a_run_level_pass_resends_failed_logp_calls(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.script = ["500"] * 3
    run = fail_fast_run(tmp_path, reference_dir, url, questions=3)
    runner = Runner(run)
    frame = runner.run()
    # Log-p is never re-asked for a bad reply, but a call that got no reply is resent
    assert posts(state) == 6
    assert list(frame["status"]) == ["ok"] * 3
    assert runner.stats.calls_failed == 0 and runner.stats.calls_sent == 3


def test_one_lost_sample_does_not_void_a_samples_item(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.script = ["500"]
    run = fail_fast_run(tmp_path, reference_dir, url, methods=["samples"], n=10, request_passes=0)
    runner = Runner(run)
    row = runner.run().iloc[0]
    assert posts(state) == 10
    assert row["status"] == "ok"
    assert row["n_valid"] == 9 and row["n_invalid"] == 1
    assert row["pred"][0] == pytest.approx(1.0)  # every valid sample said "A"
    assert runner.stats.calls_failed == 1


def test_samples_with_too_many_lost_calls_are_a_request_failure(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.script = ["500"] * 4
    run = fail_fast_run(tmp_path, reference_dir, url, methods=["samples"], n=10, request_passes=0)
    row = Runner(run).run().iloc[0]
    assert row["status"] == "request_failure"  # the server's fault, not a parse failure
    assert "4 of 10 calls failed" in row["detail"]


# ----- time bounds ------------------------------------------------------------------------------


def test_one_call_never_outlasts_call_timeout(server: tuple[FaultServer, str]) -> None:
    state, url = server
    state.then, state.slow_seconds = "slow", 5.0
    backend = OpenAICompatibleBackend(
        "fake", [url], timeout=0.5, max_retries=100, call_timeout=2.0, check_server=False
    )
    start = time.monotonic()
    with backend, pytest.raises(RequestError, match="APITimeoutError"):
        backend.generate(MESSAGES, max_tokens=1)
    assert time.monotonic() - start < 3.0  # 100 retries of 0.5 s would take over 50 s


def test_a_dead_server_ends_the_run_after_a_few_calls(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.then = "500"
    run = fail_fast_run(tmp_path, reference_dir, url, questions=20)
    runner = Runner(run)
    frame = runner.run()
    assert posts(state) == 5  # then the backend is taken as down: nothing more is sent
    assert (frame["status"] == "request_failure").all()
    assert runner.stats.calls_failed == 20
    assert runner.stats.failures == {"InternalServerError": 5, "not sent (backend down)": 15}


def test_a_run_with_lost_calls_exits_3_and_says_why(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.then = "500"
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'models = ["openai-compatible:fake@{url}"]\n'
        'groups = ["POLPARTY=Democrat"]\nquestions = 2\nrequest_passes = 0\n'
        f'data_dir = "{reference_dir}"\nout = "{tmp_path / "out"}"\n'
        "[backend_options]\nmax_retries = 0\ntimeout = 5.0\n"
    )
    result = CliRunner().invoke(app, ["run", "--config", str(toml)])
    assert result.exit_code == EXIT_INCOMPLETE, result.output
    assert "2 calls failed for good" in result.output
    assert "InternalServerError" in result.output
    assert "n_request_failures" in result.output
    assert (tmp_path / "out" / "items.parquet").exists()  # results are still written


# ----- a misbehaving server: nothing it says is scored -------------------------------------------

TEN_OPTIONS = [f"Option {i}" for i in range(1, 11)]
BAD_GENERATIONS = [
    "I can't answer that as a member of a demographic group.",
    "As an AI language model I think that depends.",
    '{"A": 0.5, "B": ',
    "{'A': 40%, B: .6,}",
    '{"Z": 0.5, "A": 0.5}',
    "",
]


def ten_option_dataset(path: Path) -> Path:
    rows = []
    for qid, options in (("q10", TEN_OPTIONS), ("q2", ["Yes", "No"])):
        for group in ("Democrat", "Republican"):
            for i, option in enumerate(options):
                rows.append(
                    {
                        "question_id": qid,
                        "question": f"Question {qid}?",
                        "options": json.dumps(options),
                        "group_attribute": "POLPARTY",
                        "group_value": group,
                        "option": option,
                        "count": 10 + i,
                    }
                )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def ten_option_run(tmp_path: Path, url: str, **overrides: Any) -> RunConfig:
    """A run on the ten-option dataset (2 questions x 2 groups), N = 5."""
    data = ten_option_dataset(tmp_path / "ten.csv")
    model = f"openai-compatible:fake@{url}"
    overrides = {"datasets": [str(data)], "n": 5, **overrides}
    return run_config(tmp_path, tmp_path, model, **overrides)


@pytest.mark.parametrize("reply", BAD_GENERATIONS[:2])
def test_a_refusal_on_a_ten_option_question_is_not_answer_i(
    server: tuple[FaultServer, str], tmp_path: Path, reply: str
) -> None:
    state, url = server
    state.reply = lambda body: reply
    run = ten_option_run(tmp_path, url, methods=["samples"])
    row = Runner(run).run().iloc[0]
    assert row["letters"][-2] == "I"  # the question has an option I
    assert row["status"] == "parse_failure"
    assert row["n_invalid"] == 5


BAD_TOPS = [
    [("A", math.nan), ("B", -1.0)],
    [("A", math.inf), ("B", -1.0)],
    [("A", -0.1), ("A", -0.1), ("A", -0.1), ("B", -0.2)],  # a repeated token: mass above 1
    [("The", -0.1), ("Sure", -3.0)],  # no option letter at all
]


def test_no_reply_of_a_misbehaving_server_is_ever_scored(
    server: tuple[FaultServer, str], tmp_path: Path
) -> None:
    state, url = server
    bad = itertools.cycle(BAD_GENERATIONS)
    state.reply = lambda body: next(bad)
    tops = iter(BAD_TOPS * 10)
    state.top = lambda body: next(tops)
    methods = ["logp", "verbalize", "sequence", "samples"]
    run = ten_option_run(tmp_path, url, groups=None, questions=None, methods=methods, retries=2)
    frame = Runner(run).run()
    assert len(frame) == 4 * 2 * 2  # methods x groups x questions
    # Log-p 4, Samples 4 x 5, Verbalize and Sequence 3 attempts each: every retry was sent
    assert posts(state) == 4 + 20 + 2 * 4 * 3
    assert set(frame["status"]) == {"parse_failure"}, frame[["method", "status", "detail"]]
    assert frame["pred"].isna().all() and frame["tv"].isna().all()
