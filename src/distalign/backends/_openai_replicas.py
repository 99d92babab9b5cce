"""Replicas of one model: which server gets the next request of the OpenAI-compatible backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import openai


@dataclass
class Replica:
    """One server of a model, with its own client and load counters."""

    url: str
    client: openai.OpenAI
    in_flight: int = 0
    started: int = 0
    completed: int = 0
    down_until: float = 0.0  # time.monotonic() before which the replica is skipped


class ReplicaPool:
    """Hands out replicas, least busy first, at most ``limit`` calls in flight on each."""

    def __init__(self, replicas: list[Replica], limit: int, down_seconds: float) -> None:
        self.replicas = replicas
        self.limit = limit
        self.down_seconds = down_seconds
        self._changed = threading.Condition()

    @contextmanager
    def use(self, tried: set[str]) -> Iterator[Replica]:
        """A replica not in ``tried``, held for the duration of one call."""
        replica = self._acquire(tried)
        try:
            yield replica
        finally:
            with self._changed:
                replica.in_flight -= 1
                self._changed.notify_all()

    def _acquire(self, tried: set[str]) -> Replica:
        with self._changed:
            while True:
                now = time.monotonic()
                untried = [r for r in self.replicas if r.url not in tried]
                # when every replica is marked down, try them anyway: one may be back
                up = [r for r in untried if r.down_until <= now] or untried
                free = [r for r in up if r.in_flight < self.limit]
                if free:
                    replica = min(free, key=lambda r: (r.in_flight, r.started))
                    replica.in_flight += 1
                    replica.started += 1
                    return replica
                self._changed.wait(timeout=1.0)  # re-check: a down period may have ended

    def mark_down(self, replica: Replica) -> None:
        with self._changed:
            replica.down_until = time.monotonic() + self.down_seconds
            self._changed.notify_all()

    def mark_done(self, replica: Replica) -> None:
        with self._changed:
            replica.completed += 1
