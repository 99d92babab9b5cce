"""The cost of a planned study per backend: ``Runner.dry_run`` on the planned grid.

Nothing is sent: the dry run counts the requests each backend would send (Samples as one
request with ``n`` where the backend has it), their estimated tokens and the price table's USD.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from distalign.metrics.plan import Components, PlanRow

# a method of the items table -> the method whose requests it costs (TS-Log-p is Log-p rescaled)
COST_METHOD = {"ts_logp": "logp"}
# a dry run sends nothing, so API backends get a placeholder key when none is set
PLACEHOLDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


def study_cost(
    specs: list[str],
    methods: list[str],
    row: PlanRow,
    comps: list[Components],
    steerings: list[str],
    settings: dict[str, Any],
    prices: Path | None,
    items: pd.DataFrame,
) -> pd.DataFrame:
    """Requests, tokens and USD of the planned study per backend and method (``dry_run``).

    Each dataset is costed on its own grid: the first ``questions`` questions and the pilot's
    groups, then further groups of the dataset. Beyond what a dataset holds the counts are
    scaled up in proportion (``note``: extrapolated).
    """
    from distalign.backends import UnsupportedMethodError

    frames, unsupported = [], {}
    for spec in specs:
        for method in methods:
            for c, n_groups in zip(comps, row.groups, strict=True):
                pilot_groups = items.loc[items["dataset"] == c.dataset, "group"].astype(str)
                grid = (c.dataset, row.questions or 0, n_groups, list(dict.fromkeys(pilot_groups)))
                try:
                    estimate, scale = _dataset_estimate(
                        spec, method, *grid, steerings, settings, prices
                    )
                except UnsupportedMethodError as error:  # e.g. Log-p on Anthropic
                    unsupported[(spec, method)] = "unsupported: " + str(error).split(": ")[-1]
                    break
                frames.append(estimate.assign(scale=scale))
    if not frames:
        return _unsupported_rows(unsupported)
    raw = pd.concat(frames, ignore_index=True)
    counts = ["items", "calls", "requests", "est_prompt_tokens", "est_completion_tokens"]
    for column in counts:
        raw[column] = (raw[column] * raw["scale"]).round().astype(int)
    raw["est_cost_usd"] = raw["est_cost_usd"].astype(float) * raw["scale"]
    raw["extrapolated"] = raw["scale"] > 1
    summed = raw.groupby(["model", "method"], sort=False).agg(
        {**dict.fromkeys(counts, "sum"), "est_cost_usd": _sum_or_nan, "extrapolated": "any"}
    )
    summed = summed.reset_index().rename(columns={"model": "backend"})
    summed["note"] = summed.pop("extrapolated").map({True: "extrapolated", False: ""})
    summed.loc[summed["est_cost_usd"].isna(), "note"] = "no price in the table"
    out = pd.concat([summed, _unsupported_rows(unsupported)], ignore_index=True)
    for column in counts:  # whole numbers, and – where a method cannot run
        out[column] = pd.Series([None if pd.isna(v) else int(v) for v in out[column]], dtype=object)
    return out


def _unsupported_rows(unsupported: dict[tuple[str, str], str]) -> pd.DataFrame:
    rows = [{"backend": s, "method": m, "note": note} for (s, m), note in unsupported.items()]
    return pd.DataFrame(rows, columns=["backend", "method", "note"])


def _sum_or_nan(values: pd.Series) -> float:
    return float("nan") if values.isna().any() else float(values.sum())


def _dataset_estimate(
    spec: str,
    method: str,
    dataset_name: str,
    questions: int,
    n_groups: int,
    pilot_groups: list[str],
    steerings: list[str],
    settings: dict[str, Any],
    prices: Path | None,
) -> tuple[pd.DataFrame, float]:
    from distalign.cli.run import build_run_config
    from distalign.datasets import load_dataset
    from distalign.datasets.reference import main_groups
    from distalign.runner import Runner

    dataset = load_dataset(dataset_name, settings.get("data_dir"))
    keys = [g.key for g in dataset.groups]
    order = [*pilot_groups, *(g.key for g in main_groups(dataset)), *keys]
    group_keys = [k for k in dict.fromkeys(order) if k in keys][:n_groups]
    asked_q = min(questions, len(dataset.questions))
    scale = questions / asked_q * n_groups / len(group_keys)
    with tempfile.TemporaryDirectory() as tmp, _placeholder_keys():
        config = build_run_config(
            {
                **settings,
                "models": [spec],
                "datasets": [dataset_name],
                "groups": group_keys,
                "steerings": steerings,
                "methods": [method],
                "questions": asked_q,
                "out": str(Path(tmp) / "plan"),
                "cache": str(Path(tmp) / "cache.sqlite"),  # empty: the whole study is counted
                "prices": str(prices) if prices else settings.get("prices"),
            }
        )
        return Runner(config).dry_run(), scale


@contextmanager
def _placeholder_keys() -> Iterator[None]:
    """API keys for the dry run's backends where none is set (a dry run sends nothing)."""
    missing = [k for k in PLACEHOLDER_KEYS if not os.environ.get(k, "").strip()]
    for key in missing:
        os.environ[key] = "unused-distalign-plan-sends-nothing"
    try:
        yield
    finally:
        for key in missing:
            os.environ.pop(key, None)
