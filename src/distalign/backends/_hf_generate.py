"""Batched sampling for the transformers backend: many generate jobs decoded side by side.

Every job has its own ``torch.Generator`` and draws for its own rows only (its ``n`` samples),
exactly as it would alone: per step one draw over its rows' logits, for as many steps as it
would take alone. So a seeded job gives the same text in any batch, up to float rounding of
the logits (padding changes the order of additions; a draw that lands within about 1e-6 of a
boundary between two tokens could flip, which the tests have not seen). A job that is done
(its letters drawn, or all its rows at an end token or stop string) leaves the batch and its
rows are dropped from the KV cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from distalign.backends._hf_forward import Batch, Forward, draw, select_rows
from distalign.backends._models import Variants
from distalign.backends.base import GenerationRequest


@dataclass
class Draws:
    """One job's rows in a batched decode: how it draws, when it stops, how tokens become text."""

    rows: int  # its n samples
    steps: int  # at most this many tokens per row
    choose: Callable[[torch.Tensor], torch.Tensor]  # its rows' logits (float64, CPU) -> tokens
    done: Callable[[list[list[int]]], bool]  # all its rows finished early
    texts: Callable[[list[list[int]]], list[str]]
    tokens: list[list[int]] = field(default_factory=list)


class Decoder:
    """Draws tokens for the jobs of a prefilled batch until each is done.

    The batch holds ``draws[j].rows`` consecutive rows per job, in job order.
    """

    def __init__(self, forward: Forward, batch: Batch, draws: list[Draws]) -> None:
        self.forward = forward
        self.batch = batch
        self.draws = draws
        for job in draws:
            job.tokens = [[] for _ in range(job.rows)]
        self.active = list(range(len(draws)))  # jobs still decoding, in row order

    def step(self) -> list[int]:
        """Draw one token per active row; return the jobs that finished with it."""
        logits = self.batch.logits.to("cpu", torch.float64)
        chosen: dict[int, torch.Tensor] = {}
        start = 0
        for j in self.active:
            job = self.draws[j]
            chosen[j] = job.choose(logits[start : start + job.rows])
            start += job.rows
            for row, token in zip(job.tokens, chosen[j].tolist(), strict=True):
                row.append(int(token))
        finished = [j for j in self.active if self._finished(self.draws[j])]
        if finished:
            self._drop(finished)
        if self.active:
            self.forward.feed(self.batch, torch.cat([chosen[j] for j in self.active]))
        return finished

    @staticmethod
    def _finished(job: Draws) -> bool:
        return len(job.tokens[0]) >= job.steps or job.done(job.tokens)

    def _drop(self, finished: list[int]) -> None:
        """Remove the rows of finished jobs from the batch."""
        keep: list[int] = []
        start = 0
        for j in self.active:
            if j not in finished:
                keep.extend(range(start, start + self.draws[j].rows))
            start += self.draws[j].rows
        self.active = [j for j in self.active if j not in finished]
        if self.active:
            select_rows(self.batch, torch.tensor(keep))


def letter_draws(
    request: GenerationRequest, variants: list[Variants], generator: torch.Generator
) -> Draws:
    """``n`` strings of exactly ``length`` letters, one model token per letter.

    Each position is a draw from the next-token distribution restricted to the single-token
    variants of the letters ("A" and " A" both stand for A), given the letters drawn so far.
    """
    assert request.letters is not None and request.length is not None
    allowed = torch.tensor([t for v in variants for t in v.ids])
    letter_of = {
        t: letter for letter, v in zip(request.letters, variants, strict=True) for t in v.ids
    }

    def draw_letter(logits: torch.Tensor) -> torch.Tensor:
        return allowed[draw(logits[:, allowed], request.temperature, generator)]

    def texts(tokens: list[list[int]]) -> list[str]:
        return ["".join(letter_of[t] for t in row) for row in tokens]

    return Draws(request.n, request.length, draw_letter, lambda _: False, texts)


def text_draws(
    request: GenerationRequest, tokenizer: Any, ends: set[int], generator: torch.Generator
) -> Draws:
    """``n`` completions, each ending before an end token or stop string."""

    def draw_token(logits: torch.Tensor) -> torch.Tensor:
        return draw(logits, request.temperature, generator)

    def finished(row: list[int]) -> bool:
        if any(t in ends for t in row):
            return True
        return bool(request.stop) and any(s in tokenizer.decode(row) for s in request.stop)

    def texts(tokens: list[list[int]]) -> list[str]:
        return [completion_text(tokenizer, row, ends, request.stop) for row in tokens]

    return Draws(
        request.n, request.max_tokens, draw_token, lambda rows: all(map(finished, rows)), texts
    )


def completion_text(tokenizer: Any, row: list[int], ends: set[int], stop: tuple[str, ...]) -> str:
    """The text of a row up to its first end token, cut before the first stop string."""
    kept = []
    for token in row:
        if token in ends:
            break
        kept.append(token)
    text = str(tokenizer.decode(kept, skip_special_tokens=True))
    for s in stop:
        text = text.split(s, 1)[0]
    return text


def end_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a completion: the generation config's EOS, else the tokenizer's."""
    ends = model.generation_config.eos_token_id
    if ends is None:
        ends = tokenizer.eos_token_id
    if ends is None:
        return set()
    return {int(e) for e in ends} if isinstance(ends, list) else {int(ends)}
