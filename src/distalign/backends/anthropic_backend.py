"""Backend for Anthropic's Messages API: ``anthropic:MODEL``.

E.g. ``anthropic:claude-3-opus-20240229`` or ``anthropic:claude-3-haiku-20240307``. The key
comes from ``ANTHROPIC_API_KEY`` (never from the spec). The ``base_url`` option, else the SDK's
``ANTHROPIC_BASE_URL`` variable, points the client elsewhere, e.g. at a gateway or a test server.

Capabilities: free-text generation only.

* Log-p: the Messages API returns no token probabilities, so the backend does not declare
  ``logprobs`` and a Log-p run is refused before any request (as in the paper, which had no
  Log-p for Claude).
* No seed: the API has none.
* No JSON schema: structured outputs exist only for some recent models, not for the Claude 3
  models the paper used, so Verbalize is prompt-only here.
* Temperature is sent only when it differs from the API's default of 1.0 (through
  ``extra_body``: the SDK no longer types it, and some recent models refuse it).

System messages go into the ``system`` parameter; a final assistant message is a prefill that
the model continues, which the API supports natively. ``n`` samples are ``n`` requests (the API
has no ``n``).

Prompt caching (``prompt_cache``, on by default): a prompt long enough for the model's minimum
cacheable length gets ``cache_control`` marks on its long shared part (the system prompt, the
last user message), so the identical requests of a Samples item and retries read it from
Anthropic's cache at 0.1x the input price (the first one writes it at 1.25x). The usage
reports every prompt token in ``prompt_tokens`` and the cached parts separately
(``_anthropic_cache``; costs in ``distalign.costs``; ``docs/backends.md``).

Retries are the SDK's (``max_retries``): exponential backoff with jitter on connection errors,
timeouts, 408, 409, 429 and 5xx (529 "overloaded" included), waiting what ``Retry-After`` asks.
**Time bound**: one call takes at most ``(max_retries + 1) * timeout`` plus at most 8 s of
backoff per retry: 5 min 32 s with the defaults (``timeout=60``, ``max_retries=4``); the runner
stops sending once ``max(5, concurrency)`` calls in a row have failed for good.
``requests_per_minute`` spaces requests evenly (pyrate-limiter). The sync client is shared by the
runner's threads (see the OpenAI-compatible backend for why threads). Errors that quote the key
have it replaced by ``[redacted]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from distalign.backends import register_backend
from distalign.backends._anthropic_cache import mark_cacheable, min_cache_tokens, reply_usage
from distalign.backends._openai_usage import sum_usage
from distalign.backends.base import (
    Backend,
    BackendIdentity,
    BackendUnavailableError,
    Capability,
    Generation,
    GenerationRequest,
    Message,
    Usage,
)
from distalign.errors import ConfigError

try:
    import anthropic
    from pyrate_limiter import Limiter, Rate
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the Anthropic backend needs the anthropic and pyrate-limiter packages: "
        "pip install 'distalign[anthropic]'"
    ) from error

CAPABILITIES = frozenset({Capability.GENERATE})


class RequestError(RuntimeError):
    """A request failed after the retries; the message never contains the API key."""


@register_backend("anthropic")
def anthropic_backend(argument: str, **options: Any) -> AnthropicBackend:
    """``anthropic:MODEL``, key from ANTHROPIC_API_KEY."""
    if not argument.strip():
        raise ConfigError(
            "the 'anthropic' backend needs a model name, e.g. 'anthropic:claude-3-opus-20240229'"
        )
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise BackendUnavailableError(
            f"'anthropic:{argument}' needs an API key: set the environment variable "
            "ANTHROPIC_API_KEY"
        )
    return AnthropicBackend(argument, api_key=key, **options)


class AnthropicBackend(Backend):
    """A Claude model behind Anthropic's Messages API."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        concurrency: int = 8,
        requests_per_minute: float | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        prompt_cache: bool = True,
    ) -> None:
        """``prompt_cache``: mark long prompts for Anthropic's prompt cache (see above)."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.model = model
        self._key = api_key
        self.client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )
        self.base_url = str(self.client.base_url).rstrip("/")
        self.max_concurrency = concurrency
        self._limiter = _rate_limiter(requests_per_minute)
        # the shortest prompt worth marking; None: no marks
        self._cache_min_tokens = min_cache_tokens(model) if prompt_cache else None
        self._identity = BackendIdentity(
            backend="anthropic",
            model=model,
            path=self.base_url,  # the URL only: keys never enter the identity
            chat=True,
            prompt_format="messages_api",
            runtime="anthropic messages api",
        )

    @property
    def identity(self) -> BackendIdentity:
        return self._identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def close(self) -> None:
        self.client.close()
        if self._limiter is not None:
            self._limiter.close()

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        return self._generate_detailed(messages, request).texts

    def _generate_detailed(
        self, messages: Sequence[Message], request: GenerationRequest
    ) -> Generation:
        params = self._params(messages, request)
        texts: list[str] = []
        usages: list[Usage] = []
        for _ in range(request.n):
            reply = self._create(params)
            texts.append("".join(b.text for b in reply.content if b.type == "text"))
            usages.append(reply_usage(reply.usage))
        return Generation(texts, sum_usage(usages))

    def _params(self, messages: Sequence[Message], request: GenerationRequest) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [
                {"role": m["role"], "content": m["content"]}
                for m in messages
                if m["role"] != "system"
            ],
        }
        if system:
            params["system"] = system
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.temperature != 1.0:
            params["extra_body"] = {"temperature": request.temperature}
        if self._cache_min_tokens is not None:
            mark_cacheable(params, self._cache_min_tokens)
        return params

    def _create(self, params: dict[str, Any]) -> Any:
        if self._limiter is not None:
            self._limiter.try_acquire("requests")
        try:
            return self.client.messages.create(**params)
        except anthropic.AnthropicError as error:
            # "from None": the SDK exception, whose text may quote the key, is not chained
            text = f"{type(error).__name__} from {self.base_url}: {error}"
            raise RequestError(text.replace(self._key, "[redacted]")) from None


def _rate_limiter(requests_per_minute: float | None) -> Limiter | None:
    """At most one request every 60/rpm seconds: evenly spaced, no bursts."""
    if requests_per_minute is None:
        return None
    if requests_per_minute <= 0:
        raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute}")
    return Limiter(Rate(1, max(1, round(60_000 / requests_per_minute))))
