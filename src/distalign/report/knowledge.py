"""The report's knowledge-versus-sampling tables: the gap split and steerability.

Both are computed on the standard-mode items only (distalign's own rules: one option set per
question, so two groups' predictions are comparable letter by letter), by
:func:`distalign.metrics.knowledge.knowledge_table` and
:func:`distalign.metrics.steerability.steerability_table`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from distalign.metrics.knowledge import DEFAULT_N, knowledge_table
from distalign.metrics.steerability import steerability_table
from distalign.report.items import Source, models_only, with_names
from distalign.report.tables import ReportTable

GAP_NOTE = (
    "The simulated sampler draws n answers from each Verbalize prediction (seeded, no model "
    "call) and is scored like a Sequence reply. gap = A(Seq)/A(V) - 1 = (1 + sampling)(1 + "
    "model_part) - 1, where sampling = A(Sim)/A(V) - 1 is what finite sampling explains and "
    "model_part = A(Seq)/A(Sim) - 1 what the model adds. sampling_share = log(1 + sampling) / "
    "log(1 + gap) (above 1: the model's sequences beat n draws from its own Verbalize answer). "
    "Means over the items scored by all three; 95% cluster-bootstrap intervals."
)
STEER_NOTE = (
    "model_tv: TV between the model's predictions for two groups of one attribute (Democrat vs "
    "Republican, Male vs Female, Black vs White, two countries of a question), per question; "
    "human_tv: the same between the groups' true distributions. ratio = model_tv / human_tv: "
    "1 = the model separates the groups as much as the humans differ, below 1 = under-steered, "
    "above 1 = exaggerated. direction: mean cosine between the two difference vectors (1 = "
    "moves the right way). Sampling noise inflates both spreads (Sequence: 30 letters; NYT: "
    "6 to 31 raters per group)."
)


def knowledge_tables(
    items: pd.DataFrame, sources: Sequence[Source], *, n_boot: int, seed: int
) -> list[ReportTable]:
    """The gap-split and steerability tables of the standard-mode model items (may be none)."""
    standard = models_only(items[items["mode"] == "standard"])
    if standard.empty:
        return []
    split = knowledge_table(standard, n=_draws(standard, sources), n_boot=n_boot, seed=seed)
    steer = steerability_table(standard, n_boot=n_boot, seed=seed)
    tables = []
    if not split.empty:
        tables.append(
            ReportTable(
                "gap_split_standard",
                "Knowledge vs sampling: the gap split by a simulated sampler [standard mode]",
                with_names(split),
                [
                    "model_name",
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
                    "sampling_share",
                ],
                GAP_NOTE,
            )
        )
    if not steer.empty:
        per_dataset = [c for c in steer.columns if c.startswith("ratio_")]
        tables.append(
            ReportTable(
                "steerability_standard",
                "Steerability: model spread between groups / human spread [standard mode]",
                with_names(steer),
                [
                    "model_name",
                    "method",
                    "steering",
                    "model_tv",
                    "human_tv",
                    "ratio",
                    "ci_low",
                    "ci_high",
                    "direction",
                    "n_pairs",
                    *per_dataset,
                ],
                STEER_NOTE,
                collapsed=len(steer) > 40,
            )
        )
    return tables


def _draws(items: pd.DataFrame, sources: Sequence[Source]) -> dict[str, int]:
    """Each model's Sequence length: its run's ``--n`` (30 for imports and older runs)."""
    by_source = {
        str(s.path): int((s.manifest.get("config") or {}).get("n") or DEFAULT_N) for s in sources
    }
    if "source" not in items:
        return {}
    pairs = items[["model", "source"]].drop_duplicates()
    return {
        str(model): by_source.get(str(source), DEFAULT_N)
        for model, source in zip(pairs["model"], pairs["source"], strict=True)
    }
