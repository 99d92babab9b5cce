"""Knowledge versus sampling: the simulated sampler and the split of the gap.

The paper's headline: models *know* a group's distribution (Verbalize) better than they can
*sample* from it (Sequence), measured as the knowledge-to-simulation gap
A(Sequence)/A(Verbalize) − 1. Part of that gap is arithmetic, not behaviour: a perfect sampler
of N answers misses its own distribution by E[TV(p, Multinomial(N, p)/N)]. The **simulated
sampler** makes that part concrete: for every scored Verbalize item it draws N answers from
the model's own Verbalize distribution (seeded per item, no model call) and scores their
empirical distribution against the truth, as a Sequence reply of N letters is scored.

The gap then splits multiplicatively, on the same items:

    A(Seq)/A(V) = [A(Sim)/A(V)] · [A(Seq)/A(Sim)]

* ``sampling`` = A(Sim)/A(V) − 1: the part finite sampling explains;
* ``model_part`` = A(Seq)/A(Sim) − 1: what the model adds beyond sampling its stated belief
  (negative when its sequences are *better* than N draws from its Verbalize answer);
* ``sampling_share`` = log(1 + sampling) / log(1 + gap): the share of the (log) gap explained
  by finite sampling, for a positive gap.

Intervals come from one cluster bootstrap (:mod:`~distalign.metrics.joint`) applied to all
three tables at once.
"""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from distalign.metrics.aggregate import item_table, ratio_gap, select, table_index
from distalign.metrics.bootstrap import CIMode
from distalign.metrics.joint import joint_means, percentile_interval
from distalign.metrics.score import score_items
from distalign.results import Status

SIMULATED = "simulated"  # the method name of simulated-sampler rows
DEFAULT_N = 30  # the paper's Sequence length and distalign's default --n
KEY_COLUMNS = ("mode", "model", "dataset", "steering", "group", "question_id")


def simulated_sampler(frame: pd.DataFrame, *, n: int = DEFAULT_N, seed: int = 0) -> pd.DataFrame:
    """Simulated-sampler items: ``n`` draws from each Verbalize prediction, scored like Sequence.

    Returns one row per Verbalize row of ``frame`` with ``method="simulated"``. A scored
    Verbalize item gives a scored row whose ``pred`` is the empirical distribution of ``n``
    multinomial draws from the (renormalised) Verbalize prediction, with TV and JS to the
    truth (``w1`` is NaN: the items table does not carry the ordinal positions). Draws are
    seeded per item from ``seed`` and the item's key, so a subset of items draws the same
    answers. Rows that were not scored keep their status and get no prediction.
    """
    if n < 1:
        raise ValueError("`n` must be a positive integer")
    verbalize = frame[frame["method"] == "verbalize"]
    rows = [_simulate(row, n, seed) for row in verbalize.to_dict("records")]
    drawn = [i for i, row in enumerate(rows) if row["status"] == Status.OK]
    scores = score_items(
        [rows[i]["pred"] for i in drawn], [rows[i]["truth"] for i in drawn], [None] * len(drawn)
    )  # one array call per option count, as Sequence items are scored in a run
    for i, score in zip(drawn, scores, strict=True):
        rows[i].update(tv=score["tv"], js=score["js"], w1=np.nan)
    return pd.DataFrame(rows, columns=list(frame.columns))


def _simulate(row: Mapping[Hashable, Any], n: int, seed: int) -> dict[Hashable, Any]:
    """The row's simulated prediction (scored later, in one batch)."""
    out = dict(row)
    out.update(method=SIMULATED, raw=None, prompt=None, covered_mass=np.nan, w1=np.nan)
    pred = None if row["pred"] is None else np.asarray(row["pred"], dtype=np.float64)
    if row["status"] != Status.OK or pred is None or not _is_distribution(pred):
        out.update(pred=None, tv=np.nan, js=np.nan, n_valid=None, n_invalid=None)
        if row["status"] == Status.OK:
            out.update(status=Status.NOT_SCORED, detail="Verbalize prediction not a distribution")
        return out
    key = "\x1f".join(str(row[c]) for c in KEY_COLUMNS)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    sample = rng.multinomial(n, pred / pred.sum()) / n
    out.update(
        pred=[float(x) for x in sample],
        n_valid=n,
        n_invalid=0,
        detail=f"simulated: {n} draws from the Verbalize prediction",
    )
    return out


def _is_distribution(pred: np.ndarray) -> bool:
    return bool(np.isfinite(pred).all() and (pred >= 0).all() and pred.sum() > 0)


def knowledge_table(
    frame: pd.DataFrame,
    *,
    n: int | Mapping[str, int] = DEFAULT_N,
    sampler_seed: int = 0,
    ci_mode: CIMode = "cluster",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """The gap A(Seq)/A(V) − 1 split into finite sampling and what the model adds.

    One row per (mode, model, steering) with both Verbalize and Sequence items, for each
    steering and for persona+fewshot pooled. ``n`` is the number of simulated draws (the
    run's ``--n``), one value or per model (missing models get 30). Means are over the items
    scored by all three (Verbalize, simulated sampler, Sequence); intervals are percentile
    intervals of one joint cluster bootstrap.
    """
    rows = []
    models = frame[frame["model"] != "baseline"]
    for (mode, model), part in models.groupby(["mode", "model"], sort=False):
        if not {"sequence", "verbalize"} <= set(part["method"]):
            continue
        draws = n if isinstance(n, int) else int(n.get(str(model), DEFAULT_N))
        simulated = simulated_sampler(part, n=draws, seed=sampler_seed)
        configs = {
            "verbalize": part[part["method"] == "verbalize"],
            SIMULATED: simulated,
            "sequence": part[part["method"] == "sequence"],
        }
        for label, steerings in steering_sets(part):
            chosen = {name: select(f, steerings) for name, f in configs.items()}
            if any(f.empty for f in chosen.values()):
                continue
            row = _split(chosen, ci_mode=ci_mode, n_boot=n_boot, seed=seed, level=level)
            rows.append({"mode": mode, "model": model, "steering": label, "n": draws, **row})
    return pd.DataFrame(rows)


def _split(
    configs: Mapping[str, pd.DataFrame], *, ci_mode: CIMode, n_boot: int, seed: int, level: float
) -> dict[str, Any]:
    tables = aligned_tables(list(configs.values()))
    joint = joint_means(tables, n_boot=n_boot, seed=seed, mode=ci_mode)
    (v, sim, seq), (rv, rsim, rseq) = joint.points, joint.replicates
    parts = {
        "gap": (ratio_gap(seq, v), ratio_gap(rseq, rv)),
        "sampling": (ratio_gap(sim, v), ratio_gap(rsim, rv)),
        "model_part": (ratio_gap(seq, sim), ratio_gap(rseq, rsim)),
    }
    row: dict[str, Any] = {"verbalize": v, SIMULATED: sim, "sequence": seq}
    for name, (point, reps) in parts.items():
        low, high = percentile_interval(np.asarray(reps), level)
        defined = bool(np.isfinite(point))  # an undefined ratio has no interval
        row[name] = float(point)
        row[f"{name}_low"] = low if defined else np.nan
        row[f"{name}_high"] = high if defined else np.nan
    gap, sampling = row["gap"], row["sampling"]
    row["sampling_share"] = (
        float(np.log1p(sampling) / np.log1p(gap)) if np.isfinite(gap) and gap > 0 else np.nan
    )
    row.update(n_shared=joint.n_shared, ci_mode=ci_mode, n_boot=n_boot, seed=seed)
    return row


def aligned_tables(frames: Sequence[pd.DataFrame], value: str = "tv") -> list[list[np.ndarray]]:
    """Per configuration, one (question, group, steering) table per dataset on one layout."""
    datasets = sorted(set.intersection(*(set(f["dataset"]) for f in frames)))
    tables: list[list[np.ndarray]] = [[] for _ in frames]
    for name in datasets:
        parts = [f[f["dataset"] == name] for f in frames]
        index = table_index(pd.concat(parts))
        for out, part in zip(tables, parts, strict=True):
            out.append(item_table(part, index, value))
    return tables


def steering_sets(part: pd.DataFrame) -> list[tuple[str, tuple[str, ...]]]:
    """Each steering present on its own, and persona+fewshot pooled when both are."""
    present = [s for s in ("none", "persona", "fewshot") if s in set(part["steering"])]
    sets: list[tuple[str, tuple[str, ...]]] = [(s, (s,)) for s in present]
    if {"persona", "fewshot"} <= set(present):
        sets.append(("persona+fewshot", ("persona", "fewshot")))
    return sets
