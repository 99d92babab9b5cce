"""What a method asks of a backend: typed, frozen call records, and the request key.

A call is a :class:`ProbsCall` (next-token probabilities over candidate letters) or a
:class:`GenerateCall` (one sampled completion). A :class:`Request` is a call on a prompt for a
backend: its JSON payload (backend identity, messages, call, template version, ...) is hashed
into the cache key, so the same request is never sent twice and a retry (``attempt`` > 0) is a
new request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from distalign.backends.base import BackendIdentity, GenerationRequest, make_request
from distalign.store import request_key


@dataclass(frozen=True)
class ProbsCall:
    """Next-token probabilities of the candidates (Log-p)."""

    op: ClassVar[str] = "probs"
    candidates: tuple[str, ...]
    attempt: int = 0

    def as_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"op": self.op, "candidates": list(self.candidates)}
        if self.attempt:
            payload["attempt"] = self.attempt
        return payload


@dataclass(frozen=True)
class GenerateCall:
    """One sampled completion; ``letters`` + ``length`` constrain it to that many letters."""

    op: ClassVar[str] = "generate"
    temperature: float = 1.0
    seed: int | None = None
    max_tokens: int | None = None
    json_schema: str | None = None  # the schema as canonical JSON text (a frozen record)
    letters: tuple[str, ...] | None = None
    length: int | None = None
    sample: int | None = None  # index among an item's N samples: N calls, N cache entries
    attempt: int = 0

    def as_json(self) -> dict[str, Any]:
        # the same JSON as distalign 0.x's call dicts, so existing caches keep their keys
        payload: dict[str, Any] = {
            "op": self.op,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        optional = {
            "sample": self.sample,
            "letters": None if self.letters is None else list(self.letters),
            "length": self.length,
            "max_tokens": self.max_tokens,
            "json_schema": None if self.json_schema is None else json.loads(self.json_schema),
        }
        payload.update({k: v for k, v in optional.items() if v is not None})
        if self.attempt:
            payload["attempt"] = self.attempt
        return payload

    def request(self) -> GenerationRequest:
        """The checked arguments of the backend's generate call."""
        return make_request(
            self.max_tokens,
            self.temperature,
            self.seed,
            1,
            None if self.json_schema is None else json.loads(self.json_schema),
            self.letters,
            self.length,
            None,
        )

    def upto_seed(self) -> tuple[Any, ...]:
        """Everything but the seed and sample index: calls equal here differ only by draw."""
        return (self.temperature, self.max_tokens, self.json_schema, self.letters, self.length)


Call = ProbsCall | GenerateCall


def schema_text(schema: Mapping[str, Any]) -> str:
    """A JSON schema as canonical text, for :attr:`GenerateCall.json_schema`."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, eq=False)
class Request:
    """One call on one prompt for one backend, and its cache key."""

    key: str
    payload: Mapping[str, Any]  # the JSON whose hash is ``key``; stored with the response
    messages: Sequence[Mapping[str, str]]
    call: Call

    @property
    def messages_text(self) -> str:
        return json.dumps(self.payload["messages"], ensure_ascii=False)


def make_call_request(
    identity: BackendIdentity,
    messages: Sequence[Mapping[str, str]],
    call: Call,
    context: Mapping[str, Any],
) -> Request:
    """The request for ``call`` on ``messages``; ``context`` holds template versions and modes."""
    payload = {
        "backend": identity.as_dict(),
        "messages": [dict(m) for m in messages],
        "call": call.as_json(),
        **context,
    }
    return Request(request_key(payload), payload, messages, call)
