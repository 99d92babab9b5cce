"""The request engine: typed calls keep the cache keys of before, batches keep prompts whole,
one batch in gives one result per call out, and every finished call is committed at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from distalign.backends import (
    Backend,
    BackendIdentity,
    Capability,
    GenerateJob,
    Generation,
    GenerationRequest,
    Message,
    NextTokenProbs,
    ProbsJob,
)
from distalign.engine import (
    Engine,
    GenerateCall,
    ProbsCall,
    Replies,
    RequestMaker,
    make_batches,
    schema_text,
    sent_requests,
)
from distalign.store import ResponseCache, request_key

IDENTITY = BackendIdentity(backend="scripted", model="m")
CONTEXT = {"template_version": 1, "prompt_mode": "standard"}


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "S"}, {"role": "user", "content": text}]


class Scripted(Backend):
    """A backend that answers from a rule and records the batches it was handed."""

    def __init__(self, batch_size: int = 1, caps: frozenset[Capability] | None = None) -> None:
        self.batch_size = batch_size
        self.caps = caps or frozenset({Capability.LOGPROBS, Capability.GENERATE})
        self.batches: list[int] = []
        self.fail_on: set[str] = set()

    @property
    def identity(self) -> BackendIdentity:
        return IDENTITY

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.caps

    def _next_token_probs_many(self, jobs: list[ProbsJob]) -> Iterator[NextTokenProbs | Exception]:
        self.batches.append(len(jobs))
        for job in jobs:
            if job.messages[-1]["content"] in self.fail_on:
                yield RuntimeError("boom")
            else:
                share = 1 / len(job.candidates)
                yield NextTokenProbs({c: share for c in job.candidates}, 0.5, {})

    def _generate_many(self, jobs: list[GenerateJob]) -> Iterator[Generation | Exception]:
        self.batches.append(len(jobs))
        for job in jobs:
            yield Generation([f"{job.messages[-1]['content']}:{job.request.seed}"])

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        raise AssertionError("the engine uses the batch entry point")


def test_request_keys_are_those_of_the_call_dicts_before() -> None:
    schema = {"type": "object", "required": ["A", "B"]}
    calls = [
        (ProbsCall(("A", "B")), {"op": "probs", "candidates": ["A", "B"]}),
        (
            ProbsCall(("A", "B"), attempt=2),
            {"op": "probs", "candidates": ["A", "B"], "attempt": 2},
        ),
        (
            GenerateCall(seed=3, sample=4, letters=("A", "B"), length=1),
            {
                "op": "generate",
                "temperature": 1.0,
                "seed": 3,
                "sample": 4,
                "letters": ["A", "B"],
                "length": 1,
            },
        ),
        (
            GenerateCall(seed=None, max_tokens=40, json_schema=schema_text(schema)),
            {
                "op": "generate",
                "temperature": 1.0,
                "seed": None,
                "max_tokens": 40,
                "json_schema": schema,
            },
        ),
    ]
    make = RequestMaker(IDENTITY, CONTEXT)
    for call, old in calls:
        payload = {"backend": IDENTITY.as_dict(), "messages": messages("q"), "call": old}
        request = make(messages("q"), call)
        assert request.key == request_key({**payload, **CONTEXT})


def test_batches_hold_one_operation_and_at_most_the_batch_size() -> None:
    make = RequestMaker(IDENTITY, CONTEXT)
    requests = [make(messages(f"q{i}"), ProbsCall(("A", "B"))) for i in range(7)]
    requests += [make(messages(f"q{i}"), GenerateCall(seed=i, max_tokens=5)) for i in range(3)]
    batches = make_batches(requests, Scripted(batch_size=3))
    assert sorted(len(b) for b in batches) == [1, 3, 3, 3]
    for batch in batches:
        assert len({r.call.op for r in batch}) == 1 and len(batch) <= 3


def test_multi_sample_backends_get_an_items_samples_in_one_batch() -> None:
    make = RequestMaker(IDENTITY, CONTEXT)
    samples = [
        make(messages(f"q{q}"), GenerateCall(seed=s, sample=s, letters=("A", "B"), length=1))
        for q in range(3)
        for s in range(30)
    ]
    plain = Scripted(batch_size=1, caps=frozenset({Capability.GENERATE}))
    multi = Scripted(batch_size=1, caps=frozenset({Capability.GENERATE, Capability.MULTI_SAMPLE}))
    assert [len(b) for b in make_batches(samples, plain)] == [1] * 90
    grouped = make_batches(samples, multi)
    assert [len(b) for b in grouped] == [30, 30, 30]
    assert all(len({r.messages_text for r in b}) == 1 for b in grouped)
    assert len(sent_requests(samples, plain)) == 90 and len(sent_requests(samples, multi)) == 3


def test_a_batch_in_gives_each_call_its_own_result_committed(tmp_path: Path) -> None:
    backend = Scripted(batch_size=4)
    backend.fail_on = {"q2"}
    make = RequestMaker(IDENTITY, CONTEXT)
    requests = [make(messages(f"q{i}"), ProbsCall(("A", "B", "C"))) for i in range(6)]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        engine = Engine(backend, cache, pass_wait=lambda _: 0.0)
        engine.send(requests)
        assert backend.batches == [4, 2]
        replies = Replies(cache)
        replies.load(requests)
        for i, request in enumerate(requests):
            if i == 2:
                assert replies.get(request.key) is None
                assert "boom" in (replies.error(request.key) or "")
            else:
                assert replies.get(request.key)["probs"] == pytest.approx(
                    {"A": 1 / 3, "B": 1 / 3, "C": 1 / 3}
                )
        # a rerun sends only the failed call
        backend.fail_on = set()
        engine.send(requests)
        assert backend.batches == [4, 2, 1]
        assert engine.stats.calls_cached == 5 and engine.stats.calls_sent == 6


def test_a_backend_that_returns_too_few_results_fails_the_rest_not_the_run(
    tmp_path: Path,
) -> None:
    class Short(Scripted):
        def _next_token_probs_many(
            self, jobs: list[ProbsJob]
        ) -> Iterator[NextTokenProbs | Exception]:
            yield from list(super()._next_token_probs_many(jobs))[:1]

    make = RequestMaker(IDENTITY, CONTEXT)
    requests = [make(messages(f"q{i}"), ProbsCall(("A", "B"))) for i in range(3)]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        Engine(Short(batch_size=3), cache).send(requests)
        assert len(cache.missing(r.key for r in requests)) == 2
        assert "fewer results" in (cache.error(requests[2].key) or "")


def test_seeds_and_samples_reach_the_backend_through_generate_many(tmp_path: Path) -> None:
    backend = Scripted(batch_size=8, caps=frozenset({Capability.GENERATE, Capability.SEED}))
    make = RequestMaker(IDENTITY, CONTEXT)
    calls = [GenerateCall(seed=s, sample=s, max_tokens=4) for s in range(5)]
    requests = [make(messages("q"), call) for call in calls]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        Engine(backend, cache).send(requests)
        texts = [cache.get(r.key)["text"] for r in requests]
    assert texts == [f"q:{s}" for s in range(5)] and backend.batches == [5]


def test_a_call_record_is_frozen() -> None:
    call = GenerateCall(seed=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.seed = 2  # type: ignore[misc]


def test_one_failed_multi_sample_request_counts_once_towards_giving_up(tmp_path: Path) -> None:
    class OneRequest(Scripted):
        def _generate_many(self, jobs: list[GenerateJob]) -> Iterator[Generation | Exception]:
            self.batches.append(len(jobs))
            error = RuntimeError("the one request of these samples failed")
            yield from [error] * len(jobs)  # what a multi-sample backend yields

    caps = frozenset({Capability.GENERATE, Capability.MULTI_SAMPLE})
    backend = OneRequest(batch_size=1, caps=caps)
    make = RequestMaker(IDENTITY, CONTEXT)
    requests = [
        make(messages(f"q{q}"), GenerateCall(seed=s, sample=s, max_tokens=2))
        for q in range(3)
        for s in range(30)
    ]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        engine = Engine(backend, cache)
        engine.send(requests)
    # three failed requests in a row are fewer than GIVE_UP_AFTER (5): every item was tried
    assert backend.batches == [30, 30, 30] and not engine.given_up
