"""Paper mode, item by item: score each of the paper's stored outputs as the paper did (§9.1).

Each rule below is one function with the spec section and quirk id it implements. The rules
are the paper's, quirks included; the standard mode (``distalign.metrics``) fixes them and is
deliberately not used here. Aggregating the items into the paper's tables is in
:mod:`distalign.reference.paper`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from distalign.data import LETTERS
from distalign.reference.files import (
    MAIN_GROUPS,
    UNSTEERED_GROUP,
    DatasetFiles,
    Record,
    ResultFile,
    load_result_files,
)
from distalign.results import Status, items_frame

TEMPERATURE_BOUNDS = (0.0, 10.0)  # §5.5, T2: the bound is load-bearing for TS-Log-p

Results = Mapping[ResultFile, dict[str, Record]]


# --- item rules ----------------------------------------------------------------------------


def positional_tv(pred: Sequence[float], truth: Sequence[float]) -> float:
    """§6.1, S1: TV of two value lists by position; unequal lengths (or NaN values) give NaN."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape:
        return math.nan
    return float(0.5 * np.abs(p - t).sum())


def survey_order_truth(
    pred_letters: Sequence[str], mc_options: Sequence[str], counts: Mapping[str, float]
) -> tuple[list[str], list[float]]:
    """§6.3, S4 + D4: the unsteered OpinionQA truth, in ``MC_options`` (survey) order.

    Position j is kept only if letter j is a key of the prediction; its value is the option's
    share of the group, or 0 when the option text is not a group key (broken MC_options).
    """
    total = sum(counts.values())
    letters, values = [], []
    for letter, option in zip(LETTERS, mc_options, strict=False):
        if letter in pred_letters:
            letters.append(letter)
            values.append(counts[option] / total if option in counts else 0.0)
    return letters, values


def judge(pred: Sequence[float], truth: Sequence[float]) -> tuple[Status, str, float | None]:
    """§6.1: the status, reason and TV the paper's scoring gives one item."""
    if not truth:
        return Status.EMPTY_TRUTH, "D5: the group has no respondents; the paper skips it", None
    if not pred:
        return Status.NOT_SCORED, "§6.1: empty prediction; the paper skips it", None
    if len(pred) != len(truth):
        reason = f"S1: {len(pred)} predicted vs {len(truth)} true values; the paper's TV is NaN"
        return Status.NOT_SCORED, reason + " and the item is dropped", None
    tv = positional_tv(pred, truth)
    if math.isnan(tv):
        # R6/T3: an all-zero Log-p vector becomes NaN after temperature scaling.
        return Status.NOT_SCORED, "§6.1: NaN prediction (all-zero Log-p, scaled); dropped", None
    return Status.OK, "", tv


def temperature_scale(pred: Sequence[float], temperature: float) -> list[float]:
    """§5.5: q = p^(1/T) / Σ p^(1/T) on the unnormalised Log-p vector; all-zero p gives NaN."""
    powered = np.asarray(pred, dtype=np.float64) ** (1.0 / temperature)
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(v) for v in powered / powered.sum()]


# --- truths per item -----------------------------------------------------------------------


def _truth(
    file: ResultFile, group: str, qid: str, record: Record, data: DatasetFiles
) -> tuple[list[str], list[float], list[str]]:
    """The truth an item is scored against: letters, values and notes (§4, §6.3)."""
    if file.steering != "none":
        truth: dict[str, float] = record["expected_results"]  # §9.1 item 2: stored truth
        notes = _r3_note(file, qid, list(truth.values()), data)
        return list(truth), list(truth.values()), notes
    if file.dataset == "nytimes":
        attribute, _, value = group.partition("=")
        truth = record[f"expected_results_{attribute}_{value}"]
        return list(truth), list(truth.values()), []
    attribute = group.partition("=")[0]
    mc_options = data.opinionqa[attribute][qid]["MC_options"]
    counts = data.counts(file.dataset, group, qid) or {}
    letters, values = survey_order_truth(list(record["avg_actual_results"]), mc_options, counts)
    return letters, values, ["S4: survey-order truth vs alphabetical prediction"]


def _r3_note(file: ResultFile, qid: str, truth: list[float], data: DatasetFiles) -> list[str]:
    """R3: say when a Global-values file holds another country slot's truth (kept as stored)."""
    if file.dataset != "globalvalues" or not truth:
        return []
    record = data.globalvalues[qid]
    slots = [record[country] for country in record["countries"]]
    slot = int(file.group.partition("=")[2])
    if np.allclose(slots[slot], truth):
        return []
    matches = [i for i, values in enumerate(slots) if np.allclose(values, truth)]
    return [f"R3: stored truth is countries{matches} (file is slot {slot}); scored as stored"]


def _covered_mass(file: ResultFile, record: Record) -> float | None:
    """Log-p: the letter mass before any scaling (R6: nothing is renormalised)."""
    if file.method not in ("logp", "ts_logp"):
        return None
    lists = record["actual_results"].values()
    return float(sum(np.mean(values) if values else 0.0 for values in lists))


def _item_row(
    file: ResultFile, group: str, qid: str, record: Record, data: DatasetFiles
) -> dict[str, Any]:
    letters, truth, notes = _truth(file, group, qid, record, data)
    pred_map: dict[str, float] = record["avg_actual_results"]  # §9.1 item 1: stored prediction
    pred = [float(v) for v in pred_map.values()]
    status, reason, tv = judge(pred, truth)
    if status == Status.OK and list(pred_map) != letters:
        notes.append(f"S1: prediction keys {''.join(pred_map)} vs truth {''.join(letters)}")
    responses = record.get("response") or [None]
    counts = data.counts(file.dataset, group, qid)
    return {
        "mode": "paper",
        "model": file.model,
        "dataset": file.dataset,
        "steering": file.steering,
        "method": file.method,
        "group": group,
        "question_id": qid,
        "letters": letters,
        "pred": pred,
        "truth": truth,
        "status": str(status),
        "detail": "; ".join([reason, *notes] if reason else notes),
        "tv": tv,
        "n": None if counts is None else float(sum(counts.values())),
        "covered_mass": _covered_mass(file, record),
        "raw": responses[0],
    }


def _file_rows(
    file: ResultFile, records: dict[str, Record], data: DatasetFiles
) -> list[dict[str, Any]]:
    """§6.3: the unsteered file is scored against every main group; others against their own."""
    groups = MAIN_GROUPS[file.dataset] if file.steering == "none" else (file.group,)
    return [
        _item_row(file, group, qid, record, data)
        for group in groups
        for qid, record in records.items()
    ]


# --- temperature scaling -------------------------------------------------------------------


def _fit_pool(results: Results, model: str, dataset: str, steering: str) -> list[tuple[Any, Any]]:
    """§5.5: (Log-p prediction, truth) pairs a temperature is fitted on, in file order.

    T4: the unsteered pool repeats the NONE/Democrat file once per group, always against the
    stored POLPARTY-Democrat truth (alphabetical, unlike the §6.3 scoring truth).
    """
    by_group = {
        f.group: records
        for f, records in results.items()
        if (f.model, f.dataset, f.steering, f.method) == (model, dataset, steering, "logp")
    }
    if steering == "none":
        records = by_group[UNSTEERED_GROUP]
        pairs = [
            (r["avg_actual_results"], r["expected_results_POLPARTY_Democrat"])
            for r in records.values()
        ]
        return pairs * len(MAIN_GROUPS[dataset])
    return [
        (r["avg_actual_results"], r["expected_results"])
        for group in MAIN_GROUPS[dataset]
        for r in by_group[group].values()
    ]


def _summed_tv(pool: list[tuple[Any, Any]]) -> Callable[[float], float]:
    """§5.5 objective: Σ positional TV(scaled pred, truth), NaN-propagating (T3).

    Empty records contribute 0 (§9.1 item 6); a length mismatch makes the sum NaN. Items are
    vectorised per option count, but their TVs are added one by one in pool order, as the
    paper's loop did: the fitted T then matches the stored rescaled files to rounding (a
    pairwise sum moves GPT-4's OpinionQA few-shot T by 2e-6).
    """
    pairs = [(list(p.values()), list(t.values())) for p, t in pool if p]
    if any(len(p) != len(t) for p, t in pairs):
        return lambda temperature: math.nan
    blocks = []  # (positions in the pool, predictions, truths), one block per option count
    for width in sorted({len(p) for p, _ in pairs}):
        where = [i for i, (p, _) in enumerate(pairs) if len(p) == width]
        preds = np.array([pairs[i][0] for i in where], dtype=np.float64)
        truths = np.array([pairs[i][1] for i in where], dtype=np.float64)
        blocks.append((np.array(where), preds, truths))

    def objective(temperature: float) -> float:
        tvs = np.empty(len(pairs))
        for where, preds, truths in blocks:
            powered = preds ** (1.0 / temperature)
            with np.errstate(invalid="ignore", divide="ignore"):
                scaled = powered / powered.sum(axis=1, keepdims=True)
            tvs[where] = 0.5 * np.abs(scaled - truths).sum(axis=1)
        return float(sum(tvs.tolist()))  # sequential on purpose (see above)

    return objective


def fit_temperature(pool: list[tuple[Any, Any]]) -> tuple[float, float]:
    """§5.5, T1-T3: bounded Brent on (0, 10); a NaN objective returns 10·(3−√5)/2 = 3.8197."""
    with np.errstate(invalid="ignore", divide="ignore"):
        found = minimize_scalar(_summed_tv(pool), bounds=TEMPERATURE_BOUNDS, method="bounded")
    return float(found.x), float(found.fun)


def _fit_all(results: Results) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(model, dataset, steering) -> (temperature, objective) for every Log-p run."""
    keys = sorted({(f.model, f.dataset, f.steering) for f in results if f.method == "logp"})
    return {key: fit_temperature(_fit_pool(results, *key)) for key in keys}


def fit_temperatures(results: Results) -> pd.DataFrame:
    """One temperature per (model, dataset, steering) with Log-p outputs (§5.5 table)."""
    rows = [
        {
            "model": model,
            "dataset": dataset,
            "steering": steering,
            "temperature": temperature,
            "objective": objective,
            "nan_objective": math.isnan(objective),  # T3: the 3.8197 fallback
        }
        for (model, dataset, steering), (temperature, objective) in _fit_all(results).items()
    ]
    return pd.DataFrame(rows)


def rescale_records(records: dict[str, Record], temperature: float) -> dict[str, Record]:
    """What a ``rescaled_model_logprobs`` file holds: Log-p records with a scaled prediction."""
    scaled = {}
    for qid, record in records.items():
        pred = record["avg_actual_results"]
        values = temperature_scale(list(pred.values()), temperature)
        scaled[qid] = {**record, "avg_actual_results": dict(zip(pred, values, strict=True))}
    return scaled


# --- items table ---------------------------------------------------------------------------


def paper_items(
    results_dir: Path, data_dir: Path, *, results: Results | None = None
) -> pd.DataFrame:
    """Every paper-mode item (model, dataset, steering, method, group, question) as a table.

    TS-Log-p rows come from refitted temperatures (§9.1 item 6), not the stored rescaled
    files; ``results`` may pass already loaded files (see ``load_result_files``).
    """
    loaded = load_result_files(results_dir) if results is None else results
    data = DatasetFiles.read(data_dir)
    files = {f: records for f, records in loaded.items() if f.method != "ts_logp"}
    temperatures = _fit_all(loaded)
    for f, records in list(files.items()):
        if f.method == "logp":
            temperature, _ = temperatures[(f.model, f.dataset, f.steering)]
            files[replace(f, method="ts_logp")] = rescale_records(records, temperature)
    return items_frame(row for f, records in files.items() for row in _file_rows(f, records, data))
