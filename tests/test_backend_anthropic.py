"""The Anthropic backend against a small local server speaking the Messages API.

There is no local Anthropic server, so this fake (``http.server`` on 127.0.0.1) is the one place a
stand-in is right: it checks the wire format the backend sends, usage accounting, the SDK's
retries and that the key never leaks. The real API is never called. Its prompt cache follows
Anthropic's rules: the prompt up to the last ``cache_control`` block is written on first use and
read afterwards, if it reaches the model's minimum (tokens counted as characters / 4).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from distalign.backends import BackendUnavailableError, Capability, get_backend
from distalign.backends.anthropic_backend import AnthropicBackend, RequestError
from distalign.backends.base import UnsupportedMethodError, Usage
from distalign.costs import DEFAULT_PRICES, usage_cost
from distalign.runner import RunConfig, Runner

SECRET = "sk-ant-test-SECRET123"
MODEL = "claude-3-haiku-20240307"


@dataclass
class MessagesServer:
    """Answers POST /v1/messages from ``script`` ("ok", "429", "529", "401-echo"), then "ok"."""

    script: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    min_cache_tokens: int = 2048  # claude-3-haiku's minimum cacheable prompt
    cached: set[str] = field(default_factory=set)  # prompt prefixes in the cache

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        """Token counts as Anthropic reports them; an unmarked prompt counts 21 tokens."""
        text, prefix = prompt_texts(body)
        if prefix is None:
            return {"input_tokens": 21, "output_tokens": 2}
        cacheable = len(prefix) // 4 >= self.min_cache_tokens
        cached = len(prefix) // 4 if cacheable else 0
        read = cached if prefix in self.cached else 0
        if cacheable:
            self.cached.add(prefix)
        return {
            "input_tokens": len(text) // 4 - cached,  # only what follows the cached prefix
            "output_tokens": 2,
            "cache_creation_input_tokens": cached - read,
            "cache_read_input_tokens": read,
        }


def prompt_texts(body: dict[str, Any]) -> tuple[str, str | None]:
    """The prompt's text, and its text up to the last block marked for the cache (if any)."""
    text, prefix = "", None
    parts = [body.get("system", "")] + [m["content"] for m in body["messages"]]
    for part in parts:
        for block in [{"text": part}] if isinstance(part, str) else part:
            text += block["text"]
            if "cache_control" in block:
                assert block["cache_control"] == {"type": "ephemeral"}
                prefix = text
    return text, prefix


def make_handler(state: MessagesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            state.bodies.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            state.times.append(time.monotonic())
            action = state.script.pop(0) if state.script else "ok"
            if action == "429":
                self.reply(429, error("rate_limit_error", "slow down"), {"retry-after": "1"})
            elif action == "529":
                self.reply(529, error("overloaded_error", "busy"), {"retry-after-ms": "10"})
            elif action == "401-echo":
                said = sent_key(state.headers[-1])
                self.reply(401, error("authentication_error", f"invalid key {said}"))
            else:
                self.reply(200, message(body, state.usage(body)))

        def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def sent_key(headers: dict[str, str]) -> str:
    # SDK versions differ: "x-api-key: KEY" or "Authorization: Bearer KEY"
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")


def error(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}}


def message(request: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": [{"type": "text", "text": "B"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


@pytest.fixture
def server() -> Iterator[tuple[MessagesServer, str]]:
    state = MessagesServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def backend_at(url: str, model: str = MODEL, **options: Any) -> AnthropicBackend:
    return AnthropicBackend(model, api_key=SECRET, base_url=url, timeout=5.0, **options)


MESSAGES = [
    {"role": "system", "content": "You answer surveys."},
    {"role": "user", "content": "A or B?"},
    {"role": "assistant", "content": "Answer:"},
]


def test_wire_format_and_usage(server: tuple[MessagesServer, str]) -> None:
    state, url = server
    with backend_at(url) as backend:
        result = backend.generate_detailed(MESSAGES, max_tokens=5, n=2, stop=["\n"])
        backend.generate(MESSAGES, temperature=0.5)
    assert result.texts == ["B", "B"]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (42, 4)  # 2 calls
    first, _, cooler = state.bodies
    assert first["model"] == MODEL
    assert first["system"] == "You answer surveys."
    assert first["messages"] == [  # the final assistant message is a prefill
        {"role": "user", "content": "A or B?"},
        {"role": "assistant", "content": "Answer:"},
    ]
    assert first["max_tokens"] == 5
    assert first["stop_sequences"] == ["\n"]
    assert "temperature" not in first  # 1.0 is the API's default
    assert cooler["temperature"] == 0.5
    assert sent_key(state.headers[0]) == SECRET
    assert "anthropic-version" in state.headers[0]


def test_logp_schema_and_seed_are_refused_before_any_request(
    server: tuple[MessagesServer, str],
) -> None:
    state, url = server
    with backend_at(url) as backend:
        assert backend.capabilities == {Capability.GENERATE}
        with pytest.raises(UnsupportedMethodError, match="logprobs"):
            backend.next_token_probs(MESSAGES[:2], ["A", "B"])
        with pytest.raises(UnsupportedMethodError, match="json_schema"):
            backend.generate(MESSAGES, json_schema={"type": "object"})
        with pytest.raises(UnsupportedMethodError, match="seed"):
            backend.generate(MESSAGES, seed=3)
    assert state.bodies == []


def test_a_logp_run_fails_before_sending_anything(
    server: tuple[MessagesServer, str],
    tmp_path: Path,
    reference_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = server
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    settings: dict[str, Any] = {
        "models": [f"anthropic:{MODEL}"],
        "methods": ["sequence", "logp"],
        "questions": 1,
        "data_dir": str(reference_dir),
        "out": str(tmp_path / "run"),
    }
    config = RunConfig(**settings)
    with pytest.raises(UnsupportedMethodError, match="the logp method"):
        Runner(config).run()
    assert state.bodies == []


def test_rate_limits_and_overload_are_retried(server: tuple[MessagesServer, str]) -> None:
    state, url = server
    state.script = ["429", "529", "529"]
    with backend_at(url) as backend:
        assert backend.generate(MESSAGES) == ["B"]
    assert len(state.bodies) == 4
    assert state.times[1] - state.times[0] >= 1.0  # retry-after: 1 honoured


def test_the_key_is_required_and_never_repeated(
    server: tuple[MessagesServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = server
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(BackendUnavailableError, match="ANTHROPIC_API_KEY"):
        get_backend(f"anthropic:{MODEL}")
    state.script = ["401-echo"]
    with backend_at(url) as backend:
        with pytest.raises(RequestError) as failure:
            backend.generate(MESSAGES)
        identity = json.dumps(backend.identity.as_dict())
    assert "invalid key [redacted]" in str(failure.value)
    assert SECRET not in str(failure.value) + identity
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


# ----- prompt caching ---------------------------------------------------------------------------

# about 2,600 estimated tokens: above claude-3-haiku's minimum of 2,048
LONG = "Earlier answers of people like you, for reference. " * 200
# about 1,300 estimated tokens: above the 1,024 of claude-3-opus, below claude-3-haiku's
MEDIUM = "Some context. " * 370


def long_messages(user: str, system: str = "You answer surveys.") -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
        {"role": "assistant", "content": "Answer:"},
    ]


def test_a_long_prompt_is_cached_and_its_cached_tokens_are_counted(
    server: tuple[MessagesServer, str],
) -> None:
    state, url = server
    with backend_at(url) as backend:
        result = backend.generate_detailed(long_messages(LONG), max_tokens=1, n=3)
    first = state.bodies[0]
    assert state.bodies == [first] * 3  # identical requests: one prefix, cached once
    assert first["system"] == "You answer surveys."  # too short to be cached by itself
    assert first["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "assistant", "content": "Answer:"},
    ]
    prefix = len("You answer surveys." + LONG) // 4
    total = len("You answer surveys." + LONG + "Answer:") // 4
    usage = result.usage
    assert usage is not None
    # every prompt token in prompt_tokens; the first request wrote the prefix, two read it
    assert (usage.prompt_tokens, usage.completion_tokens) == (3 * total, 6)
    counts = dataclasses.asdict(usage)
    assert (counts["cache_write_tokens"], counts["cache_read_tokens"]) == (prefix, 2 * prefix)
    # claude-3-haiku: 0.25 USD per 1M in, cache writes 0.30, reads 0.03, 1.25 out
    expected = (3 * (total - prefix) * 0.25 + prefix * 0.30 + 2 * prefix * 0.03 + 6 * 1.25) / 1e6
    assert usage_cost(MODEL, counts) == pytest.approx(expected)
    uncached = usage_cost(MODEL, {"prompt_tokens": 3 * total, "completion_tokens": 6})
    assert uncached is not None and usage_cost(MODEL, counts) < 0.5 * uncached
    assert DEFAULT_PRICES["claude-3-haiku"].cache_read == 0.03


def test_a_long_system_prompt_is_cached_by_itself(server: tuple[MessagesServer, str]) -> None:
    state, url = server
    with backend_at(url) as backend:
        backend.generate(long_messages("A or B?", system=LONG), max_tokens=1)
    body = state.bodies[0]
    assert body["system"] == [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize(
    ("model", "options", "marked"),
    [
        ("claude-3-opus-20240229", {}, True),  # 1,024 tokens are enough for Opus
        (MODEL, {}, False),  # claude-3-haiku needs 2,048
        ("claude-3-opus-20240229", {"prompt_cache": False}, False),
    ],
)
def test_only_prompts_above_the_models_minimum_are_marked(
    server: tuple[MessagesServer, str], model: str, options: dict[str, Any], marked: bool
) -> None:
    state, url = server
    with backend_at(url, model, **options) as backend:
        result = backend.generate_detailed(long_messages(MEDIUM), max_tokens=1)
    content = state.bodies[0]["messages"][0]["content"]
    assert isinstance(content, list) is marked
    assert "cache_control" not in json.dumps(state.bodies[0]["system"])
    if not marked:  # unchanged wire format, and plain usage
        assert content == MEDIUM
        assert result.usage == Usage(21, 2)
