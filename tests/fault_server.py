"""A misbehaving OpenAI-compatible server for fault-injection tests (127.0.0.1, any port).

It speaks just enough of ``/v1/chat/completions`` and ``/v1/models``. Each request takes the
next transport action from ``script`` (then ``then``):

* ``"ok"``: a 200 reply; ``"429"`` (Retry-After: 1); ``"500"`` (retry-after-ms: 10, so
  retries are quick); ``"slow"`` (answers after ``slow_seconds``); ``"drop"`` (closes the
  connection without a reply); ``"401-echo"`` (401 quoting the Authorization header back, as a
  careless server might); ``"400-n"`` (400 refusing ``n`` > 1, as OpenAI words it; a request
  without ``n`` gets a 200); ``"500-n"`` (the same as a 500, worded as some llama.cpp versions
  do); ``"400"`` (400 for another reason: the prompt is too long).

What a 200 reply says is up to ``reply`` (the text of a generation, from the request body)
and ``top`` (the ``(token, logprob)`` candidates of a Log-p request). The defaults answer "A".
A generation request with ``n`` gets n choices (each text from ``reply``), or at most
``max_choices`` of them: 1 plays a server that drops ``n``, as llama-cpp-python's does. The
usage counts the prompt once (``prompt_tokens``) and one completion token per choice, and
``cached_tokens`` of the prompt as read from OpenAI's prompt cache when that is set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from distalign.runner import RunConfig

DEFAULT_TOP = [("A", -0.4), ("B", -1.6), ("The", -2.5), (" C", -3.0), ("D", -4.0), ("E", -5.0)]


@dataclass
class FaultServer:
    script: list[str] = field(default_factory=list)
    then: str = "ok"
    slow_seconds: float = 1.5
    delay: float = 0.0  # seconds every answer takes
    reply: Callable[[dict[str, Any]], str] = lambda body: "A"
    top: Callable[[dict[str, Any]], list[tuple[str, float]]] = lambda body: DEFAULT_TOP
    max_choices: int | None = None  # None: as many choices as ``n`` asks for
    prompt_tokens: int = 50
    cached_tokens: int | None = None  # reported as usage.prompt_tokens_details.cached_tokens
    hits: list[tuple[float, str]] = field(default_factory=list)  # (time, action) per request
    bodies: list[dict[str, Any]] = field(default_factory=list)  # request bodies, in order
    auth_headers: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self, authorization: str, body: dict[str, Any]) -> str:
        with self.lock:
            action = self.script.pop(0) if self.script else self.then
            self.hits.append((time.monotonic(), action))
            self.bodies.append(body)
            self.auth_headers.append(authorization)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return action

    def done(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The completion a 200 reply carries."""
        if body.get("logprobs"):
            top = self.top(body)
            text, logprob = top[0] if top else ("", 0.0)
            logprobs: dict[str, Any] | None = {
                "content": [
                    {
                        "token": text,
                        "logprob": logprob,
                        "bytes": None,
                        "top_logprobs": [
                            {"token": t, "logprob": lp, "bytes": None} for t, lp in top
                        ],
                    }
                ]
            }
            choices = [choice(0, text, logprobs)]
        else:
            count = int(body.get("n") or 1)
            if self.max_choices is not None:
                count = min(count, self.max_choices)
            choices = [choice(i, self.reply(body), None) for i in range(count)]
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": len(choices)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "fake",
            "choices": choices,
            "usage": usage,
        }


def choice(index: int, text: str, logprobs: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "logprobs": logprobs,
    }


def make_handler(state: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            return None

        def do_GET(self) -> None:
            self.reply(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw or b"{}")
            action = state.next_action(self.headers.get("Authorization", ""), body)
            try:
                self.act(action, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): expected for "slow"
            finally:
                state.done()

        def act(self, action: str, body: dict[str, Any]) -> None:
            time.sleep(state.delay)
            if action == "drop":
                self.close_connection = True  # no status line, no body
            elif action == "429":
                self.reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
            elif action == "500":
                self.reply(500, {"error": {"message": "boom"}}, {"retry-after-ms": "10"})
            elif action == "400-n" and int(body.get("n") or 1) > 1:
                refusal = {
                    "message": "Invalid 'n': this model supports only n=1.",
                    "type": "invalid_request_error",
                    "param": "n",
                    "code": "invalid_value",
                }
                self.reply(400, {"error": refusal})
            elif action == "500-n" and int(body.get("n") or 1) > 1:
                refusal = {"code": 500, "message": "Only one completion choice is allowed"}
                self.reply(500, {"error": {**refusal, "type": "server_error"}})
            elif action == "400":
                too_long = {"message": "This model's maximum context length is 8192 tokens."}
                self.reply(400, {"error": {**too_long, "param": "messages"}})
            elif action == "401-echo":
                said = self.headers.get("Authorization", "")
                self.reply(401, {"error": {"message": f"Incorrect API key provided: {said}"}})
            else:
                if action == "slow":
                    time.sleep(state.slow_seconds)
                self.reply(200, state.answer(body))

        def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            # allow_nan: a misbehaving server may well send NaN, which Python's json reads back
            data = json.dumps(body, allow_nan=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serving(state: FaultServer) -> Iterator[str]:
    """Run ``state`` on a free port of 127.0.0.1; yields its base URL (``.../v1``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_config(tmp_path: Path, reference_dir: Path, model: str, **overrides: Any) -> RunConfig:
    """A small run: one group, one question, Log-p, no retries; ``overrides`` on top."""
    settings: dict[str, Any] = {
        "models": [model],
        "datasets": ["opinionqa"],
        "groups": ["POLPARTY=Democrat"],
        "steerings": ["persona"],
        "methods": ["logp"],
        "questions": 1,
        "retries": 0,
        "data_dir": str(reference_dir),
        "out": str(tmp_path / "run"),
    }
    settings.update(overrides)
    return RunConfig(**settings)
