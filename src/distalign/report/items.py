"""Loading results folders into one items table, and the helpers every report table shares."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from distalign.errors import DistalignError
from distalign.metrics.bootstrap import CIMode
from distalign.reference.files import MODEL_DISPLAY_NAMES
from distalign.report.complete import dedupe_baselines, with_complement
from distalign.results import ITEMS_FILE, load_manifest, load_results

BASELINE = "baseline"
MODE_ORDER = ("standard", "paper")


class NoResultsError(DistalignError, FileNotFoundError):
    """A results folder that is missing, holds no items table, or whose items table is empty."""


def results_folders(path: Path) -> list[Path]:
    """A results folder itself, or the results folders directly inside it (an import root).

    Raises :class:`NoResultsError` when ``path`` does not exist or holds no results.
    """
    if not path.exists():
        raise NoResultsError(f"no results in {path}: it does not exist; run `distalign run` first")
    if (path / ITEMS_FILE).exists() or path.suffix == ".parquet":
        return [path]
    found = sorted(p for p in path.glob(f"*/{ITEMS_FILE}"))
    if not found:
        raise NoResultsError(
            f"no results in {path} (no {ITEMS_FILE} in it or its subfolders): "
            "run `distalign run` first"
        )
    return [p.parent for p in found]


@dataclass(frozen=True)
class Source:
    """One loaded results folder."""

    path: Path
    manifest: dict[str, Any]
    modes: list[str]


def load_items(paths: Iterable[Path]) -> tuple[pd.DataFrame, list[Source]]:
    """Concatenate the items of several results folders, tagging each row with its ``source``.

    A model id found in more than one folder of the same mode gets the folder name appended,
    so two runs of one model stay two configurations instead of overwriting each other's cells.
    """
    frames, sources, seen = [], [], set()
    for folder in (f for p in paths for f in results_folders(Path(p))):
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        manifest = load_manifest(folder)
        # TS-Log-p and baselines on the folder's own items (distalign.metrics.complete)
        frame = with_complement(folder, load_results(folder), manifest)
        frame["source"] = str(folder)
        frames.append(frame)
        sources.append(Source(folder, manifest, sorted(set(frame["mode"]))))
    if not frames:
        raise NoResultsError("no results folders given: run `distalign run` first")
    items = pd.concat(frames, ignore_index=True)
    if items.empty:
        where = ", ".join(str(s.path) for s in sources)
        raise NoResultsError(
            f"no results in {where} (the items table is empty): run `distalign run` first"
        )
    return disambiguate(dedupe_baselines(items)), sources


def disambiguate(items: pd.DataFrame) -> pd.DataFrame:
    """Append the folder name to a model id that more than one folder of a mode holds."""
    owners = items.groupby(["mode", "model"])["source"].nunique()
    clashing = {key for key, count in owners.items() if count > 1}
    if not clashing:
        return items
    keys = list(zip(items["mode"], items["model"], strict=True))
    items["model"] = [
        f"{model} ({Path(src).name})" if key in clashing and model != BASELINE else model
        for key, model, src in zip(keys, items["model"], items["source"], strict=True)
    ]
    return items


def display_name(model: Any) -> str:
    return MODEL_DISPLAY_NAMES.get(str(model), str(model))


def with_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a ``model_name`` column (the paper's display names) right after ``model``."""
    if "model" not in frame or "model_name" in frame:
        return frame
    out = frame.copy()
    out.insert(list(out.columns).index("model") + 1, "model_name", out["model"].map(display_name))
    return out


def ci_mode_for(mode: str) -> CIMode:
    return "iid" if mode == "paper" else "cluster"


def models_only(items: pd.DataFrame) -> pd.DataFrame:
    return items[items["model"] != BASELINE]


def baselines_only(items: pd.DataFrame) -> pd.DataFrame:
    return items[items["model"] == BASELINE]


def modes_of(items: pd.DataFrame) -> list[str]:
    present = set(items["mode"].astype(str))
    return [m for m in MODE_ORDER if m in present] + sorted(present - set(MODE_ORDER))
