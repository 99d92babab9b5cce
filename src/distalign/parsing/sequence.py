"""Sequence: the model writes N answer letters, read as N draws from its distribution.

Standard rule (:func:`parse_sequence`)
---------------------------------------
1. **Tokens.** The reply is split into maximal runs of ASCII letters; everything else (spaces,
   commas, newlines, digits of a numbered list, punctuation) only separates tokens. A token
   mixing cases is split where a capitalised word starts, because stored replies had their
   spaces removed: ``EssentialBBAB`` is ``Essential`` + ``BBAB``, ``CCADProp`` is ``CCAD`` +
   ``Prop``.
2. **Answer tokens.** A single letter in either case (``A``, ``b``) standing alone is one
   answer. An all-upper-case token of several letters is a run of answers, one per character
   (``ABCAB``), when every character is a requested letter, or when it has at least 4
   characters of which at least half are requested letters (the model also wrote letters
   beyond the options). An upper-case piece split off a mixed-case token needs at least 4
   characters. Everything else is a word (``Here``, ``answers``, ``NOTE``, ``iPhone``), so
   letters inside words never count.
3. **Runs.** Consecutive answer tokens form a run; a word ends it. Runs of a single answer
   (the article "a", the pronoun "I") are dropped as prose, unless only 1 answer is
   expected. The remaining runs are joined in order.
4. **Length.** If more than ``n_expected`` answers remain, the first ``n_expected`` are used
   (over-length); fewer are used as they are (under-length). Both are reported.
5. **Valid letters.** An answer that is not a requested letter (``F`` with options A-E) is
   counted as written but invalid. The reply fails when fewer than ``min_valid`` valid letters
   remain. ``min_valid`` defaults to ``n_expected - 1``, the spirit of the paper's
   biased-coin rule (it rejects fewer than 29 valid flips of 30); with ``n_expected=None`` it
   defaults to 1.
6. **Result.** Proportions over the valid letters. ``n_valid`` is their count, ``n_invalid``
   the count of invalid letters among the answers used, and ``raw_sum`` the valid share of
   the answers used (below 1 when invalid letters were written).

The paper's own rule (:func:`paper_parse_sequence`, spec §5.2) is kept for comparisons.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from distalign.parsing._result import (
    Parsed,
    bad_letters,
    clean_letters,
    join_notes,
    renormalize,
)

_TOKEN_RE = re.compile(r"[A-Za-z]+")
_MAX_SCAN_CHARS = 1_000_000
# A capitalised word starts at an upper-case letter followed by lower case ("Prop").
_PIECE_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_MIN_MIXED_RUN = 4  # a concatenated run with invalid letters needs this many characters
_MIN_VALID_SHARE = 0.5  # ... and at least this share of requested letters


def parse_sequence(
    text: str,
    letters: Sequence[str],
    n_expected: int | None = 30,
    min_valid: int | None = None,
) -> Parsed:
    """Empirical answer proportions of a written sequence; see the module docstring.

    Accepted, among others: ``"A B C A"``, ``"A, B, C, A"``, ``"a\\nb\\nc"``, ``"ABCA"``,
    ``"1. A 2. B 3. C"``, ``"Here are 30 answers: A B C ..."``.

    >>> parse_sequence("Here are my answers: A B B A", "AB", n_expected=4).probs
    (0.5, 0.5)
    >>> parse_sequence("Here", "ABCDE", n_expected=4).detail
    'no answer letters found'
    """
    wanted = clean_letters(letters)
    if wanted is None:
        return bad_letters(letters)
    if not isinstance(text, str):
        return Parsed.failure(f"reply is not a string: {type(text).__name__}")
    if n_expected is not None and n_expected < 1:
        return Parsed.failure(f"invalid n_expected {n_expected}")
    answers, dropped = _answers(text, wanted, min_run=1 if n_expected == 1 else 2)
    if not answers:
        return Parsed.failure("no answer letters found")
    used, length_note = _cut(answers, n_expected)
    return _proportions(used, wanted, _required(n_expected, min_valid), length_note, dropped)


def _required(n_expected: int | None, min_valid: int | None) -> int:
    if min_valid is not None:
        return max(min_valid, 1)
    return max((n_expected or 2) - 1, 1)


def _answers(text: str, wanted: tuple[str, ...], min_run: int) -> tuple[list[str], int]:
    """Answer letters of all runs of at least ``min_run``, and how many stray ones were dropped."""
    runs: list[list[str]] = [[]]
    for token in _TOKEN_RE.findall(text[:_MAX_SCAN_CHARS]):
        for piece_answers in _token_answers(token, wanted):
            if piece_answers is None:
                if runs[-1]:
                    runs.append([])  # a word ends the current run
            else:
                runs[-1].extend(piece_answers)
    kept = [run for run in runs if len(run) >= min_run]
    dropped = sum(len(run) for run in runs) - sum(len(run) for run in kept)
    return [letter for run in kept for letter in run], dropped


def _token_answers(token: str, wanted: tuple[str, ...]) -> list[list[str] | None]:
    """Per piece of the token, the answers it stands for, or ``None`` for a word."""
    if len(token) == 1:
        return [[token.upper()]]
    if token.isupper():
        return [_upper_run(token, wanted, min_length=2)]
    if token.islower():
        return [None]
    return [
        _upper_run(piece, wanted, min_length=_MIN_MIXED_RUN) if piece.isupper() else None
        for piece in _PIECE_RE.findall(token)
    ]


def _upper_run(piece: str, wanted: tuple[str, ...], min_length: int) -> list[str] | None:
    """An upper-case piece as answers, or ``None`` if it reads as a word."""
    if len(piece) < min_length:
        return None
    n_wanted = sum(char in wanted for char in piece)
    if n_wanted == len(piece):
        return list(piece)
    if len(piece) >= _MIN_MIXED_RUN and n_wanted >= _MIN_VALID_SHARE * len(piece):
        return list(piece)
    return None


def _cut(answers: list[str], n_expected: int | None) -> tuple[list[str], str]:
    if n_expected is None or len(answers) == n_expected:
        return answers, ""
    if len(answers) > n_expected:
        note = f"over-length: {len(answers)} letters, first {n_expected} used"
        return answers[:n_expected], note
    return answers, f"under-length: {len(answers)} of {n_expected} letters"


def _proportions(
    used: list[str], wanted: tuple[str, ...], required: int, length_note: str, dropped: int
) -> Parsed:
    counts = Counter(letter for letter in used if letter in wanted)
    n_valid = sum(counts.values())
    invalid = Counter(letter for letter in used if letter not in wanted)
    n_invalid = sum(invalid.values())
    notes = join_notes(
        length_note,
        f"invalid letters ignored: {_counted(invalid)}" if invalid else "",
        f"{dropped} stray letters outside runs ignored" if dropped else "",
    )
    share = n_valid / len(used)
    if n_valid < required:
        reason = f"only {n_valid} valid letters (need >= {required})"
        return Parsed.failure(
            join_notes(reason, notes), raw_sum=share, n_valid=n_valid, n_invalid=n_invalid
        )
    result = renormalize([float(counts[letter]) for letter in wanted])
    if isinstance(result, str):  # unreachable while required >= 1; kept as a guard
        return Parsed.failure(result, n_valid=n_valid, n_invalid=n_invalid)
    return Parsed.success(result[0], notes, raw_sum=share, n_valid=n_valid, n_invalid=n_invalid)


def _counted(counter: Counter[str]) -> str:
    """``"F x2, G"`` style summary of invalid letters."""
    return ", ".join(f"{letter} x{n}" if n > 1 else letter for letter, n in sorted(counter.items()))


def paper_parse_sequence(
    text: str, letters: Sequence[str], cut: int | None = 30
) -> dict[str, float]:
    """The paper's rule (spec §5.2), for paper-vs-standard comparisons.

    Remove every space, optionally keep the first ``cut`` characters (30 in the OpinionQA
    and NYT runs, none for Global values), then give each letter L the count of ``L`` plus
    ``l`` anywhere in the string divided by the string length. Letters inside prose count;
    nothing is renormalized. An empty string gives all zeros.

    >>> paper_parse_sequence("A B a C", "AB")
    {'A': 0.5, 'B': 0.25}
    """
    keys = list(letters)
    if not isinstance(text, str):
        return dict.fromkeys(keys, 0.0)
    squeezed = text.replace(" ", "")
    if cut is not None:
        squeezed = squeezed[:cut]
    if not squeezed:
        return dict.fromkeys(keys, 0.0)
    return {
        key: (squeezed.count(key.upper()) + squeezed.count(key.lower())) / len(squeezed)
        for key in keys
    }
