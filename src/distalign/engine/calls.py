"""What a method asks of a backend: typed, frozen call records, and the request key.

A call is a :class:`ProbsCall` (next-token probabilities over candidate letters) or a
:class:`GenerateCall` (one sampled completion). A :class:`Request` is a call on a prompt for a
backend: its JSON payload (backend identity, messages, call, template version, ...) is hashed
into the cache key, so the same request is never sent twice and a retry (``attempt`` > 0) is a
new request.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from distalign.backends.base import BackendIdentity, GenerationRequest, make_request


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
    parts: tuple[str, ...]  # the canonical JSON whose hash is ``key``, in pieces
    messages: Sequence[Mapping[str, str]]
    messages_text: str  # the messages as canonical JSON: sorts shared prefixes together
    call: Call

    @property
    def payload(self) -> str:
        """The canonical JSON stored with the response (joined only for calls sent)."""
        return "".join(self.parts)


class RequestMaker:
    """Makes the requests of one backend and context, serializing the shared parts once.

    The key is the SHA-256 of ``canonical_json(payload)`` for the payload ``{"backend": identity,
    "messages": ..., "call": ..., **context}``; the top level is joined from parts serialized
    separately, which gives the same text (and so the same keys as before) at a fraction of
    the cost: 120,000 Samples calls share about 15,000 prompts and one identity.
    """

    def __init__(self, identity: BackendIdentity, context: Mapping[str, Any]) -> None:
        fixed = {"backend": canonical_json(identity.as_dict())}
        fixed.update((k, canonical_json(v)) for k, v in context.items())
        # The payload text in sorted-key order is three constant pieces around the two that
        # vary: {...,"call":CALL,...,"messages":MESSAGES,...} ("call" sorts before "messages").
        texts = [""]
        for i, name in enumerate(sorted([*fixed, "messages", "call"])):
            texts[-1] += ("," if i else "") + json.dumps(name) + ":"
            if name in fixed:
                texts[-1] += fixed[name]
            else:
                texts.append("")
        self._before, self._between, self._after = "{" + texts[0], texts[1], texts[2] + "}"
        self._start = hashlib.sha256(self._before.encode())  # copied for every call
        self._between_bytes, self._after_bytes = self._between.encode(), self._after.encode()
        self._messages: tuple[Sequence[Mapping[str, str]], str, bytes] | None = None

    def __call__(self, messages: Sequence[Mapping[str, str]], call: Call) -> Request:
        text, text_bytes = self._messages_json(messages)
        try:
            call_text, call_bytes = _call_json(call)
        except TypeError:  # a call with a list inside is not hashable: serialize it each time
            call_text = canonical_json(call.as_json())
            call_bytes = call_text.encode()
        digest = self._start.copy()
        for part in (call_bytes, self._between_bytes, text_bytes, self._after_bytes):
            digest.update(part)
        parts = (self._before, call_text, self._between, text, self._after)
        return Request(digest.hexdigest(), parts, messages, text, call)

    def _messages_json(self, messages: Sequence[Mapping[str, str]]) -> tuple[str, bytes]:
        # an item's calls come one after another with the same messages object
        if self._messages is not None and self._messages[0] is messages:
            return self._messages[1], self._messages[2]
        text = canonical_json([dict(m) for m in messages])
        self._messages = (messages, text, text.encode())
        return text, self._messages[2]


@functools.lru_cache(maxsize=1 << 14)
def _call_json(call: Call) -> tuple[str, bytes]:
    # every item asks the same few calls (sample i has the same seed in every item)
    text = canonical_json(call.as_json())
    return text, text.encode()


def canonical_json(value: Any) -> str:
    """The JSON text that request keys hash: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def text_key(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def make_call_request(
    identity: BackendIdentity,
    messages: Sequence[Mapping[str, str]],
    call: Call,
    context: Mapping[str, Any],
) -> Request:
    """The request for ``call`` on ``messages``; ``context`` holds template versions and modes."""
    return RequestMaker(identity, context)(messages, call)
