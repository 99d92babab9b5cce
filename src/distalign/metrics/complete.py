"""The complete table of any results: TS-Log-p wherever Log-p ran, and baselines on its items.

The reference import and ``distalign run`` both go through :func:`complete_items`, so a user's
model gets exactly the treatment the paper's models get in standard mode:

* **TS-Log-p**: the Log-p rows of each (mode, model, dataset, steering) block temperature-scaled
  with a T cross-fit over question folds (:func:`distalign.metrics.temperature.crossfit`): no
  question is scaled with a T that saw it. The fitted temperatures come back as a table, one row
  per fold.
* **Baselines** on the (dataset, group, question) items that were run
  (:func:`distalign.metrics.baselines.baseline_items`): uniform, human majority, population
  marginal, other group, 30-sample discretization and, where respondent counts are known, the
  finite-sample noise floor.

Only what is missing is added: a block that already has TS-Log-p rows, or an item that already
has baseline rows (the reference import stores both), is left as it is. Paper-mode rows are
never completed (paper mode has its own in-sample TS-Log-p and the paper's baselines).

A run saves the added rows next to its items (:data:`COMPLEMENT_FILE`, items-table columns) and
the temperatures as :data:`TEMPERATURES_FILE`; :func:`read_complement` loads them back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.data import Dataset
from distalign.metrics.baselines import baseline_items
from distalign.metrics.score import score_item
from distalign.metrics.temperature import FitMode, crossfit
from distalign.results import Status, items_frame

BASELINE = "baseline"
BLOCK_KEYS = ["mode", "model", "dataset", "steering"]  # one temperature fit per block
COMPLEMENT_FILE = "complement.parquet"  # TS-Log-p and baseline rows a run adds to its items
TEMPERATURES_FILE = "temperatures.csv"
TEMPERATURE_COLUMNS = [
    *BLOCK_KEYS,
    "fold",
    "temperature",
    "n_questions",
    "fit",
    "k",
    "seed",
]
_T_DETAIL = re.compile(r"^T=([-+0-9.eE]+|nan|inf)")


@dataclass(frozen=True)
class Complement:
    """Rows that complete an items table, and the temperatures behind its TS-Log-p rows."""

    items: pd.DataFrame  # items-table rows: method ts_logp, and model "baseline"
    temperatures: pd.DataFrame  # TEMPERATURE_COLUMNS, one row per fold of each block


def ts_logp_items(
    items: pd.DataFrame,
    datasets: Mapping[str, Dataset] | None = None,
    *,
    k: int = 5,
    seed: int = 0,
    fit: FitMode = "crossfit",
) -> Complement:
    """TS-Log-p rows for every (mode, model, dataset, steering) block of Log-p rows.

    Each block's scored Log-p predictions are scaled with a temperature fit on the other
    question folds (``fit="crossfit"``) or on the block itself (``"insample"``); rows that were
    not scored stay unscored. ``datasets`` supplies the ordinal scales for W1 (without it, W1 is
    NaN). A block with one question cannot be cross-fit: its T is fit in-sample and its
    ``fit`` says so.
    """
    logp = items[items["method"] == "logp"]
    parts, temperatures = [], []
    for _, block in logp.groupby(BLOCK_KEYS, sort=False):
        rows, temps = _scaled_block(block, datasets, k, seed, fit)
        parts.append(rows)
        temperatures.append(temps)
    if not parts:
        return Complement(items_frame([]), pd.DataFrame(columns=TEMPERATURE_COLUMNS))
    return Complement(
        pd.concat(parts, ignore_index=True), pd.concat(temperatures, ignore_index=True)
    )


def _scaled_block(
    block: pd.DataFrame,
    datasets: Mapping[str, Dataset] | None,
    k: int,
    seed: int,
    fit: FitMode,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = block.copy()
    out["method"] = "ts_logp"
    ok = block["status"] == Status.OK
    scored = block[ok]
    result = crossfit(
        list(scored["question_id"]),
        [np.asarray(p) for p in scored["pred"]],
        [np.asarray(t) for t in scored["truth"]],
        mode=fit,
        k=k,
        seed=seed,
    )
    dataset = (datasets or {}).get(str(block["dataset"].iloc[0]))
    new = [
        score_item(s, t, _ordinal(dataset, str(q)))
        for s, t, q in zip(result.scaled, scored["truth"], scored["question_id"], strict=True)
    ]
    out.loc[ok, "pred"] = pd.Series([s.tolist() for s in result.scaled], index=scored.index)
    for column in ("tv", "js", "w1"):
        out.loc[ok, column] = [row[column] for row in new]
    out.loc[ok, "detail"] = [f"T={t:.4g} ({fit}, k={k})" for t in result.temperature_per_item]
    return out, _fold_table(block, result.fold_of_question, result.fold_temperatures, fit, k, seed)


def _ordinal(dataset: Dataset | None, question_id: str) -> Any:
    if dataset is None or question_id not in dataset.questions:
        return None
    return dataset.questions[question_id].ordinal


def _fold_table(
    block: pd.DataFrame,
    folds: Mapping[str, int],
    temperatures: Sequence[float],
    fit: FitMode,
    k: int,
    seed: int,
) -> pd.DataFrame:
    key = {name: block[name].iloc[0] for name in BLOCK_KEYS}
    crossfitted = fit == "crossfit" and len(temperatures) > 1
    rows = [
        {
            **key,
            "fold": fold,
            "temperature": temp,
            "n_questions": sum(1 for f in folds.values() if f == fold),
            "fit": "crossfit" if crossfitted else "insample",
            "k": k,
            "seed": seed,
        }
        for fold, temp in enumerate(temperatures)
    ]
    return pd.DataFrame(rows, columns=TEMPERATURE_COLUMNS)


def run_baselines(
    items: pd.DataFrame,
    datasets: Mapping[str, Dataset],
    *,
    seed: int = 0,
    n_sim: int = 1000,
) -> pd.DataFrame:
    """Every baseline on the (dataset, group, question) items of ``items``' model rows.

    "Other group" pools the other groups of the same attribute among the items' groups and the
    dataset's main groups, so a run on one group still has it. Datasets missing from
    ``datasets`` get no baselines.
    """
    from distalign.datasets.reference import main_groups

    models = items[items["model"] != BASELINE]
    frames = []
    for name, part in models.groupby("dataset", sort=True):
        dataset = datasets.get(str(name))
        if dataset is None:
            continue
        by_key = {g.key: g for g in dataset.groups}
        groups = [by_key[g] for g in dict.fromkeys(part["group"].astype(str)) if g in by_key]
        attributes = {g.attribute for g in groups}
        pool = groups + [
            g for g in main_groups(dataset) if g.attribute in attributes and g not in groups
        ]
        wanted = set(zip(part["group"].astype(str), part["question_id"].astype(str), strict=True))
        questions = {q for _, q in wanted}
        rows = baseline_items(dataset, pool, seed=seed, n_sim=n_sim, questions=questions)
        keep = [
            (g, q) in wanted
            for g, q in zip(rows["group"].astype(str), rows["question_id"].astype(str), strict=True)
        ]
        frames.append(rows[keep])
    if not frames:
        return items_frame([])
    return pd.concat(frames, ignore_index=True)


def complete_items(
    items: pd.DataFrame,
    datasets: Mapping[str, Dataset] | None = None,
    *,
    k: int = 5,
    seed: int = 0,
    n_sim: int = 1000,
) -> Complement:
    """The TS-Log-p and baseline rows ``items`` lacks (standard mode only), and the temperatures.

    TS-Log-p is added for each block of Log-p rows without TS-Log-p rows; baselines for each
    (dataset, group, question) of the model rows without baseline rows (only for datasets in
    ``datasets``).
    """
    standard = items[items["mode"] == "standard"]
    has_ts = set(
        standard.loc[standard["method"] == "ts_logp", BLOCK_KEYS].itertuples(index=False, name=None)
    )
    blocks = list(standard[BLOCK_KEYS].itertuples(index=False, name=None))
    todo = standard[[b not in has_ts for b in blocks]]
    scaled = ts_logp_items(todo, datasets, k=k, seed=seed)
    frames = [scaled.items]
    if datasets:
        frames.append(run_baselines(_without_baselines(standard), datasets, seed=seed, n_sim=n_sim))
    frames = [f for f in frames if not f.empty]
    rows = pd.concat(frames, ignore_index=True) if frames else items_frame([])
    return Complement(rows, scaled.temperatures)


def missing_parts(items: pd.DataFrame) -> tuple[bool, bool]:
    """Whether ``items`` lacks TS-Log-p rows, and whether it lacks baseline rows (standard mode),
    so a caller loads datasets only when baselines must be computed."""
    standard = items[items["mode"] == "standard"]
    logp = set(
        standard.loc[standard["method"] == "logp", BLOCK_KEYS].itertuples(index=False, name=None)
    )
    ts = set(
        standard.loc[standard["method"] == "ts_logp", BLOCK_KEYS].itertuples(index=False, name=None)
    )
    return bool(logp - ts), not _without_baselines(standard).empty


def _without_baselines(standard: pd.DataFrame) -> pd.DataFrame:
    """The model rows whose (dataset, group, question) has no baseline row yet."""
    keys = ["dataset", "group", "question_id"]
    covered = set(
        standard.loc[standard["model"] == BASELINE, keys].itertuples(index=False, name=None)
    )
    models = standard[
        (standard["model"] != BASELINE) & (standard["status"] != Status.EMPTY_TRUTH)
    ]  # an item without a truth has no baseline
    mine = list(models[keys].itertuples(index=False, name=None))
    return models[[key not in covered for key in mine]]


def temperature_summary(items: pd.DataFrame) -> pd.DataFrame:
    """The temperatures behind the TS-Log-p rows of ``items``, per (mode, model, dataset,
    steering): the folds' fitted T (from each row's ``T=...`` detail) and the rows scaled."""
    ts = items[(items["method"] == "ts_logp") & (items["status"] == Status.OK)]
    temps = ts["detail"].astype(str).str.extract(_T_DETAIL, expand=False).astype(float)
    ts = ts.assign(temperature=temps).dropna(subset=["temperature"])
    columns = [*BLOCK_KEYS, "temperatures", "t_min", "t_max", "n_scaled"]
    if ts.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, block in ts.groupby(BLOCK_KEYS, sort=True):
        unique = sorted(set(block["temperature"].round(6)))
        rows.append(
            {
                **dict(zip(BLOCK_KEYS, key, strict=True)),
                "temperatures": ", ".join(f"{t:.3g}" for t in unique),
                "t_min": unique[0],
                "t_max": unique[-1],
                "n_scaled": len(block),
            }
        )
    return pd.DataFrame(rows, columns=columns)


# --- saved with a results folder ---------------------------------------------------------


def write_complement(complement: Complement, out_dir: Path) -> list[Path]:
    """Save the rows (Parquet) and the temperatures (CSV) next to a folder's items."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, temps = out_dir / COMPLEMENT_FILE, out_dir / TEMPERATURES_FILE
    tmp = rows.with_suffix(".tmp")
    complement.items.to_parquet(tmp, index=False)
    tmp.replace(rows)
    complement.temperatures.to_csv(temps, index=False)
    return [rows, temps]


def read_complement(folder: Path) -> Complement | None:
    """The complement saved in a results folder, or None when it has none."""
    rows, temps = folder / COMPLEMENT_FILE, folder / TEMPERATURES_FILE
    if not rows.exists():
        return None
    frame = pd.read_parquet(rows)
    for column in ("letters", "pred", "truth"):
        frame[column] = frame[column].map(lambda v: None if v is None else list(v))
    table = pd.read_csv(temps) if temps.exists() else pd.DataFrame(columns=TEMPERATURE_COLUMNS)
    return Complement(frame, table)


def load_datasets(names: Sequence[str], data_dir: str | Path | None) -> dict[str, Dataset]:
    """The datasets a run named (registered names or user files), keyed by their ``name``;
    one that no longer loads is left out (its items then get no baselines)."""
    from distalign.datasets import load_dataset
    from distalign.errors import DistalignError

    loaded: dict[str, Dataset] = {}
    for name in names:
        try:
            dataset = load_dataset(name, data_dir)
        except (DistalignError, OSError, ValueError, KeyError):
            continue
        loaded[dataset.name] = dataset
    return loaded


def complete_folder(
    items: pd.DataFrame, out_dir: Path, datasets: Sequence[str], data_dir: str | Path | None
) -> Complement:
    """Complete a run's items (TS-Log-p, baselines on its items) and save the complement."""
    complement = complete_items(items, load_datasets(datasets, data_dir))
    write_complement(complement, out_dir)
    return complement
