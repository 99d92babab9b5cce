"""``distalign run``: expand the grid, ask the model what the cache lacks, score, report.

models × datasets × groups × questions × steerings × methods × seeds becomes a list of items;
each item needs one or more backend calls (a Samples item needs N). Calls are keyed by a hash
of (backend identity, rendered messages, call parameters, template version, prompt mode) and
deduplicated (an unsteered prompt is the same for every group). Every response is committed
to the SQLite cache the moment it arrives, so an interrupted run loses nothing and the next
run sends only the calls still missing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from distalign import __version__
from distalign.backends import Backend, get_backend
from distalign.costs import Price, cost, estimate_tokens, load_prices, usage_cost
from distalign.data import Dataset, Group, Question
from distalign.datasets import load_dataset
from distalign.datasets.reference import main_groups
from distalign.engine import (
    Call,
    Engine,
    ProbsCall,
    Replies,
    Request,
    RequestMaker,
    SendStats,
    sent_requests,
)
from distalign.errors import ConfigError, UnknownNameError
from distalign.methods import ExpressionMethod, get_method
from distalign.metrics import score_items
from distalign.metrics.distance import distribution_problem
from distalign.parsing import Parsed
from distalign.parsing._result import join_notes
from distalign.results import Status, items_frame, save_items, survey_rows
from distalign.run_config import RunConfig
from distalign.steering import TEMPLATE_VERSION, Prompt, build_prompt
from distalign.steering.orders import distinct_orders
from distalign.store import ResponseCache


@dataclass
class Item:
    """One cell of the grid: a prompt for a (model, dataset, group, question, steering, ...)."""

    model: str
    dataset: Dataset
    group: Group
    question: Question
    steering: str
    method: ExpressionMethod
    seed: int
    prompt: Prompt
    attempts: list[list[str]] = field(default_factory=list)  # cache keys per attempt
    order: str = "survey"  # the option order shown (distalign.steering.orders)
    messages_text: str = ""  # the prompt's messages as the engine serialized them (JSON)


@dataclass
class RunStats(SendStats):
    calls_failed: int = 0  # calls still without a reply when the run ended
    seconds: float = 0.0


Progress = Callable[[int, int], None]


def expand(config: RunConfig, model: str, backend: Backend) -> Iterator[Item]:
    data_dir, orders = config.data_dir, config.order_names()
    for name in config.datasets:
        dataset = load_dataset(name, data_dir)
        groups = chosen_groups(dataset, config.groups)
        questions = list(dataset.questions.values())[: config.questions]
        for method_name in config.methods:
            method = get_method(method_name, n=config.n)
            method.check(backend)
            for steering in config.steerings:
                for seed in config.seeds:
                    for group in groups:
                        for question in questions:
                            if dataset.target(group, question.id) is None:
                                continue
                            for order in distinct_orders(orders, len(question.options)):
                                args = (dataset, group, question, steering, method, seed, order)
                                yield _item(config, model, *args)


def chosen_groups(dataset: Dataset, keys: list[str] | None) -> list[Group]:
    """The groups a run asked for (default: the dataset's main groups); unknown ones fail."""
    if not keys:
        return main_groups(dataset)
    try:
        groups = [Group.parse(key) for key in keys]
    except ValueError as error:
        raise ConfigError(str(error)) from None
    unknown = [g.key for g in groups if not dataset.has_group(g)]  # microdata: conjunctions
    if unknown:
        valid = ", ".join(g.key for g in dataset.groups)
        raise UnknownNameError(
            f"unknown group {', '.join(map(repr, unknown))} in dataset {dataset.name!r}; "
            f"valid groups: {valid}"
        )
    return groups


def _item(
    config: RunConfig,
    model: str,
    dataset: Dataset,
    group: Group,
    question: Question,
    steering: str,
    method: ExpressionMethod,
    seed: int,
    order: str = "survey",
) -> Item:
    prompt = build_prompt(
        dataset,
        question,
        None if steering == "none" else group,
        steering,  # type: ignore[arg-type]
        method,
        mode=config.prompt_mode,
        n_sequence=config.n,
        seed=seed,
        option_order=order,
    )
    return Item(model, dataset, group, question, steering, method, seed, prompt, order=order)


def _completion_budget(call: Call) -> int:
    """Upper bound on the completion tokens of one call (what a budget should assume)."""
    if isinstance(call, ProbsCall):
        return 1
    return int(call.max_tokens or call.length or 256)


def request_maker(backend: Backend, mode: str) -> RequestMaker:
    """Makes a run's engine requests (their payload's hash is the cache key)."""
    return RequestMaker(
        backend.identity, {"template_version": TEMPLATE_VERSION, "prompt_mode": mode}
    )


def failure_reason(error: str) -> str:
    """A short class for a failed call's error text, for the run's failure summary.

    >>> failure_reason("RequestError: InternalServerError from http://x/v1: boom")
    'InternalServerError'
    >>> failure_reason("not sent: 8 calls in a row failed")
    'not sent (backend down)'
    """
    if error.startswith("not sent"):
        return "not sent (backend down)"
    kind, _, rest = error.partition(": ")
    if kind in ("RequestError", "RuntimeError") and rest:
        return rest.split()[0].rstrip(":")
    return kind or "unknown error"


def _distinct_keys(item: Item) -> list[str]:
    """The item's calls over all attempts, each once (a failed call resent is one call)."""
    return list(dict.fromkeys(key for keys in item.attempts for key in keys))


def _request_failure(cache: Replies, lost: list[str], total: int) -> Parsed:
    first = next((e for e in (cache.error(k) for k in lost) if e), "no response")
    detail = f"{len(lost)} of {total} calls failed: {first}" if total > 1 else first
    return Parsed(None, False, Status.REQUEST_FAILURE, detail)


def score_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add TV, JS and W1 to the rows with status ok, in one vectorised pass."""
    ok = [row for row in rows if row["status"] == Status.OK]
    scores = score_items(
        [row["pred"] for row in ok], [row["truth"] for row in ok], [row["ordinal"] for row in ok]
    )
    for row, score in zip(ok, scores, strict=True):
        del row["ordinal"]
        problem = None
        if math.isnan(score["tv"]):  # a guard: the parsers and loaders should make this unreachable
            problem = distribution_problem(row["pred"]) or distribution_problem(row["truth"])
        if problem is None:
            row.update(score)
        else:
            row["status"] = Status.NOT_SCORED
            row["detail"] = join_notes(row["detail"], f"not scored: {problem}")
    return rows


# token counts an item records (the cache ones only where a provider's prompt cache was used)
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")


class Runner:
    """Runs a config against one backend, through the cache."""

    def __init__(self, config: RunConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress
        self.stats = RunStats()
        self.identities: dict[str, dict[str, Any]] = {}

    def run(self) -> pd.DataFrame:
        start = time.perf_counter()
        frames = []
        with ResponseCache(self.config.cache_path()) as cache:
            for model in self.config.models:
                with get_backend(model, **self.config.options_for(model)) as backend:
                    frames.append(self._run_model(model, backend, cache))
        self.stats.seconds = time.perf_counter() - start
        frame = pd.concat(frames, ignore_index=True) if frames else items_frame([])
        save_items(frame, Path(self.config.out), self.manifest())
        return survey_rows(frame)  # other option orders: load_results(out, all_orders=True)

    def _run_model(self, model: str, backend: Backend, cache: ResponseCache) -> pd.DataFrame:
        self.identities[model] = backend.identity.as_dict()
        items = list(expand(self.config, model, backend))
        engine = Engine(backend, cache, self.stats, self.progress)
        replies = Replies(cache)
        pending = items
        for attempt in range(self.config.retries + 1):
            requests = self._attempt(backend, pending, attempt)
            engine.send(requests, passes=self.config.request_passes, replies=replies)
            # only unreadable replies get a new attempt; lost calls had their passes
            pending = [
                i
                for i in pending
                if i.method.retryable
                and self._parse(i, replies, len(i.attempts) - 1).status == Status.PARSE_FAILURE
            ]
            if not pending or engine.given_up:
                break
        self._count_failures(items, replies)
        return items_frame(score_rows([self._row(item, replies) for item in items]))

    def _attempt(self, backend: Backend, items: list[Item], attempt: int) -> list[Request]:
        requests: list[Request] = []
        make = request_maker(backend, self.config.prompt_mode)
        for item in items:
            keys = []
            for call in item.method.calls(item.prompt, item.seed, attempt):
                # a retry is a new request, sent even to servers without seeds (whose
                # identical request would be answered from the cache)
                request = make(
                    item.prompt.messages, replace(call, attempt=attempt) if attempt else call
                )
                keys.append(request.key)
                requests.append(request)
                item.messages_text = request.messages_text
            item.attempts.append(keys)
        return requests

    def _count_failures(self, items: list[Item], cache: Replies) -> None:
        """Calls of the final attempts still without a reply, by reason."""
        lost = {key for item in items for key in item.attempts[-1] if cache.get(key) is None}
        self.stats.calls_failed += len(lost)
        for key in lost:
            reason = failure_reason(cache.error(key) or "no response")
            self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1

    def _parse(self, item: Item, cache: Replies, attempt: int) -> Parsed:
        keys = item.attempts[attempt]
        responses = [cache.get(key) for key in keys]
        lost = [key for key, response in zip(keys, responses, strict=True) if response is None]
        if lost and not item.method.tolerates_lost_calls:
            return _request_failure(cache, lost, len(keys))
        parsed = item.method.parse(item.prompt, responses)
        if lost and not parsed.ok:  # too many calls lost to read the item: not the model's fault
            failure = _request_failure(cache, lost, len(keys))
            return replace(failure, detail=join_notes(failure.detail, parsed.detail))
        return parsed

    def _row(self, item: Item, cache: Replies) -> dict[str, Any]:
        parsed = self._parse(item, cache, len(item.attempts) - 1)
        target = item.dataset.target(item.group, item.question.id)
        assert target is not None
        replies = (cache.get(key) for key in item.attempts[-1])
        first: dict[str, Any] = next((r for r in replies if r is not None), {})
        usage = self._usage(item, cache)
        row: dict[str, Any] = {
            "mode": "standard",
            "model": item.model,
            "dataset": item.dataset.name,
            "steering": item.steering,
            "method": item.method.name,
            "group": item.group.key,
            "question_id": item.question.id,
            "order": item.order,
            "letters": item.question.letters,
            "truth": target.probs.tolist(),
            "n": target.n,
            "raw": first.get("text"),
            "prompt": item.messages_text or json.dumps(item.prompt.messages, ensure_ascii=False),
            "detail": join_notes(parsed.detail, f"attempts={len(item.attempts)}"),
            "covered_mass": parsed.raw_sum if item.method.reports_covered_mass else None,
            "seed": item.seed,
            "prompt_mode": self.config.prompt_mode,
            "calls": len(_distinct_keys(item)),
            "n_valid": parsed.n_valid,
            "n_invalid": parsed.n_invalid,
            **usage,
            "cost_usd": self._cost(item.model, usage),
        }
        if not parsed.ok or parsed.probs is None:
            status = (
                Status.REQUEST_FAILURE
                if parsed.status == Status.REQUEST_FAILURE
                else Status.PARSE_FAILURE
            )
            return {**row, "status": status}
        pred = item.prompt.to_canonical(parsed.probs)
        # scored by score_rows, all items in one pass
        return {**row, "pred": pred, "status": Status.OK, "ordinal": item.question.ordinal}

    def _cost(self, model: str, usage: dict[str, int | None]) -> float | None:
        """USD for the item's tokens; prompt-cache reads and writes at their own prices."""
        name = str(self.identities.get(model, {}).get("model", model))
        return usage_cost(name, usage, self._prices())

    def _prices(self) -> dict[str, Price] | None:
        return load_prices(self.config.prices) if self.config.prices else None

    def dry_run(self) -> pd.DataFrame:
        """Requests, estimated tokens and cost per (model, method), before anything is sent."""
        rows: list[dict[str, Any]] = []
        with ResponseCache(self.config.cache_path()) as cache:
            for model in self.config.models:
                with get_backend(model, **self.config.options_for(model)) as backend:
                    rows.extend(self._estimate(model, backend, cache))
        return pd.DataFrame(rows)

    def _estimate(
        self, model: str, backend: Backend, cache: ResponseCache
    ) -> Iterator[dict[str, Any]]:
        items = list(expand(self.config, model, backend))
        requests = self._attempt(backend, items, 0)
        method_of = {key: item.method.name for item in items for key in item.attempts[0]}
        missing = cache.missing(r.key for r in requests)
        todo = {r.key: r for r in requests if r.key in missing}
        name = backend.identity.model
        for method in self.config.methods:
            keys = {k for k, m in method_of.items() if m == method}
            sent = [r for r in sent_requests(list(todo.values()), backend) if r[0].key in keys]
            prompt = sum(estimate_tokens(r.messages_text) for r, _ in sent)
            completion = sum(
                _completion_budget(r.call) * calls
                for r, calls in sent  # n draws, n budgets
            )
            yield {
                "model": model,
                "method": method,
                "items": sum(1 for i in items if i.method.name == method),
                "calls": len(keys),
                "cached": len(keys) - sum(1 for k in keys if k in todo),
                "to_send": sum(1 for k in keys if k in todo),
                "requests": len(sent),
                "est_prompt_tokens": prompt,
                "est_completion_tokens": completion,
                "est_cost_usd": cost(name, prompt, completion, self._prices()),
            }

    @staticmethod
    def _usage(item: Item, cache: Replies) -> dict[str, int | None]:
        """Tokens over every request the item sent, retries included, each request once."""
        totals: dict[str, int | None] = dict.fromkeys(USAGE_FIELDS)
        for key in _distinct_keys(item):
            usage = (cache.get(key) or {}).get("usage") or {}
            for name in totals:
                if usage.get(name) is not None:
                    totals[name] = (totals[name] or 0) + int(usage[name])
        return totals

    def manifest(self) -> dict[str, Any]:
        return {
            "kind": "run",
            "mode": "standard",
            "prompt_mode": self.config.prompt_mode,
            "config": self.config.model_dump(),
            "config_sha256": hashlib.sha256(self.config.model_dump_json().encode()).hexdigest(),
            "seeds": self.config.seeds,
            "distalign_version": __version__,
            "template_version": TEMPLATE_VERSION,
            "model_identity": self.identities,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "stats": self.stats.__dict__,
        }
