"""The OpenAI-compatible backend: against real llama.cpp servers, and against a fault injector.

Real servers: llama-cpp-python's OpenAI-compatible server (the ``server`` extra) serving the
embedded SmolLM2 GGUF on 127.0.0.1, one thread each (the test machines have 2 shared cores).
Fault injection: a small ``http.server`` speaking just enough of the chat completions API,
scripted to answer 429s, 500s, slow responses and dropped connections.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from distalign.backends import Backend, BackendUnavailableError, Capability, get_backend
from distalign.backends.base import UnsupportedMethodError, Usage
from distalign.backends.llamacpp import smollm2_gguf
from distalign.backends.openai_compat import (
    OpenAICompatibleBackend,
    RequestError,
    parse_compatible_argument,
)
from distalign.costs import usage_cost
from distalign.datasets import load_dataset
from distalign.datasets.reference import main_groups
from distalign.methods import get_method
from distalign.runner import Runner
from distalign.steering import Prompt, build_prompt
from fault_server import FaultServer, run_config, serving

MODEL = "smollm2"
SECRET = "sk-test-SECRET123"
MESSAGES = [{"role": "user", "content": "Name a colour. Answer with one word."}]

# Log-p over the server vs the embedded backend, same GGUF and chat template. The server
# evaluates the same tokens with the same llama.cpp build, so the logits agree; what differs
# is that the server returns only the top 20 next tokens: the rare " A"-style variants the
# embedded backend also counts fall outside them, so the covered mass is ~0.0005 lower and
# the renormalized letter probabilities move by that order. Measured over 86 option
# probabilities (3 datasets x 3 questions x persona/few-shot): max |dP| = 2.1e-4, mean 4.0e-5;
# on the 3 prompts below, 5.9e-5. Also counting "a", " a" (the paper's case-insensitive GPT
# rule) moves them by ~0.004 on the first prompt and fails here.
LOGP_TOLERANCE = 1e-3
COVERED_MASS_TOLERANCE = 5e-3

# Started with llama.cpp's extra (AMX) weight buffers off: with them, llama-cpp-python 0.3.36
# segfaults on multi-token prompts on CPUs with AMX (shared/notes/local-runtime.md).
SERVER_LAUNCHER = """
import llama_cpp.llama_cpp as c
original = c.llama_model_default_params
def without_extra_buffers():
    params = original()
    params.use_extra_bufts = False
    return params
c.llama_model_default_params = without_extra_buffers
from llama_cpp.server.__main__ import main
main()
"""


# ----- real llama.cpp servers -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def start_llama_server(log_file: Path) -> LlamaServer:
    port = free_port()
    model_path, _ = smollm2_gguf()
    command = [
        sys.executable, "-c", SERVER_LAUNCHER, "--model", str(model_path),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--n_threads", "1", "--n_threads_batch", "1",
    ]  # fmt: skip
    with log_file.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1")
    wait_until_up(server, log_file)
    return server


def wait_until_up(server: LlamaServer, log_file: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"llama.cpp server exited:\n{log_file.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(server.url + "/models", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    server.stop()
    pytest.fail(f"llama.cpp server not up after {timeout} s")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = start_llama_server(tmp_path_factory.mktemp("server") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def embedded() -> Iterator[Backend]:
    # the shipped Q4_1 file, the one the server runs (the embedded default is a Q8_0 copy)
    with get_backend("embedded", quantization="shipped", n_threads=1, n_threads_batch=1) as backend:
        yield backend


def opinion_prompts(reference_dir: Path, count: int) -> list[Prompt]:
    dataset = load_dataset("opinionqa", str(reference_dir))
    group = main_groups(dataset)[0]
    questions = list(dataset.questions.values())[:count]
    return [build_prompt(dataset, q, group, "persona", get_method("logp")) for q in questions]


def test_logp_over_a_real_server_agrees_with_the_embedded_backend(
    llama_server: LlamaServer, embedded: Backend, reference_dir: Path
) -> None:
    with OpenAICompatibleBackend(MODEL, [llama_server.url], server="llamacpp") as remote:
        deltas = []
        for prompt in opinion_prompts(reference_dir, 3):
            over_http = remote.next_token_probs(prompt.messages, prompt.letters)
            local = embedded.next_token_probs(prompt.messages, prompt.letters)
            deltas += [abs(over_http.probs[x] - local.probs[x]) for x in prompt.letters]
            assert over_http.covered_mass <= local.covered_mass + 1e-4  # top 20 is a subset
            assert local.covered_mass - over_http.covered_mass < COVERED_MASS_TOLERANCE
            assert over_http.usage is not None
            assert over_http.usage.prompt_tokens and over_http.usage.prompt_tokens > 100
            assert over_http.usage.completion_tokens == 1
    print(f"Log-p over HTTP vs embedded: max |dP| = {max(deltas):.2e}")
    assert max(deltas) <= LOGP_TOLERANCE


def test_identity_names_the_server_and_its_model_never_a_key(
    llama_server: LlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTALIGN_API_KEY", SECRET)
    with get_backend(f"openai-compatible:{MODEL}@{llama_server.url}") as backend:
        identity = backend.identity
    assert identity.backend == "openai-compatible"
    assert identity.model == MODEL
    assert identity.path == llama_server.url
    # llama-cpp-python serves the model under its file path
    assert identity.fingerprint == f"served-model:{smollm2_gguf()[0]}"
    assert SECRET not in json.dumps(identity.as_dict())


def test_verbalize_with_a_json_schema_returns_valid_json(llama_server: LlamaServer) -> None:
    schema = {
        "type": "object",
        "properties": {"A": {"type": "number"}, "B": {"type": "number"}},
        "required": ["A", "B"],
        "additionalProperties": False,
    }
    messages = [{"role": "user", "content": "How likely is rain (A) or sun (B)? Reply in JSON."}]
    with OpenAICompatibleBackend(MODEL, [llama_server.url], server="llamacpp") as backend:
        assert Capability.JSON_SCHEMA in backend.capabilities
        result = backend.generate_detailed(messages, json_schema=schema, max_tokens=40, seed=1)
    answer = json.loads(result.texts[0])
    assert set(answer) == {"A", "B"}
    assert all(isinstance(v, int | float) for v in answer.values())
    assert result.usage is not None and result.usage.prompt_tokens
    assert result.usage.completion_tokens and result.usage.completion_tokens > 3


def test_same_seed_same_text_on_a_server_that_declares_seeds(llama_server: LlamaServer) -> None:
    with OpenAICompatibleBackend(MODEL, [llama_server.url], server="llamacpp") as backend:
        first, second = (backend.generate(MESSAGES, max_tokens=12, seed=7)[0] for _ in range(2))
        other = backend.generate(MESSAGES, max_tokens=12, seed=8, n=3)
    assert first == second
    assert len(other) == 3


def test_a_generic_server_refuses_schema_and_seed_before_sending(
    llama_server: LlamaServer,
) -> None:
    with OpenAICompatibleBackend(MODEL, [llama_server.url]) as backend:
        assert Capability.JSON_SCHEMA not in backend.capabilities
        with pytest.raises(UnsupportedMethodError, match="json_schema"):
            backend.generate(MESSAGES, json_schema={"type": "object"})
        with pytest.raises(UnsupportedMethodError, match="seed"):
            backend.generate(MESSAGES, seed=1)
        assert backend.replica_calls() == {llama_server.url: 0}


def test_replicas_share_the_calls_and_survive_one_stopped_midway(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    second = start_llama_server(tmp_path / "second.log")
    calls = 24  # enough that the stop falls midway even when the second replica starts slowly
    try:
        backend = OpenAICompatibleBackend(
            MODEL, [llama_server.url, second.url], concurrency=1, down_seconds=600
        )
        with backend, ThreadPoolExecutor(backend.max_concurrency) as pool:
            futures = [
                pool.submit(backend.generate, MESSAGES, max_tokens=8, temperature=0.0)
                for _ in range(calls)
            ]
            wait_for(lambda: min(backend.replica_calls().values()) >= 1, timeout=120)
            second.stop()
            at_stop = backend.replica_calls()
            done_on_second = at_stop[second.url]
            texts = [future.result(timeout=300) for future in futures]  # none may fail
        counts = backend.replica_calls()
    finally:
        second.stop()
    print(f"replica calls at the stop: {at_stop}; at the end: {counts}")
    assert sum(at_stop.values()) < calls - 2  # stopped midway
    assert all(len(t) == 1 for t in texts)
    assert sum(counts.values()) == calls
    assert counts[second.url] >= 1  # spread: both replicas served calls before the stop
    # after the stop the first replica did the rest (one reply may have been read just before)
    assert counts[second.url] <= done_on_second + 1
    assert counts[llama_server.url] >= calls - done_on_second - 1
    assert backend.pool.replicas[1].down_until > time.monotonic()  # marked down


def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# ----- the fault injector (tests/fault_server.py) ---------------------------------------------


@pytest.fixture
def fault_server() -> Iterator[tuple[FaultServer, str]]:
    state = FaultServer()
    with serving(state) as url:
        yield state, url


def fake_backend(url: str, **options: Any) -> OpenAICompatibleBackend:
    options.setdefault("timeout", 5.0)
    return OpenAICompatibleBackend("fake", [url], **options)


def test_429_is_retried_after_the_retry_after_wait(fault_server: tuple[FaultServer, str]) -> None:
    state, url = fault_server
    state.script = ["429"]
    with fake_backend(url) as backend:
        start = time.monotonic()
        result = backend.next_token_probs(MESSAGES, ["A", "B"])
        elapsed = time.monotonic() - start
    assert [action for _, action in state.hits] == ["429", "ok"]
    # the SDK's own first backoff is at most 0.5 s: waiting 1 s means Retry-After was honoured
    assert elapsed >= 1.0
    assert state.hits[1][0] - state.hits[0][0] >= 1.0
    assert result.probs["A"] > result.probs["B"]


def test_500s_slow_replies_and_dropped_connections_are_retried(
    fault_server: tuple[FaultServer, str],
) -> None:
    state, url = fault_server
    state.script = ["slow", "drop", "500", "500"]  # late retries back off longest
    with fake_backend(url, timeout=0.5) as backend:
        result = backend.next_token_probs(MESSAGES, ["A", "B", "C"])
    assert [action for _, action in state.hits] == ["slow", "drop", "500", "500", "ok"]
    # the reply's own numbers: A and B from "A"/"B", C from " C"; "The" counts for nothing
    assert result.covered_mass == pytest.approx(0.6703 + 0.2019 + 0.0498, abs=1e-3)
    assert result.token_probs.keys() == {"A", "B", " C"}
    assert result.usage is not None and result.usage.prompt_tokens == 50


def test_a_call_that_keeps_failing_raises_after_the_retries(
    fault_server: tuple[FaultServer, str],
) -> None:
    state, url = fault_server
    state.then = "500"
    with fake_backend(url, max_retries=3) as backend, pytest.raises(RequestError, match="500"):
        backend.generate(MESSAGES)
    assert len(state.hits) == 4  # the first try and 3 retries


def test_requests_per_minute_spaces_the_requests(fault_server: tuple[FaultServer, str]) -> None:
    state, url = fault_server
    with fake_backend(url, requests_per_minute=240) as backend:  # one every 0.25 s
        for _ in range(4):
            backend.generate(MESSAGES, max_tokens=1)
    times = [t for t, _ in state.hits]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.2, gaps


def test_tokens_per_minute_caps_the_estimated_tokens(
    fault_server: tuple[FaultServer, str],
) -> None:
    state, url = fault_server
    # 600 tokens a minute = 10 a second; each request is about 10 estimated prompt tokens plus
    # a 1-token budget, so each one uses up (at least) a whole second's allowance
    with fake_backend(url, tokens_per_minute=600) as backend:
        for _ in range(3):
            backend.generate(MESSAGES, max_tokens=1)
    times = [t for t, _ in state.hits]
    assert times[-1] - times[0] >= 1.5, times


def test_calls_in_flight_stay_within_the_concurrency(
    fault_server: tuple[FaultServer, str],
) -> None:
    state, url = fault_server
    state.delay = 0.2
    with fake_backend(url, concurrency=2) as backend, ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: backend.generate(MESSAGES, max_tokens=1), range(8)))
    assert len(state.hits) == 8
    assert state.max_in_flight == 2


def test_prompt_tokens_read_from_openais_cache_are_counted(
    fault_server: tuple[FaultServer, str],
) -> None:
    state, url = fault_server
    state.prompt_tokens, state.cached_tokens = 2_000, 1_536
    with fake_backend(url) as backend:
        cached = backend.generate_detailed(MESSAGES, max_tokens=1).usage
        state.cached_tokens = None  # a server that does not say
        plain = backend.generate_detailed(MESSAGES, max_tokens=1).usage
    assert plain == Usage(2_000, 1)
    assert cached is not None and cached.prompt_tokens == 2_000  # cached ones included
    counts = dataclasses.asdict(cached)
    assert counts["cache_read_tokens"] == 1_536 and counts["cache_write_tokens"] is None
    # gpt-4o: 2.50 USD per 1M prompt tokens, 1.25 per 1M cached ones, 10 per 1M out
    expected = (464 * 2.50 + 1_536 * 1.25 + 1 * 10.00) / 1e6
    assert usage_cost("gpt-4o", counts) == pytest.approx(expected)


def test_runner_completes_every_call_through_injected_faults(
    fault_server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = fault_server
    state.script = ["429", "500", "drop", "500", "slow", "drop"]
    config = run_config(tmp_path, reference_dir, f"openai-compatible:fake@{url}", questions=4)
    runner = Runner(config)
    frame = runner.run()
    failed_tries = sum(1 for _, action in state.hits if action in ("429", "500", "drop"))
    assert failed_tries == 5  # "slow" is only slow: it answers within the default timeout
    assert len(state.hits) == 4 + failed_tries  # each failed try retried once, nothing more
    assert runner.stats.calls_sent == 4 and runner.stats.calls_failed == 0
    assert list(frame["status"]) == ["ok"] * 4  # no completed request lost
    assert list(frame["prompt_tokens"]) == [50] * 4


def test_runner_records_a_call_that_keeps_failing(
    fault_server: tuple[FaultServer, str], tmp_path: Path, reference_dir: Path
) -> None:
    state, url = fault_server
    state.then = "500"
    config = run_config(tmp_path, reference_dir, f"openai-compatible:fake@{url}")
    runner = Runner(config)
    frame = runner.run()
    # default max_retries=5: 6 tries, twice (the run-level pass resends a lost call once)
    assert len(state.hits) == 12
    assert runner.stats.calls_failed == 1
    assert list(frame["status"]) == ["request_failure"]
    assert "InternalServerError" in frame["detail"][0]


# ----- secrets ----------------------------------------------------------------------------------


def files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_the_key_appears_in_no_artifact_of_a_real_run(
    llama_server: LlamaServer,
    tmp_path: Path,
    reference_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DISTALIGN_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)  # the SDK's and the HTTP client's debug logs too
    model = f"openai-compatible:{MODEL}@{llama_server.url}"
    config = run_config(tmp_path, reference_dir, model, methods=["logp", "sequence"], n=5)
    frame = Runner(config).run()
    assert (frame["status"] == "ok").any()
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert {"cache.sqlite", "items.parquet", "manifest.json"} <= set(written)
    assert files_containing(tmp_path, SECRET) == []
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err + caplog.text


def test_a_server_quoting_the_key_back_gets_it_redacted(
    fault_server: tuple[FaultServer, str],
    tmp_path: Path,
    reference_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, url = fault_server
    state.then = "401-echo"
    monkeypatch.setenv("DISTALIGN_API_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    frame = Runner(run_config(tmp_path, reference_dir, f"openai-compatible:fake@{url}")).run()
    assert state.auth_headers[-1] == f"Bearer {SECRET}"  # the key did go out, to the server
    assert list(frame["status"]) == ["request_failure"]
    assert "Incorrect API key provided: Bearer [redacted]" in frame["detail"][0]
    assert files_containing(tmp_path, SECRET) == []
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err + caplog.text


# ----- specs and keys ---------------------------------------------------------------------------


def test_openai_spec_needs_the_key_and_says_which_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendUnavailableError, match="OPENAI_API_KEY"):
        get_backend("openai:gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with get_backend("openai:gpt-4o") as backend:  # sends nothing
        assert backend.identity.path == "https://api.openai.com/v1"
        assert {Capability.LOGPROBS, Capability.JSON_SCHEMA, Capability.SEED} <= set(
            backend.capabilities
        )
        assert Capability.LETTER_GRAMMAR not in backend.capabilities
        assert backend.max_concurrency == 8
        assert SECRET not in json.dumps(backend.identity.as_dict())


def test_compatible_spec_names_a_model_and_its_replicas() -> None:
    model, urls = parse_compatible_argument("org/llama-3@http://a:8000/v1/,https://b/v1")
    assert model == "org/llama-3"
    assert urls == ["http://a:8000/v1", "https://b/v1"]
    with pytest.raises(ValueError, match="MODEL@URL"):
        parse_compatible_argument("llama-3")
    with pytest.raises(ValueError, match="credentials"):
        parse_compatible_argument("m@http://user:pw@host/v1")


def test_a_server_that_cannot_be_reached_fails_before_the_run() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(BackendUnavailableError, match="no server"):
        OpenAICompatibleBackend(MODEL, [url])
