"""The result type every parser returns, and the helpers the parsers share.

A parser never raises on model output: it returns :class:`Parsed`, either ``ok`` with a
distribution aligned to the requested letters, or a ``parse_failure`` whose ``detail`` says
why. The status strings equal :class:`distalign.results.Status` values, so a ``Parsed`` can be
copied straight into a row of the items table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

OK = "ok"
PARSE_FAILURE = "parse_failure"

# A stated total this close to 1 is not reported as renormalized (``raw_sum`` is exact).
_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Parsed:
    """One parsed reply.

    ``probs`` is aligned to the requested letters and sums to 1 when ``ok``; it is ``None``
    on failure. ``raw_sum`` is the mass before renormalizing (Verbalize: the stated total;
    Log-p: the covered mass; Sequence and Samples: the share of counted answers that were
    valid letters). ``n_valid`` is the number of valid letters counted (Sequence, Samples).
    ``n_invalid`` is the number of answers that could not be used: Samples, the samples that
    were unparseable, not an option or lost (``None``); Sequence, the letters written that
    are not options. Other parsers leave both counts ``None``.
    """

    probs: tuple[float, ...] | None
    ok: bool
    status: str
    detail: str
    raw_sum: float | None = None
    n_valid: int | None = None
    n_invalid: int | None = None

    def __post_init__(self) -> None:
        # Guards against a parser building an inconsistent result (a bug, not bad input).
        if self.ok != (self.status == OK) or self.ok != (self.probs is not None):
            raise ValueError(f"inconsistent Parsed: ok={self.ok}, status={self.status!r}")
        if not self.ok and not self.detail:
            raise ValueError("a failed Parsed needs a detail")

    @classmethod
    def success(
        cls,
        probs: Sequence[float],
        detail: str,
        raw_sum: float | None = None,
        n_valid: int | None = None,
        n_invalid: int | None = None,
    ) -> Parsed:
        return cls(tuple(probs), True, OK, detail, raw_sum, n_valid, n_invalid)

    @classmethod
    def failure(
        cls,
        detail: str,
        raw_sum: float | None = None,
        n_valid: int | None = None,
        n_invalid: int | None = None,
    ) -> Parsed:
        return cls(None, False, PARSE_FAILURE, detail, raw_sum, n_valid, n_invalid)

    def as_dict(self, letters: Sequence[str]) -> dict[str, float] | None:
        """The distribution as ``{letter: prob}``, or ``None`` for a failure.

        >>> Parsed.success([0.25, 0.75], "").as_dict("AB")
        {'A': 0.25, 'B': 0.75}
        """
        if self.probs is None:
            return None
        return dict(zip(letters, self.probs, strict=True))


def clean_letters(letters: Sequence[str]) -> tuple[str, ...] | None:
    """Upper-cased option letters, or ``None`` if they are not distinct single ASCII letters.

    A plain string works as a sequence of letters:

    >>> clean_letters("abc")
    ('A', 'B', 'C')
    >>> clean_letters(["A", "A"]) is None
    True
    """
    if isinstance(letters, bytes):
        return None
    try:
        cleaned = tuple(str(letter).upper() for letter in letters)
    except TypeError:
        return None
    if not cleaned or len(set(cleaned)) != len(cleaned):
        return None
    if not all(len(letter) == 1 and "A" <= letter <= "Z" for letter in cleaned):
        return None
    return cleaned


def bad_letters(letters: Sequence[str]) -> Parsed:
    """The failure returned when the caller's letters are unusable."""
    return Parsed.failure(f"invalid letters {letters!r}: need distinct single letters A-Z")


def renormalize(values: Sequence[float]) -> tuple[tuple[float, ...], float] | str:
    """Scale non-negative finite ``values`` to sum 1; return ``(probs, raw_sum)``.

    Returns a reason string instead when the values cannot form a distribution.

    >>> renormalize([1.0, 3.0])
    ((0.25, 0.75), 4.0)
    >>> renormalize([0.0, 0.0])
    'all values are zero'
    """
    if any(not math.isfinite(v) for v in values):
        return "non-finite value"
    if any(v < 0 for v in values):
        return "negative value"
    raw_sum = math.fsum(values)
    if not math.isfinite(raw_sum):
        return "values overflow"
    if raw_sum <= 0:
        return "all values are zero"
    return tuple(v / raw_sum for v in values), raw_sum


def sum_note(raw_sum: float) -> str:
    """A detail note when the stated mass was not 1, else ``""``."""
    if abs(raw_sum - 1.0) <= _SUM_TOLERANCE:
        return ""
    return f"renormalized from {raw_sum:.6g}"


def join_notes(*notes: str) -> str:
    """Join the non-empty notes with ``"; "``."""
    return "; ".join(note for note in notes if note)


def letter_list(letters: Iterable[str]) -> str:
    """Letters for a detail text, e.g. ``"E, F"``."""
    return ", ".join(sorted(letters))
