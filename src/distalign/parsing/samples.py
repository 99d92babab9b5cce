"""Samples: N independent replies, each a single answer letter.

Rule for one reply (:func:`parse_single_letter`), first match wins:

1. The whole reply is one letter, possibly wrapped in spaces, quotes, brackets, ``*``, or
   followed by ``.``/``:`` (``"B"``, ``" b."``, ``"(C)"``, ``"**D**"``); either case.
2. A letter after "answer", "option" or "choice" (``"Answer: B"``, ``"The answer is (C)"``,
   ``"Option D"``). A lower-case letter counts here only when punctuation or the end follows
   it, so "the answer is a guess" is not an A.
3. An upper-case letter opening the reply and followed by ``.``, ``)``, ``:``, ``-`` or the
   end (``"B. Somewhat conservative"``, ``"C) Agree"``).
4. Exactly one distinct upper-case requested letter standing alone anywhere in the reply
   (``"I would pick B"`` with options A-D).

Anything else, or a letter that is not requested, gives ``None``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from distalign.parsing._result import Parsed, bad_letters, clean_letters, join_notes

_MAX_SCAN_CHARS = 100_000
_WRAPPING = " \t\r\n'\"`*()[]{}<>"
_BARE_RE = re.compile(r"([A-Za-z])[.:]?")
# The cue words match in any case; the letter's case matters: an upper-case letter needs a
# word boundary after it, a lower-case one trailing punctuation or the end of the reply.
_CUE_RE = re.compile(
    r"\b(?i:answer|option|choice)\b(?:\s+(?i:is))?\s*[:\-]?\s*[(\[\"'*]*\s*"
    r"([A-Z]\b|[a-z](?=[.)\]\"'*:,]|\s*$))"
)
_LEADING_RE = re.compile(r"[\s\(\[\"'*]*([A-Z])(?:\s*[.):\-]|\s*$)")
_STANDALONE_RE = re.compile(r"(?<![A-Za-z])[A-Z](?![A-Za-z])")


def parse_single_letter(text: str, letters: Sequence[str]) -> str | None:
    """The answer letter of one reply, or ``None``; see the module docstring.

    >>> parse_single_letter(" b.", "ABC")
    'B'
    >>> parse_single_letter("Answer: C. Agree", "ABC")
    'C'
    >>> parse_single_letter("A or B", "ABC") is None
    True
    """
    wanted = clean_letters(letters)
    if wanted is None or not isinstance(text, str):
        return None
    text = text[:_MAX_SCAN_CHARS]
    for candidate in (_bare(text), _cued(text), _leading(text), _standalone(text, wanted)):
        if candidate is not None:
            return candidate if candidate in wanted else None
    return None


def _bare(text: str) -> str | None:
    match = _BARE_RE.fullmatch(text.strip(_WRAPPING))
    return match.group(1).upper() if match else None


def _cued(text: str) -> str | None:
    match = _CUE_RE.search(text)
    return match.group(1).upper() if match else None


def _leading(text: str) -> str | None:
    match = _LEADING_RE.match(text)
    return match.group(1) if match else None


def _standalone(text: str, wanted: tuple[str, ...]) -> str | None:
    found = {letter for letter in _STANDALONE_RE.findall(text) if letter in wanted}
    return found.pop() if len(found) == 1 else None


def samples_distribution(letters_list: Sequence[str | None], letters: Sequence[str]) -> Parsed:
    """Proportions of N sampled answers; unparseable ones are counted and excluded.

    Each element is a raw reply or an already-parsed letter (both go through
    :func:`parse_single_letter`), or ``None`` for a sample that failed upstream.
    ``n_valid`` is the number of usable samples and ``raw_sum`` their share of N.

    >>> samples_distribution(["A", "b", "Answer: A", None], "AB").probs
    (0.6666666666666666, 0.3333333333333333)
    """
    wanted = clean_letters(letters)
    if wanted is None:
        return bad_letters(letters)
    try:
        replies = list(letters_list)
    except TypeError:
        return Parsed.failure("samples are not a sequence")
    if not replies:
        return Parsed.failure("no samples")
    parsed = [parse_single_letter(r, wanted) if isinstance(r, str) else None for r in replies]
    counts = Counter(letter for letter in parsed if letter is not None)
    n_valid = sum(counts.values())
    share = n_valid / len(replies)
    n_failed = len(replies) - n_valid
    note = f"{n_failed} of {len(replies)} samples unparseable" if n_failed else ""
    if n_valid == 0:
        return Parsed.failure(join_notes("no valid samples", note), raw_sum=0.0, n_valid=0)
    probs = tuple(counts[letter] / n_valid for letter in wanted)
    return Parsed.success(probs, note, raw_sum=share, n_valid=n_valid)
