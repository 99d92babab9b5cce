"""Per-configuration diagnostics (scored, failed, covered mass, usage) and Log-p calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from distalign.report.items import MODE_ORDER, models_only, with_names
from distalign.results import Status

LOGP_METHODS = ("logp", "ts_logp")
USAGE_WORDS = ("token", "cost")  # columns naming either are summed in the diagnostics table


# --- diagnostics ---------------------------------------------------------------------------


def diagnostics(items: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: how many items were scored, failed to parse, or lost Log-p mass.

    A bad mean is traced here to formatting failures (parse-failure rate) or to log-probs that
    put little mass on the option letters (covered mass). Token and cost columns are summed
    when the backend recorded them.
    """
    keys = ["mode", "model", "method", "steering"]
    rows = [
        _diagnostic_row(part) | dict(zip(keys, key, strict=True))
        for key, part in models_only(items).groupby(keys, sort=True)
    ]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    rank = frame["mode"].map(lambda m: MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER))
    frame = frame.assign(_o=rank).sort_values(["_o", *keys[1:]], kind="stable").drop(columns="_o")
    return with_names(frame[keys + [c for c in frame.columns if c not in keys]])


def _diagnostic_row(part: pd.DataFrame) -> dict[str, Any]:
    status = part["status"].astype(str)
    parse = int((status == Status.PARSE_FAILURE).sum())
    request = int((status == Status.REQUEST_FAILURE).sum())
    scored = int((status == Status.OK).sum())
    attempted = scored + parse + request
    row: dict[str, Any] = {
        "items": len(part),
        "scored": scored,
        "parse_failures": parse,
        "request_failures": request,
        "not_scored": len(part) - attempted,
        "parse_failure_rate": parse / attempted if attempted else np.nan,
        "request_failure_rate": request / attempted if attempted else np.nan,
    }
    return row | _covered_mass(part) | _usage(part)


def _covered_mass(part: pd.DataFrame) -> dict[str, float]:
    mass = pd.to_numeric(part["covered_mass"], errors="coerce").dropna()
    if mass.empty:
        return {}
    return {
        "covered_mass_mean": float(mass.mean()),
        "covered_mass_min": float(mass.min()),
        # Below one half, most of the probability went to tokens that are not option letters.
        "covered_mass_below_half": float((mass < 0.5).mean()),
    }


def _usage(part: pd.DataFrame) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for column in part.columns:
        if any(word in column.lower() for word in USAGE_WORDS):
            values = pd.to_numeric(part[column], errors="coerce")
            if values.notna().any():
                total = float(values.sum())
                # Token counts stay whole numbers ("1920", not "1920.000"); costs keep cents.
                whole = "token" in column.lower() and total.is_integer()
                out[f"{column}_total"] = int(total) if whole else total
    return out


# --- Log-p calibration -----------------------------------------------------------------------


def calibration_points(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Every option of every scored item as (predicted, true) probability pairs."""
    ok = part[(part["status"].astype(str) == Status.OK) & part["pred"].notna()]
    pairs = [
        (p, t)
        for p, t in zip(ok["pred"], ok["truth"], strict=True)
        if p is not None and t is not None and len(p) == len(t)
    ]
    if not pairs:
        return np.array([]), np.array([])
    pred = np.concatenate([np.asarray(p, dtype=np.float64) for p, _ in pairs])
    truth = np.concatenate([np.asarray(t, dtype=np.float64) for _, t in pairs])
    keep = np.isfinite(pred) & np.isfinite(truth)
    return pred[keep], truth[keep]


def reliability_bins(pred: np.ndarray, truth: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width bins of predicted probability: mean predicted vs mean true probability."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(pred, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            rows.append(
                {
                    "bin_low": edges[b],
                    "bin_high": edges[b + 1],
                    "mean_pred": float(pred[inside].mean()),
                    "mean_true": float(truth[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    return pd.DataFrame(rows)


def expected_calibration_error(bins: pd.DataFrame) -> float:
    """ECE = Σ_b (n_b / N) |mean predicted_b − mean true_b| over the reliability bins."""
    if bins.empty:
        return float("nan")
    weights = bins["count"] / bins["count"].sum()
    return float((weights * (bins["mean_pred"] - bins["mean_true"]).abs()).sum())


def calibration_table(items: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """ECE of Log-p and TS-Log-p per (mode, model): before and after temperature scaling."""
    rows = []
    logp = items[items["method"].isin(LOGP_METHODS)]
    for (mode, model, method), part in logp.groupby(["mode", "model", "method"], sort=True):
        pred, truth = calibration_points(part)
        bins = reliability_bins(pred, truth, n_bins)
        rows.append(
            {
                "mode": mode,
                "model": model,
                "method": method,
                "ece": expected_calibration_error(bins),
                "n_probabilities": int(pred.size),
            }
        )
    return with_names(pd.DataFrame(rows))


def diagnostics_usage_columns(items: pd.DataFrame) -> list[str]:
    return [f"{c}_total" for c in items.columns if any(w in c.lower() for w in USAGE_WORDS)]
