"""The paper's reference data: reading its stored outputs and scoring them in paper mode."""

from distalign.reference.files import (
    MAIN_GROUPS,
    METHOD_NAMES,
    MODEL_DISPLAY_NAMES,
    STEERING_NAMES,
    ResultFile,
    ResultScan,
    load_result_files,
    read_results,
    scan_results,
)
from distalign.reference.paper import (
    baseline_items,
    paper_baselines,
    paper_gap,
    paper_leaderboard,
)
from distalign.reference.paper_scoring import (
    fit_temperatures,
    paper_items,
    positional_tv,
    rescale_records,
)

__all__ = [
    "MAIN_GROUPS",
    "METHOD_NAMES",
    "MODEL_DISPLAY_NAMES",
    "STEERING_NAMES",
    "ResultFile",
    "ResultScan",
    "baseline_items",
    "fit_temperatures",
    "load_result_files",
    "paper_baselines",
    "paper_gap",
    "paper_items",
    "paper_leaderboard",
    "positional_tv",
    "read_results",
    "rescale_records",
    "scan_results",
]
