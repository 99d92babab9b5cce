"""Samples: N independent replies, each a single answer letter.

One reply (:func:`parse_single_letter`)
---------------------------------------
A reply is an answer only when it is the letter itself, never a letter read out of prose.
The whole reply, after trimming surrounding whitespace, must be::

    [prefix] [open]* LETTER [close]* [delim] [close]* [SPACE OPTION-TEXT]

* ``prefix``: the word ``answer`` in any case, optionally in ``*``/``**``, followed by a
  colon or a space (``"Answer: B"``, ``"answer (b)"``, ``"**Answer:** B"``). Other words
  before the letter ("The answer is B", "Option D", "I pick B") make the reply a failure.
* ``open``: whitespace, quotes ``'`` ``"``, backticks, ``*`` (so ``**``), ``(`` or ``[``.
* ``LETTER``: one ASCII letter, either case (``"b"`` is B). It must be one of the requested
  letters, else the reply is a failure.
* ``close``: quotes, backticks, ``*``, ``)`` or ``]``; ``delim``: ``.``, ``:`` or ``)``.
* ``OPTION-TEXT``: text after the letter is accepted only when ``options`` (the option texts
  shown for each letter, aligned with ``letters``) is given, the letter part ends in a
  ``close`` or ``delim`` character (``"B. Agree"``, ``"(B) Agree"``, not ``"B Agree"``), and
  the text is that letter's own option text: compared case-insensitively with runs of
  whitespace collapsed and surrounding quotes/``*`` dropped, either equal after dropping
  trailing ``.!?,;:``, or -- a reply cut short -- a prefix of the option text at least
  :data:`MIN_OPTION_PREFIX` characters long. Without ``options`` any trailing text makes the
  reply a failure (when in doubt, a reply is a failure).

So ``"B"``, ``" b."``, ``"(C)"``, ``"**D**"``, ``"'A'"``, ``"Answer: C"`` and, with options,
``"B. Somewhat conservative"``, ``"(C) Agree"``, ``"Answer: C. Agree"`` are answers; ``"I can't
answer that."``, ``"as an AI language model I think..."``, ``"A or B"``, ``"The answer is B"``
and ``"C. Strongly agree"`` (when C is "Agree") are not. ``options`` of another length than
``letters`` (or not all strings) cannot be checked: a reply with text after the letter is
then a failure (a bare letter still counts).

N replies (:func:`samples_distribution`)
----------------------------------------
The distribution is the share of each letter among the valid samples. A sample is invalid
when its reply fails the grammar above or is ``None`` (its request failed). The item fails
when fewer than ``max(1, floor(MIN_VALID_SHARE * N))`` samples are valid (27 of 30, 4 of 5,
9 of 10, 1 of 1 or 2); ``min_valid`` overrides that number. ``n_valid`` and ``n_invalid``
count the valid and invalid samples, ``raw_sum`` is the valid share of N.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Sequence

from distalign.parsing._result import Parsed, bad_letters, clean_letters, join_notes

#: Share of the N samples that must be valid for the item to count.
MIN_VALID_SHARE = 0.9
#: A reply cut short may give this many characters of its option text (or more).
MIN_OPTION_PREFIX = 4

_MAX_REPLY_CHARS = 10_000  # far longer than a letter and its option text: not an answer
_SINGLE_RE = re.compile(
    r"""
    (?:\**answer\**(?:\s*:|\s))?        # optional "Answer:" / "Answer"
    [\s'"`*(\[]*                        # opening wrappers
    (?P<letter>[a-z])
    (?P<end>(?>['"`*)\]]*)[.:)]?(?>['"`*)\]]*))  # closing wrappers, one delimiter
    # (atomic groups: the two runs of closing wrappers must not backtrack into each other)
    (?:\s+(?P<text>\S.*))?              # the option's own text
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_SPACE_RE = re.compile(r"\s+")


def parse_single_letter(
    text: str, letters: Sequence[str], options: Sequence[str] | None = None
) -> str | None:
    """The answer letter of one reply, or ``None``; see the module docstring.

    >>> parse_single_letter(" b.", "ABC")
    'B'
    >>> parse_single_letter("Answer: C. Agree", "ABC", ["Disagree", "Neutral", "Agree"])
    'C'
    >>> parse_single_letter("Answer: C. Agree", "ABC") is None  # no options to check against
    True
    >>> parse_single_letter("I can't answer that.", "ABCDEFGHI") is None
    True
    """
    try:  # a grid repeats the same few replies to the same options thousands of times
        key = (text, tuple(letters), None if options is None else tuple(options))
        return _parse_remembered(*key)
    except TypeError:  # something unhashable: parse it as it is
        return _parse_single_letter(text, letters, options)


@functools.lru_cache(maxsize=1 << 16)
def _parse_remembered(
    text: str, letters: tuple[str, ...], options: tuple[str, ...] | None
) -> str | None:
    return _parse_single_letter(text, letters, options)


def _parse_single_letter(
    text: str, letters: Sequence[str], options: Sequence[str] | None
) -> str | None:
    wanted = clean_letters(letters)
    if wanted is None or not isinstance(text, str) or len(text) > _MAX_REPLY_CHARS:
        return None
    match = _SINGLE_RE.fullmatch(text.strip())
    if match is None:
        return None
    letter = match.group("letter").upper()
    if letter not in wanted:
        return None
    tail = match.group("text")
    if tail is None:
        return letter
    if options is None or not match.group("end"):
        return None  # text after a bare letter is prose, or cannot be checked
    shown = _aligned_options(options, len(wanted))
    if shown is None:
        return None
    return letter if _is_option_text(tail, shown[wanted.index(letter)]) else None


def _aligned_options(options: Sequence[str], n_letters: int) -> list[str] | None:
    if isinstance(options, str | bytes):
        return None
    try:
        shown = list(options)
    except TypeError:
        return None
    if len(shown) != n_letters or not all(isinstance(o, str) for o in shown):
        return None
    return shown


def _normalized(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip(" '\"`*").casefold()


def _is_option_text(tail: str, option: str) -> bool:
    """Whether ``tail`` is the option text, or a reply cut short inside it."""
    said, shown = _normalized(tail), _normalized(option)
    if not shown:
        return False
    trailing = ".!?,;: "
    if said.rstrip(trailing) == shown.rstrip(trailing):
        return True
    return len(said) >= MIN_OPTION_PREFIX and shown.startswith(said)


def samples_distribution(
    letters_list: Sequence[str | None],
    letters: Sequence[str],
    *,
    options: Sequence[str] | None = None,
    min_valid: int | None = None,
) -> Parsed:
    """Proportions of N sampled answers; invalid ones are counted and excluded.

    Each element is a raw reply or an already-parsed letter (both go through
    :func:`parse_single_letter`, with ``options``), or ``None`` for a sample whose request
    failed, which counts as invalid. Fewer valid samples than ``min_valid`` (default
    ``max(1, floor(0.9 * N))``) fail the item.

    >>> r = samples_distribution(["A", "b", "Answer: A", "A", "A", None], "AB")
    >>> r.probs, r.n_valid, r.n_invalid, r.detail
    ((0.8, 0.2), 5, 1, '1 of 6 samples unparseable')
    >>> samples_distribution(["A", None, None], "AB").detail
    'only 1 valid samples (need >= 2); 2 of 3 samples unparseable'
    """
    wanted = clean_letters(letters)
    if wanted is None:
        return bad_letters(letters)
    if isinstance(letters_list, str | bytes):
        return Parsed.failure("samples are not a sequence")
    try:
        replies = list(letters_list)
    except TypeError:
        return Parsed.failure("samples are not a sequence")
    if not replies:
        return Parsed.failure("no samples")
    parsed = [
        parse_single_letter(r, wanted, options) if isinstance(r, str) else None for r in replies
    ]
    counts = Counter(letter for letter in parsed if letter is not None)
    n_valid = sum(counts.values())
    n_invalid = len(replies) - n_valid
    share = n_valid / len(replies)
    note = f"{n_invalid} of {len(replies)} samples unparseable" if n_invalid else ""
    if n_valid == 0:
        reason = join_notes("no valid samples", note)
        return Parsed.failure(reason, raw_sum=share, n_valid=n_valid, n_invalid=n_invalid)
    required = required_samples(len(replies), min_valid)
    if n_valid < required:
        reason = join_notes(f"only {n_valid} valid samples (need >= {required})", note)
        return Parsed.failure(reason, raw_sum=share, n_valid=n_valid, n_invalid=n_invalid)
    probs = tuple(counts[letter] / n_valid for letter in wanted)
    return Parsed.success(probs, note, raw_sum=share, n_valid=n_valid, n_invalid=n_invalid)


def required_samples(n_samples: int, min_valid: int | None = None) -> int:
    """How many of ``n_samples`` must be valid: ``min_valid``, else 90% rounded down, >= 1.

    >>> [required_samples(n) for n in (1, 2, 5, 10, 30)]
    [1, 1, 4, 9, 27]
    """
    if min_valid is not None:
        return max(int(min_valid), 1)
    return max(1, math.floor(MIN_VALID_SHARE * n_samples + 1e-9))
