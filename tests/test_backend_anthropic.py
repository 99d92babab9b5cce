"""The Anthropic backend against a small local server speaking the Messages API.

There is no local Anthropic server, so this fake (``http.server`` on 127.0.0.1) is the one place a
stand-in is right: it checks the wire format the backend sends, usage accounting, the SDK's
retries and that the key never leaks. The real API is never called.
"""

from __future__ import annotations

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
from distalign.backends.base import UnsupportedMethodError
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
                self.reply(200, message(body))

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


def message(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": [{"type": "text", "text": "B"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 21, "output_tokens": 2},
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


def backend_at(url: str) -> AnthropicBackend:
    return AnthropicBackend(MODEL, api_key=SECRET, base_url=url, timeout=5.0)


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
