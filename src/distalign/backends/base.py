"""The small interface every model backend implements.

Modelled on inspect_ai's ``ModelAPI`` and lm-eval's ``LM``: a backend declares who it is
(``identity``, everything a result cache key needs) and what it can do (``capabilities``), and
offers two operations:

* ``next_token_probs``: the model's next-token probabilities over candidate strings (Log-p).
* ``generate``: sampled completions, optionally constrained to a JSON schema or to a fixed number
  of letters.

The public methods check their arguments and the declared capabilities, then call the protected
``_next_token_probs`` / ``_generate`` that a backend overrides. A method that needs a capability
the backend lacks raises ``UnsupportedMethodError`` before any model work is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from distalign.errors import DistalignError

# A chat message: {"role": "system" | "user" | "assistant", "content": "..."}.
# A final "assistant" message is a prefill: the model continues that text (e.g. "Answer:").
Message = Mapping[str, str]

ROLES = frozenset({"system", "user", "assistant"})


class Capability(StrEnum):
    """What a backend can do. Members compare equal to their string values."""

    LOGPROBS = "logprobs"  # next-token probabilities over candidate strings
    GENERATE = "generate"  # free-text sampling
    JSON_SCHEMA = "json_schema"  # generation constrained to a JSON schema
    LETTER_GRAMMAR = "letter_grammar"  # generation constrained to exactly N allowed letters
    SEED = "seed"  # seeded sampling: same seed, same output
    # one request returns n samples of the same prompt, billed once (OpenAI's and vLLM's n):
    # the engine then hands a backend the N sample calls of an item together
    MULTI_SAMPLE = "multi_sample"


class UnsupportedMethodError(DistalignError, RuntimeError):
    """A method needs a capability that the backend does not declare."""

    def __init__(self, backend: str, missing: Sequence[Capability], purpose: str) -> None:
        names = ", ".join(sorted(str(c) for c in missing))
        super().__init__(
            f"backend {backend!r} cannot do {purpose}: it lacks the capability {names}"
        )
        self.backend = backend
        self.missing = tuple(missing)


class BackendUnavailableError(DistalignError, RuntimeError):
    """The backend or its model cannot be loaded (missing package, missing file)."""


@dataclass(frozen=True)
class BackendIdentity:
    """Everything that determines a backend's outputs, for cache keys and result records."""

    backend: str  # implementation, e.g. "llamacpp"
    model: str  # model name as the user knows it
    path: str | None = None  # local model file, if any
    fingerprint: str | None = None  # content hash of the model, e.g. "sha256:<hex>"
    size_bytes: int | None = None
    quantization: str | None = None  # e.g. "Q4_1"
    chat: bool = True  # False: base model, prompted as plain completion text
    prompt_format: str = "chat_template"  # how messages become the prompt
    chat_template_sha256: str | None = None
    runtime: str | None = None  # library and version that runs the model

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cache_key(self) -> str:
        """A stable hash of all fields."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class NextTokenProbs:
    """Next-token probabilities of the candidates after one prompt."""

    probs: dict[str, float]  # renormalized over the candidates: sums to 1
    covered_mass: float  # probability the model put on the candidates before renormalizing
    token_probs: dict[str, float]  # raw probability of each counted token text ("A", " A", ...)
    skipped_variants: tuple[str, ...] = ()  # variants not counted: not a single token
    usage: Usage | None = None  # tokens billed, for API backends


@dataclass(frozen=True)
class Usage:
    """Tokens a call consumed (API backends report them; local ones may leave them None)."""

    prompt_tokens: int | None = None  # every prompt token, cached ones included
    completion_tokens: int | None = None
    cache_read_tokens: int | None = None  # part of prompt_tokens read from a prompt cache
    cache_write_tokens: int | None = None  # part of prompt_tokens written to it


@dataclass(frozen=True)
class Generation:
    """The texts of one ``generate`` call and the tokens it used."""

    texts: list[str]
    usage: Usage | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """The checked arguments of one ``generate`` call."""

    max_tokens: int
    temperature: float
    seed: int | None
    n: int
    json_schema: Mapping[str, Any] | None
    letters: tuple[str, ...] | None
    length: int | None
    stop: tuple[str, ...]


@dataclass(frozen=True)
class ProbsJob:
    """One prompt of a batched Log-p call: the messages and the candidate strings."""

    messages: Sequence[Message]
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class GenerateJob:
    """One prompt of a batched generate call: the messages and the checked arguments."""

    messages: Sequence[Message]
    request: GenerationRequest


DEFAULT_MAX_TOKENS = 256


class Backend(ABC):
    """A language model that distalign can query."""

    @property
    @abstractmethod
    def identity(self) -> BackendIdentity: ...

    @property
    @abstractmethod
    def capabilities(self) -> frozenset[Capability]: ...

    def supports(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities

    def require(self, *capabilities: Capability | str, purpose: str) -> None:
        """Raise ``UnsupportedMethodError`` unless every capability is declared."""
        missing = [Capability(c) for c in capabilities if not self.supports(c)]
        if missing:
            who = f"{self.identity.backend}:{self.identity.model}"
            raise UnsupportedMethodError(who, missing, purpose)

    def next_token_probs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> NextTokenProbs:
        """Probabilities of each candidate as the next token after the prompt.

        For each candidate L both "L" and " L" are counted (which one a model uses depends on
        the preceding text); the result is renormalized over the candidates and the mass
        before renormalizing is reported as ``covered_mass``.
        """
        self.require(Capability.LOGPROBS, purpose="next-token probabilities (Log-p)")
        check_messages(messages)
        if not candidates or len(set(candidates)) != len(candidates):
            raise ValueError(f"candidates must be non-empty and distinct, got {candidates!r}")
        return self._next_token_probs(messages, list(candidates))

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        n: int = 1,
        json_schema: Mapping[str, Any] | None = None,
        letters: Sequence[str] | None = None,
        length: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """Sample ``n`` completions.

        ``letters`` + ``length``: each output is exactly ``length`` letters from ``letters``,
        concatenated ("ABDA..."). ``json_schema``: each output is JSON matching the schema.
        ``seed``: same seed, same outputs (needs the "seed" capability; None draws fresh
        randomness). ``max_tokens`` defaults to ``length`` for letters, else 256.
        """
        return self.generate_detailed(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            n=n,
            json_schema=json_schema,
            letters=letters,
            length=length,
            stop=stop,
        ).texts

    def generate_detailed(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float = 1.0,
        seed: int | None = None,
        n: int = 1,
        json_schema: Mapping[str, Any] | None = None,
        letters: Sequence[str] | None = None,
        length: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> Generation:
        """Like :meth:`generate`, plus the token usage when the backend reports it."""
        check_messages(messages)
        request = make_request(max_tokens, temperature, seed, n, json_schema, letters, length, stop)
        self.require(*needed_capabilities(request), purpose="this generate() call")
        return self._generate_detailed(messages, request)

    def _generate_detailed(
        self, messages: Sequence[Message], request: GenerationRequest
    ) -> Generation:
        # Backends that know their token usage override this; the rest report none.
        return Generation(self._generate(messages, request))

    #: How many calls the runner may have in flight at once (API backends raise this).
    max_concurrency: int = 1
    #: How many calls the engine hands over in one batch (local batched backends raise this).
    batch_size: int = 1

    # ----- batches: many prompts in, one result per prompt out, in the same order ------------

    def next_token_probs_many(
        self, jobs: Sequence[ProbsJob]
    ) -> Iterator[NextTokenProbs | Exception]:
        """:meth:`next_token_probs` for many prompts, yielding each result as it is ready.

        A job that fails yields its exception; the others still get their results.
        """
        self.require(Capability.LOGPROBS, purpose="next-token probabilities (Log-p)")
        return self._next_token_probs_many(list(jobs))

    def generate_many(self, jobs: Sequence[GenerateJob]) -> Iterator[Generation | Exception]:
        """:meth:`generate_detailed` for many prompts, yielding each result as it is ready."""
        return self._generate_many(list(jobs))

    def _next_token_probs_many(self, jobs: list[ProbsJob]) -> Iterator[NextTokenProbs | Exception]:
        # The default loops over single calls; batched backends override this.
        for job in jobs:
            try:
                yield self.next_token_probs(job.messages, job.candidates)
            except Exception as error:  # one failed prompt does not fail the batch
                yield error

    def _generate_many(self, jobs: list[GenerateJob]) -> Iterator[Generation | Exception]:
        for job in jobs:
            try:
                yield self.generate_job(job)
            except Exception as error:
                yield error

    def generate_job(self, job: GenerateJob) -> Generation:
        """One checked generate call from a job (its arguments were checked when it was made)."""
        check_messages(job.messages)
        self.require(*needed_capabilities(job.request), purpose="this generate() call")
        return self._generate_detailed(job.messages, job.request)

    def _next_token_probs(
        self, messages: Sequence[Message], candidates: list[str]
    ) -> NextTokenProbs:
        raise NotImplementedError  # only reached if LOGPROBS is declared but not implemented

    @abstractmethod
    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]: ...

    def close(self) -> None:
        """Release the model. The default does nothing."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise ValueError("messages must not be empty")
    for message in messages:
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(
                f"each message needs a role in {sorted(ROLES)} and a string content, "
                f"got {message!r}"
            )


def make_request(
    max_tokens: int | None,
    temperature: float,
    seed: int | None,
    n: int,
    json_schema: Mapping[str, Any] | None,
    letters: Sequence[str] | None,
    length: int | None,
    stop: Sequence[str] | None,
) -> GenerationRequest:
    """Check the arguments of ``Backend.generate`` and bundle them."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if json_schema is not None and letters is not None:
        raise ValueError("give json_schema or letters, not both")
    if (letters is None) != (length is None):
        raise ValueError("letters and length go together: give both or neither")
    if letters is not None and length is not None:
        check_letters(letters, length)
        max_tokens = length if max_tokens is None else max_tokens
        if max_tokens < length:
            raise ValueError(f"max_tokens={max_tokens} is less than length={length}")
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    return GenerationRequest(
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        n=n,
        json_schema=json_schema,
        letters=None if letters is None else tuple(letters),
        length=length,
        stop=tuple(stop or ()),
    )


def check_letters(letters: Sequence[str], length: int) -> None:
    if isinstance(letters, str) or not letters or len(set(letters)) != len(letters):
        raise ValueError(f"letters must be a non-empty list of distinct strings, got {letters!r}")
    if any(len(letter) != 1 or letter.isspace() for letter in letters):
        raise ValueError(f"each of letters must be one visible character, got {letters!r}")
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")


def needed_capabilities(request: GenerationRequest) -> list[Capability]:
    needed = [Capability.GENERATE]
    if request.json_schema is not None:
        needed.append(Capability.JSON_SCHEMA)
    if request.letters is not None:
        needed.append(Capability.LETTER_GRAMMAR)
    if request.seed is not None:
        needed.append(Capability.SEED)  # a seed the backend would ignore is refused, not dropped
    return needed
