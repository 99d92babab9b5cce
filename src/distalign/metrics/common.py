"""Comparable rows only: restrict results that cover different items to the items they share.

A 5-question run and the paper's models on 100 questions do not average over the same items,
so their mean TVs are not comparable cell for cell. An *item* is a (dataset, group, question,
steering); the items of a *source* (a results folder, the ``source`` column) are those its
model rows attempted (every status but ``empty_truth``: a failure is still the model's item).
Within one mode, when the sources' item sets differ, :func:`common_items` keeps the model rows
on the items every source has, and the baseline rows on their (dataset, group, question).

Differences inside one source (one model's missing replies in the reference import) are that
source's own data and do not count: each source is one item set.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from distalign.results import Status

ITEM_KEYS = ["dataset", "group", "question_id", "steering"]
BASELINE = "baseline"


@dataclass(frozen=True)
class Coverage:
    """How the sources' item sets compare, per mode."""

    table: pd.DataFrame  # mode, source, n_items, n_common
    differ: bool  # some mode holds sources with different item sets

    def message(self) -> str:
        """One plain sentence per mode whose sources differ ("" when none does)."""
        lines = []
        for mode, part in self.table.groupby("mode", sort=True):
            if part["n_items"].nunique() <= 1 and (part["n_items"] == part["n_common"]).all():
                continue
            counts = ", ".join(
                f"{row.source}: {row.n_items}" for row in part.itertuples(index=False)
            )
            lines.append(
                f"[{mode} mode] the results cover different items ({counts}); "
                f"{int(part['n_common'].iloc[0])} (dataset, group, question, steering) items "
                "are shared by all"
            )
        return "\n".join(lines)


def _attempted(items: pd.DataFrame) -> pd.DataFrame:
    return items[(items["model"] != BASELINE) & (items["status"] != Status.EMPTY_TRUTH)]


def _keys(frame: pd.DataFrame) -> set[tuple[str, ...]]:
    return set(frame[ITEM_KEYS].astype(str).itertuples(index=False, name=None))


def _sources(frame: pd.DataFrame, by: str) -> dict[str, set[tuple[str, ...]]]:
    if by not in frame:
        return {"": _keys(frame)}
    return {str(name): _keys(part) for name, part in frame.groupby(by, sort=True)}


def coverage(items: pd.DataFrame, by: str = "source") -> Coverage:
    """Items per source and items shared by all sources of the same mode."""
    rows, differ = [], False
    for mode, part in _attempted(items).groupby("mode", sort=True):
        sets = _sources(part, by)
        shared = set.intersection(*sets.values()) if sets else set()
        differ |= any(keys != shared for keys in sets.values())
        rows += [
            {"mode": mode, "source": name, "n_items": len(keys), "n_common": len(shared)}
            for name, keys in sets.items()
        ]
    columns = ["mode", "source", "n_items", "n_common"]
    return Coverage(pd.DataFrame(rows, columns=columns), differ)


def common_items(items: pd.DataFrame, by: str = "source") -> pd.DataFrame:
    """``items`` on the items shared by every source of its mode.

    Model rows are kept on the shared (dataset, group, question, steering) items, baseline rows
    (unsteered) on the shared (dataset, group, question). A mode with one source is unchanged.
    """
    parts = []
    for _, part in items.groupby("mode", sort=False):
        sets = _sources(_attempted(part), by)
        if len(sets) <= 1:
            parts.append(part)
            continue
        shared = set.intersection(*sets.values())
        keys = list(part[ITEM_KEYS].astype(str).itertuples(index=False, name=None))
        is_baseline = (part["model"] == BASELINE).to_numpy()
        projected = {key[:3] for key in shared}
        keep = [
            (key[:3] in projected) if base else (key in shared)
            for key, base in zip(keys, is_baseline, strict=True)
        ]
        parts.append(part[keep])
    if not parts:
        return items
    return pd.concat(parts, ignore_index=True)


def with_item_counts(board: pd.DataFrame) -> pd.DataFrame:
    """Add ``n_items`` (items the row averaged over or failed on) to a leaderboard."""
    counts = ["n_scored", "n_parse_failures", "n_request_failures"]
    if board.empty or not set(counts) <= set(board.columns) or "n_items" in board:
        return board
    out = board.copy()
    position = list(out.columns).index("n_scored")
    out.insert(position, "n_items", out[counts].fillna(0).sum(axis=1).astype(int))
    return out


def n_items(frame: pd.DataFrame) -> int:
    """The (dataset, group, question, steering) items a configuration's rows attempted."""
    return len(_keys(_attempted(frame)))
