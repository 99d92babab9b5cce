"""Metrics: distances, bootstrap CIs, baselines, temperature scaling and aggregation."""

from distalign.metrics.aggregate import gap_table, leaderboard, paired
from distalign.metrics.baselines import BASELINES, baseline_items, expected_sampling_tv
from distalign.metrics.bootstrap import Interval, bootstrap_mean
from distalign.metrics.distance import (
    distribution_problem,
    jensen_shannon,
    total_variation,
    wasserstein_ordinal,
)
from distalign.metrics.score import score_item, score_items
from distalign.metrics.temperature import crossfit, fit_temperature, scale

__all__ = [
    "BASELINES",
    "Interval",
    "baseline_items",
    "bootstrap_mean",
    "crossfit",
    "distribution_problem",
    "expected_sampling_tv",
    "fit_temperature",
    "gap_table",
    "jensen_shannon",
    "leaderboard",
    "paired",
    "scale",
    "score_item",
    "score_items",
    "total_variation",
    "wasserstein_ordinal",
]
