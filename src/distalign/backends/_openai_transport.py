"""Sending chat completions: replicas, retries, time bounds, rate limits and key redaction.

:class:`ChatClient` is the transport of the OpenAI-compatible backend; every request of the
backend (Log-p, a single sample, a multi-sample request with ``n``) goes through
:meth:`ChatClient.complete`, so all of them get the same retries and bounds (see
``docs/reliability.md``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from pyrate_limiter import Limiter, Rate

from distalign.backends._openai_replicas import Replica, ReplicaPool
from distalign.backends.base import BackendUnavailableError, Message
from distalign.costs import estimate_tokens

log = logging.getLogger("distalign.backends.openai_compat")

NO_KEY = "no-key"  # the SDK insists on a key; servers that check none ignore it

# Statuses worth another try: timeout, conflict, rate limit and every server error.
RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 120.0  # seconds; a server asking for a longer wait fails the call at once
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_JITTER = 0.5, 8.0, 0.25


class RequestError(RuntimeError):
    """A request failed after the retries; the message never contains the API key."""

    def __init__(self, message: str, status_code: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code  # the HTTP status of the last try, if there was one
        self.detail = detail  # the server's own error text (redacted), without the URL


class ChatClient:
    """Chat completions of one model on its replicas, with retries within a deadline."""

    def __init__(
        self,
        model: str,
        urls: list[str],
        *,
        api_key: str | None,
        concurrency: int,
        timeout: float,
        max_retries: int,
        call_timeout: float,
        down_seconds: float,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        max_tokens_field: str,
    ) -> None:
        self.model = model
        self.urls = urls
        self._key = api_key or ""
        self.timeout = timeout
        self.max_retries = max_retries
        self.call_timeout = call_timeout
        self.max_tokens_field = max_tokens_field
        self.pool = ReplicaPool(
            [Replica(url, _client(url, api_key, timeout)) for url in urls],
            limit=concurrency,
            down_seconds=down_seconds,
        )
        self._limiter = _rate_limiter(requests_per_minute)
        self._token_limiter = token_limiter(tokens_per_minute)
        self._tokens_per_second = (tokens_per_minute or 0) / 60

    def close(self) -> None:
        for replica in self.pool.replicas:
            replica.client.close()
        for limiter in (self._limiter, self._token_limiter):
            if limiter is not None:
                limiter.close()

    def complete(
        self,
        messages: Sequence[Message],
        *,
        final: Callable[[Exception], bool] | None = None,
        **params: Any,
    ) -> ChatCompletion:
        """One chat completion on some replica; the next replica if one cannot be reached.

        ``final``: errors it accepts fail the call at once, even transient-looking ones (a
        server refusing ``n`` with a 500 says so again on every try).
        """
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
                    wait = None
                    if final is None or not final(error):
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
            # the prompt estimate plus the completion budget of every choice asked for: what
            # the provider will count
            budget = int(params.get(self.max_tokens_field) or 1) * int(params.get("n") or 1)
            weight = estimate_tokens(json.dumps(chat, ensure_ascii=False)) + budget
            # a request larger than one second's allowance waits for that whole allowance
            self._token_limiter.try_acquire("tokens", weight=min(weight, self._token_window()))

    def _token_window(self) -> int:
        return max(1, int(self._tokens_per_second))

    def _request_error(self, url: str, error: Exception, tries: int = 1) -> RequestError:
        # "from None" in complete(): the SDK exception (whose text may quote the key) is not
        # chained
        after = f" (after {tries} tries)" if tries > 1 else ""
        text = self._redact(f"{type(error).__name__} from {url}{after}: {error}")
        status = getattr(error, "status_code", None)
        return RequestError(text, status, self._redact(str(error)))

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text

    def served_model_id(self) -> str | None:
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
