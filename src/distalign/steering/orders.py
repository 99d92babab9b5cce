"""Option orders: the same question shown with its options permuted, to measure position bias.

An order is named, and the name is what result tables record in their ``order`` column:

* ``survey``: the survey's own order (what every run shows; order 0).
* ``reversed``: the survey order backwards.
* ``shiftN`` (N ≥ 1): the survey order rotated left by N; the option shown first is the
  survey's option N+1 and the survey's first option moves towards the end.

``--option-orders K`` means the first K of ``survey, reversed, shift1, shift2, ...``: K=2 is
survey + reversed, K=3 adds shift1, and so on. A list of names chooses them explicitly. For a
question with few options some names give the same permutation (with two options ``reversed``
and ``shift1`` are one); each distinct permutation is asked once, under its first name.

Letters are re-assigned to the permuted options (the model still sees A, B, C, ... top to
bottom), and :class:`distalign.steering.prompts.Prompt.order` records which option each letter
shows, so every prediction is mapped back to the question's options before it is scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SURVEY = "survey"
REVERSED = "reversed"
_SHIFT = re.compile(r"^shift([1-9]\d*)$")


def order_names(spec: int | Sequence[str]) -> list[str]:
    """The order names of an ``option_orders`` setting: a count K or a list of names.

    >>> order_names(3)
    ['survey', 'reversed', 'shift1']
    >>> order_names(["survey", "shift2"])
    ['survey', 'shift2']
    """
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(f"`option_orders` must be at least 1, got {spec}")
        return [SURVEY, REVERSED, *(f"shift{k}" for k in range(1, spec - 1))][:spec]
    names = [str(name).strip() for name in spec]
    bad = [name for name in names if not _valid(name)]
    if bad:
        raise ValueError(
            f"unknown option order {', '.join(map(repr, bad))}: use survey, reversed or shiftN "
            "(N >= 1), or a count"
        )
    if not names or names[0] != SURVEY:
        raise ValueError("the option orders must start with 'survey' (the order that is scored)")
    if len(set(names)) != len(names):
        raise ValueError(f"option orders repeat a name: {', '.join(names)}")
    return names


def _valid(name: str) -> bool:
    return name in (SURVEY, REVERSED) or _SHIFT.match(name) is not None


def permute(order: Sequence[int], name: str) -> list[int]:
    """``order`` (displayed position → option index) shown in the named order.

    >>> permute([0, 1, 2, 3], "reversed"), permute([0, 1, 2, 3], "shift1")
    ([3, 2, 1, 0], [1, 2, 3, 0])
    """
    base = list(order)
    if name == SURVEY:
        return base
    if name == REVERSED:
        return base[::-1]
    match = _SHIFT.match(name)
    if match is None:
        raise ValueError(f"unknown option order {name!r}: use survey, reversed or shiftN")
    k = int(match.group(1)) % len(base) if base else 0
    return base[k:] + base[:k]


def distinct_orders(names: Sequence[str], n_options: int) -> list[str]:
    """The names whose permutations of ``n_options`` options differ, each kept once (first name).

    >>> distinct_orders(["survey", "reversed", "shift1", "shift2"], 2)
    ['survey', 'reversed']
    """
    seen: set[tuple[int, ...]] = set()
    kept = []
    for name in names:
        key = tuple(permute(range(n_options), name))
        if key not in seen:
            seen.add(key)
            kept.append(name)
    return kept
