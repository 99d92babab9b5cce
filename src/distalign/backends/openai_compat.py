"""Backend for OpenAI and every server that speaks its chat completions API.

Specs:

* ``openai:MODEL``, e.g. ``openai:gpt-4o``: api.openai.com, key from ``OPENAI_API_KEY``.
* ``openai-compatible:MODEL@URL``, e.g.
  ``openai-compatible:meta-llama/Meta-Llama-3-70B-Instruct@http://gpu1:8000/v1``: any server
  with ``/v1/chat/completions`` (vLLM, SGLang, llama.cpp, Ollama, TGI, gateways). The key comes
  from ``DISTALIGN_API_KEY``, else ``OPENAI_API_KEY``, else none (local servers rarely check
  it). ``MODEL@URL1,URL2,...`` names replicas of one model: calls are spread over them (least
  busy first) with at most ``concurrency`` in flight per replica. A replica whose connection
  is refused or dropped is skipped for ``down_seconds`` and the call goes to another replica
  at once (see Retries).

Identity: backend "openai-compatible", the model name, the base URLs (sorted, in ``path``; so
changing the replicas starts a fresh cache), the server kind (``runtime``) and, where the
server lists its models, its own id for the model (``fingerprint``: "served-model:<id>"; for
llama.cpp the GGUF path).

What a server can do beyond plain chat depends on its software; the ``server`` option says
which, and the capabilities follow (see ``SERVER_KINDS``):

* ``openai`` (the default for ``openai:``) and ``vllm``: JSON schema through
  ``response_format={"type": "json_schema", ...}``, seeded sampling.
* ``llamacpp`` (llama-cpp-python's and llama.cpp's servers): JSON schema through
  ``response_format={"type": "json_object", "schema": ...}``, seeded sampling.
* ``generic`` (the default for ``openai-compatible:``): neither; Verbalize is prompt-only.
  ``schema_format`` overrides the kind's JSON-schema support.

No server gets the letter-grammar capability: Sequence and Samples are prompt-only here.

Log-p (``next_token_probs``) is one chat completion with ``max_tokens=1``, ``logprobs=True``
and ``top_logprobs=20``: the probabilities of the 20 most likely next tokens (20 is OpenAI's
maximum and vLLM's default limit). As in every distalign backend, candidate L counts the
tokens "L" and " L" exactly. A letter outside the top 20 gets no mass, so the result is
renormalized over the letters that were seen and ``covered_mass`` records how much of the
next-token probability they held; when no letter is in the top 20 every probability is 0 and
the covered mass is 0 (the Log-p parser records that item as a failure, and the paid answer
stays in the cache). Biasing the letter tokens with ``logit_bias`` would bring every letter
into the top 20, but it needs the server's token ids for the letters (tiktoken for OpenAI,
the model's tokenizer for vLLM), so it is not done. llama-cpp-python's server reports the
prompt's log-probs wrongly with ``echo`` (its issue #1983), which is why the generated token's
log-probs are used.

Retries are distalign's own (the SDK's are off), so that one call has a hard time bound and
moves between replicas. A transient failure (a refused, dropped or timed-out connection, 408,
409, 429 or 5xx) is tried again, up to ``max_retries`` times: on another replica at once when
one has not been tried yet, else after a backoff of 0.5 s doubling to at most 8 s (minus up to
25 % jitter), or after what ``Retry-After`` / ``retry-after-ms`` asks when that is at most two
minutes (a longer one fails the call at once). Other errors (400, 401, 404, ...) fail at once.

**Time bound.** One call, retries included, never takes more than ``call_timeout`` seconds
(default 300): each HTTP request gets ``min(timeout, time left)`` and no wait outlasts the
deadline. With the defaults (``timeout=120``, ``max_retries=5``) a hung server fails each call
after at most 5 minutes, and the runner stops sending to a backend once
``max(5, max_concurrency)`` calls in a row have failed for good, so a run against a dead server
ends in minutes, its unsent calls recorded as request failures. A call that fails for good
raises ``RequestError``, which the runner records (and retries in its end-of-round pass).
Rate limits: ``requests_per_minute`` spaces requests evenly and
``tokens_per_minute`` caps the estimated tokens (prompt estimate + completion budget) per
one-second window (pyrate-limiter); SDK retries are not counted, since their backoff slows them.

Messages: a final assistant message (a prefill) is refused, since the chat completions API
would take it for a finished turn rather than text to continue.

Threads, not asyncio: the runner calls backends from a thread pool of ``max_concurrency``
threads, and the SDK's sync client (one pooled HTTP client per replica) is safe to share
between threads. An async client would need an event loop inside a sync interface and would
not send more requests in parallel than the pool already does.

API keys are held by the SDK clients only: they are not in the identity (the base URLs are),
and any error text that contains the key has it replaced by ``[redacted]``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import numpy as np

from distalign.backends import register_backend
from distalign.backends.base import (
    Backend,
    BackendIdentity,
    BackendUnavailableError,
    Capability,
    Generation,
    GenerationRequest,
    Message,
    NextTokenProbs,
    Usage,
)
from distalign.costs import estimate_tokens
from distalign.errors import ConfigError

try:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
    from pyrate_limiter import Limiter, Rate
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the OpenAI-compatible backend needs the openai and pyrate-limiter packages: "
        "pip install 'distalign[openai]'"
    ) from error

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20
NO_KEY = "no-key"  # the SDK insists on a key; servers that check none ignore it
_LOGPROB_SLACK = 1e-6  # a log-probability this far above 0 is the server's rounding

SchemaFormat = Literal["json_schema", "json_object"]


@dataclass(frozen=True)
class ServerKind:
    """What a server's software supports beyond plain chat completions."""

    name: str
    schema_format: SchemaFormat | None  # how response_format carries a JSON schema, if at all
    seed: bool  # honours the ``seed`` parameter
    max_tokens_field: str = "max_tokens"


SERVER_KINDS: dict[str, ServerKind] = {
    # OpenAI's reasoning models refuse max_tokens; max_completion_tokens works for all of them
    "openai": ServerKind("openai", "json_schema", True, "max_completion_tokens"),
    "vllm": ServerKind("vllm", "json_schema", True),
    "llamacpp": ServerKind("llamacpp", "json_object", True),
    "generic": ServerKind("generic", None, False),
}


class RequestError(RuntimeError):
    """A request failed after the retries; the message never contains the API key."""


# Statuses worth another try: timeout, conflict, rate limit and every server error.
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 120.0  # seconds; a server asking for a longer wait fails the call at once
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_JITTER = 0.5, 8.0, 0.25


# ----- specs ------------------------------------------------------------------------------------


@register_backend("openai")
def openai_backend(argument: str, **options: Any) -> OpenAICompatibleBackend:
    """``openai:MODEL`` on api.openai.com, key from OPENAI_API_KEY."""
    if not argument.strip():
        raise ConfigError("the 'openai' backend needs a model name, e.g. 'openai:gpt-4o'")
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise BackendUnavailableError(
            f"'openai:{argument}' needs an API key: set the environment variable OPENAI_API_KEY"
        )
    _check_server_option(options)
    options.setdefault("server", "openai")
    options.setdefault("check_server", False)  # listing OpenAI's models tells us nothing
    return OpenAICompatibleBackend(argument, [OPENAI_URL], api_key=key, **options)


@register_backend("openai-compatible")
def compatible_backend(argument: str, **options: Any) -> OpenAICompatibleBackend:
    """``openai-compatible:MODEL@URL[,URL...]``, key from DISTALIGN_API_KEY or OPENAI_API_KEY."""
    model, urls = parse_compatible_argument(argument)
    _check_server_option(options)
    key = os.environ.get("DISTALIGN_API_KEY", "").strip()
    key = key or os.environ.get("OPENAI_API_KEY", "").strip()
    return OpenAICompatibleBackend(model, urls, api_key=key or None, **options)


_MODEL_AT_URLS = re.compile(r"^(?P<model>.+?)@(?P<urls>https?://.+)$")


def parse_compatible_argument(argument: str) -> tuple[str, list[str]]:
    """``"MODEL@URL1,URL2"`` -> ``("MODEL", ["URL1", "URL2"])``."""
    match = _MODEL_AT_URLS.match(argument.strip())
    if match is None:
        raise ConfigError(
            "an 'openai-compatible' spec is MODEL@URL[,URL...], e.g. "
            f"'openai-compatible:my-model@http://127.0.0.1:8000/v1', got {argument!r}"
        )
    urls = [check_url(url) for url in match["urls"].split(",") if url.strip()]
    return match["model"], urls


def check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise ConfigError(f"a base URL starts with http:// or https://, got {url!r}")
    host_part = rest.split("/", 1)[0]
    if "@" in host_part:
        # user:password@host would put a secret into the identity, the cache and the results
        raise ConfigError(
            "a base URL must not contain credentials; put the key into DISTALIGN_API_KEY"
        )
    return url


def _check_server_option(options: Mapping[str, Any]) -> None:
    """The ``server`` and ``schema_format`` options name a known kind (see SERVER_KINDS)."""
    server = options.get("server")
    if server is not None and server not in SERVER_KINDS:
        raise ConfigError(
            f"unknown server kind {server!r} (backend option 'server'); "
            f"known: {', '.join(SERVER_KINDS)}"
        )
    schema_format = options.get("schema_format")
    if schema_format is not None and schema_format not in ("json_schema", "json_object", "none"):
        raise ConfigError(
            f"backend option 'schema_format' is json_schema, json_object or none, "
            f"not {schema_format!r}"
        )


# ----- replicas ---------------------------------------------------------------------------------


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


# ----- the backend ------------------------------------------------------------------------------


class OpenAICompatibleBackend(Backend):
    """A model behind the OpenAI chat completions API, on one server or several replicas."""

    def __init__(
        self,
        model: str,
        base_urls: Sequence[str],
        *,
        api_key: str | None = None,
        server: str = "generic",
        schema_format: SchemaFormat | Literal["none"] | None = None,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        timeout: float = 120.0,
        max_retries: int = 5,
        call_timeout: float = 300.0,
        down_seconds: float = 30.0,
        top_logprobs: int = TOP_LOGPROBS,
        check_server: bool = True,
    ) -> None:
        """``server``: a key of ``SERVER_KINDS``. ``schema_format``: override the kind's JSON
        schema support ("none" turns it off). ``concurrency``: calls in flight per replica.
        ``timeout``: seconds per HTTP request; ``max_retries``: further tries of a transient
        failure; ``call_timeout``: seconds one call may take in all, retries included.
        ``check_server``: ask each replica for its models now, to fail early on a wrong URL and
        record the server's id of the model."""
        if not base_urls:
            raise ValueError("give at least one base URL")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0 or call_timeout <= 0 or max_retries < 0:
            raise ValueError("timeout and call_timeout must be positive, max_retries >= 0")
        self.model = model
        self.urls = list(dict.fromkeys(check_url(url) for url in base_urls))
        self.kind = _server_kind(server, schema_format)
        self.top_logprobs = top_logprobs
        self._key = api_key or ""
        self.timeout = timeout
        self.max_retries = max_retries
        self.call_timeout = call_timeout
        self.pool = ReplicaPool(
            [Replica(url, _client(url, api_key, timeout)) for url in self.urls],
            limit=concurrency,
            down_seconds=down_seconds,
        )
        self.max_concurrency = concurrency * len(self.urls)
        self._limiter = _rate_limiter(requests_per_minute)
        self._token_limiter = token_limiter(tokens_per_minute)
        self._tokens_per_second = (tokens_per_minute or 0) / 60
        served = self._served_model_id() if check_server else None
        self._identity = BackendIdentity(
            backend="openai-compatible",
            model=model,
            path=",".join(sorted(self.urls)),  # base URLs only: keys never enter the identity
            fingerprint=None if served is None else f"served-model:{served}",
            chat=True,
            prompt_format="server_chat_template",
            runtime=f"{self.kind.name} server",
        )

    @property
    def identity(self) -> BackendIdentity:
        return self._identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        capabilities = {Capability.LOGPROBS, Capability.GENERATE}
        if self.kind.schema_format is not None:
            capabilities.add(Capability.JSON_SCHEMA)
        if self.kind.seed:
            capabilities.add(Capability.SEED)
        return frozenset(capabilities)

    def replica_calls(self) -> dict[str, int]:
        """Completed calls per base URL."""
        return {replica.url: replica.completed for replica in self.pool.replicas}

    def close(self) -> None:
        for replica in self.pool.replicas:
            replica.client.close()
        for limiter in (self._limiter, self._token_limiter):
            if limiter is not None:
                limiter.close()

    # ----- Log-p --------------------------------------------------------------------------------

    def _next_token_probs(
        self, messages: Sequence[Message], candidates: list[str]
    ) -> NextTokenProbs:
        # temperature 1: the returned log-probs are the model's own, whatever the engine does
        # with the temperature (the one sampled token is thrown away)
        completion = self._complete(
            messages,
            temperature=1.0,
            logprobs=True,
            top_logprobs=self.top_logprobs,
            **{self.kind.max_tokens_field: 1},
        )
        top = _top_logprobs(completion)
        return _candidate_probs(top, candidates, _usage(completion))

    # ----- generation ---------------------------------------------------------------------------

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        return self._generate_detailed(messages, request).texts

    def _generate_detailed(
        self, messages: Sequence[Message], request: GenerationRequest
    ) -> Generation:
        # n separate requests: not every server supports n > 1, and each sample gets its own seed
        params = self._generation_params(request)
        texts: list[str] = []
        usages: list[Usage] = []
        for seed in _sample_seeds(request.seed, request.n):
            if seed is not None:
                params["seed"] = seed
            completion = self._complete(messages, **params)
            texts.append(completion.choices[0].message.content or "")
            usages.append(_usage(completion))
        return Generation(texts, _sum_usage(usages))

    def _generation_params(self, request: GenerationRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": request.temperature,
            self.kind.max_tokens_field: request.max_tokens,
        }
        if request.stop:
            params["stop"] = list(request.stop)
        if request.json_schema is not None:
            params["response_format"] = self._response_format(request.json_schema)
        return params

    def _response_format(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        if self.kind.schema_format == "json_object":
            return {"type": "json_object", "schema": dict(schema)}
        # strict mode (OpenAI) needs every property required and no others allowed
        strict = schema.get("additionalProperties") is False
        return {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": dict(schema), "strict": strict},
        }

    # ----- requests -----------------------------------------------------------------------------

    def _complete(self, messages: Sequence[Message], **params: Any) -> ChatCompletion:
        """One chat completion on some replica; the next replica if one cannot be reached."""
        if messages[-1]["role"] == "assistant":
            raise ValueError(
                "the chat completions API cannot continue a prefilled assistant message; "
                "end the messages with a user message"
            )
        chat = cast(
            list[ChatCompletionMessageParam],
            [{"role": m["role"], "content": m["content"]} for m in messages],
        )
        deadline = time.monotonic() + self.call_timeout
        tried: set[str] = set()
        failures = 0
        while True:
            with self.pool.use(tried) as replica:
                try:
                    self._wait_for_rate_limit(chat, params)
                    completion = replica.client.chat.completions.create(
                        model=self.model,
                        messages=chat,
                        timeout=max(0.01, min(self.timeout, deadline - time.monotonic())),
                        **params,
                    )
                    self.pool.mark_done(replica)
                    return completion
                except openai.OpenAIError as error:
                    failures += 1
                    wait = self._retry_wait(error, failures, deadline)
                    if wait is None:
                        raise self._request_error(replica.url, error, failures) from None
                    if _unreachable(error):
                        self.pool.mark_down(replica)
                    tried.add(replica.url)
                    if len(tried) < len(self.urls):
                        wait = 0.0  # an untried replica: go there at once
                    else:
                        tried.clear()  # every replica had its turn: back off, then any of them
                    log.warning(
                        "try %d on %s failed (%s); retrying in %.1f s",
                        failures,
                        replica.url,
                        self._redact(f"{type(error).__name__}: {error}"),
                        wait,
                    )
            time.sleep(wait)

    def _retry_wait(self, error: Exception, failures: int, deadline: float) -> float | None:
        """Seconds to wait before the next try, or ``None`` when the call should fail now."""
        if not _transient(error) or failures > self.max_retries:
            return None
        asked = _retry_after(error)
        if asked is not None and asked > MAX_RETRY_AFTER:
            return None
        if asked is None:
            backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
            asked = backoff * (1 - BACKOFF_JITTER * random.random())
        if time.monotonic() + asked >= deadline:
            return None
        return asked

    def _wait_for_rate_limit(self, chat: Any, params: Mapping[str, Any]) -> None:
        if self._limiter is not None:
            self._limiter.try_acquire("requests")
        if self._token_limiter is not None:
            # the prompt estimate plus the completion budget: what the provider will count
            budget = int(params.get(self.kind.max_tokens_field) or 1)
            weight = estimate_tokens(json.dumps(chat, ensure_ascii=False)) + budget
            # a request larger than one second's allowance waits for that whole allowance
            self._token_limiter.try_acquire("tokens", weight=min(weight, self._token_window()))

    def _token_window(self) -> int:
        return max(1, int(self._tokens_per_second))

    def _request_error(self, url: str, error: Exception, tries: int = 1) -> RequestError:
        # "from None" above: the SDK exception (whose text may quote the key) is not chained
        after = f" (after {tries} tries)" if tries > 1 else ""
        return RequestError(self._redact(f"{type(error).__name__} from {url}{after}: {error}"))

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text

    def _served_model_id(self) -> str | None:
        """The server's id for the model (e.g. the GGUF path for llama.cpp), if it says."""
        failures: list[str] = []
        for replica in self.pool.replicas:
            client = replica.client.with_options(max_retries=0, timeout=10.0)
            try:
                ids = [m.id for m in client.models.list()]
            except openai.APIConnectionError as error:
                self.pool.mark_down(replica)
                failures.append(f"{replica.url}: {type(error).__name__}")
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
                raise BackendUnavailableError(
                    f"{replica.url} refused the API key (HTTP {error.status_code}); the key comes "
                    "from DISTALIGN_API_KEY or OPENAI_API_KEY"
                ) from None
            except openai.APIStatusError:
                return None  # no /models endpoint (a gateway, say): the calls may still work
            if self.model in ids:
                return self.model
            return ids[0] if len(ids) == 1 else None
        raise BackendUnavailableError(
            f"no server for {self.model!r} answered ({'; '.join(failures)}): start the server "
            "or check the URL in the model spec (MODEL@http://HOST:PORT/v1)"
        )


def _client(url: str, key: str | None, timeout: float) -> openai.OpenAI:
    # max_retries=0: the backend retries itself, across replicas and within call_timeout
    return openai.OpenAI(base_url=url, api_key=key or NO_KEY, timeout=timeout, max_retries=0)


def _transient(error: Exception) -> bool:
    """A failure another try may fix: connection, timeout, 408/409/429 or a server error."""
    if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRY_STATUSES or error.status_code >= 500
    return False


def _unreachable(error: Exception) -> bool:
    """A refused or dropped connection (not a slow reply): the replica may be down."""
    return isinstance(error, openai.APIConnectionError) and not isinstance(
        error, openai.APITimeoutError
    )


def _retry_after(error: Exception) -> float | None:
    """The wait a server asked for (``retry-after-ms`` or ``Retry-After`` in seconds)."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue  # an HTTP date: rare for APIs; fall back to the backoff
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


_SCHEMA_FORMATS: dict[str, SchemaFormat | None] = {
    "json_schema": "json_schema",
    "json_object": "json_object",
    "none": None,
}


def _server_kind(server: str, schema_format: str | None) -> ServerKind:
    if server not in SERVER_KINDS:
        raise ValueError(f"unknown server kind {server!r}; known: {', '.join(SERVER_KINDS)}")
    kind = SERVER_KINDS[server]
    if schema_format is None:
        return kind
    if schema_format not in _SCHEMA_FORMATS:
        raise ValueError(
            f"schema_format must be one of {list(_SCHEMA_FORMATS)}, not {schema_format!r}"
        )
    return replace(kind, schema_format=_SCHEMA_FORMATS[schema_format])


def _rate_limiter(requests_per_minute: float | None) -> Limiter | None:
    """At most one request every 60/rpm seconds: evenly spaced, no bursts."""
    if requests_per_minute is None:
        return None
    if requests_per_minute <= 0:
        raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
    interval_ms = max(1, round(60_000 / requests_per_minute))
    return Limiter(Rate(1, interval_ms))


def token_limiter(tokens_per_minute: float | None) -> Limiter | None:
    """At most ``tokens_per_minute`` tokens a minute, spread over one-second windows."""
    if tokens_per_minute is None:
        return None
    if tokens_per_minute <= 0:
        raise ValueError(f"tokens_per_minute must be positive, got {tokens_per_minute}")
    return Limiter(Rate(max(1, int(tokens_per_minute // 60)), 1000))


def _sample_seeds(seed: int | None, n: int) -> list[int | None]:
    """The seed for each of n samples: ``seed`` itself first, then distinct derived seeds."""
    if seed is None:
        return [None] * n
    derived = np.random.SeedSequence(seed).generate_state(n)
    seeds: list[int | None] = [seed]
    seeds += [int(s) % (2**31 - 1) for s in derived[1:]]
    return seeds


def _top_logprobs(completion: ChatCompletion) -> list[tuple[str, float]]:
    """The (token, logprob) pairs of the first generated token."""
    logprobs = completion.choices[0].logprobs
    if logprobs is None or not logprobs.content:
        raise RequestError(
            "the server returned no log-probabilities: it may not support logprobs/top_logprobs"
        )
    return [(entry.token, entry.logprob) for entry in logprobs.content[0].top_logprobs]


def _candidate_probs(
    top: list[tuple[str, float]], candidates: list[str], usage: Usage
) -> NextTokenProbs:
    """Each candidate's mass from the tokens "L" and " L" among the top tokens.

    A token the server lists twice counts once (its first entry). A NaN or positive
    log-probability makes the covered mass NaN, which the Log-p parser records as a failure.
    """
    variant_of = {text: c for c in candidates for text in (c, " " + c)}
    token_probs: dict[str, float] = {}
    for token, logprob in top:
        if token in variant_of and token not in token_probs:
            # rounding noise a hair above 0 is probability 1; anything else above 0 is invalid
            valid = logprob <= _LOGPROB_SLACK  # False for NaN too
            token_probs[token] = math.exp(min(logprob, 0.0)) if valid else math.nan
    raw = dict.fromkeys(candidates, 0.0)
    for token, prob in token_probs.items():
        raw[variant_of[token]] += prob
    covered = math.fsum(raw.values())
    probs = {c: (p / covered if covered > 0 else 0.0) for c, p in raw.items()}
    return NextTokenProbs(probs=probs, covered_mass=covered, token_probs=token_probs, usage=usage)


def _usage(completion: ChatCompletion) -> Usage:
    usage = completion.usage
    if usage is None:
        return Usage()
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def _sum_usage(usages: list[Usage]) -> Usage:
    def total(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v or 0 for v in values)

    return Usage(
        prompt_tokens=total([u.prompt_tokens for u in usages]),
        completion_tokens=total([u.completion_tokens for u in usages]),
    )
