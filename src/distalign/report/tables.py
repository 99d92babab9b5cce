"""The report's table set: which tables, how they are titled and shown, and their files.

Every table is a plain DataFrame (one row per configuration or cell, raw model ids kept) so it
can be written as CSV/JSON unchanged; :class:`ReportTable` adds the title and the columns a
reader sees in Markdown and HTML. The tables themselves are computed in
:mod:`~distalign.report.leaderboards` and :mod:`~distalign.report.diagnostics`; the names of
those modules, and of :mod:`~distalign.report.items` and :mod:`~distalign.report.comparison`,
are re-exported here, where the report and its callers have always found them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from distalign.formatting import fmt, write_frame
from distalign.metrics.complete import temperature_summary
from distalign.report.comparison import (
    SELECTOR_KEYS,
    Comparison,
    Selector,
    compare,
    comparison_json,
    parse_selector,
    select_configuration,
)
from distalign.report.diagnostics import (
    LOGP_METHODS,
    USAGE_WORDS,
    calibration_points,
    calibration_table,
    diagnostics,
    diagnostics_usage_columns,
    expected_calibration_error,
    reliability_bins,
)
from distalign.report.items import (
    BASELINE,
    MODE_ORDER,
    NoResultsError,
    Source,
    baselines_only,
    ci_mode_for,
    display_name,
    load_items,
    models_only,
    modes_of,
    results_folders,
    with_names,
)
from distalign.report.leaderboards import (
    CI_COLUMNS,
    COUNT_COLUMNS,
    baseline_board,
    breakdown,
    gap,
    main_leaderboard,
    steering_summary,
    wide_leaderboard,
)

__all__ = [
    "BASELINE",
    "BOARD_COLUMNS",
    "CI_COLUMNS",
    "COUNT_COLUMNS",
    "LOGP_METHODS",
    "MODE_ORDER",
    "SELECTOR_KEYS",
    "USAGE_WORDS",
    "Comparison",
    "NoResultsError",
    "ReportTable",
    "Selector",
    "Source",
    "baseline_board",
    "baselines_only",
    "breakdown",
    "build_tables",
    "calibration_points",
    "calibration_table",
    "ci_mode_for",
    "compare",
    "comparison_json",
    "diagnostics",
    "diagnostics_usage_columns",
    "display_name",
    "expected_calibration_error",
    "gap",
    "gap_note_column",
    "load_items",
    "main_leaderboard",
    "mode_tables",
    "models_only",
    "modes_of",
    "parse_selector",
    "reliability_bins",
    "results_folders",
    "select_configuration",
    "steering_summary",
    "to_markdown",
    "wide_leaderboard",
    "with_names",
    "write_tables",
]


@dataclass(frozen=True)
class ReportTable:
    """A table plus how to show it: ``columns`` are shown, the files keep every column."""

    name: str  # file stem
    title: str
    frame: pd.DataFrame
    columns: list[str] = field(default_factory=list)
    note: str = ""
    collapsed: bool = False  # long tables start folded in the HTML report
    headline: bool = False  # shown before the figures (leaderboards, baselines, gap)
    # ``frame`` as readers see it (e.g. models flagged by distalign.report.common); the files
    # keep ``frame`` itself
    display: pd.DataFrame | None = None

    @property
    def shown(self) -> list[str]:
        return [c for c in self.columns if c in self.frame] or list(self.frame.columns)

    @property
    def shown_frame(self) -> pd.DataFrame:
        """The frame the HTML, Markdown and terminal show (``display`` when set)."""
        return self.frame if self.display is None else self.display


# --- writing -------------------------------------------------------------------------------


def to_markdown(table: ReportTable, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table of the shown columns (pipes and newlines escaped)."""
    frame, columns = table.shown_frame, table.shown
    lines = [f"### {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    if frame.empty:
        return "\n".join(lines + ["(no rows)", ""])
    lines.append("| " + " | ".join(_md_cell(c) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if _numeric(frame, c) else "---" for c in columns) + "|")
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_md_cell(fmt(row[c], digits)) for c in columns) + " |")
    return "\n".join(lines + [""])


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return bool(pd.api.types.is_numeric_dtype(frame[column]))


def write_tables(tables: Sequence[ReportTable], out_dir: Path) -> list[Path]:
    """Each table as ``name.csv``, ``name.json`` and ``name.md``, plus all of them in tables.md."""
    written: list[Path] = []
    for table in tables:
        written += write_frame(table.frame, out_dir, table.name)
        md = out_dir / f"{table.name}.md"
        md.write_text(to_markdown(table))
        written.append(md)
    combined = out_dir / "tables.md"
    combined.write_text("\n".join(to_markdown(t) for t in tables))
    return written + [combined]


# --- the report's table set ----------------------------------------------------------------

BOARD_COLUMNS = ["model_name", "method", *CI_COLUMNS, "n_items", *COUNT_COLUMNS, "datasets"]


def build_tables(items: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> list[ReportTable]:
    """Every table of the report, per mode, then the mode-independent diagnostics."""
    tables: list[ReportTable] = []
    for mode in modes_of(items):
        tables += mode_tables(items[items["mode"] == mode], mode, n_boot=n_boot, seed=seed)
    diag = diagnostics(items)
    tables.append(
        ReportTable(
            "diagnostics",
            "Per-configuration diagnostics",
            diag,
            [
                "mode",
                "model_name",
                "method",
                "steering",
                "items",
                "scored",
                "parse_failure_rate",
                "request_failure_rate",
                "not_scored",
                "covered_mass_mean",
                "covered_mass_min",
                "covered_mass_below_half",
            ]
            + [c for c in diagnostics_usage_columns(items)],
            "Parse-failure rate = parse failures / attempted items. Covered mass (Log-p): the "
            "probability the model put on the option letters before renormalising.",
            collapsed=len(diag) > 40,
        )
    )
    calibration = calibration_table(items)
    if not calibration.empty:
        tables.append(
            ReportTable(
                "calibration",
                "Log-p expected calibration error, before (logp) and after (ts_logp) "
                "temperature scaling",
                calibration,
                ["mode", "model_name", "method", "ece", "n_probabilities"],
                "ECE over 10 equal-width bins of predicted option probability.",
            )
        )
    return tables


def mode_tables(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> list[ReportTable]:
    ci = "i.i.d. item bootstrap (the paper's)" if mode == "paper" else "two-way cluster bootstrap"
    board = main_leaderboard(items, mode, n_boot=n_boot, seed=seed)
    wide = wide_leaderboard(board)
    gaps = gap(items, board, mode, n_boot=n_boot, seed=seed)
    tables = [
        ReportTable(
            f"leaderboard_{mode}",
            f"Leaderboard [{mode} mode]",
            wide,
            [c for c in wide.columns if c != "model"],
            f"Mean TV over datasets, persona + few-shot pooled, 95% CI ({ci}); lower is better.",
            headline=True,
        ),
        ReportTable(
            f"leaderboard_{mode}_long",
            f"Leaderboard with counts [{mode} mode]",
            board,
            BOARD_COLUMNS,
            collapsed=True,
            headline=True,
        ),
        ReportTable(
            f"baselines_{mode}",
            f"Baselines [{mode} mode]",
            with_names(baseline_board(items, mode, n_boot=n_boot, seed=seed)),
            ["method", *CI_COLUMNS, "n_scored", "datasets"],
            headline=True,
        ),
        ReportTable(
            f"gap_{mode}",
            f"Knowledge-to-simulation gap A(Sequence)/A(Verbalize) − 1 [{mode} mode]",
            gaps,
            [
                "model_name",
                "steering",
                "verbalize",
                "sequence",
                "gap",
                "ci_low",
                "ci_high",
                "n_shared",
                *gap_note_column(gaps),
            ],
            "A gap shown as – is undefined (e.g. Verbalize's mean TV is 0, so the ratio has "
            "no value); the note column says why."
            if gap_note_column(gaps)
            else "",
            headline=True,
        ),
    ]
    temperatures = temperature_summary(items)
    if not temperatures.empty:
        tables.append(
            ReportTable(
                f"temperatures_{mode}",
                f"TS-Log-p temperatures [{mode} mode]",
                with_names(temperatures),
                ["model_name", "dataset", "steering", "temperatures", "n_scaled"],
                "The T each question fold was scaled with, fit on the other folds (cross-fit "
                "over questions, T in [0.01, 100]; one question: in-sample).",
                collapsed=len(temperatures) > 12,
            )
        )
    return tables + _breakdown_tables(items, mode, n_boot=n_boot, seed=seed)


def gap_note_column(gaps: pd.DataFrame) -> list[str]:
    """``["note"]`` when some gap of the table is undefined (the note says why), else ``[]``."""
    has_note = "note" in gaps and bool(gaps["note"].fillna("").astype(str).str.len().gt(0).any())
    return ["note"] if has_note else []


def _breakdown_tables(
    items: pd.DataFrame, mode: str, *, n_boot: int, seed: int
) -> list[ReportTable]:
    shown = ["model_name", "method", *CI_COLUMNS, *COUNT_COLUMNS]
    return [
        ReportTable(
            f"steering_{mode}",
            f"Mean TV per steering per dataset [{mode} mode]",
            steering_summary(items, mode, n_boot=n_boot, seed=seed),
            ["dataset", "steering", *CI_COLUMNS, "n_configurations"],
            "Pooled over every model × method that ran all of the dataset's steerings.",
        ),
        ReportTable(
            f"breakdown_{mode}",
            f"Per dataset × steering × method [{mode} mode]",
            breakdown(items, mode, ("dataset", "steering"), n_boot=n_boot, seed=seed),
            ["dataset", "steering", *shown],
            collapsed=True,
        ),
        ReportTable(
            f"groups_{mode}",
            f"Per group (persona + few-shot) [{mode} mode]",
            breakdown(items, mode, ("dataset", "group"), n_boot=n_boot, seed=seed),
            ["dataset", "group", *shown],
            collapsed=True,
        ),
    ]
