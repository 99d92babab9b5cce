"""Many samples of one prompt: which jobs can share one request with ``n``, and its replies.

A server with the ``multi_sample`` capability answers ``n=k`` with k choices for one prompt,
billing the prompt once (OpenAI, vLLM). The engine hands such a backend an item's sample calls
together; here they are cut into runs that one request can serve, and a server that turns out
not to honour ``n`` is recognised (see ``docs/backends.md``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np

from distalign.backends._openai_transport import RequestError
from distalign.backends.base import GenerateJob, GenerationRequest

# A 400/422 whose text names the parameter n (OpenAI: "Invalid 'n'", with "param": "n"),
# or says that only one choice is allowed (llama.cpp: "Only one completion choice is allowed",
# a 500 in some of its versions).
_ABOUT_N = re.compile(r"(?<![\w\\])n(?!\w)|\bchoices?\b", re.IGNORECASE)
_REJECTED = frozenset({400, 422, 500})
MAX_N = 128  # OpenAI's largest n; a larger one would be refused and end the use of n


def draw_groups(jobs: list[GenerateJob], limit: int = MAX_N) -> list[list[GenerateJob]]:
    """Runs of consecutive jobs that differ only by seed: each run (of at most ``limit``) can
    be one request."""
    groups: list[list[GenerateJob]] = []
    for job in jobs:
        if groups and len(groups[-1]) < limit and same_draw(groups[-1][0], job):
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups


def same_draw(first: GenerateJob, other: GenerateJob) -> bool:
    """Whether two jobs are draws of the same request (same prompt and arguments but the seed)."""
    a, b = first.request, other.request
    if a.n != 1 or b.n != 1 or (a.seed is None) != (b.seed is None):
        return False
    if replace(a, seed=None) != replace(b, seed=None):
        return False
    return first.messages is other.messages or [dict(m) for m in first.messages] == [
        dict(m) for m in other.messages
    ]


def multi_sample_params(request: GenerationRequest, k: int) -> dict[str, Any]:
    """The extra parameters of one request for k draws: ``n`` and the first draw's seed."""
    params: dict[str, Any] = {"n": k}
    if request.seed is not None:
        params["seed"] = request.seed
    return params


def choice_texts(completion: Any, k: int) -> list[str]:
    """The texts of a completion's choices in index order, at most k of them."""
    choices = sorted(completion.choices, key=lambda c: c.index)
    return [c.message.content or "" for c in choices[:k]]


def rejects_n(error: Exception) -> bool:
    """Whether a request was refused for its ``n`` (not for anything else).

    ``error`` is the SDK's (while the request is tried) or a :class:`RequestError` (after).
    """
    status = getattr(error, "status_code", None)
    if status not in _REJECTED:
        return False
    text = error.detail if isinstance(error, RequestError) else str(error)
    return _ABOUT_N.search(text) is not None


def sample_seeds(seed: int | None, n: int) -> list[int | None]:
    """The seed for each of n samples: ``seed`` itself first, then distinct derived seeds."""
    if seed is None:
        return [None] * n
    derived = np.random.SeedSequence(seed).generate_state(n)
    seeds: list[int | None] = [seed]
    seeds += [int(s) % (2**31 - 1) for s in derived[1:]]
    return seeds
