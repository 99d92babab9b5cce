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
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from distalign import __version__
from distalign.cli._render import fmt
from distalign.report import figures as fig
from distalign.report.tables import (
    BASELINE,
    ReportTable,
    Source,
    build_tables,
    display_name,
    load_items,
    modes_of,
    results_folders,
    write_tables,
)
from distalign.results import Status, load_manifest

DEFAULT_REFERENCE = Path("results/reference")  # where `distalign import-reference` writes
TEMPLATES = Path(__file__).parent / "templates"
MAX_TEXT = 6000  # characters of one reply or prompt shown; the rest is cut with a note
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
) -> Report:
    """Build the report for ``results_dirs`` into ``out_html``.

    ``with_reference`` adds the paper's reference models from an imported reference folder
    (``True``: ``results/reference``), in the modes the results use, so a new model lands in
    the paper's leaderboard. ``with_humans`` (the reference data folder) adds the paper's
    Table 2: Verbalize against the human annotators on OpinionQA + NYT. ``toy`` is a
    ``distalign toy coin`` table (file or DataFrame) for the biased-coin figure. Tables and
    figure files go to ``assets_dir`` (default ``<out_html stem>_files/``); the HTML itself
    embeds everything it shows.
    """
    items, sources = load_items(_folders(results_dirs, with_reference))
    assets = assets_dir or out_html.with_name(f"{out_html.stem}_files")
    tables = build_tables(items, n_boot=n_boot, seed=seed)
    if with_humans is not None:
        tables.insert(0, humans_table(items, with_humans, n_boot=n_boot, seed=seed))
    files = write_tables(tables, assets / "tables")
    lookup = DatasetLookup(sources)
    pending = pending_figures(items, tables, toy, stereotype_groups, lookup)
    figures = [_render_figure(p, assets / "figures") for p in pending]
    files += [p for f in figures for p in f.files]
    context = {
        "title": title,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "n_items": len(items),
        "sources": [_source_view(s) for s in sources],
        "headline_tables": [_table_view(t) for t in tables if t.headline],
        "detail_tables": [_table_view(t) for t in tables if not t.headline],
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
) -> list[_Pending]:
    """The report's figures for its first mode (standard when present: the paper mode's
    positional pairing of predictions and truths makes its calibration plots unreliable)."""
    mode = modes_of(items)[0]
    mine = items[items["mode"] == mode]
    named = {t.name: t.frame for t in tables}
    pending = [
        _Pending(
            "tv_per_method",
            f"Mean TV per method per model [{mode} mode]",
            "Bars: mean TV over datasets (persona + few-shot) with 95% CI whiskers. Dashed "
            "lines: baselines, aggregated the same way.",
            fig.method_figure(named[f"leaderboard_{mode}_long"], named.get(f"baselines_{mode}")),
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
        pending.append(_reliability(mine, mode))
    pending.append(_majority(mine, mode))
    if (mine["dataset"] == "nytimes").any():
        pending.append(_stereotype(mine, mode, groups, lookup))
    if toy is not None:
        pending.append(_coin(toy))
    return pending


def _reliability(items: pd.DataFrame, mode: str) -> _Pending:
    return _Pending(
        "logp_reliability",
        f"Log-p reliability before and after temperature scaling [{mode} mode]",
        "Each option of each scored item is a (predicted, true) probability pair, binned by "
        "predicted probability; on the dotted diagonal a model is calibrated. ECE: the "
        "count-weighted mean gap between the two.",
        fig.reliability_figure(items),
    )


def _majority(items: pd.DataFrame, mode: str) -> _Pending:
    return _Pending(
        "majority_scatter",
        f"Predicted vs true probability of the majority answer [{mode} mode]",
        "One point per question (mean over its groups, persona + few-shot). Points below the "
        "diagonal under-weight the answer most of the group gave.",
        fig.majority_scatter(items),
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


# --- datasets: question texts, option labels, rebuilt prompts -------------------------------


class DatasetLookup:
    """Question texts (and, for runs, rebuilt prompts) from the datasets the results name.

    Best effort: the results table does not store question texts or prompts, so they come from
    the data folder recorded in each manifest; a folder that is gone leaves them blank.
    """

    def __init__(self, sources: Iterable[Source]) -> None:
        self.manifests = {str(s.path): s.manifest for s in sources}

    def question(self, source: str, dataset: str, question_id: str) -> Any | None:
        data = self.dataset(_data_dir(self.manifests.get(source, {})), dataset)
        return None if data is None else data.questions.get(question_id)

    def options(self, dataset: str, question_id: str) -> list[str] | None:
        for manifest in self.manifests.values():
            data = self.dataset(_data_dir(manifest), dataset)
            if data is not None and question_id in data.questions:
                return list(data.questions[question_id].options)
        return None

    @staticmethod
    @cache
    def dataset(data_dir: str | None, name: str) -> Any | None:
        from distalign.datasets import load_dataset

        if data_dir is None or not Path(data_dir).exists():
            return None
        try:
            return load_dataset(name, data_dir)
        except (OSError, ValueError, KeyError):
            return None

    def prompt(self, source: str, row: pd.Series) -> str | None:
        """The prompt a run sent, rebuilt with the run's settings (runs only)."""
        manifest = self.manifests.get(source, {})
        if manifest.get("kind") != "run":
            return None
        question = self.question(source, str(row["dataset"]), str(row["question_id"]))
        dataset = self.dataset(_data_dir(manifest), str(row["dataset"]))
        if question is None or dataset is None:
            return None
        return _rebuild_prompt(manifest, dataset, question, row)


def _data_dir(manifest: dict[str, Any]) -> str | None:
    value = manifest.get("data_dir") or manifest.get("config", {}).get("data_dir")
    return None if value is None else str(value)


def _rebuild_prompt(manifest: dict[str, Any], dataset: Any, question: Any, row: pd.Series) -> str:
    from distalign.data import Group
    from distalign.steering import build_prompt

    config = manifest.get("config", {})
    steering = str(row["steering"])
    method = "logp" if row["method"] == "ts_logp" else str(row["method"])
    seed = row.get("seed")
    prompt = build_prompt(
        dataset,
        question,
        None if steering == "none" else Group.parse(str(row["group"])),
        steering,  # type: ignore[arg-type]
        method,
        mode=config.get("prompt_mode", "standard"),
        n_sequence=int(config.get("n") or 30),
        seed=int(seed) if seed is not None and pd.notna(seed) else 0,
    )
    return messages_text(prompt.messages)


def messages_text(messages: Any) -> str:
    """Chat messages as plain text, one ``[role]`` block per message."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, np.ndarray):
        messages = messages.tolist()
    if isinstance(messages, list):
        return "\n\n".join(
            f"[{m.get('role', '?')}]\n{m.get('content', '')}" if isinstance(m, dict) else str(m)
            for m in messages
        )
    return str(messages)


# --- views: plain strings for the template ---------------------------------------------------


def _table_view(table: ReportTable) -> dict[str, Any]:
    frame, columns = table.frame, table.shown
    numeric = [c in frame and bool(pd.api.types.is_numeric_dtype(frame[c])) for c in columns]
    rows = [[fmt(row[c]) for c in columns] for _, row in frame.iterrows()]
    return {
        "name": table.name,
        "title": table.title,
        "note": table.note,
        "columns": columns,
        "numeric": numeric,
        "rows": rows,
        "collapsed": table.collapsed,
    }


MANIFEST_FACTS = (
    "kind",
    "mode",
    "prompt_mode",
    "created",
    "distalign_version",
    "template_version",
    "python",
    "machine",
    "seed",
    "seeds",
    "config_sha256",
    "data_dir",
    "source",
)


def _source_view(source: Source) -> dict[str, Any]:
    manifest = source.manifest
    facts = [(k, _short(manifest[k])) for k in MANIFEST_FACTS if k in manifest]
    facts.append(("models", ", ".join(_models(manifest)) or "(see items)"))
    return {
        "path": str(source.path),
        "modes": ", ".join(source.modes),
        "facts": facts,
        "json": json.dumps(manifest, indent=2, default=str, sort_keys=True),
    }


def _models(manifest: dict[str, Any]) -> list[str]:
    identity = manifest.get("model_identity") or {}
    if isinstance(identity, dict) and "backend" in identity:  # one model (older manifests)
        identity = {identity.get("model", "?"): identity}
    names = [
        f"{name} ({info.get('model', '')}, {info.get('runtime', info.get('backend', ''))})"
        if isinstance(info, dict)
        else str(name)
        for name, info in identity.items()
    ]
    configured = manifest.get("config", {}).get("models", [])
    return names or [str(m) for m in configured]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "…"


def sample_views(
    items: pd.DataFrame, lookup: DatasetLookup, per_config: int, seed: int
) -> list[dict[str, Any]]:
    """A few items per (mode, model, method, steering), failures first, seeded."""
    views = []
    keys = ["mode", "model", "method", "steering"]
    models = items[items["model"] != BASELINE]
    for key, part in models.groupby(keys, sort=True):
        mode, model, method, steering = (str(k) for k in key)
        failures = int((part["status"].astype(str) != Status.OK).sum())
        views.append(
            {
                "label": f"{display_name(model)} · {method} · {steering} [{mode}]",
                "n_items": len(part),
                "n_failures": failures,
                "items": [_item_view(r, lookup) for _, r in _pick(part, per_config, seed)],
            }
        )
    return views


def _pick(part: pd.DataFrame, k: int, seed: int) -> Iterable[tuple[Any, pd.Series]]:
    bad = part[part["status"].astype(str) != Status.OK]
    good = part[part["status"].astype(str) == Status.OK]
    n_bad = min(len(bad), max(1, k // 3)) if k else 0
    picked = pd.concat(
        [
            bad.sample(n_bad, random_state=seed),
            good.sample(min(len(good), k - n_bad), random_state=seed),
        ]
    )
    return picked.iterrows()


def _item_view(row: pd.Series, lookup: DatasetLookup) -> dict[str, Any]:
    source = str(row.get("source", ""))
    question = lookup.question(source, str(row["dataset"]), str(row["question_id"]))
    text = row.get("question_text") if "question_text" in row else None
    if text is None and question is not None:
        text = question.text
    prompt = row.get("prompt") if "prompt" in row else None
    rebuilt = prompt is None
    if rebuilt:
        prompt = lookup.prompt(source, row)
    return {
        "where": f"{row['dataset']} · {row['group']} · {row['question_id']}",
        "status": str(row["status"]),
        "tv": fmt(row.get("tv")),
        "question": _clip(text),
        "options": _options(row, question),
        "prompt": _clip(messages_text(prompt) if prompt is not None else None),
        "prompt_rebuilt": rebuilt and prompt is not None,
        "raw": _clip(_raw_text(row.get("raw"))),
        "detail": _clip(row.get("detail")),
    }


def _options(row: pd.Series, question: Any) -> list[tuple[str, str, str, str]]:
    letters = list(row["letters"]) if row["letters"] is not None else []
    pred = list(row["pred"]) if row["pred"] is not None else []
    truth = list(row["truth"]) if row["truth"] is not None else []
    texts = list(question.options) if question is not None else []
    return [
        (
            letter,
            texts[i] if i < len(texts) else "",
            fmt(float(pred[i])) if i < len(pred) else "–",
            fmt(float(truth[i])) if i < len(truth) else "–",
        )
        for i, letter in enumerate(letters)
    ]


def _raw_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _clip(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n… [{len(text) - MAX_TEXT} more characters]"
