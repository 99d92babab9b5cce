"""Steerability: does steering move a model's answers as far apart as the groups' answers are?

For every question and every pair of groups of one attribute that a configuration predicted
(Democrat vs Republican, Male vs Female, Black vs White, or two countries of one
GlobalOpinionQA question), compare

* the model's spread: TV between its predictions for the two groups, and
* the humans' spread: TV between the two groups' true distributions.

``ratio`` = mean model spread / mean human spread (means over pair items, each dataset's mean
weighted equally, as the leaderboard does). 1: the model separates the groups as much as the
humans differ; below 1: steering barely moves it (under-steering, the groups blur); above 1: it
exaggerates the difference (caricature). Identical predictions for both groups give 0, whatever
the humans do. ``direction`` is the mean cosine between the model's and the humans' difference
vectors (pred_a − pred_b vs truth_a − truth_b): 1 when the model moves the right way, −1 when
it moves the groups the wrong way, NaN where either difference is zero.

Intervals: the ratio is computed inside each replicate of one cluster bootstrap over
questions and group pairs (:mod:`~distalign.metrics.joint`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distalign.metrics.aggregate import item_table, table_index
from distalign.metrics.bootstrap import CIMode
from distalign.metrics.joint import joint_means, percentile_interval
from distalign.results import Status

STEERED = ("persona", "fewshot")
CONFIG = ("mode", "model", "method", "dataset", "steering")


def pair_items(frame: pd.DataFrame, *, steerings: Sequence[str] = STEERED) -> pd.DataFrame:
    """One row per (configuration, question, pair of groups of one attribute), both scored.

    Columns: the configuration keys, ``question_id``, ``pair`` ("A vs B", groups sorted),
    ``attribute``, ``model_tv`` (TV between the two predictions), ``human_tv`` (between the
    two truths) and ``cosine`` (between the two difference vectors). Pairs whose predictions
    or truths are over different letters are left out.
    """
    chosen = frame[
        (frame["model"] != "baseline")
        & frame["steering"].isin(list(steerings))
        & (frame["status"] == Status.OK)
    ]
    columns = [*CONFIG, "question_id", "pair", "attribute", "model_tv", "human_tv", "cosine"]
    if chosen.empty:
        return pd.DataFrame(columns=columns)
    slim = chosen[[*CONFIG, "question_id", "group", "letters", "pred", "truth"]].copy()
    slim["attribute"] = slim["group"].astype(str).str.split("=", n=1).str[0]
    keys = [*CONFIG, "question_id", "attribute"]
    pairs = slim.merge(slim, on=keys, suffixes=("_a", "_b"))
    pairs = pairs[pairs["group_a"] < pairs["group_b"]]
    rows = [_pair_row(row) for row in pairs.to_dict("records")]
    out = pd.DataFrame([r for r in rows if r is not None], columns=columns)
    return out


def _pair_row(row: Mapping[Hashable, Any]) -> dict[str, Any] | None:
    if list(row["letters_a"]) != list(row["letters_b"]):
        return None
    pa, pb = np.asarray(row["pred_a"], float), np.asarray(row["pred_b"], float)
    ta, tb = np.asarray(row["truth_a"], float), np.asarray(row["truth_b"], float)
    if not pa.shape == pb.shape == ta.shape == tb.shape:
        return None
    return {
        **{key: row[key] for key in (*CONFIG, "question_id", "attribute")},
        "pair": f"{row['group_a']} vs {row['group_b']}",
        "model_tv": 0.5 * float(np.abs(pa - pb).sum()),
        "human_tv": 0.5 * float(np.abs(ta - tb).sum()),
        "cosine": _cosine(pa - pb, ta - tb),
    }


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 1e-12 else float("nan")


def steerability_table(
    frame: pd.DataFrame,
    *,
    steerings: Sequence[str] = STEERED,
    ci_mode: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Steerability ratio per (mode, model, method, steering), with a bootstrap interval.

    The pair items of each dataset form a (question, group pair) table; the cluster bootstrap
    resamples questions and pairs, and the ratio of the two resampled means is taken inside
    each replicate. Per-dataset ratios are added as ``ratio_<dataset>`` columns.
    """
    pairs = pair_items(frame, steerings=steerings)
    rows = []
    keys = ["mode", "model", "method", "steering"]
    for key, part in pairs.groupby(keys, sort=False):
        tables = _tables(part)
        joint = joint_means(tables, n_boot=n_boot, seed=seed, mode=ci_mode)
        model_tv, human_tv = (float(x) for x in joint.points)
        ratio = model_tv / human_tv if human_tv > 0 else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = joint.replicates[0] / joint.replicates[1]
        low, high = percentile_interval(reps, level) if np.isfinite(ratio) else (np.nan, np.nan)
        per_dataset = {
            f"ratio_{name}": _ratio(d["model_tv"].mean(), d["human_tv"].mean())
            for name, d in part.groupby("dataset", sort=True)
        }
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "model_tv": model_tv,
                "human_tv": human_tv,
                "ratio": ratio,
                "ci_low": low,
                "ci_high": high,
                "direction": float(part["cosine"].mean()),
                "n_pairs": joint.n_shared,
                "datasets": ",".join(sorted(set(part["dataset"]))),
                "ci_mode": ci_mode,
                **per_dataset,
            }
        )
    return pd.DataFrame(rows)


def _tables(part: pd.DataFrame) -> list[list[np.ndarray]]:
    """(question, pair, 1) tables of model and human spread, one per dataset."""
    model, human = [], []
    for _, data in part.groupby("dataset", sort=True):
        cells = data.assign(group=data["pair"], steering="all", status=Status.OK)
        index = table_index(cells)
        model.append(item_table(cells, index, "model_tv"))
        human.append(item_table(cells, index, "human_tv"))
    return [model, human]


def _ratio(model_tv: float, human_tv: float) -> float:
    return float(model_tv / human_tv) if human_tv > 0 else float("nan")
