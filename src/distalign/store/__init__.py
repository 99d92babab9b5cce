"""Where results live: the SQLite response cache and the per-item results table."""

from distalign.store.cache import ResponseCache, request_key

__all__ = ["ResponseCache", "request_key"]
