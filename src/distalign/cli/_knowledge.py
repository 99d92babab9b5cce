"""The leaderboard's extra tables: the gap split (simulated sampler) and steerability."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pandas as pd

from distalign.cli._render import print_frame, write_frame
from distalign.metrics.bootstrap import CIMode
from distalign.metrics.knowledge import DEFAULT_N, knowledge_table
from distalign.metrics.steerability import steerability_table
from distalign.reference.files import MODEL_DISPLAY_NAMES
from distalign.results import load_manifest, load_results

GAP_COLUMNS = [
    "model",
    "steering",
    "n",
    "verbalize",
    "simulated",
    "sequence",
    "gap",
    "sampling",
    "sampling_low",
    "sampling_high",
    "model_part",
    "model_part_low",
    "model_part_high",
]
STEER_COLUMNS = [
    "model",
    "method",
    "steering",
    "model_tv",
    "human_tv",
    "ratio",
    "ci_low",
    "ci_high",
    "direction",
    "n_pairs",
]


def show_knowledge_tables(
    folders: list[Path], target: Path, *, ci: str, n_boot: int, seed: int
) -> None:
    """Print and write the gap split and the steerability of each standard-mode folder.

    Paper-mode folders are skipped: both measurements use distalign's standard rules (one
    option set per question, so two groups' predictions are comparable letter by letter).
    """
    for folder in folders:
        _show_folder(folder, target, cast(CIMode, ci), n_boot, seed)


def _show_folder(folder: Path, target: Path, ci: CIMode, n_boot: int, seed: int) -> None:
    manifest = load_manifest(folder)
    if str(manifest.get("mode", "standard")) != "standard":
        return
    items = load_results(folder)
    n = int((manifest.get("config") or {}).get("n") or DEFAULT_N)
    split = knowledge_table(items, n=n, ci_mode=ci, n_boot=n_boot, seed=seed)
    steer = steerability_table(items, ci_mode=ci, n_boot=n_boot, seed=seed)
    stem = folder.name if folder.is_dir() else folder.parent.name
    for name, frame, columns, title in (
        (
            "gap_split",
            split,
            GAP_COLUMNS,
            "Gap split: sampling = A(Sim)/A(V) - 1 (finite sampling), "
            "model_part = A(Seq)/A(Sim) - 1 (what the model adds)",
        ),
        (
            "steerability",
            steer,
            STEER_COLUMNS,
            "Steerability: TV between the model's predictions for two groups of one attribute "
            "/ the same TV between the humans (1 = as far apart as the humans)",
        ),
    ):
        if frame.empty:
            continue
        shown = _display(frame)
        print_frame(shown, f"{title} [{stem}]", [c for c in columns if c in shown])
        write_frame(frame, target, f"{name}_{stem}")


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["model"] = out["model"].map(lambda m: MODEL_DISPLAY_NAMES.get(m, m))
    return out
