"""The send loop: what the cache lacks goes to the backend in batches; each reply is committed.

Pending requests are sorted so that prompts sharing a prefix are adjacent (backends reuse the
KV cache of a shared prefix) and cut into batches of one operation: whole prompt groups (every
call on the same messages, e.g. an item's 30 samples) of up to ``backend.batch_size`` calls.
A backend with ``max_concurrency`` > 1 (an HTTP API) gets its batches as concurrent requests.
Each finished call is committed to the cache at once, so a crash or kill loses nothing that
completed and a rerun sends only what is missing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from distalign.backends.base import (
    Backend,
    Capability,
    GenerateJob,
    Generation,
    NextTokenProbs,
    ProbsJob,
    Usage,
)
from distalign.engine.calls import GenerateCall, ProbsCall, Request
from distalign.store import ResponseCache

Progress = Callable[[int, int], None]

# After max(GIVE_UP_AFTER, max_concurrency) calls in a row fail for good, a backend is taken
# as down and the rest of the run's calls for it are recorded as failures without being sent:
# a hung server then costs about one wave of call_timeouts, not one per call.
GIVE_UP_AFTER = 5


@dataclass
class SendStats:
    calls_total: int = 0  # distinct calls asked for
    calls_cached: int = 0  # ... answered from the cache
    calls_sent: int = 0  # requests that got a reply in this run
    batches: int = 0  # batches handed to the backend
    largest_batch: int = 0
    seconds_sending: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)  # filled by the caller at the end


# request, response, error, and whether a failure counts towards giving up on the backend
Outcome = tuple[Request, dict[str, Any] | None, str | None, bool]


class Engine:
    """Sends requests to one backend through one cache."""

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache,
        stats: SendStats | None = None,
        progress: Progress | None = None,
        pass_wait: Callable[[int], float] = lambda extra: min(30.0, 2.0**extra),
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.stats = stats if stats is not None else SendStats()
        self.progress = progress
        self.pass_wait = pass_wait
        self.given_up = False  # the backend failed too many calls in a row
        self._in_a_row = 0
        self._give_up_after = max(GIVE_UP_AFTER, backend.max_concurrency)

    def send(
        self, requests: Sequence[Request], passes: int = 0, replies: Replies | None = None
    ) -> None:
        """Send what the cache lacks, then resend calls that failed, up to ``passes`` times.

        ``replies``, if given, is loaded with every reply the requests have afterwards.
        """
        distinct = {r.key: r for r in requests}
        if replies is None:
            missing = self.cache.missing(distinct)
        else:  # one bulk read answers both "what is missing" and "what did they reply"
            replies.load(requests)
            missing = {key for key in distinct if replies.get(key) is None}
        self.stats.calls_total += len(distinct)
        self.stats.calls_cached += len(distinct) - len(missing)
        for extra_pass in range(passes + 1):
            if extra_pass:
                time.sleep(self.pass_wait(extra_pass))  # let a restarting server come back
            self._send_once([distinct[k] for k in missing])
            if replies is not None:
                replies.load([distinct[k] for k in missing])
            missing = self.cache.missing(missing)
            if not missing or self.given_up:
                return

    def _send_once(self, todo: list[Request]) -> None:
        batches = make_batches(todo, self.backend)
        start = time.perf_counter()
        done = 0
        for outcome in self._outcomes(batches):
            done += 1
            self._finish(*outcome)
            if self.progress:
                self.progress(done, len(todo))
        self.stats.seconds_sending += time.perf_counter() - start

    def _outcomes(self, batches: list[list[Request]]) -> Iterator[Outcome]:
        if self.backend.max_concurrency <= 1:
            for batch in batches:
                yield from self._run_batch(batch)
            return
        with ThreadPoolExecutor(max_workers=self.backend.max_concurrency) as pool:
            futures = [pool.submit(lambda b: list(self._run_batch(b)), b) for b in batches]
            for future in as_completed(futures):
                yield from future.result()

    def _run_batch(self, batch: list[Request]) -> Iterator[Outcome]:
        if self.given_up:
            note = f"not sent: {self._give_up_after} calls in a row failed"
            yield from ((request, None, note, True) for request in batch)
            return
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        results = self._results(batch)
        previous: object = None
        for request in batch:
            try:
                result = next(results)
            except StopIteration:
                result = RuntimeError("the backend returned fewer results than calls")
            except Exception as error:  # a whole batch failed: every call gets the reason
                result = error
                results = iter(())
            if isinstance(result, Exception):
                # the samples of one failed multi-sample request share its exception: for
                # giving up on the backend that is one failed request, not thirty
                yield request, None, f"{type(result).__name__}: {result}", result is not previous
                previous = result
            else:
                yield request, response_json(result), None, True

    def _results(self, batch: list[Request]) -> Iterator[NextTokenProbs | Generation | Exception]:
        if isinstance(batch[0].call, ProbsCall):
            probs_jobs = [ProbsJob(r.messages, r.call.candidates) for r in batch]  # type: ignore[union-attr]
            return self.backend.next_token_probs_many(probs_jobs)
        jobs = []
        for r in batch:
            assert isinstance(r.call, GenerateCall)
            jobs.append(GenerateJob(r.messages, r.call.request()))
        return self.backend.generate_many(jobs)

    def _finish(
        self, request: Request, response: dict[str, Any] | None, error: str | None, counts: bool
    ) -> None:
        """Commit one finished call right away: a crash after this loses nothing."""
        if response is None:
            self.cache.put_error(request.key, request.payload, error or "unknown error")
            self._in_a_row += counts
            if self._in_a_row >= self._give_up_after:
                self.given_up = True
        else:
            self.cache.put(request.key, request.payload, response)
            self.stats.calls_sent += 1
            self._in_a_row = 0


class Replies:
    """The cached replies a caller reads, loaded in bulk after each send (not one query each)."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._found: dict[str, Any] = {}

    def load(self, requests: Sequence[Request]) -> None:
        self._found.update(self.cache.get_many(r.key for r in requests))

    def get(self, key: str) -> Any | None:
        return self._found.get(key)

    def error(self, key: str) -> str | None:
        return self.cache.error(key)


def make_batches(requests: list[Request], backend: Backend) -> list[list[Request]]:
    """Batches of one operation and up to ``backend.batch_size`` calls, shared prefixes adjacent.

    For a backend that returns many samples per request (``multi_sample``), the generate
    calls on one prompt stay together, so it can send them as one request.
    """
    ordered = sorted(requests, key=lambda r: (r.call.op, r.messages_text, _call_order(r)))
    whole_groups = backend.supports(Capability.MULTI_SAMPLE)
    batches: list[list[Request]] = []
    for op, same_op in itertools.groupby(ordered, key=lambda r: r.call.op):
        if whole_groups and op == GenerateCall.op:
            units = [list(g) for _, g in itertools.groupby(same_op, key=_sample_group)]
        else:
            units = [[r] for r in same_op]
        batch: list[Request] = []
        for unit in units:
            if batch and len(batch) + len(unit) > backend.batch_size:
                batches.append(batch)
                batch = []
            batch.extend(unit)
        if batch:
            batches.append(batch)
    return batches


def sent_requests(requests: list[Request], backend: Backend) -> list[tuple[Request, int]]:
    """The requests the backend will actually send for these calls, each with its call count.

    A multi-sample backend sends the draws of one prompt as one request (billed once).
    """
    if not backend.supports(Capability.MULTI_SAMPLE):
        return [(r, 1) for r in requests]
    groups: dict[tuple[Any, ...], list[Request]] = {}
    for r in requests:
        group = _sample_group(r) if isinstance(r.call, GenerateCall) else (r.key,)
        groups.setdefault(group, []).append(r)
    return [(calls[0], len(calls)) for calls in groups.values()]


def _sample_group(request: Request) -> tuple[Any, ...]:
    """Calls equal here are draws of the same request and can share one multi-sample request."""
    call = request.call
    assert isinstance(call, GenerateCall)
    return (request.messages_text, call.upto_seed(), call.attempt)


def _call_order(request: Request) -> tuple[Any, ...]:
    call = request.call
    if isinstance(call, GenerateCall):
        return (*map(str, call.upto_seed()), call.attempt, call.sample or 0, str(call.seed))
    return (call.attempt,)


def response_json(result: NextTokenProbs | Generation) -> dict[str, Any]:
    """What the cache stores for one call: JSON, with the token usage when known."""
    if isinstance(result, NextTokenProbs):
        response: dict[str, Any] = {"probs": result.probs, "covered_mass": result.covered_mass}
        if result.skipped_variants:  # spellings that are not one token were not counted
            response["skipped_variants"] = list(result.skipped_variants)
    else:
        response = {"text": result.texts[0]}
    return {**response, **_usage(result.usage)}


def _usage(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    counts = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    for name in ("cache_read_tokens", "cache_write_tokens"):  # only where a cache was used
        if getattr(usage, name) is not None:
            counts[name] = getattr(usage, name)
    return {"usage": counts}
