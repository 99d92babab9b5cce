"""Batched forward passes of the transformers backend: prefill with a shared prefix, decode steps.

A batch of prompts is run as ``[shared prefix | padding | ending]`` per row: the prefix (the
tokens all rows begin with, possibly none) runs once with a batch of one, its KV cache is
repeated for every row, and the endings run as one left-padded batch on that cache. The
attention mask hides the padding and the position ids count real tokens only, so each row sees
exactly the positions and keys it would see alone; the results differ from one-at-a-time runs
by float rounding only. Generation then appends one token per row and step to the same cache.

Caches are passed as ``cache=`` and read from ``output.cache`` (transformers 5 renamed
``past_key_values``, which now warns).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from distalign.backends._models import Variants
from distalign.backends.base import NextTokenProbs


@dataclass
class Batch:
    """A batch after its prompts ran: the last logits, and what decoding continues from."""

    logits: torch.Tensor  # [rows, vocab]: next-token logits after each row's last token
    cache: Any  # a transformers Cache over the rows' tokens so far (None if not kept)
    mask: torch.Tensor  # [rows, cached tokens]: 1 for real tokens, 0 for padding
    positions: torch.Tensor  # [rows]: position id of each row's last token


class Forward:
    """Runs one causal LM on batches of token ids."""

    def __init__(self, model: Any, pad_id: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.device = model.device
        # Only the last position's logits are needed; older models compute all of them.
        parameters = inspect.signature(model.forward).parameters
        self.keep_last = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        # Sliding-window layers measure distance in cache slots, which padding would shift.
        self.gaps_allowed = not any(DynamicCache(config=model.config).is_sliding)

    def prefill(self, prompts: list[list[int]], prefix: int, keep_cache: bool) -> Batch:
        """Run the prompts, which share their first ``prefix`` tokens (0: none shared)."""
        rows = len(prompts)
        cache = None
        if prefix:
            start = torch.tensor([prompts[0][:prefix]], device=self.device)
            cache = self.model(input_ids=start, use_cache=True, **self.keep_last).cache
            cache.batch_repeat_interleave(rows)
        endings = [ids[prefix:] for ids in prompts]
        width = max(len(ids) for ids in endings)
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, prefix + width), dtype=torch.long)
        mask[:, :prefix] = 1
        for row, ids in enumerate(endings):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            mask[row, prefix + width - len(ids) :] = 1
        # Positions count real tokens only, so a padded row sees the positions it has alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions[:, prefix:].to(self.device),
            cache=cache,
            use_cache=keep_cache or cache is not None,
            **self.keep_last,
        )
        return Batch(
            logits=output.logits[:, -1, :],
            cache=output.cache if keep_cache else None,
            mask=mask.to(self.device),
            positions=positions[:, -1].to(self.device),
        )

    def feed(self, batch: Batch, tokens: torch.Tensor) -> None:
        """Append one token to each row and update the batch's logits."""
        ones = torch.ones((len(tokens), 1), dtype=batch.mask.dtype, device=self.device)
        batch.mask = torch.cat([batch.mask, ones], dim=1)
        batch.positions = batch.positions + 1
        output = self.model(
            input_ids=tokens[:, None].to(self.device),
            attention_mask=batch.mask,
            position_ids=batch.positions[:, None],
            cache=batch.cache,
            use_cache=True,
            **self.keep_last,
        )
        batch.cache = output.cache
        batch.logits = output.logits[:, -1, :]


def select_rows(batch: Batch, rows: torch.Tensor) -> None:
    """Keep (or repeat) the given rows of a batch, in that order."""
    rows = rows.to(batch.mask.device)
    if batch.cache is not None:
        batch.cache.batch_select_indices(rows)
    batch.logits = batch.logits[rows]
    batch.mask = batch.mask[rows]
    batch.positions = batch.positions[rows]


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
