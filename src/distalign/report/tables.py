"""The report's tables, computed from items tables with the metrics package's statistics.

Every table is a plain DataFrame (one row per configuration or cell, raw model ids kept) so it
can be written as CSV/JSON unchanged; :class:`ReportTable` adds the title and the columns a
reader sees in Markdown and HTML.

Confidence intervals follow the mode of the rows: paper-mode rows use the paper's i.i.d. item
bootstrap (its main leaderboard goes through ``paper_leaderboard`` to keep its quirks),
standard-mode rows the two-way cluster bootstrap of :mod:`distalign.metrics.bootstrap`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distalign.cli._render import fmt, write_frame
from distalign.errors import DistalignError
from distalign.metrics.aggregate import (
    MAIN_STEERINGS,
    PairedResult,
    gap_table,
    item_table,
    leaderboard,
    mark_undefined_gaps,
    paired,
    select,
    table_index,
)
from distalign.metrics.bootstrap import CIMode, bootstrap_mean
from distalign.reference.files import MODEL_DISPLAY_NAMES
from distalign.results import ITEMS_FILE, METHODS, STEERINGS, Status, load_manifest, load_results

BASELINE = "baseline"
LOGP_METHODS = ("logp", "ts_logp")
USAGE_WORDS = ("token", "cost")  # columns naming either are summed in the diagnostics table
CI_COLUMNS = ["mean", "ci_low", "ci_high"]
COUNT_COLUMNS = ["n_scored", "n_parse_failures", "n_request_failures", "failure_rate"]


class NoResultsError(DistalignError, FileNotFoundError):
    """A results folder that is missing, holds no items table, or whose items table is empty."""


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

    @property
    def shown(self) -> list[str]:
        return [c for c in self.columns if c in self.frame] or list(self.frame.columns)


# --- loading -------------------------------------------------------------------------------


def results_folders(path: Path) -> list[Path]:
    """A results folder itself, or the results folders directly inside it (an import root).

    Raises :class:`NoResultsError` when ``path`` does not exist or holds no results.
    """
    if not path.exists():
        raise NoResultsError(f"no results in {path}: it does not exist; run `distalign run` first")
    if (path / ITEMS_FILE).exists() or path.suffix == ".parquet":
        return [path]
    found = sorted(p for p in path.glob(f"*/{ITEMS_FILE}"))
    if not found:
        raise NoResultsError(
            f"no results in {path} (no {ITEMS_FILE} in it or its subfolders): "
            "run `distalign run` first"
        )
    return [p.parent for p in found]


@dataclass(frozen=True)
class Source:
    """One loaded results folder."""

    path: Path
    manifest: dict[str, Any]
    modes: list[str]


def load_items(paths: Iterable[Path]) -> tuple[pd.DataFrame, list[Source]]:
    """Concatenate the items of several results folders, tagging each row with its ``source``.

    A model id found in more than one folder of the same mode gets the folder name appended,
    so two runs of one model stay two configurations instead of overwriting each other's cells.
    """
    frames, sources, seen = [], [], set()
    for folder in (f for p in paths for f in results_folders(Path(p))):
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        frame = load_results(folder)
        frame["source"] = str(folder)
        frames.append(frame)
        sources.append(Source(folder, load_manifest(folder), sorted(set(frame["mode"]))))
    if not frames:
        raise NoResultsError("no results folders given: run `distalign run` first")
    items = pd.concat(frames, ignore_index=True)
    if items.empty:
        where = ", ".join(str(s.path) for s in sources)
        raise NoResultsError(
            f"no results in {where} (the items table is empty): run `distalign run` first"
        )
    return _disambiguate(items), sources


def _disambiguate(items: pd.DataFrame) -> pd.DataFrame:
    owners = items.groupby(["mode", "model"])["source"].nunique()
    clashing = {key for key, count in owners.items() if count > 1}
    if not clashing:
        return items
    keys = list(zip(items["mode"], items["model"], strict=True))
    items["model"] = [
        f"{model} ({Path(src).name})" if key in clashing and model != BASELINE else model
        for key, model, src in zip(keys, items["model"], items["source"], strict=True)
    ]
    return items


def display_name(model: Any) -> str:
    return MODEL_DISPLAY_NAMES.get(str(model), str(model))


def with_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a ``model_name`` column (the paper's display names) right after ``model``."""
    if "model" not in frame or "model_name" in frame:
        return frame
    out = frame.copy()
    out.insert(list(out.columns).index("model") + 1, "model_name", out["model"].map(display_name))
    return out


def ci_mode_for(mode: str) -> CIMode:
    return "iid" if mode == "paper" else "cluster"


def models_only(items: pd.DataFrame) -> pd.DataFrame:
    return items[items["model"] != BASELINE]


def baselines_only(items: pd.DataFrame) -> pd.DataFrame:
    return items[items["model"] == BASELINE]


# --- leaderboards --------------------------------------------------------------------------


def main_leaderboard(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Model × method, persona + few-shot pooled, mean over datasets with a 95% CI."""
    models = models_only(items)
    if models.empty:
        return pd.DataFrame()
    if mode == "paper":
        from distalign.reference import paper_leaderboard

        return with_names(paper_leaderboard(models, n_boot=n_boot, seed=seed))
    board = leaderboard(models, ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed)
    return with_names(_method_order(board))


def baseline_board(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """The baselines aggregated like a model (paper mode: the paper's own baselines)."""
    if mode == "paper":
        from distalign.reference import paper_baselines

        if models_only(items).empty:
            return pd.DataFrame()
        return paper_baselines(items, n_boot=n_boot, seed=seed)
    rows = baselines_only(items)
    if rows.empty:
        return pd.DataFrame()
    # Baselines are unsteered rows, so every steering is kept.
    return leaderboard(rows, steerings=None, ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed)


def gap(
    items: pd.DataFrame, board: pd.DataFrame, mode: str, *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Knowledge-to-simulation gap A(Sequence)/A(Verbalize) − 1 per model (and steering)."""
    if mode == "paper":
        from distalign.reference import paper_gap

        has_both = not board.empty and {"verbalize", "sequence"} <= set(board["method"])
        # Verbalize's mean TV of 0 leaves the ratio undefined: NaN with a note, not inf.
        return mark_undefined_gaps(paper_gap(board)) if has_both else pd.DataFrame()
    gaps = gap_table(models_only(items), ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed)
    return with_names(gaps)


def wide_leaderboard(board: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 layout: one row per model, one ``mean [low, high]`` cell per method."""
    if board.empty:
        return pd.DataFrame()
    cells = board.assign(cell=[_ci_cell(row) for _, row in board.iterrows()])
    wide = cells.pivot_table(index="model", columns="method", values="cell", aggfunc="first")
    order = [m for m in METHODS if m in wide.columns] + [
        m for m in wide.columns if m not in METHODS
    ]
    wide = wide[order].reset_index()
    wide.columns.name = None
    if "datasets" in board:
        # A model scored on fewer datasets is not comparable cell for cell: say which it had.
        covered = board.groupby("model")["datasets"].agg(_union)
        wide["datasets"] = wide["model"].map(covered)
    return with_names(wide).fillna("–")


def _union(values: pd.Series) -> str:
    names = {n for v in values.dropna() for n in str(v).split(",") if n}
    return ",".join(sorted(names))


def _ci_cell(row: pd.Series) -> str:
    return f"{fmt(row['mean'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]"


def _method_order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(METHODS)}
    key = frame["method"].map(lambda m: rank.get(str(m), len(rank)))
    return frame.assign(_order=key).sort_values(["_order", "mean"]).drop(columns="_order")


# --- breakdowns ----------------------------------------------------------------------------


def breakdown(
    items: pd.DataFrame, mode: str, by: Sequence[str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Mean TV with a CI for every (model, method) within each cell of ``by``.

    ``by=("dataset", "steering")`` is the paper's appendix table; ``("dataset", "group")``
    pools persona + few-shot per group (baselines keep their unsteered rows).
    """
    chosen = items if "steering" in by else _steered(items)
    rows = []
    for key, part in chosen.groupby(list(by), sort=True):
        board = leaderboard(
            part, steerings=None, ci_mode=ci_mode_for(mode), n_boot=n_boot, seed=seed
        )
        cell = {name: str(value) for name, value in zip(by, key, strict=True)}
        rows.append(board.assign(**cell))
    if not rows:
        return pd.DataFrame()
    keep = ["mode", "model", "method", *by, *CI_COLUMNS, *COUNT_COLUMNS]
    frame = pd.concat(rows, ignore_index=True)
    return with_names(frame[[c for c in keep if c in frame]])


def _steered(items: pd.DataFrame) -> pd.DataFrame:
    """Model rows under persona + few-shot, and every baseline row."""
    models = select(models_only(items), MAIN_STEERINGS)
    return pd.concat([models, baselines_only(items)], ignore_index=True)


def steering_summary(items: pd.DataFrame, mode: str, *, n_boot: int, seed: int) -> pd.DataFrame:
    """Mean TV per (dataset, steering), pooled over every model × method that ran them all.

    Only configurations that ran every steering of a dataset enter it, so the steerings are
    compared on the same configurations. The configurations become the third axis of the item
    table, so the cluster bootstrap still resamples questions and groups, not configurations.
    """
    rows = []
    for dataset, part in models_only(items).groupby("dataset", sort=True):
        for steering, chosen in _complete_configs(part).groupby("steering", sort=False):
            as_axis = chosen.assign(steering=chosen["model"] + "/" + chosen["method"])
            table = item_table(as_axis, table_index(as_axis))
            if not np.isfinite(table).any():
                continue
            interval = bootstrap_mean([table], n_boot=n_boot, seed=seed, mode=ci_mode_for(mode))
            rows.append(
                {
                    "mode": mode,
                    "dataset": dataset,
                    "steering": steering,
                    "mean": interval.mean,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "n_configurations": int(as_axis["steering"].nunique()),
                }
            )
    return _steering_order(pd.DataFrame(rows))


def _complete_configs(part: pd.DataFrame) -> pd.DataFrame:
    steerings = set(part["steering"])
    config = part["model"] + "/" + part["method"]
    covered = part.groupby(config)["steering"].nunique()
    complete = set(covered[covered == len(steerings)].index)
    return part[config.isin(complete)]


def _steering_order(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    rank = {s: i for i, s in enumerate(STEERINGS)}
    key = frame["steering"].map(lambda s: rank.get(str(s), len(rank)))
    return frame.assign(_o=key).sort_values(["dataset", "_o"]).drop(columns="_o")


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


def _usage(part: pd.DataFrame) -> dict[str, float]:
    out = {}
    for column in part.columns:
        if any(word in column.lower() for word in USAGE_WORDS):
            values = pd.to_numeric(part[column], errors="coerce")
            if values.notna().any():
                out[f"{column}_total"] = float(values.sum())
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


# --- paired comparisons ------------------------------------------------------------------------

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.text,
            "b": self.b.text,
            "label_a": self.label_a,
            "label_b": self.label_b,
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
    return Comparison(sel_a, sel_b, _label(frame_a), _label(frame_b), result)


def _label(frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    steerings = "+".join(s for s in STEERINGS if s in set(frame["steering"]))
    return f"{display_name(row['model'])} · {row['method']} · {steerings} [{row['mode']}]"


# --- writing -------------------------------------------------------------------------------


def to_markdown(table: ReportTable, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table of the shown columns (pipes and newlines escaped)."""
    frame, columns = table.frame, table.shown
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


def comparison_json(comparison: Comparison) -> str:
    return json.dumps(comparison.as_dict(), indent=2, default=str) + "\n"


# --- the report's table set ----------------------------------------------------------------

BOARD_COLUMNS = ["model_name", "method", *CI_COLUMNS, *COUNT_COLUMNS, "datasets"]
MODE_ORDER = ("standard", "paper")


def modes_of(items: pd.DataFrame) -> list[str]:
    present = set(items["mode"].astype(str))
    return [m for m in MODE_ORDER if m in present] + sorted(present - set(MODE_ORDER))


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


def diagnostics_usage_columns(items: pd.DataFrame) -> list[str]:
    return [f"{c}_total" for c in items.columns if any(w in c.lower() for w in USAGE_WORDS)]


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
