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
  at once.

Identity: backend "openai-compatible", the model name, the base URLs (sorted, in ``path``; so
changing the replicas starts a fresh cache), the server kind (``runtime``) and, where the
server lists its models, its own id for the model (``fingerprint``: "served-model:<id>"; for
llama.cpp the GGUF path).

What a server can do beyond plain chat depends on its software; the ``server`` option says
which, and the capabilities follow (``SERVER_KINDS``; the table is in ``docs/backends.md``):

* ``openai`` (the default for ``openai:``) and ``vllm``: JSON schema through
  ``response_format={"type": "json_schema", ...}``, seeded sampling, and ``n`` samples per
  request (``multi_sample``).
* ``llamacpp`` (llama-cpp-python's and llama.cpp's servers): JSON schema through
  ``response_format={"type": "json_object", "schema": ...}``, seeded sampling; no ``n``.
* ``generic`` (the default for ``openai-compatible:``): none of these; Verbalize is
  prompt-only. ``schema_format`` and ``multi_sample`` override the kind.

No server gets the letter-grammar capability: Sequence and Samples are prompt-only here.

**Samples with n.** With ``multi_sample``, the engine hands over an item's sample calls
together; consecutive calls that differ only by seed become one request with ``n=k`` (and the
first call's seed), the k choices go to the k calls in order, the reported usage to the first
of them and zero to the rest, so an item's token sums are what was billed. A server that
answers with fewer choices, or refuses ``n`` with a 400 that names it, is taken not to support
``n``: the backend stops declaring ``multi_sample``, keeps the choices it got and sends the
other calls one by one. No sample is lost and no failure recorded for it.

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
moves between replicas (``_openai_transport.ChatClient``; ``docs/reliability.md``): a
transient failure (connection, timeout, 408, 409, 429, 5xx) is tried again up to
``max_retries`` times, on another replica at once or after a backoff or ``Retry-After``;
other errors fail at once. One call, retries included, never takes more than
``call_timeout`` seconds. A call that fails for good raises ``RequestError``, which the runner
records. ``requests_per_minute`` spaces requests evenly; ``tokens_per_minute`` caps the
estimated tokens (prompt estimate + completion budget of every choice) per one-second window.

Messages: a final assistant message (a prefill) is refused, since the chat completions API
would take it for a finished turn rather than text to continue.

Threads, not asyncio: the runner calls backends from a thread pool of ``max_concurrency``
threads, and the SDK's sync client (one pooled HTTP client per replica) is safe to share
between threads.

API keys are held by the SDK clients only: they are not in the identity (the base URLs are),
and any error text that contains the key has it replaced by ``[redacted]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from distalign.backends import register_backend
from distalign.backends.base import (
    Backend,
    BackendIdentity,
    BackendUnavailableError,
    Capability,
    GenerateJob,
    Generation,
    GenerationRequest,
    Message,
    NextTokenProbs,
    Usage,
    check_messages,
    needed_capabilities,
)
from distalign.errors import ConfigError

try:
    from distalign.backends._openai_logprobs import TOP_LOGPROBS, candidate_probs, top_logprobs
    from distalign.backends._openai_replicas import Replica, ReplicaPool
    from distalign.backends._openai_samples import (
        choice_texts,
        draw_groups,
        multi_sample_params,
        rejects_n,
        sample_seeds,
    )
    from distalign.backends._openai_specs import (
        SERVER_KINDS,
        SchemaFormat,
        ServerKind,
        check_server_option,
        check_url,
        parse_compatible_argument,
        server_kind,
    )
    from distalign.backends._openai_transport import ChatClient, RequestError, token_limiter
    from distalign.backends._openai_usage import sum_usage, usage_of
except ModuleNotFoundError as error:  # pragma: no cover - depends on the installation
    if error.name not in ("openai", "pyrate_limiter"):
        raise
    raise ImportError(
        "the OpenAI-compatible backend needs the openai and pyrate-limiter packages: "
        "pip install 'distalign[openai]'"
    ) from error

__all__ = [
    "OPENAI_URL",
    "SERVER_KINDS",
    "TOP_LOGPROBS",
    "OpenAICompatibleBackend",
    "Replica",
    "ReplicaPool",
    "RequestError",
    "SchemaFormat",
    "ServerKind",
    "check_url",
    "compatible_backend",
    "openai_backend",
    "parse_compatible_argument",
    "token_limiter",
]

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"


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
    check_server_option(options)
    options.setdefault("server", "openai")
    options.setdefault("check_server", False)  # listing OpenAI's models tells us nothing
    return OpenAICompatibleBackend(argument, [OPENAI_URL], api_key=key, **options)


@register_backend("openai-compatible")
def compatible_backend(argument: str, **options: Any) -> OpenAICompatibleBackend:
    """``openai-compatible:MODEL@URL[,URL...]``, key from DISTALIGN_API_KEY or OPENAI_API_KEY."""
    model, urls = parse_compatible_argument(argument)
    check_server_option(options)
    key = os.environ.get("DISTALIGN_API_KEY", "").strip()
    key = key or os.environ.get("OPENAI_API_KEY", "").strip()
    return OpenAICompatibleBackend(model, urls, api_key=key or None, **options)


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
        multi_sample: bool | None = None,
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
        schema support ("none" turns it off). ``multi_sample``: override whether the server
        answers ``n`` > 1 (None: the kind's default). ``concurrency``: calls in flight per
        replica. ``timeout``: seconds per HTTP request; ``max_retries``: further tries of a
        transient failure; ``call_timeout``: seconds one call may take in all, retries
        included. ``check_server``: ask each replica for its models now, to fail early on a
        wrong URL and record the server's id of the model."""
        if not base_urls:
            raise ValueError("give at least one base URL")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0 or call_timeout <= 0 or max_retries < 0:
            raise ValueError("timeout and call_timeout must be positive, max_retries >= 0")
        self.model = model
        self.urls = list(dict.fromkeys(check_url(url) for url in base_urls))
        self.kind = server_kind(server, schema_format, multi_sample)
        self.top_logprobs = top_logprobs
        # cleared for good once the server shows that it ignores or refuses n
        self._multi_sample = self.kind.multi_sample
        self.client = ChatClient(
            model,
            self.urls,
            api_key=api_key,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            call_timeout=call_timeout,
            down_seconds=down_seconds,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            max_tokens_field=self.kind.max_tokens_field,
        )
        self.pool = self.client.pool
        self.max_concurrency = concurrency * len(self.urls)
        served = self.client.served_model_id() if check_server else None
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
        if self._multi_sample:
            capabilities.add(Capability.MULTI_SAMPLE)
        return frozenset(capabilities)

    def replica_calls(self) -> dict[str, int]:
        """Completed calls per base URL."""
        return {replica.url: replica.completed for replica in self.pool.replicas}

    def close(self) -> None:
        self.client.close()

    # ----- Log-p --------------------------------------------------------------------------------

    def _next_token_probs(
        self, messages: Sequence[Message], candidates: list[str]
    ) -> NextTokenProbs:
        # temperature 1: the returned log-probs are the model's own, whatever the engine does
        # with the temperature (the one sampled token is thrown away)
        params: dict[str, Any] = {
            "temperature": 1.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            self.kind.max_tokens_field: 1,
        }
        completion = self.client.complete(messages, **params)
        return candidate_probs(top_logprobs(completion), candidates, usage_of(completion))

    # ----- generation ---------------------------------------------------------------------------

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        return self._generate_detailed(messages, request).texts

    def _generate_detailed(
        self, messages: Sequence[Message], request: GenerationRequest
    ) -> Generation:
        texts: list[str] = []
        usages: list[Usage] = []
        if request.n > 1 and self._multi_sample:
            texts, usage = self._draw(messages, request, request.n)
            usages += [usage] if texts else []
        # the rest one request each, each sample with its own seed
        params = self._generation_params(request)
        for seed in sample_seeds(request.seed, request.n)[len(texts) :]:
            if seed is not None:
                params["seed"] = seed
            completion = self.client.complete(messages, **params)
            texts.append(completion.choices[0].message.content or "")
            usages.append(usage_of(completion))
        return Generation(texts, sum_usage(usages))

    def _generate_many(self, jobs: list[GenerateJob]) -> Iterator[Generation | Exception]:
        for group in draw_groups(jobs):
            if len(group) > 1 and self._multi_sample:
                yield from self._draw_group(group)
            else:
                yield from super()._generate_many(group)

    def _draw_group(self, group: list[GenerateJob]) -> Iterator[Generation | Exception]:
        """One request with ``n`` for jobs that differ only by seed; singles for what it lacks."""
        first = group[0]
        try:
            check_messages(first.messages)
            self.require(*needed_capabilities(first.request), purpose="this generate() call")
            texts, usage = self._draw(first.messages, first.request, len(group))
        except Exception as error:  # the one request failed: so did each of its draws
            yield from [error] * len(group)
            return
        for i, text in enumerate(texts):
            # the prompt was billed once: its usage goes to the first draw, so sums stay true
            yield Generation([text], usage if i == 0 else Usage(0, 0))
        yield from super()._generate_many(group[len(texts) :])

    def _draw(
        self, messages: Sequence[Message], request: GenerationRequest, k: int
    ) -> tuple[list[str], Usage]:
        """Up to k samples from one request with ``n=k``; none if the server refuses ``n``."""
        params = {**self._generation_params(request), **multi_sample_params(request, k)}
        try:
            completion = self.client.complete(messages, final=rejects_n, **params)
        except RequestError as error:
            if not rejects_n(error):
                raise
            self._no_multi_sample(f"it refused n={k}: {error.detail}")
            return [], Usage()
        texts = choice_texts(completion, k)
        if len(texts) < k:
            self._no_multi_sample(f"it answered n={k} with {len(texts)} choice(s)")
        return texts, usage_of(completion)

    def _no_multi_sample(self, why: str) -> None:
        if self._multi_sample:
            log.warning(
                "%s does not support n > 1 (%s); sending each sample as its own request",
                ",".join(self.urls),
                why,
            )
        self._multi_sample = False

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
