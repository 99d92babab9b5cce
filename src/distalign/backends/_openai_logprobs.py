"""Log-p over the chat completions API: letter probabilities from the top next tokens."""

from __future__ import annotations

import math

from openai.types.chat import ChatCompletion

from distalign.backends._openai_transport import RequestError
from distalign.backends.base import NextTokenProbs, Usage

TOP_LOGPROBS = 20
_LOGPROB_SLACK = 1e-6  # a log-probability this far above 0 is the server's rounding


def top_logprobs(completion: ChatCompletion) -> list[tuple[str, float]]:
    """The (token, logprob) pairs of the first generated token."""
    logprobs = completion.choices[0].logprobs
    if logprobs is None or not logprobs.content:
        raise RequestError(
            "the server returned no log-probabilities: it may not support logprobs/top_logprobs"
        )
    return [(entry.token, entry.logprob) for entry in logprobs.content[0].top_logprobs]


def candidate_probs(
    top: list[tuple[str, float]], candidates: list[str], usage: Usage
) -> NextTokenProbs:
    """Each candidate's mass from the tokens "L" and " L" among the top tokens.

    A token the server lists twice counts once (its first entry). A NaN or positive
    log-probability makes the covered mass NaN, which the Log-p parser records as a failure.
    """
    variant_of = {text: c for c in candidates for text in (c, " " + c)}
    token_probs: dict[str, float] = {}
    for token, logprob in top:
        if token in variant_of and token not in token_probs:
            # rounding noise a hair above 0 is probability 1; anything else above 0 is invalid
            valid = logprob <= _LOGPROB_SLACK  # False for NaN too
            token_probs[token] = math.exp(min(logprob, 0.0)) if valid else math.nan
    raw = dict.fromkeys(candidates, 0.0)
    for token, prob in token_probs.items():
        raw[variant_of[token]] += prob
    covered = math.fsum(raw.values())
    probs = {c: (p / covered if covered > 0 else 0.0) for c, p in raw.items()}
    return NextTokenProbs(probs=probs, covered_mass=covered, token_probs=token_probs, usage=usage)
