"""Verbalize: the model writes a mapping ``letter -> probability``.

Standard rule (:func:`parse_verbalized`)
-----------------------------------------
1. **Blocks.** Every balanced ``{...}`` in the reply is a candidate, taken in the order of its
   opening brace (an outer wrapper comes before the dict inside it). Prose, code fences and
   "Answer:" prefixes around a block are ignored.
2. **Reading a block.** As JSON, else as a Python literal (``ast``, never ``eval``), else by a
   regex repair that reads ``key: value`` pairs; the repair handles bare keys (``D: '5%'``,
   quirk P3), unquoted percentages (``45%``) and broken quotes (``'B': '36%, 'C': ...``).
3. **Which block.** The first block with at least one option-letter key is the answer; later
   blocks are ignored. A reply with no ``{`` at all is read as ``key: value`` pairs (lines
   like ``'A': 17%``); a reply with an unclosed ``{`` fails (it may be truncated).
4. **Keys.** ``"A"``, ``"a"``, ``"A."``, ``"(A)"``, ``"A)"``, ``"Option A"`` and
   ``"A. <option text>"`` all mean A. Keys that name no letter (``"note"``) are ignored and
   reported. A requested letter that is missing gets 0 (reported).
5. **Values.** Numbers (``0.3``), numeric strings (``"0.3"``), percentages (``'45%'``,
   ``45%``, ``"45.5 %"``) and fractions (``"1/3"``, a plain value). Every letter key's value
   must be one of these, whether or not the letter was requested.
6. **Percent or proportion, per reply**, over the values of every letter key:

   * some values carry ``%`` and others do not: failure ("mixed percent and plain values");
   * all carry ``%``: percentages (divided by 100);
   * none carries ``%`` and none exceeds 1: proportions;
   * none carries ``%`` and some exceed 1: percentages when they total between 90 and 110
     (:data:`PERCENT_TOTAL`), else failure ("ambiguous scale").

   The probabilities are renormalized over the requested letters; ``raw_sum`` is their
   stated total on that scale.
7. **Letters that are not options** (``"Z"`` when A and B were asked): their share of the
   stated total of all letter keys may be at most 1% (:data:`MAX_EXTRA_SHARE`); it is then
   dropped and reported. More is a failure: renormalizing it away would turn a hedged
   answer into a confident one.
8. **Failures.** No block; no option-letter key; no requested letter; a duplicate letter; a
   non-numeric, negative or non-finite value for any letter key; the two scale failures;
   too much mass on letters that are not options; all values zero.

The paper's own rule (:func:`paper_parse_verbalized`, spec §5.3) is kept for comparisons.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence

from distalign.parsing._result import (
    Parsed,
    bad_letters,
    clean_letters,
    join_notes,
    letter_list,
    renormalize,
    sum_note,
)

# Bounds that keep pathological replies cheap; real answers are a few hundred characters.
_MAX_SCAN_CHARS = 1_000_000
_MAX_BLOCKS = 20
_MAX_LITERAL_CHARS = 10_000

#: Plain values (no ``%``) above 1 are percentages only when they total this much.
PERCENT_TOTAL = (90.0, 110.0)
#: Mass on letters that are not options may be at most this share of the stated total.
MAX_EXTRA_SHARE = 0.01

_BRACE_RE = re.compile(r"[{}]")
_KEY_RE = re.compile(r"(?:option\s*)?\(?\s*([a-z])\s*\)?\s*[.:]?", re.IGNORECASE)
_KEY_WITH_TEXT_RE = re.compile(r"\(?([A-Z])[.)]\s+\S.*", re.DOTALL)
_NUMBER_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(%?)")
_FRACTION_RE = re.compile(r"(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)")
_NOISE_RE = re.compile(r"[\s'\"`]")
# One ``key: value`` pair for the repair path: an optional quote, an optional "Option", the
# letter, optional ")" or ".", an optional quote, a colon, then the value up to , } or newline.
_PAIR_RE = re.compile(
    r"""(?:^|[,{\n])\s*(["'`]?)\s*(?:option\s*)?\(?\s*([a-z])\s*\)?\.?\s*["'`]?\s*:\s*([^,}\n]*)""",
    re.IGNORECASE,
)

Pairs = list[tuple[object, object]]


def parse_verbalized(text: str, letters: Sequence[str]) -> Parsed:
    """Parse a stated distribution; see the module docstring for the rule.

    Accepted, among others::

        {'A': '45%', 'B': '55%'}            {"A": 0.45, "B": 0.55}
        {A: '45%', B: 55%}                  Answer: ```{"(a)": "1/3", "Option B": "2/3"}```

    >>> parse_verbalized("Answer: {'A': '45%', D: '5%'}", "ABCD").probs
    (0.9, 0.0, 0.0, 0.1)
    >>> parse_verbalized("I am not sure.", "AB").detail
    'no JSON object'
    """
    wanted = clean_letters(letters)
    if wanted is None:
        return bad_letters(letters)
    if not isinstance(text, str):
        return Parsed.failure(f"reply is not a string: {type(text).__name__}")
    blocks = _blocks(text)
    if not blocks:
        return _without_braces(text, wanted)
    for block in blocks:
        pairs, how = _read_block(block)
        found, ignored = _letter_pairs(pairs)
        if found:
            return _distribution(found, wanted, join_notes(how, ignored))
    return Parsed.failure("no option-letter keys in any {...} block")


def _without_braces(text: str, wanted: tuple[str, ...]) -> Parsed:
    """Fallback for replies with no ``{`` at all: read ``'A': 17%`` lines."""
    if "{" in text:
        # A truncated dict could be missing letters; guessing them as 0 would be wrong.
        return Parsed.failure("no JSON object (unclosed {)")
    pairs, _ = _repaired_pairs(text[:_MAX_SCAN_CHARS])
    found, ignored = _letter_pairs(pairs)
    if not found:
        return Parsed.failure("no JSON object")
    return _distribution(found, wanted, join_notes("no braces: key-value pairs read", ignored))


def _blocks(text: str) -> list[str]:
    """Balanced ``{...}`` substrings, ordered by their opening brace (first few only)."""
    scan = text[:_MAX_SCAN_CHARS]
    opens: list[int] = []
    spans: list[tuple[int, int]] = []
    for match in _BRACE_RE.finditer(scan):
        if match.group() == "{":
            opens.append(match.start())
        elif opens:
            spans.append((opens.pop(), match.end()))
    spans.sort()
    return [scan[start:end] for start, end in spans[:_MAX_BLOCKS]]


def _read_block(block: str) -> tuple[Pairs, str]:
    """The block's ``(key, value)`` pairs, and a note when the regex repair was needed."""
    if len(block) <= _MAX_LITERAL_CHARS:
        pairs = _json_pairs(block)
        if pairs is None:
            pairs = _literal_pairs(block)
        if pairs is not None:
            return pairs, ""
    return _repaired_pairs(block)


def _json_pairs(block: str) -> Pairs | None:
    try:
        # A list of pairs (not a dict) keeps duplicate keys visible.
        loaded = json.loads(block, object_pairs_hook=list)
    except (ValueError, RecursionError):
        return None
    return loaded if isinstance(loaded, list) else None


def _literal_pairs(block: str) -> Pairs | None:
    """Pairs of a Python dict literal, read node by node so duplicate keys stay visible."""
    try:
        body = ast.parse(block, mode="eval").body
        if not isinstance(body, ast.Dict) or any(key is None for key in body.keys):
            return None
        return [
            (ast.literal_eval(key), ast.literal_eval(value))
            for key, value in zip(body.keys, body.values, strict=True)
            if key is not None
        ]
    except Exception:  # parser errors vary (Syntax, Value, Recursion, Memory)
        return None


def _repaired_pairs(block: str) -> tuple[Pairs, str]:
    matches = list(_PAIR_RE.finditer(block))
    if not matches:
        return [], ""
    pairs: Pairs = [(m.group(2), m.group(3)) for m in matches]
    bare = any(not m.group(1) for m in matches)
    return pairs, "bare keys repaired" if bare else "malformed literal repaired"


def _letter_pairs(pairs: Pairs) -> tuple[list[tuple[str, object]], str]:
    """Pairs whose key names an option letter, and a note on the keys that did not."""
    found: list[tuple[str, object]] = []
    ignored: list[str] = []
    for key, value in pairs:
        letter = _key_letter(key)
        if letter is None:
            ignored.append(repr(key)[:40])
        else:
            found.append((letter, value))
    return found, f"non-letter keys ignored: {', '.join(ignored)}" if ignored else ""


def _key_letter(key: object) -> str | None:
    """``'A'``, ``'a'``, ``'A.'``, ``'(A)'``, ``'Option A'``, ``'A. Agree'`` -> ``'A'``."""
    if not isinstance(key, str):
        return None
    key = key.strip().strip("'\"`*").strip()
    match = _KEY_RE.fullmatch(key) or _KEY_WITH_TEXT_RE.fullmatch(key)
    return match.group(1).upper() if match else None


def _distribution(found: list[tuple[str, object]], wanted: tuple[str, ...], notes: str) -> Parsed:
    if not any(letter in wanted for letter, _ in found):
        keys = {letter for letter, _ in found}
        return Parsed.failure(f"no requested letters among keys (found: {letter_list(keys)})")
    values: dict[str, float] = {}
    percent: list[bool] = []
    for letter, raw in found:  # every letter key, requested or not
        if letter in values:
            return Parsed.failure(f"duplicate key {letter}")
        value = _value(raw)
        if isinstance(value, str):
            return Parsed.failure(f"{value} for {letter}")
        values[letter], has_percent = value
        percent.append(has_percent)
    scale = _scale(list(values.values()), percent)
    if isinstance(scale, str):
        return Parsed.failure(scale)
    extra = [letter for letter in values if letter not in wanted]
    total = math.fsum(values.values())
    extra_mass = math.fsum(values[letter] for letter in extra)
    extra_share = extra_mass / total if total > 0 else 0.0
    if extra_share > MAX_EXTRA_SHARE:
        return Parsed.failure(
            f"{_percent(extra_share)} of the stated total on letters that are not options "
            f"({letter_list(extra)})"
        )
    result = renormalize([values.get(letter, 0.0) / scale for letter in wanted])
    if isinstance(result, str):
        return Parsed.failure(result)
    probs, raw_sum = result
    missing = [letter for letter in wanted if letter not in values]
    detail = join_notes(
        "percentages" if scale == 100.0 else "proportions",
        sum_note(raw_sum),
        f"missing letters set to 0: {letter_list(missing)}" if missing else "",
        f"extra letters ignored: {letter_list(extra)} ({_percent(extra_share)} of the stated total)"
        if extra
        else "",
        notes,
    )
    return Parsed.success(probs, detail, raw_sum=raw_sum)


def _percent(share: float) -> str:
    return f"{share * 100:.3g}%"


def _scale(values: list[float], percent: list[bool]) -> float | str:
    """100 when the values are percentages, 1 when proportions, or why neither is clear."""
    if any(percent):
        return 100.0 if all(percent) else "mixed percent and plain values"
    if all(value <= 1 for value in values):
        return 1.0
    total = math.fsum(values)
    if PERCENT_TOTAL[0] <= total <= PERCENT_TOTAL[1]:
        return 100.0
    return f"ambiguous scale: plain values above 1 with a total of {total:g}"


def _value(raw: object) -> tuple[float, bool] | str:
    """``(number, had a % sign)``, or the reason the value is unusable."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return f"non-numeric value {repr(raw)[:40]}"
    if isinstance(raw, str):
        parsed = _value_text(raw)
        if parsed is None:
            return f"non-numeric value {raw[:40]!r}"
        number, percent = parsed
    else:
        try:
            number, percent = float(raw), False
        except OverflowError:  # an int literal too large for a float
            return "non-finite value"
    if not math.isfinite(number):
        return "non-finite value"
    if number < 0:
        return f"negative value {number:g}"
    return number, percent


def _value_text(text: str) -> tuple[float, bool] | None:
    """``'45%'``, ``"45.5 %"``, ``'0.3'``, ``'1/3'``; quotes and spaces anywhere are dropped."""
    cleaned = _NOISE_RE.sub("", text[:100])
    number = _NUMBER_RE.fullmatch(cleaned)
    if number:
        return float(number.group(1)), bool(number.group(2))
    fraction = _FRACTION_RE.fullmatch(cleaned)
    if fraction and float(fraction.group(2)) > 0:
        return float(fraction.group(1)) / float(fraction.group(2)), False
    return None


def paper_parse_verbalized(text: str, letters: Sequence[str]) -> dict[str, float]:
    """The paper's rule (spec §5.3), for paper-vs-standard comparisons.

    Replace ``"`` with ``'``, read the reply as a Python literal; each value must be a string,
    loses its last character (the ``%``), is read as a float, truncated to an integer and
    multiplied by 0.01. A value that is not such a string gives 0; a reply that is not a dict
    literal gives all zeros. Nothing is renormalized.

    >>> paper_parse_verbalized("{'A': '12.5%', 'B': 0.3}", "AB")
    {'A': 0.12, 'B': 0.0}
    >>> paper_parse_verbalized("{'A': '35%'}", "A")  # the paper's float, bit for bit
    {'A': 0.35000000000000003}
    >>> paper_parse_verbalized("{'A': '45%', D: '55%'}", "AD")
    {'A': 0.0, 'D': 0.0}
    """
    keys = list(letters)
    try:
        parsed = ast.literal_eval(text.replace('"', "'"))
    except Exception:  # the paper zeroed every evaluation failure
        parsed = None
    if not isinstance(parsed, dict):
        return dict.fromkeys(keys, 0.0)
    return {key: _paper_value(parsed.get(key)) for key in keys}


def _paper_value(value: object) -> float:
    if not isinstance(value, str):
        return 0.0
    try:
        # Multiplying by 0.01 (not dividing by 100) reproduces the stored floats bit for bit:
        # 35 * 0.01 is 0.35000000000000003, which is what the paper's files hold.
        return int(float(value[:-1])) * 0.01
    except (ValueError, OverflowError):
        return 0.0
