"""One self-contained HTML report: tables, figures, run manifests and sampled replies.

The file needs nothing but itself: figures are base64 PNGs, the CSS is inline, and there is no
script at all (folding uses ``<details>``). A Content-Security-Policy forbids scripts and any
remote load, as a second line of defence behind escaping. Everything a model or a dataset
wrote (replies, prompts, question texts, group and model names, manifest values) reaches the
page only through Jinja2 with autoescaping on; the template never marks data ``|safe``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from distalign import __version__
from distalign.report import figures as fig
from distalign.report.common import (
    Shortfall,
    comparable_items,
    fewer_items,
    fewer_note,
    flag_table,
    flagged_names,
)
from distalign.report.items import (
    BASELINE,
    Source,
    display_name,
    load_items,
    modes_of,
    results_folders,
)
from distalign.report.knowledge import knowledge_tables
from distalign.report.lookup import DatasetLookup, messages_text
from distalign.report.position import position_figures, position_tables
from distalign.report.tables import ReportTable, build_tables, write_tables
from distalign.report.views import (
    MANIFEST_FACTS,
    MAX_TEXT,
    sample_views,
    source_view,
    table_view,
)
from distalign.results import load_manifest

__all__ = [
    "DEFAULT_REFERENCE",
    "MANIFEST_FACTS",
    "MAX_TEXT",
    "STEREOTYPE_GROUPS",
    "TEMPLATES",
    "DatasetLookup",
    "Report",
    "ReportFigure",
    "Source",
    "build_report",
    "humans_table",
    "messages_text",
    "pending_figures",
    "render",
    "sample_views",
]

DEFAULT_REFERENCE = Path("results/reference")  # where `distalign import-reference` writes
TEMPLATES = Path(__file__).parent / "templates"
STEREOTYPE_GROUPS = ("POLPARTY=Democrat", "POLPARTY=Republican")


@dataclass(frozen=True)
class ReportFigure:
    name: str
    title: str
    caption: str
    png_base64: str
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    html: Path
    tables: list[ReportTable]
    figures: list[ReportFigure]
    assets: Path  # the folder holding the files below
    files: list[Path]  # the tables (CSV, JSON, Markdown) and figures (PNG, SVG)


def humans_table(items: pd.DataFrame, data_dir: Path, *, n_boot: int, seed: int) -> ReportTable:
    """Table 2: each paper-mode model's Verbalize beside the paper's human annotators."""
    from distalign.reference.files import MODEL_DISPLAY_NAMES
    from distalign.reference.humans import human_items, table2

    paper = items[items["mode"] == "paper"]
    board = table2(paper, human_items(data_dir), n_boot=n_boot, seed=seed)
    board["model"] = board["model"].map(lambda m: MODEL_DISPLAY_NAMES.get(m, m))
    return ReportTable(
        "table2_humans",
        "Verbalize vs humans on OpinionQA + NYT [paper mode]",
        board,
        ["model", "method", "mean", "ci_low", "ci_high", "n_opinionqa", "n_nytimes"],
        note="Humans estimated each group's distribution with sliders (first 4 annotators per "
        "item, as the paper). Only paper-mode model rows enter: add --with-reference.",
        headline=True,
    )


def build_report(
    results_dirs: Sequence[Path],
    out_html: Path = Path("report.html"),
    with_reference: bool | Path = False,
    *,
    toy: Path | pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    samples_per_config: int = 3,
    stereotype_groups: tuple[str, str] = STEREOTYPE_GROUPS,
    assets_dir: Path | None = None,
    title: str = "distalign report",
    with_humans: Path | None = None,
    common_items: bool | None = None,
) -> Report:
    """Build the report for ``results_dirs`` into ``out_html``.

    ``with_reference`` adds the paper's reference models from an imported reference folder
    (``True``: ``results/reference``), in the modes the results use, so a new model lands in
    the paper's leaderboard. ``with_humans`` (the reference data folder) adds the paper's
    Table 2: Verbalize against the human annotators on OpinionQA + NYT. When the folders
    cover different items, every row is scored on the items they share unless
    ``common_items`` is False (:mod:`distalign.report.common`). ``toy`` is a
    ``distalign toy coin`` table (file or DataFrame) for the biased-coin figure. Tables and
    figure files go to ``assets_dir`` (default ``<out_html stem>_files/``); the HTML itself
    embeds everything it shows.
    """
    items, sources = load_items(_folders(results_dirs, with_reference))
    items, coverage = comparable_items(items, common_items)  # shared items when sets differ
    assets = assets_dir or out_html.with_name(f"{out_html.stem}_files")
    tables = build_tables(items, n_boot=n_boot, seed=seed)
    tables[:0] = [coverage] if coverage is not None else []
    tables += position_tables(sources, n_boot=n_boot, seed=seed)  # runs with option orders
    tables += knowledge_tables(items, sources, n_boot=n_boot, seed=seed)  # gap split, steering
    if with_humans is not None:
        tables.insert(0, humans_table(items, with_humans, n_boot=n_boot, seed=seed))
    short = fewer_items(items)  # models evaluated on fewer items than the others: flagged
    tables = [flag_table(t, short, modes_of(items)) for t in tables]
    files = write_tables(tables, assets / "tables")  # CSV/JSON keep the unflagged frames
    lookup = DatasetLookup(sources)
    pending = pending_figures(items, tables, toy, stereotype_groups, lookup, short)
    figures = [_render_figure(p, assets / "figures") for p in pending]
    files += [p for f in figures for p in f.files]
    context = {
        "title": title,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "n_items": len(items),
        "sources": [source_view(s) for s in sources],
        "headline_tables": [table_view(t) for t in tables if t.headline],
        "detail_tables": [table_view(t) for t in tables if not t.headline],
        "figures": figures,
        "samples": sample_views(items, lookup, samples_per_config, seed),
        "assets": str(assets),
    }
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(render(context), encoding="utf-8")
    return Report(out_html, tables, figures, assets, files)


def render(context: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every {{ }} is HTML-escaped; data is never marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**context)


def _folders(results_dirs: Sequence[Path], with_reference: bool | Path) -> list[Path]:
    folders = [f for p in results_dirs for f in results_folders(Path(p))]
    if with_reference is False:
        return folders
    root = DEFAULT_REFERENCE if with_reference is True else Path(with_reference)
    reference = results_folders(root)
    wanted = {m for f in folders for m in _modes_of_folder(f)}
    # Reference rows join only the modes the user's results use (all when there are none).
    return folders + [r for r in reference if not wanted or set(_modes_of_folder(r)) & wanted]


def _modes_of_folder(folder: Path) -> list[str]:
    mode = load_manifest(folder).get("mode")
    if mode:
        return [str(mode)]
    frame = pd.read_parquet(folder / "items.parquet", columns=["mode"])
    return sorted(set(frame["mode"].astype(str)))


# --- figures -------------------------------------------------------------------------------


@dataclass
class _Pending:
    name: str
    title: str
    caption: str
    figure: Figure


def pending_figures(
    items: pd.DataFrame,
    tables: Sequence[ReportTable],
    toy: Path | pd.DataFrame | None,
    groups: tuple[str, str],
    lookup: DatasetLookup,
    short: Shortfall | None = None,
) -> list[_Pending]:
    """The report's figures for its first mode (standard when present: the paper mode's
    positional pairing of predictions and truths makes its calibration plots unreliable).
    Models of ``short`` (:func:`~distalign.report.common.fewer_items`) are flagged in the
    legends and captions."""
    mode = modes_of(items)[0]
    mine = items[items["mode"] == mode]
    named = {t.name: t.frame for t in tables}
    names = flagged_names(short or {}, mode, set(mine["model"].astype(str)))
    pending = [
        _Pending(
            "tv_per_method",
            f"Mean TV per method per model [{mode} mode]",
            "Bars: mean TV over datasets (persona + few-shot) with 95% CI whiskers. Dashed "
            "lines: baselines, aggregated the same way.",
            fig.method_figure(
                named[f"leaderboard_{mode}_long"], named.get(f"baselines_{mode}"), names
            ),
        ),
        _Pending(
            "tv_per_steering",
            f"Mean TV per steering per dataset [{mode} mode]",
            "Pooled over every model × method that ran all the dataset's steerings; whiskers "
            "are 95% CIs.",
            fig.steering_figure(named[f"steering_{mode}"]),
        ),
    ]
    if mine["method"].isin(("logp", "ts_logp")).any():
        pending.append(_reliability(mine, mode, names))
    pending.append(_majority(mine, mode, names))
    pending += [_Pending(*p) for p in position_figures(named, names)]
    if (mine["dataset"] == "nytimes").any():
        pending.append(_stereotype(mine, mode, groups, lookup))
    if toy is not None:
        pending.append(_coin(toy))
    return [_flag_caption(p, short or {}, mode) for p in pending]


def _flag_caption(pending: _Pending, short: Shortfall, mode: str) -> _Pending:
    """The fewer-items note under a figure whose legend shows a flagged model."""
    legends = [*pending.figure.legends, *(a.get_legend() for a in pending.figure.get_axes())]
    texts = [t.get_text() for legend in legends if legend is not None for t in legend.texts]
    flagged = [
        (display_name(model), hit)
        for (m, model), hit in short.items()
        if m == mode and any(flagged_names(short, mode, [model])[model] in t for t in texts)
    ]
    if flagged:
        pending.caption = f"{pending.caption} {fewer_note(flagged)}"
    return pending


def _reliability(items: pd.DataFrame, mode: str, names: Mapping[Any, str]) -> _Pending:
    return _Pending(
        "logp_reliability",
        f"Log-p reliability before and after temperature scaling [{mode} mode]",
        "Each option of each scored item is a (predicted, true) probability pair, binned by "
        "predicted probability; on the dotted diagonal a model is calibrated. ECE: the "
        "count-weighted mean gap between the two.",
        fig.reliability_figure(items, names=names),
    )


def _majority(items: pd.DataFrame, mode: str, names: Mapping[Any, str]) -> _Pending:
    return _Pending(
        "majority_scatter",
        f"Predicted vs true probability of the majority answer [{mode} mode]",
        "One point per question (mean over its groups, persona + few-shot). Points below the "
        "diagonal under-weight the answer most of the group gave.",
        fig.majority_scatter(items, names=names),
    )


def _stereotype(
    items: pd.DataFrame, mode: str, groups: tuple[str, str], lookup: DatasetLookup
) -> _Pending:
    nyt = items[(items["dataset"] == "nytimes") & (items["model"] != BASELINE)]
    method = "verbalize" if (nyt["method"] == "verbalize").any() else str(nyt["method"].iloc[0])
    candidates = fig.ordered_models(nyt.loc[nyt["method"] == method, "model"])
    # A model the user ran is the interesting one; otherwise the first of the paper's.
    own = [m for m in candidates if m not in fig.PAPER_MODELS]
    model = (own or candidates)[0]
    labels = lookup.options("nytimes", str(nyt["question_id"].iloc[0]))
    return _Pending(
        "stereotype_nytimes",
        f"Stereotype diagnostic, NYT books: {groups[0]} vs {groups[1]} [{mode} mode]",
        "Solid bars: each group's true answer distribution averaged over books; hatched bars: "
        "the distribution the model produced when steered to that group (persona). Produced "
        "marginals far apart while the true ones are close point to stereotyping.",
        fig.stereotype_figure(items, groups, model=model, method=method, labels=labels),
    )


def _coin(toy: Path | pd.DataFrame) -> _Pending:
    table = fig.read_toy_table(toy) if isinstance(toy, Path) else toy
    return _Pending(
        "coin_calibration",
        "Biased-coin calibration (distalign toy)",
        "Stated probability vs the probability each method produced (mean ± sd over repeats); "
        "a calibrated method lies on the diagonal.",
        fig.coin_figure(table),
    )


def _render_figure(pending: _Pending, out_dir: Path) -> ReportFigure:
    """Save PNG and SVG; the page embeds the very PNG that was written."""
    files = fig.save(pending.figure, out_dir, pending.name)
    png = base64.b64encode(files[0].read_bytes()).decode("ascii")
    return ReportFigure(pending.name, pending.title, pending.caption, png, files)
