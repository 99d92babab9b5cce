"""Log-p: the next-token distribution at the answer position, restricted to the letters.

Three sources:

* :func:`letter_probs_from_top_logprobs`: an API's top-k candidates (token text and
  log-probability). Candidates are pooled by their stripped, case-insensitive text, so
  ``"A"``, ``" A"`` and ``"a"`` all add to A (the paper's GPT rule, spec §5.4). Mass outside
  the top-k is unknown.
* :func:`letter_probs_from_logits`: a local model's full logit vector. A numerically stable
  log-softmax over the whole vocabulary, then each letter adds up the probabilities of its
  token ids (e.g. ``"A"`` and ``" A"``).
* :func:`check_letter_probs`: per-letter probabilities and a covered mass a backend already
  computed; they are validated, not recomputed.

Either way the letter mass before renormalizing is the **covered mass** (``raw_sum``): how
much of the model's next-token probability fell on the option letters (quirk R6: the paper
never renormalized). The result is renormalized over the letters; zero covered mass fails.

Failures (a broken server's numbers are never scored):

* **Non-finite values.** A NaN or ``+inf`` value for *any* candidate (letter or not) fails
  the reply, and so does a log-probability above 0 (beyond :data:`LOGPROB_SLACK`) or, with
  ``are_logprobs=False``, a probability outside [0, 1]. A log-probability of ``-inf`` is
  probability 0 and is accepted; as a probability, ``-inf`` fails. Logits: NaN or ``+inf``
  fail, ``-inf`` (a masked token) is probability 0.
* **Repeated tokens.** A token text listed more than once among the top-k (exactly the same
  string) is a server error: the first occurrence is kept and the later ones are ignored
  (reported in the detail), so ``"A"`` listed three times counts once.
* **Covered mass** that is not finite or exceeds ``1 + MASS_SLACK`` fails, as does zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from distalign.parsing._result import (
    Parsed,
    bad_letters,
    clean_letters,
    join_notes,
    renormalize,
)

#: A log-probability a hair above 0 is rounding noise from the API, not an error.
LOGPROB_SLACK = 1e-6
#: A covered mass may exceed 1 by this much (float rounding), no more.
MASS_SLACK = 1e-6
#: :func:`check_letter_probs` takes numbers a backend computed, possibly in float32.
CHECKED_MASS_SLACK = 1e-4
#: ... and the per-letter probabilities it is given must sum to 1 within this.
CHECKED_SUM_TOLERANCE = 1e-6


def letter_probs_from_top_logprobs(
    top: Mapping[str, float] | Sequence[tuple[str, float]],
    letters: Sequence[str],
    *,
    are_logprobs: bool = True,
) -> Parsed:
    """Letter distribution from top-k candidates (``{token: logprob}`` or ``[(token, lp)]``).

    With ``are_logprobs=False`` the values are probabilities. Candidates that are not a
    letter (after stripping spaces and ignoring case) add no mass, but their values must be
    valid too; a repeated token text counts once (its first occurrence).

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
    seen: set[str] = set()
    repeated: list[str] = []
    for token, value in candidates:
        prob = _probability(value, are_logprobs)
        if prob is None:
            return Parsed.failure(f"invalid value {value!r} for token {token!r}")
        if token in seen:
            repeated.append(token)
            continue
        seen.add(token)
        letter = token.strip().upper()
        if letter in mass:
            mass[letter] += prob
    note = f"repeated tokens ignored: {', '.join(map(repr, repeated))}" if repeated else ""
    return _covered(list(mass.values()), note)


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


def _as_float(value: object) -> float | None:
    """A real number as a float; ``None`` for anything else (bools, strings, huge ints)."""
    if not _is_number(value):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _probability(value: float, are_logprobs: bool) -> float | None:
    """The probability a candidate's value stands for, or ``None`` when it is invalid."""
    if math.isnan(value):
        return None
    if are_logprobs:  # -inf is probability 0; +inf is above the slack
        return math.exp(min(value, 0.0)) if value <= LOGPROB_SLACK else None
    return value if 0.0 <= value <= 1.0 + MASS_SLACK else None


def _covered(masses: list[float], note: str = "") -> Parsed:
    covered = math.fsum(masses)
    if math.isnan(covered):
        return Parsed.failure(join_notes("letter mass is NaN", note))
    if covered > 1.0 + MASS_SLACK:
        reason = f"letter mass {covered:.6g} exceeds 1"
        return Parsed.failure(join_notes(reason, note), raw_sum=covered)
    result = renormalize(masses)
    if isinstance(result, str):
        reason = "no letter among the candidates" if result == "all values are zero" else result
        return Parsed.failure(join_notes(reason, note), raw_sum=covered)
    probs, raw_sum = result
    return Parsed.success(probs, join_notes(f"covered mass {raw_sum:.6g}", note), raw_sum=raw_sum)


def check_letter_probs(
    probs: Mapping[str, float], covered_mass: float, letters: Sequence[str]
) -> Parsed:
    """Validate per-letter probabilities and the covered mass a backend computed.

    ``probs`` must map exactly the requested letters (either case, each once) to finite,
    non-negative numbers summing to 1 within :data:`CHECKED_SUM_TOLERANCE`; ``covered_mass``
    must be finite and in ``(0, 1 + CHECKED_MASS_SLACK]``. The result is aligned to
    ``letters`` (renormalized to remove rounding) with ``raw_sum`` the covered mass, or a
    failure saying what was wrong.

    >>> check_letter_probs({"A": 0.25, "B": 0.75}, 0.8, "AB").probs
    (0.25, 0.75)
    >>> check_letter_probs({"A": float("nan"), "B": 0.75}, 0.8, "AB").detail
    'non-finite probability nan for A'
    >>> check_letter_probs({"A": 0.25, "B": 0.75}, 3.9, "AB").detail
    'covered mass 3.9 exceeds 1'
    """
    wanted = clean_letters(letters)
    if wanted is None:
        return bad_letters(letters)
    values = _letter_values(probs, wanted)
    if isinstance(values, str):
        return Parsed.failure(values)
    mass = _checked_mass(covered_mass)
    if isinstance(mass, str):
        return Parsed.failure(mass)
    total = math.fsum(values)
    if abs(total - 1.0) > CHECKED_SUM_TOLERANCE:
        return Parsed.failure(f"probabilities sum to {total:.6g}, not 1", raw_sum=mass)
    result = renormalize(values)
    if isinstance(result, str):  # unreachable: the values are finite, >= 0 and sum to ~1
        return Parsed.failure(result, raw_sum=mass)
    return Parsed.success(result[0], f"covered mass {mass:.6g}", raw_sum=mass)


def _letter_values(probs: object, wanted: tuple[str, ...]) -> list[float] | str:
    """The probabilities in the order of ``wanted``, or the reason they are unusable."""
    if not isinstance(probs, Mapping):
        return f"probabilities are not a mapping: {type(probs).__name__}"
    found: dict[str, float] = {}
    for key, value in probs.items():
        letter = key.upper() if isinstance(key, str) else None
        if letter not in wanted:
            return f"probability for {key!r}, which is not a requested letter"
        if letter in found:
            return f"two probabilities for {letter}"
        number = _as_float(value)
        if number is None:
            return f"non-numeric probability {value!r} for {letter}"
        if not math.isfinite(number):
            return f"non-finite probability {number!r} for {letter}"
        if number < 0:
            return f"negative probability {number!r} for {letter}"
        found[letter] = number
    missing = [letter for letter in wanted if letter not in found]
    if missing:
        return f"no probability for {', '.join(missing)}"
    return [found[letter] for letter in wanted]


def _checked_mass(covered_mass: object) -> float | str:
    mass = _as_float(covered_mass)
    if mass is None:
        return f"covered mass {covered_mass!r} is not a number"
    if not math.isfinite(mass):
        return f"covered mass {mass!r} is not finite"
    if mass == 0:
        return "no probability on any option letter"
    if mass < 0:
        return f"negative covered mass {mass:.6g}"
    if mass > 1.0 + CHECKED_MASS_SLACK:
        return f"covered mass {mass:.6g} exceeds 1"
    return mass


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
