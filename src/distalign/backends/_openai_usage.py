"""Token usage of the HTTP backends, with the prompt tokens a provider's prompt cache served.

``prompt_tokens`` always counts every prompt token of a request, cached ones included, so
token counts compare across backends and with ``--dry-run`` estimates. Two optional counts
say which part of them the provider's prompt cache handled, billed at other prices
(:func:`distalign.costs.usage_cost`):

* ``cache_read_tokens``: read from the cache (OpenAI's ``prompt_tokens_details.cached_tokens``,
  Anthropic's ``cache_read_input_tokens``);
* ``cache_write_tokens``: written to it (Anthropic's ``cache_creation_input_tokens``; OpenAI
  caches automatically and charges nothing extra for writing).

:class:`~distalign.backends.base.Usage` has only the first two counts for now, so
:func:`make_usage` returns a :class:`CacheUsage` (a ``Usage`` with the two counts added) when
a request used the cache; once ``Usage`` itself has these fields it returns a plain ``Usage``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distalign.backends.base import Usage

CACHE_FIELDS = ("cache_read_tokens", "cache_write_tokens")


@dataclass(frozen=True)
class CacheUsage(Usage):
    """A :class:`Usage` with the prompt tokens read from and written to a prompt cache."""

    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


_USAGE_HAS_CACHE_FIELDS = set(CACHE_FIELDS) <= {f.name for f in dataclasses.fields(Usage)}


def make_usage(
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
) -> Usage:
    """A usage record; the cache counts are kept only where there are any."""
    if cache_read_tokens is None and cache_write_tokens is None:
        return Usage(prompt_tokens, completion_tokens)
    cache = {"cache_read_tokens": cache_read_tokens, "cache_write_tokens": cache_write_tokens}
    usage_class: Any = Usage if _USAGE_HAS_CACHE_FIELDS else CacheUsage
    usage: Usage = usage_class(prompt_tokens, completion_tokens, **cache)
    return usage


def cache_counts(usage: Usage | None) -> dict[str, int | None]:
    """The cache counts of a usage record (None where it has none)."""
    return {name: getattr(usage, name, None) for name in CACHE_FIELDS}


def usage_of(completion: Any) -> Usage:
    """The usage an OpenAI-style chat completion reports (cached prompt tokens included)."""
    usage = getattr(completion, "usage", None)
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None)
    return make_usage(usage.prompt_tokens, usage.completion_tokens, cached)


def sum_usage(usages: Sequence[Usage]) -> Usage:
    """The total of several requests; a count is None when any request lacks it."""

    def total(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v or 0 for v in values)

    def cache_total(name: str) -> int | None:
        values = [cache_counts(u)[name] for u in usages]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    return make_usage(
        total([u.prompt_tokens for u in usages]),
        total([u.completion_tokens for u in usages]),
        cache_total("cache_read_tokens"),
        cache_total("cache_write_tokens"),
    )
