"""Paper mode: score the paper's stored outputs exactly as the paper did (spec §9.1).

Each rule below is one function with the spec section and quirk id it implements. The rules
are the paper's, quirks included; the standard mode (``distalign.metrics``) fixes them and is
deliberately not used here.
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

from distalign.data import LETTERS, FloatArray
from distalign.reference.files import (
    DATASETS,
    MAIN_GROUPS,
    MODEL_DISPLAY_NAMES,
    UNSTEERED_GROUP,
    DatasetFiles,
    Record,
    ResultFile,
    load_result_files,
)
from distalign.results import Status, items_frame

STEERED = ("persona", "fewshot")
TEMPERATURE_BOUNDS = (0.0, 10.0)  # §5.5, T2: the bound is load-bearing for TS-Log-p
NYT_COPIES = 2  # §6.2, S5: NYT group lists enter the main leaderboard twice
BASELINE_MODEL = "gpt-3.5-turbo-0125"  # §6.6: every baseline reuses its Sequence files
N_DRAWS = 30  # §6.6: the discretization baseline's sequence length
N_SIMULATIONS = 1000  # §6.6: simulations per item of the discretization baseline

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


# --- aggregation ---------------------------------------------------------------------------


def bootstrap_equal_weight(
    lists: Mapping[str, FloatArray], *, n_boot: int, rng: np.random.Generator
) -> FloatArray:
    """§6.4: i.i.d. resampling within each dataset; each replicate is the mean of dataset means."""
    replicates = np.zeros(n_boot)
    for values in lists.values():
        draws = rng.integers(0, values.size, size=(n_boot, values.size))
        replicates += values[draws].mean(axis=1)
    result: FloatArray = replicates / len(lists)
    return result


def _summary(block: pd.DataFrame, *, nyt_copies: int, n_boot: int, seed: int) -> dict[str, Any]:
    """One leaderboard row: point mean (§9.1 item 5), percentile CI, per-dataset counts."""
    lists = {
        d: block.loc[block["dataset"] == d, "tv"].to_numpy(dtype=np.float64)
        for d in DATASETS
        if (block["dataset"] == d).any()
    }
    means = {d: float(values.mean()) for d, values in lists.items()}
    if "nytimes" in lists:  # S5: duplicates change only the CI, never the mean
        lists["nytimes"] = np.tile(lists["nytimes"], nyt_copies)
    replicates = bootstrap_equal_weight(lists, n_boot=n_boot, rng=np.random.default_rng(seed))
    low, high = np.percentile(replicates, [2.5, 97.5])
    row: dict[str, Any] = {
        "mean": float(np.mean(list(means.values()))),
        "ci_low": float(low),
        "ci_high": float(high),
        "half_width": float(high - low) / 2,
    }
    for d in DATASETS:
        row[f"mean_{d}"] = means.get(d, math.nan)
        row[f"n_{d}"] = int((block["dataset"] == d).sum())
    row["ci_mode"] = "paper"
    return row


def _leaderboard(items: pd.DataFrame, *, nyt_copies: int, n_boot: int, seed: int) -> pd.DataFrame:
    ok = items[items["status"] == str(Status.OK)]
    rows = []
    for (model, method), block in ok.groupby(["model", "method"], sort=False):
        name = MODEL_DISPLAY_NAMES.get(str(model), str(model))
        summary = _summary(block, nyt_copies=nyt_copies, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "model_name": name, "method": method, **summary})
    return pd.DataFrame(rows)


def paper_leaderboard(items: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Table 1a (§6.2): persona + few-shot items pooled per dataset, datasets weighted ⅓ each.

    Every row is bootstrapped with a generator seeded by ``seed`` (S7: the paper's was
    unseeded, so its CI bounds differ from these by bootstrap noise).
    """
    steered = items[(items["mode"] == "paper") & items["steering"].isin(STEERED)]
    return _leaderboard(steered, nyt_copies=NYT_COPIES, n_boot=n_boot, seed=seed)


# --- baselines -----------------------------------------------------------------------------


def _baseline_sources(items: pd.DataFrame) -> pd.DataFrame:
    """§6.6: GPT-3.5 Sequence items; unsteered for OpinionQA/NYT, persona for Global values.

    The persona Global-values files keep their stored (R3-shifted) truths.
    """
    gpt35_sequence = (items["model"] == BASELINE_MODEL) & (items["method"] == "sequence")
    unsteered = items["dataset"].isin(("opinionqa", "nytimes")) & (items["steering"] == "none")
    persona = (items["dataset"] == "globalvalues") & (items["steering"] == "persona")
    chosen = gpt35_sequence & (unsteered | persona) & (items["status"] == str(Status.OK))
    return items[chosen & (items["mode"] == "paper")]


def uniform_prediction(pred: Sequence[float]) -> list[float]:
    """S10: 1/k on each of the k letters of GPT-3.5's stored output."""
    return [1.0 / len(pred)] * len(pred)


def majority_prediction(pred: Sequence[float]) -> list[float]:
    """S8 (LB1): one-hot on GPT-3.5's modal letter (first in dict order on ties)."""
    onehot = [0.0] * len(pred)
    onehot[int(np.argmax(pred))] = 1.0
    return onehot


def discretization_tv(truth: Sequence[float], rng: np.random.Generator) -> float:
    """§6.6: mean TV(truth, 30 i.i.d. draws from truth/Σtruth) over 1,000 simulations.

    The draws use the renormalised truth; the TV is against the un-renormalised truth.
    """
    t = np.asarray(truth, dtype=np.float64)
    draws = rng.multinomial(N_DRAWS, t / t.sum(), size=N_SIMULATIONS) / N_DRAWS
    return float(0.5 * np.abs(draws - t).sum(axis=1).mean())


def _until_zero_truth(sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S9: per (dataset, group), the paper's loop stops at the first truth summing to exactly 0."""
    stopped: set[tuple[str, str]] = set()
    kept = []
    for source in sources:
        key = (source["dataset"], source["group"])
        if key not in stopped and sum(source["truth"]) == 0:
            stopped.add(key)
        if key not in stopped:
            kept.append(source)
    return kept


def baseline_items(items: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per-item rows of the uniform, majority (LB1) and discretization baselines (§6.6).

    Rows keep the source item's group, question, truth and detail (S4, R3 notes).
    """
    sources = [
        {str(k): v for k, v in row.items()} for row in _baseline_sources(items).to_dict("records")
    ]
    rows = []
    for source in sources:
        for method, predict in (("uniform", uniform_prediction), ("majority", majority_prediction)):
            pred = predict(source["pred"])
            rows.append(_baseline_row(source, method, pred, positional_tv(pred, source["truth"])))
    rng = np.random.default_rng(seed)
    for source in _until_zero_truth(sources):
        tv = discretization_tv(source["truth"], rng)
        rows.append(_baseline_row(source, "discretization", None, tv))
    return items_frame(rows)


def _baseline_row(
    source: dict[str, Any], method: str, pred: list[float] | None, tv: float
) -> dict[str, Any]:
    return {**source, "model": "baseline", "method": method, "pred": pred, "tv": tv, "raw": None}


def paper_baselines(items: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Baseline rows of Table 1a, aggregated like §6.2 but with NYT counted once (§6.6)."""
    return _leaderboard(baseline_items(items, seed=seed), nyt_copies=1, n_boot=n_boot, seed=seed)


# --- Table 1b ------------------------------------------------------------------------------


def paper_gap(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """Table 1b (§6.5): the knowledge-to-simulation gap A(Seq)/A(V) − 1 from the means."""
    means = leaderboard.pivot(index="model", columns="method", values="mean")
    means = means.dropna(subset=["verbalize", "sequence"])
    gap = pd.DataFrame(
        {
            "model": means.index,
            "model_name": [MODEL_DISPLAY_NAMES.get(str(m), str(m)) for m in means.index],
            "verbalize": means["verbalize"].to_numpy(),
            "sequence": means["sequence"].to_numpy(),
        }
    )
    gap["gap"] = gap["sequence"] / gap["verbalize"] - 1
    return gap.reset_index(drop=True)
