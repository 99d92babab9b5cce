"""The response cache: one SQLite file (WAL) holding every completed model request.

Each request is keyed by a SHA-256 of its canonical JSON: backend identity, the rendered
prompt, the decoding parameters, the prompt template version and, for sampled outputs, the
sample index and seed (30 independent samples are 30 entries, never one). A response is
committed as soon as it arrives, so a crash, kill -9 or Ctrl-C loses nothing that completed,
and a rerun only sends what is missing. API keys never enter a request, so never the cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    response TEXT,
    error TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Replies without the requests: a row's response sits behind its request (a few kB of prompt,
-- in overflow pages), so reading replies from the table walks every prompt. This covering
-- index lets a cached rerun of 120,000 calls read only the replies.
CREATE INDEX IF NOT EXISTS replies ON responses (key, response) WHERE error IS NULL;
"""


def request_key(request: Mapping[str, Any]) -> str:
    """A stable hash of a request (canonical JSON: sorted keys, no whitespace)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """A SQLite-backed map from request key to the backend's response."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def get(self, key: str) -> Any | None:
        row = self._db.execute(
            "SELECT response FROM responses WHERE key = ? AND error IS NULL", (key,)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The successful responses among ``keys``, in one query per 500 keys."""
        found: dict[str, Any] = {}
        for part in _chunks(list(set(keys))):
            marks = ",".join("?" * len(part))
            query = (
                "SELECT key, response FROM responses INDEXED BY replies "
                f"WHERE error IS NULL AND key IN ({marks})"
            )
            found.update((key, json.loads(text)) for key, text in self._db.execute(query, part))
        return found

    def missing(self, keys: Iterable[str]) -> set[str]:
        """The keys with no successful response yet."""
        wanted = set(keys)
        done: set[str] = set()
        chunk = list(wanted)
        for start in range(0, len(chunk), 500):
            part = chunk[start : start + 500]
            marks = ",".join("?" * len(part))
            done.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT key FROM responses WHERE error IS NULL AND key IN ({marks})", part
                )
            )
        return wanted - done

    def put(self, key: str, request: Mapping[str, Any] | str, response: Any) -> None:
        """Store a successful response; committed immediately (autocommit)."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, NULL, ?)",
            (key, _dump(request), _dump(response), time.time()),
        )

    def put_error(self, key: str, request: Mapping[str, Any] | str, error: str) -> None:
        """Record a request that failed for good (retried on the next run)."""
        self._db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, NULL, ?, ?)",
            (key, _dump(request), error, time.time()),
        )

    def error(self, key: str) -> str | None:
        row = self._db.execute(
            "SELECT error FROM responses WHERE key = ? AND error IS NOT NULL", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(keys: list[str], size: int = 500) -> Iterator[list[str]]:
    # SQLite limits the number of parameters of one statement
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _dump(value: Any) -> str:
    if isinstance(value, str):  # already JSON text (the engine's canonical request)
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
