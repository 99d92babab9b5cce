"""Log-p: the next-token distribution at the answer position, restricted to the letters.

Two sources:

* :func:`letter_probs_from_top_logprobs`: an API's top-k candidates (token text and
  log-probability). Candidates are pooled by their stripped, case-insensitive text, so
  ``"A"``, ``" A"`` and ``"a"`` all add to A (the paper's GPT rule, spec §5.4). Mass outside
  the top-k is unknown.
* :func:`letter_probs_from_logits`: a local model's full logit vector. A numerically stable
  log-softmax over the whole vocabulary, then each letter adds up the probabilities of its
  token ids (e.g. ``"A"`` and ``" A"``).

Either way the letter mass before renormalizing is the **covered mass** (``raw_sum``): how
much of the model's next-token probability fell on the option letters (quirk R6: the paper
never renormalized). The result is renormalized over the letters; zero covered mass fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from distalign.parsing._result import Parsed, bad_letters, clean_letters, renormalize

# A log-probability a hair above 0 is rounding noise from the API, not an error.
_LOGPROB_SLACK = 1e-6
_MASS_SLACK = 1e-6


def letter_probs_from_top_logprobs(
    top: Mapping[str, float] | Sequence[tuple[str, float]],
    letters: Sequence[str],
    *,
    are_logprobs: bool = True,
) -> Parsed:
    """Letter distribution from top-k candidates (``{token: logprob}`` or ``[(token, lp)]``).

    With ``are_logprobs=False`` the values are probabilities. Candidates that are not a
    letter (after stripping spaces and ignoring case) are ignored.

    >>> r = letter_probs_from_top_logprobs({"A": math.log(0.5), " a": math.log(0.2),
    ...                                     "B": math.log(0.2), "The": math.log(0.1)}, "AB")
    >>> [round(p, 4) for p in r.probs], round(r.raw_sum, 4)
    ([0.7778, 0.2222], 0.9)
    """
    wanted = clean_letters(letters)
    if wanted is None:
        return bad_letters(letters)
    candidates = _candidates(top)
    if candidates is None:
        return Parsed.failure("top candidates are not (token, value) pairs")
    mass = dict.fromkeys(wanted, 0.0)
    for token, value in candidates:
        letter = token.strip().upper()
        if letter not in mass:
            continue
        prob = _probability(value, are_logprobs)
        if prob is None:
            return Parsed.failure(f"invalid value {value!r} for token {token!r}")
        mass[letter] += prob
    return _covered(list(mass.values()))


def _candidates(top: object) -> list[tuple[str, float]] | None:
    """The candidates as ``(token, value)`` pairs, or ``None`` when malformed."""
    try:
        items = list(top.items() if isinstance(top, Mapping) else top)  # type: ignore[call-overload]
    except TypeError:
        return None
    pairs: list[tuple[str, float]] = []
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            return None
        token, value = item
        if not isinstance(token, str) or not _is_number(value):
            return None
        try:
            pairs.append((token, float(value)))
        except OverflowError:  # an int too large for a float
            return None
    return pairs


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _probability(value: float, are_logprobs: bool) -> float | None:
    if math.isnan(value):
        return None
    if are_logprobs:
        return math.exp(min(value, 0.0)) if value <= _LOGPROB_SLACK else None
    return value if 0.0 <= value <= 1.0 + _MASS_SLACK else None


def _covered(masses: list[float]) -> Parsed:
    covered = math.fsum(masses)
    if covered > 1.0 + _MASS_SLACK:
        return Parsed.failure(f"letter mass {covered:.6g} exceeds 1", raw_sum=covered)
    result = renormalize(masses)
    if isinstance(result, str):
        reason = "no letter among the candidates" if result == "all values are zero" else result
        return Parsed.failure(reason, raw_sum=covered)
    probs, raw_sum = result
    return Parsed.success(probs, f"covered mass {raw_sum:.6g}", raw_sum=raw_sum)


def letter_probs_from_logits(logits: object, letter_token_ids: Mapping[str, list[int]]) -> Parsed:
    """Letter distribution from a full-vocabulary logit vector.

    ``letter_token_ids`` maps each option letter, in option order, to the token ids that
    spell it (e.g. ``{"A": [32, 362], "B": [33, 426]}``). A token id may belong to one
    letter only. ``-inf`` logits (masked tokens) are fine; NaN or ``+inf`` fail.

    >>> r = letter_probs_from_logits(np.log([0.5, 0.3, 0.1, 0.1]), {"A": [0], "B": [1, 2]})
    >>> [round(p, 4) for p in r.probs], round(r.raw_sum, 4)
    ([0.5556, 0.4444], 0.9)
    """
    letters = list(letter_token_ids)
    if clean_letters(letters) is None:
        return bad_letters(letters)
    log_probs = _log_softmax(logits)
    if isinstance(log_probs, str):
        return Parsed.failure(log_probs)
    ids = _token_ids(letter_token_ids, log_probs.size)
    if isinstance(ids, str):
        return Parsed.failure(ids)
    masses = [float(np.exp(log_probs[token_ids]).sum()) for token_ids in ids]
    return _covered(masses)


def _log_softmax(logits: object) -> np.ndarray | str:
    try:
        values = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError):
        return "logits are not numeric"
    if values.ndim != 1 or values.size == 0:
        return f"logits must be a non-empty 1-D vector, got shape {values.shape}"
    if np.isnan(values).any() or np.isposinf(values).any():
        return "logits contain NaN or +inf"
    top = values.max()
    if not np.isfinite(top):
        return "every logit is -inf"
    # Subtracting the maximum before exponentiating keeps exp() from overflowing.
    shifted = values - top
    result: np.ndarray = shifted - np.log(np.exp(shifted).sum())
    return result


def _token_ids(letter_token_ids: Mapping[str, list[int]], vocab: int) -> list[list[int]] | str:
    """Per letter, its distinct token ids; a reason string when an id is unusable."""
    owner: dict[int, str] = {}
    result: list[list[int]] = []
    for letter, token_ids in letter_token_ids.items():
        try:
            listed = list(token_ids)
        except TypeError:
            return f"token ids for {letter} are not a list"
        ids: list[int] = []
        for token_id in listed:
            if not _is_index(token_id, vocab):
                return f"token id {token_id!r} for {letter} is not in 0..{vocab - 1}"
            token = int(token_id)
            if owner.setdefault(token, letter) != letter:
                return f"token id {token} belongs to both {owner[token]} and {letter}"
            if token not in ids:
                ids.append(token)
        if not ids:
            return f"no token ids for {letter}"
        result.append(ids)
    return result


def _is_index(token_id: object, vocab: int) -> bool:
    # Negative ids would silently wrap around in numpy indexing, so they are refused.
    if isinstance(token_id, bool) or not isinstance(token_id, int | np.integer):
        return False
    return 0 <= int(token_id) < vocab
