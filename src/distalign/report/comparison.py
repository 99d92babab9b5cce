"""Paired comparisons of two configurations named by selectors (``distalign compare``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from distalign.metrics.aggregate import MAIN_STEERINGS, PairedResult, paired, select
from distalign.metrics.bootstrap import CIMode
from distalign.metrics.common import n_items
from distalign.report.items import display_name, load_items
from distalign.results import STEERINGS

SELECTOR_KEYS = ("mode", "model", "method", "steering", "dataset", "group", "prompt_mode", "seed")
_SELECTOR = re.compile(r"^(?P<path>.+?)(?::(?P<filters>[a-z_]+=.*))?$")


@dataclass(frozen=True)
class Selector:
    """``RESULTS_DIR[:key=value,key=value]``; a value may list alternatives with ``|``.

    Keys: mode, model, method, steering, dataset, group, prompt_mode, seed. A model matches its
    id or its display name (``gpt-4`` or ``GPT-4``, any case). Without ``steering=`` model rows
    are pooled over persona + few-shot (as the leaderboard); without ``mode=`` a folder holding
    both modes uses ``standard``. The selection must leave one (mode, model, method).
    """

    path: Path
    filters: dict[str, tuple[str, ...]]
    text: str


def parse_selector(text: str) -> Selector:
    match = _SELECTOR.match(text.strip())
    if match is None:
        raise ValueError(f"empty selector {text!r}")
    filters: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (match["filters"] or "").split(",")):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SELECTOR_KEYS:
            raise ValueError(
                f"bad selector part {part!r}: use key=value with key in {SELECTOR_KEYS}"
            )
        filters[key] = tuple(v.strip() for v in value.split("|") if v.strip())
    return Selector(Path(match["path"]), filters, text)


def select_configuration(items: pd.DataFrame, selector: Selector) -> pd.DataFrame:
    """The rows of ``items`` a selector names; exactly one (mode, model, method) must remain."""
    chosen = items
    for key, values in selector.filters.items():
        chosen = chosen[_matches(chosen, key, values)]
    if "mode" not in selector.filters and chosen["mode"].nunique() > 1:
        chosen = chosen[chosen["mode"] == "standard"]
    if "steering" not in selector.filters and chosen["steering"].isin(MAIN_STEERINGS).any():
        chosen = select(chosen, MAIN_STEERINGS)
    configs = sorted(set(zip(chosen["mode"], chosen["model"], chosen["method"], strict=True)))
    if len(configs) != 1:
        listed = "; ".join("mode={},model={},method={}".format(*c) for c in configs[:12])
        raise ValueError(
            f"{selector.text!r} selects {len(configs)} configurations"
            + (f" ({listed}); narrow it with key=value" if configs else "")
        )
    return chosen


def _matches(frame: pd.DataFrame, key: str, values: tuple[str, ...]) -> pd.Series:
    if key not in frame:
        raise ValueError(f"the results have no {key!r} column")
    column = frame[key].astype(str)
    if key == "model":
        wanted = {v.lower() for v in values}
        names = frame["model"].map(display_name).str.lower()
        return column.str.lower().isin(wanted) | names.isin(wanted)
    return column.isin(values)


@dataclass(frozen=True)
class Comparison:
    a: Selector
    b: Selector
    label_a: str
    label_b: str
    result: PairedResult
    n_items_a: int = 0  # (dataset, group, question, steering) items A attempted
    n_items_b: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.text,
            "b": self.b.text,
            "label_a": self.label_a,
            "label_b": self.label_b,
            "n_items_a": self.n_items_a,
            "n_items_b": self.n_items_b,
            **self.result.__dict__,
        }


def compare(
    a: str, b: str, *, ci_mode: CIMode = "cluster", n_boot: int = 1000, seed: int = 0
) -> Comparison:
    """Mean TV of B minus A on their shared (group, question[, steering]) items, paired CI."""
    sel_a, sel_b = parse_selector(a), parse_selector(b)
    items_a = load_items([sel_a.path])[0]
    same = sel_a.path.resolve() == sel_b.path.resolve()
    items_b = items_a if same else load_items([sel_b.path])[0]
    frame_a = select_configuration(items_a, sel_a)
    frame_b = select_configuration(items_b, sel_b)
    result = paired(frame_a, frame_b, kind="difference", ci_mode=ci_mode, n_boot=n_boot, seed=seed)
    labels = _label(frame_a), _label(frame_b)
    return Comparison(sel_a, sel_b, *labels, result, n_items(frame_a), n_items(frame_b))


def _label(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    steerings = "+".join(s for s in STEERINGS if s in set(frame["steering"]))
    return f"{display_name(row['model'])} · {row['method']} · {steerings} [{row['mode']}]"


def comparison_json(comparison: Comparison) -> str:
    return json.dumps(comparison.as_dict(), indent=2, default=str) + "\n"
