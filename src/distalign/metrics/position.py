"""Position and label bias: the same item asked in several option orders.

A run with ``option_orders`` > 1 asks every item once per option order (survey order first,
then reversed and cyclic shifts; see :mod:`distalign.steering.orders`). Each prediction is
already mapped back to the question's options, so a model whose answers follow the options'
content gives the same prediction in every order; one that favours a position or a letter
("A" whatever the question) does not.

Per item (a model, dataset, steering, method, group, question and seed asked in at least two
orders whose replies were scored):

* **position-bias index**: the mean pairwise TV between the orders' predictions, in [0, 1];
  0 = the answers follow content only.
* **debiased prediction**: the mean of the orders' predictions, and its TV to the truth
  (``tv_debiased``), beside the survey order's TV (``tv_survey``) on the same items.

:func:`position_table` aggregates them per (mode, model, method) as the leaderboard does:
mean over each dataset's items, then the unweighted mean over datasets, with the two-way
cluster bootstrap CI of :mod:`distalign.metrics.bootstrap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from distalign.metrics.aggregate import leaderboard
from distalign.metrics.bootstrap import CIMode
from distalign.metrics.distance import total_variation
from distalign.results import ITEMS_FILE, SURVEY_ORDER, Status, load_results

ITEM_KEYS = ["mode", "model", "dataset", "steering", "method", "group", "question_id", "seed"]
COLUMNS = [
    "mode",
    "model",
    "method",
    "position_bias",
    "bias_ci_low",
    "bias_ci_high",
    "tv_debiased",
    "debiased_ci_low",
    "debiased_ci_high",
    "tv_survey",
    "n_items",
    "orders",
]


def has_orders(frame: pd.DataFrame) -> bool:
    """Whether an items table holds rows in more than the survey's option order."""
    if "order" not in frame.columns:
        return False
    orders = frame["order"].dropna()
    return bool((orders != SURVEY_ORDER).any())


def load_all_orders(path: str | Path) -> pd.DataFrame | None:
    """A results folder's items in all their option orders; None when it has the survey's only.

    Reads the ``order`` column alone first, so a folder without option orders (a reference
    import of 100,000 rows) is not loaded twice.
    """
    target = Path(path)
    file = target / ITEMS_FILE if target.is_dir() else target
    if not file.exists() or "order" not in pq.read_schema(file).names:
        return None
    if not has_orders(pd.read_parquet(file, columns=["order"])):
        return None
    return load_results(target, all_orders=True)


def pairwise_tv(preds: np.ndarray) -> float:
    """Mean TV over the pairs of rows of ``preds`` (orders × options); NaN for fewer than two.

    >>> pairwise_tv(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    0.6666666666666666
    """
    pairs = list(combinations(range(len(preds)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([total_variation(preds[i], preds[j]) for i, j in pairs]))


def order_items(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per item scored in at least two option orders (all columns of ``frame`` needed).

    Columns: the item keys, ``orders`` (how many were scored), ``position_bias``,
    ``debiased`` (the mean prediction over orders, aligned to ``letters``), ``tv_debiased``,
    ``tv_survey`` (NaN where the survey order was not scored) and ``status`` (``ok``).
    """
    if not has_orders(frame):
        return pd.DataFrame(columns=[*ITEM_KEYS, "orders", "position_bias", "status"])
    ok = frame[frame["status"] == Status.OK]
    keys = [k for k in ITEM_KEYS if k in ok.columns]
    rows: list[dict[str, Any]] = []
    for key, part in ok.groupby(keys, sort=False, dropna=False):
        if len(part) < 2:
            continue
        preds = np.array(part["pred"].tolist(), dtype=np.float64)
        truth = np.asarray(part["truth"].iloc[0], dtype=np.float64)
        debiased = preds.mean(axis=0)
        survey = part.loc[part["order"] == SURVEY_ORDER, "tv"]
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "letters": part["letters"].iloc[0],
                "orders": len(part),
                "position_bias": pairwise_tv(preds),
                "debiased": debiased.tolist(),
                "tv_debiased": float(total_variation(debiased, truth)),
                "tv_survey": float(survey.iloc[0]) if len(survey) else np.nan,
                "status": Status.OK,
            }
        )
    return pd.DataFrame(rows, columns=None if rows else [*keys, "orders", "position_bias"])


def position_table(
    frame: pd.DataFrame,
    *,
    steerings: Sequence[str] | None = None,
    ci_mode: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (mode, model, method): position-bias index and debiased TV with bootstrap CIs.

    ``frame`` is an items table with all its option orders
    (``load_results(path, all_orders=True)``); ``steerings`` None pools every steering.
    Empty (with :data:`COLUMNS`) when no item was asked in more than one order.
    """
    items = order_items(frame)
    if items.empty:
        return pd.DataFrame(columns=COLUMNS)
    # the seeds of one item are averaged, as one cell of the (question, group, steering) table
    cells = [k for k in ITEM_KEYS if k != "seed"]
    values = ["position_bias", "tv_debiased", "tv_survey", "orders"]
    items = items.groupby(cells, sort=False, dropna=False)[values].mean().reset_index()
    items["status"] = Status.OK
    if steerings is not None:
        items = items[items["steering"].isin(list(steerings))]
        if items.empty:
            return pd.DataFrame(columns=COLUMNS)
    keys = ["mode", "model", "method"]
    boards = {
        value: leaderboard(
            items, steerings=None, ci_mode=ci_mode, n_boot=n_boot, seed=seed, value=value
        ).set_index(keys)
        for value in ("position_bias", "tv_debiased", "tv_survey")
    }
    bias, debiased = boards["position_bias"], boards["tv_debiased"]
    table = pd.DataFrame(
        {
            "position_bias": bias["mean"],
            "bias_ci_low": bias["ci_low"],
            "bias_ci_high": bias["ci_high"],
            "tv_debiased": debiased["mean"],
            "debiased_ci_low": debiased["ci_low"],
            "debiased_ci_high": debiased["ci_high"],
            "tv_survey": boards["tv_survey"]["mean"],
            "n_items": bias["n_scored"],
            "orders": items.groupby(keys, sort=False)["orders"].max().round().astype(int),
        }
    )
    return table.reset_index()[COLUMNS]
