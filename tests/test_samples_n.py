"""Samples with ``n``: one request per item on servers that answer n > 1, and the fallback.

Real HTTP throughout: the fault server (``tests/fault_server.py``) playing an OpenAI-compatible
server that honours ``n``, ignores it or refuses it, and llama-cpp-python's real server with
the embedded SmolLM2 model, which silently drops ``n``. Runs go through the real runner,
engine, SDK and SQLite cache.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from distalign.backends import Capability, get_backend
from distalign.backends._openai_samples import draw_groups
from distalign.backends.base import GenerateJob, Generation, Usage, make_request
from distalign.backends.openai_compat import OpenAICompatibleBackend
from distalign.runner import RunConfig, Runner
from fault_server import FaultServer, run_config, serving
from test_backend_openai import MODEL, LlamaServer, llama_server  # noqa: F401  (a fixture)

N = 30  # the Samples default: answers per item
MESSAGES = [{"role": "user", "content": "Pick A or B."}]


@pytest.fixture
def server() -> Iterator[tuple[FaultServer, str]]:
    state = FaultServer()
    with serving(state) as url:
        yield state, url


def samples_run(
    tmp_path: Path, reference_dir: Path, url: str, multi_sample: bool, **overrides: Any
) -> RunConfig:
    """Samples over the fault server as a generic server, declared to support n or not."""
    options = {"multi_sample": multi_sample, "timeout": 5.0}
    options.update(overrides.pop("backend_options", {}))
    settings: dict[str, Any] = {"methods": ["samples"], "questions": 2, **overrides}
    model = f"openai-compatible:fake@{url}"
    return run_config(tmp_path, reference_dir, model, backend_options=options, **settings)


def sent_n(state: FaultServer) -> list[int]:
    """The ``n`` of each chat completion request the server got (1 when absent)."""
    return [int(body.get("n") or 1) for body in state.bodies]


def cache_rows(config: RunConfig) -> list[dict[str, Any]]:
    """Every cache entry: its key, request payload, response and error."""
    with sqlite3.connect(config.cache_path()) as db:
        rows = db.execute("SELECT key, request, response, error FROM responses").fetchall()
    return [
        {
            "key": key,
            "request": json.loads(request),
            "response": None if response is None else json.loads(response),
            "error": error,
        }
        for key, request, response, error in rows
    ]


def by_prompt(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    items: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        items.setdefault(json.dumps(row["request"]["messages"], sort_keys=True), []).append(row)
    return dict(sorted(items.items()))


# ----- (a) one request per item, one cache entry per sample ---------------------------------


def test_each_item_is_one_request_with_n_and_a_rerun_sends_only_the_missing(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    config = samples_run(tmp_path, reference_dir, url, multi_sample=True)
    runner = Runner(config)
    frame = runner.run()
    assert sent_n(state) == [N, N]  # before: 60 requests of one sample each
    assert list(frame["status"]) == ["ok", "ok"]
    assert list(frame["n_valid"]) == [N, N] and list(frame["calls"]) == [N, N]
    # the prompt was billed once per item, and each item's sums are what was billed
    assert list(frame["prompt_tokens"]) == [50, 50]
    assert list(frame["completion_tokens"]) == [N, N]
    assert runner.stats.calls_sent == 2 * N and runner.stats.calls_failed == 0

    items = by_prompt(cache_rows(config))
    assert [len(rows) for rows in items.values()] == [N, N]  # every sample its own entry
    for rows in items.values():
        samples = sorted(row["request"]["call"]["sample"] for row in rows)
        assert samples == list(range(N))
        assert all(row["error"] is None and row["response"]["text"] == "A" for row in rows)
        usage = {r["request"]["call"]["sample"]: r["response"]["usage"] for r in rows}
        assert usage[0] == {"prompt_tokens": 50, "completion_tokens": N}
        assert all(usage[i] == {"prompt_tokens": 0, "completion_tokens": 0} for i in range(1, N))

    # lose five samples of the first item: the rerun asks for exactly those, in one request
    lost = [3, 10, 11, 20, 29]
    first_item = items[json.dumps(json.loads(frame["prompt"][0]), sort_keys=True)]
    keys = [r["key"] for r in first_item if r["request"]["call"]["sample"] in lost]
    with sqlite3.connect(config.cache_path()) as db:
        db.executemany("DELETE FROM responses WHERE key = ?", [(k,) for k in keys])
    state.bodies.clear()
    rerun = Runner(config)
    frame = rerun.run()
    assert sent_n(state) == [len(lost)]
    assert rerun.stats.calls_sent == len(lost) and rerun.stats.calls_cached == 2 * N - len(lost)
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["n_valid"]) == [N, N]
    assert list(frame["prompt_tokens"]) == [100, 50]  # the first item's prompt, billed twice
    assert [len(rows) for rows in by_prompt(cache_rows(config)).values()] == [N, N]


def test_a_request_with_n_is_retried_like_any_other(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.script = ["500", "drop", "429"]
    runner = Runner(samples_run(tmp_path, reference_dir, url, True, questions=1))
    frame = runner.run()
    assert [action for _, action in state.hits] == ["500", "drop", "429", "ok"]
    assert sent_n(state) == [N] * 4  # every try asked for all the samples
    assert frame.iloc[0]["status"] == "ok" and frame.iloc[0]["n_valid"] == N
    assert runner.stats.calls_failed == 0


def test_draws_of_one_prompt_share_a_request_and_the_first_seed(
    server: tuple[FaultServer, str],
) -> None:
    state, url = server
    other = [{"role": "user", "content": "Pick C or D."}]

    def job(messages: list[dict[str, str]], seed: int) -> GenerateJob:
        return GenerateJob(messages, make_request(8, 1.0, seed, 1, None, None, None, None))

    jobs = [job(MESSAGES, 11), job(MESSAGES, 12), job(MESSAGES, 13), job(other, 14)]
    jobs += [job(MESSAGES, 15)]  # the same prompt again, but not next to the others
    with OpenAICompatibleBackend("fake", [url], server="vllm", timeout=5.0) as backend:
        assert Capability.MULTI_SAMPLE in backend.capabilities
        results = list(backend.generate_many(jobs))
    assert [(body.get("n"), body["seed"]) for body in state.bodies] == [
        (3, 11),
        (None, 14),
        (None, 15),
    ]
    assert all(isinstance(r, Generation) and r.texts == ["A"] for r in results)
    usages = [r.usage for r in results if isinstance(r, Generation)]
    assert usages == [Usage(50, 3), Usage(0, 0), Usage(0, 0), Usage(50, 1), Usage(50, 1)]


def test_more_draws_than_the_largest_n_take_several_requests() -> None:
    request = make_request(8, 1.0, None, 1, None, None, None, None)
    jobs = [GenerateJob(MESSAGES, request) for _ in range(300)]
    assert [len(group) for group in draw_groups(jobs)] == [128, 128, 44]


@pytest.mark.parametrize("max_choices", [None, 2])
def test_generate_with_n_is_one_request_on_a_server_with_n(
    server: tuple[FaultServer, str], max_choices: int | None
) -> None:
    state, url = server
    state.max_choices = max_choices
    with OpenAICompatibleBackend("fake", [url], server="vllm", timeout=5.0) as backend:
        result = backend.generate_detailed(MESSAGES, n=5, seed=7, max_tokens=4)
    assert result.texts == ["A"] * 5
    if max_choices is None:
        assert [(b["n"], b["seed"]) for b in state.bodies] == [(5, 7)]
        assert result.usage == Usage(50, 5)
    else:  # 2 choices, then the other three one by one, each with its own seed
        assert sent_n(state) == [5, 1, 1, 1]
        seeds = [b["seed"] for b in state.bodies]
        assert seeds[0] == 7 and len(set(seeds)) == 4
        assert result.usage == Usage(4 * 50, 2 + 3)


def test_server_kinds_declare_n_where_the_software_supports_it(
    server: tuple[FaultServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = server
    declared = {}
    for options in ({}, {"server": "vllm"}, {"server": "llamacpp"}, {"multi_sample": True}):
        with get_backend(f"openai-compatible:fake@{url}", **options) as backend:
            declared[json.dumps(options)] = Capability.MULTI_SAMPLE in backend.capabilities
    assert declared == {
        "{}": False,  # generic: unknown software, sends one sample per request
        '{"server": "vllm"}': True,
        '{"server": "llamacpp"}': False,
        '{"multi_sample": true}': True,
    }
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with get_backend("openai:gpt-4o") as backend:  # sends nothing
        assert Capability.MULTI_SAMPLE in backend.capabilities
    with get_backend("openai:gpt-4o", multi_sample=False) as backend:
        assert Capability.MULTI_SAMPLE not in backend.capabilities


# ----- (b) a server that ignores or refuses n ---------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "first_reply"),
    [("ignores", 1), ("ignores", 4), ("400-n", 0), ("500-n", 0)],
    ids=["drops-n", "caps-n-at-4", "400-on-n", "500-on-n"],
)
def test_a_server_without_n_still_gets_every_sample_and_no_failure(
    server: tuple[FaultServer, str],
    tmp_path: Path,
    reference_dir: Path,
    behaviour: str,
    first_reply: int,
) -> None:
    state, url = server
    if behaviour == "ignores":
        state.max_choices = first_reply
    else:  # a 400 naming n (OpenAI's words), or a 500 (llama.cpp's), for each request with n
        state.then = behaviour  # refused at once: an error about n is not retried
    # one call at a time, so the order of requests is fixed
    config = samples_run(tmp_path, reference_dir, url, True, backend_options={"concurrency": 1})
    runner = Runner(config)
    frame = runner.run()
    # the first item: one request with n, then each sample it lacked on its own; the second
    # item: one request per sample, since the backend stopped declaring multi_sample
    assert sent_n(state) == [N] + [1] * (N - first_reply) + [1] * N
    assert list(frame["status"]) == ["ok", "ok"]
    assert list(frame["n_valid"]) == [N, N] and list(frame["n_invalid"]) == [0, 0]
    assert runner.stats.calls_failed == 0 and runner.stats.failures == {}
    rows = cache_rows(config)
    assert len(rows) == 2 * N and all(row["error"] is None for row in rows)
    # the refused request was not billed; one that answered counts once (the item sent
    # first is the one whose prompt sorts first, not necessarily the first row)
    prompts = 50 * (N - first_reply + (1 if first_reply else 0))
    assert sorted(frame["prompt_tokens"]) == sorted([prompts, 50 * N])


def test_a_400_that_is_not_about_n_fails_the_draws_as_before(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    state.then = "400"  # the prompt is too long: no fallback, each draw records the failure
    config = samples_run(tmp_path, reference_dir, url, True, questions=1, request_passes=0)
    runner = Runner(config)
    frame = runner.run()
    assert sent_n(state) == [N]
    assert frame.iloc[0]["status"] == "request_failure"
    assert runner.stats.calls_failed == N


# ----- (c) llama-cpp-python's real server, which drops n ----------------------------------


def test_samples_work_on_the_real_llama_cpp_python_server(
    llama_server: LlamaServer,  # noqa: F811
    tmp_path: Path,
    reference_dir: Path,
) -> None:
    url = llama_server.url
    with OpenAICompatibleBackend(MODEL, [url], server="llamacpp") as backend:
        assert Capability.MULTI_SAMPLE not in backend.capabilities  # the kind's default
    # declared anyway: the server answers n=4 with one choice, the other draws go one by one
    with OpenAICompatibleBackend(MODEL, [url], server="llamacpp", multi_sample=True) as backend:
        assert Capability.MULTI_SAMPLE in backend.capabilities
        jobs = [
            GenerateJob(MESSAGES, make_request(6, 1.0, seed, 1, None, None, None, None))
            for seed in (1, 2, 3, 4)
        ]
        results = list(backend.generate_many(jobs))
        assert Capability.MULTI_SAMPLE not in backend.capabilities
        assert backend.replica_calls() == {url: 4}  # the request with n and 3 single ones
    assert all(isinstance(r, Generation) and len(r.texts) == 1 for r in results)

    options = {"server": "llamacpp", "multi_sample": True}
    model = f"openai-compatible:{MODEL}@{url}"
    config = run_config(
        tmp_path, reference_dir, model, methods=["samples"], n=5, backend_options=options
    )
    runner = Runner(config)
    row = runner.run().iloc[0]
    assert runner.stats.calls_failed == 0 and runner.stats.calls_sent == 5
    assert row["calls"] == 5 and row["n_valid"] + row["n_invalid"] == 5
    assert row["prompt_tokens"] > 5 * 100  # five prompts billed: one per request
    assert all(r["error"] is None for r in cache_rows(config))


# ----- (d) --dry-run ------------------------------------------------------------------------


def test_dry_run_counts_one_prompt_per_item_on_a_server_with_n(
    server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = server
    estimates = {}
    for multi_sample in (True, False):
        config = samples_run(
            tmp_path / str(multi_sample),
            reference_dir,
            url,
            multi_sample,
            questions=5,
            steerings=["fewshot"],  # long prompts: the few-shot examples
        )
        estimates[multi_sample] = Runner(config).dry_run().iloc[0]
    with_n, without = estimates[True], estimates[False]
    print(
        f"dry-run Samples, 5 few-shot items, N={N}: est_prompt_tokens "
        f"{with_n['est_prompt_tokens']} with n, {without['est_prompt_tokens']} without "
        f"(requests {with_n['requests']} vs {without['requests']})"
    )
    assert state.bodies == []  # a dry run sends nothing
    assert (with_n["requests"], without["requests"]) == (5, 5 * N)
    assert with_n["calls"] == without["calls"] == 5 * N
    assert with_n["est_prompt_tokens"] * 20 <= without["est_prompt_tokens"]
    assert with_n["est_completion_tokens"] == without["est_completion_tokens"]
