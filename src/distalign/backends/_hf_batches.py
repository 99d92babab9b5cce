"""Which prompts the transformers backend runs together, and how much of their start it shares.

Plain Python (no torch), so the planning is cheap to test on its own.

A *segment* is a group of prompts run in one batched forward pass. When the prompts of a
segment begin with the same tokens (a persona and format examples, then different questions),
those tokens are run once and only the different endings are run as a batch on a copy of their
KV cache. The planner cuts prompts sorted by their token ids (so shared starts are adjacent)
into segments of at most ``size`` prompts, choosing the cuts that compute the fewest tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# The fixed cost of one forward pass, counted in prompt tokens. It only decides close calls
# between one segment and two (on 2 CPU cores a SmolLM2 pass costs about 3 ms per token and
# a few ms per call); the exact value barely changes the plans.
FORWARD_OVERHEAD = 16


@dataclass(frozen=True)
class Segment:
    """Prompts run in one batched pass, after their first ``prefix`` tokens are run once."""

    rows: tuple[int, ...]  # indices of the prompts, in the order they are batched
    prefix: int  # leading tokens all rows share and run once; 0: every row runs in full


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def plan_segments(
    prompts: Sequence[Sequence[int]], size: int, *, reuse: bool, gaps_allowed: bool = True
) -> list[Segment]:
    """Cut the prompts into segments of at most ``size`` rows.

    ``reuse`` False: prompts sorted by length, in chunks of ``size``, each row run in full.
    ``gaps_allowed`` False (models with sliding-window attention): a prefix is shared only by
    rows of equal length, because the padding between a shared prefix and shorter endings
    shifts the token distances that a sliding window is measured in.
    """
    if not reuse:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        return [Segment(tuple(order[k : k + size]), 0) for k in range(0, len(order), size)]
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    cuts = _cheapest_cuts([prompts[i] for i in order], size, gaps_allowed)
    return [Segment(tuple(order[i] for i in range(start, end)), p) for start, end, p in cuts]


def _cheapest_cuts(
    rows: list[Sequence[int]], size: int, gaps_allowed: bool
) -> list[tuple[int, int, int]]:
    """(start, end, prefix) of contiguous segments minimizing the tokens computed in total.

    Dynamic programming over cut points: ``best[end]`` is the cheapest plan for ``rows[:end]``.
    The shared prefix of a run of sorted rows is the minimum over its adjacent pairs.
    """
    adjacent = [common_prefix_length(rows[i], rows[i + 1]) for i in range(len(rows) - 1)]
    best = [0.0] + [math.inf] * len(rows)
    back = [(0, 0)] * (len(rows) + 1)
    for end in range(1, len(rows) + 1):
        shared = shortest = longest = len(rows[end - 1])
        for start in range(end - 1, max(0, end - size) - 1, -1):
            if start < end - 1:
                shared = min(shared, adjacent[start])
                shortest = min(shortest, len(rows[start]))
                longest = max(longest, len(rows[start]))
            prefix, cost = segment_cost(end - start, shared, shortest, longest, gaps_allowed)
            if best[start] + cost < best[end]:
                best[end] = best[start] + cost
                back[end] = (start, prefix)
    cuts = []
    end = len(rows)
    while end > 0:
        start, prefix = back[end]
        cuts.append((start, end, prefix))
        end = start
    return cuts[::-1]


def segment_cost(
    count: int, shared: int, shortest: int, longest: int, gaps_allowed: bool
) -> tuple[int, int]:
    """(prefix, tokens computed) for ``count`` rows sharing ``shared`` leading tokens.

    Each row keeps at least one token of its own: its last token gives the logits.
    """
    plain = count * longest + FORWARD_OVERHEAD
    prefix = min(shared, shortest - 1) if count > 1 else 0
    if prefix <= 0 or (not gaps_allowed and shortest != longest):
        return 0, plain
    reused = prefix + count * (longest - prefix) + 2 * FORWARD_OVERHEAD
    return (prefix, reused) if reused < plain else (0, plain)


def in_order(results: Iterable[tuple[int, T]]) -> Iterator[T]:
    """Results that arrive as (index, result) in any order, yielded by index 0, 1, 2, ...

    Each is yielded as soon as all results before it have been.
    """
    waiting: dict[int, T] = {}
    following = 0
    for index, result in results:
        waiting[index] = result
        while following in waiting:
            yield waiting.pop(following)
            following += 1
    if waiting:
        raise RuntimeError(f"results missing before index {min(waiting)}")


def shared_prefix(prompts: Sequence[Sequence[int]], gaps_allowed: bool = True) -> int:
    """The prefix worth running once for all ``prompts`` together (0: run each in full)."""
    shared = min(common_prefix_length(prompts[0], p) for p in prompts)
    lengths = [len(p) for p in prompts]
    return segment_cost(len(prompts), shared, min(lengths), max(lengths), gaps_allowed)[0]
