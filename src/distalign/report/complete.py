"""Complete each loaded results folder: TS-Log-p and baselines on its own items.

A run saves its complement (:mod:`distalign.metrics.complete`) beside its items; a folder
written before that (or by other code) is completed when it is loaded, from the datasets its
manifest names, without writing anything into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from distalign.metrics.complete import (
    complete_items,
    load_datasets,
    missing_parts,
    read_complement,
)

BASELINE = "baseline"


def with_complement(folder: Path, items: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """``items`` plus the TS-Log-p and baseline rows it lacks (saved, else computed)."""
    saved = read_complement(folder) if folder.is_dir() else None
    parts = [items]
    if saved is not None and not saved.items.empty:
        parts.append(saved.items)
    else:
        needs_ts, needs_baselines = missing_parts(items)
        if needs_ts or needs_baselines:
            datasets = _datasets(items, manifest) if needs_baselines else {}
            parts.append(complete_items(items, datasets or None).items)
    parts = [p for p in parts if not p.empty]
    if len(parts) <= 1:
        return items
    return pd.concat(parts, ignore_index=True)


def _datasets(items: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, Any]:
    config = manifest.get("config") or {}
    names = [str(n) for n in config.get("datasets") or sorted(set(items["dataset"].astype(str)))]
    data_dir = manifest.get("data_dir") or config.get("data_dir")
    return load_datasets(names, data_dir)


def dedupe_baselines(items: pd.DataFrame) -> pd.DataFrame:
    """One baseline row per (mode, dataset, group, question, method) when folders overlap."""
    keys = ["mode", "dataset", "group", "question_id", "method"]
    baseline = items["model"] == BASELINE
    repeated = pd.Series(False, index=items.index)
    repeated[baseline] = items.loc[baseline, keys].astype(str).duplicated().to_numpy()
    return items[~repeated].reset_index(drop=True) if repeated.any() else items
