"""Anthropic prompt caching: which parts of a request to mark, and the usage it reports.

A ``cache_control: {"type": "ephemeral"}`` mark on a content block caches the prompt up to and
including that block for 5 minutes; a later request with the same prefix reads it at 0.1x the
input price, writing it costs 1.25x (``distalign.costs``). The 30 identical requests of a
Samples item, and the retries of an item, then pay the long prompt about once.

A prefix shorter than the model's minimum cacheable length is processed without caching, even
when marked (no error, no extra charge). Tokens are estimated here at 4 characters each, which
can be 30 % off, so prompts are marked from 3/4 of the minimum on: an underestimate then does
not forgo the cache, and an overestimate costs nothing.
"""

from __future__ import annotations

from typing import Any

from distalign.backends._openai_usage import make_usage
from distalign.backends.base import Usage
from distalign.costs import estimate_tokens

EPHEMERAL = {"type": "ephemeral"}

# Anthropic's minimum cacheable prompt length in tokens, by model name prefix (prompt caching
# docs, 2025); every other model: 1024 (Opus 3 and 4, Sonnet 3.5 to 4.5).
MIN_CACHE_TOKENS = {
    "claude-3-haiku": 2048,
    "claude-3-5-haiku": 2048,
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
}
DEFAULT_MIN_CACHE_TOKENS = 1024
ESTIMATE_MARGIN = 0.75  # mark prompts whose estimate reaches this share of the minimum


def min_cache_tokens(model: str) -> int:
    """The shortest prompt (in tokens) that Anthropic caches for ``model``."""
    name = model.strip().lower()
    for prefix in sorted(MIN_CACHE_TOKENS, key=len, reverse=True):
        if name.startswith(prefix):
            return MIN_CACHE_TOKENS[prefix]
    return DEFAULT_MIN_CACHE_TOKENS


def mark_cacheable(params: dict[str, Any], min_tokens: int) -> None:
    """Put cache marks on the long shared parts of a Messages API request, in place.

    The system prompt is marked when it is long enough by itself (it is then shared across
    items too); the last user message is marked when the prompt up to it is long enough.
    Both become lists of one text block, the form that carries ``cache_control``.
    """
    threshold = min_tokens * ESTIMATE_MARGIN
    system = params.get("system", "")
    tokens = estimate_tokens(system)
    if system and tokens >= threshold:
        params["system"] = [cached_block(system)]
    messages: list[dict[str, Any]] = params["messages"]
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        return
    tokens += sum(estimate_tokens(m["content"]) for m in messages[: last_user + 1])
    if tokens >= threshold:
        message = messages[last_user]
        messages[last_user] = {**message, "content": [cached_block(message["content"])]}


def cached_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": dict(EPHEMERAL)}


def reply_usage(usage: Any) -> Usage:
    """A reply's usage: every prompt token, and the parts read from or written to the cache.

    Anthropic's ``input_tokens`` counts only the prompt tokens after the last cache mark;
    the cached part is in ``cache_read_input_tokens`` / ``cache_creation_input_tokens``.
    """
    read = getattr(usage, "cache_read_input_tokens", None)
    write = getattr(usage, "cache_creation_input_tokens", None)
    prompt = usage.input_tokens + (read or 0) + (write or 0)
    return make_usage(prompt, usage.output_tokens, read, write)
