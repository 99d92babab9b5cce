"""``distalign import-reference`` and ``distalign leaderboard``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from distalign import __version__
from distalign.cli._render import console, print_frame, write_frame
from distalign.metrics import gap_table, leaderboard
from distalign.metrics.aggregate import mark_undefined_gaps
from distalign.metrics.bootstrap import CI_MODES, CIMode
from distalign.metrics.common import common_items, coverage, with_item_counts
from distalign.metrics.complete import temperature_summary
from distalign.results import ITEMS_FILE, load_manifest, load_results, save_items

DEFAULT_OUT = Path("results/reference")
DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Reference data folder (else $DISTALIGN_DATA, else cache)."),
]


def import_reference(
    data_dir: DataDir = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Results folder to write.")
    ] = DEFAULT_OUT,
    mode: Annotated[str, typer.Option(help="paper, standard or both.")] = "both",
    seed: Annotated[int, typer.Option(help="Seed for simulations and folds.")] = 0,
) -> None:
    """Import the paper's raw model outputs as distalign results (paper and/or standard mode)."""
    from distalign.datasets.location import resolve_data_dir
    from distalign.reference import paper_items
    from distalign.reference.files import load_result_files
    from distalign.reference.standard import standard_baselines, standard_items

    modes = _modes(mode)
    root = resolve_data_dir(data_dir)
    results_dir = root / "results"
    with console.status("reading the paper's stored outputs"):
        loaded = load_result_files(results_dir)
    for chosen in modes:
        with console.status(f"scoring in {chosen} mode"):
            if chosen == "paper":
                frame = paper_items(results_dir, root)
            else:
                frame = pd.concat(
                    [
                        standard_items(results_dir, root, results=loaded, seed=seed),
                        standard_baselines(root, seed=seed),
                    ],
                    ignore_index=True,
                )
        manifest = _manifest(chosen, root, seed)
        save_items(frame, out / chosen, manifest)
        _report_import(frame, out / chosen)


def _report_import(frame: pd.DataFrame, where: Path) -> None:
    counts = frame.groupby("status").size().to_dict()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"wrote {len(frame)} items to {where} ({summary})")


def _manifest(mode: str, data_dir: Path, seed: int) -> dict[str, object]:
    return {
        "kind": "reference-import",
        "mode": mode,
        "distalign_version": __version__,
        "data_dir": str(data_dir),
        "seed": seed,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": "nicolemeister/benchmarking-distributional-alignment@"
        "36869b56b214b5ddce13dc234d62b4cbce3706cd",
    }


def _modes(mode: str) -> list[str]:
    if mode == "both":
        return ["paper", "standard"]
    if mode not in ("paper", "standard"):
        raise typer.BadParameter("mode must be paper, standard or both")
    return [mode]


def leaderboard_command(
    results: Annotated[
        list[Path] | None, typer.Argument(help="Results folders (default: the reference import).")
    ] = None,
    ci: Annotated[
        str, typer.Option(help="CI mode for standard results: cluster, question, iid.")
    ] = "cluster",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write CSV/JSON.")
    ] = None,
    with_humans: Annotated[
        bool, typer.Option(help="Also print Table 2: Verbalize vs the paper's human annotators.")
    ] = False,
    common_items: Annotated[
        bool | None,
        typer.Option(
            "--common-items/--all-items",
            help="When the folders cover different items: score every row on the (dataset, "
            "group, question, steering) items all folders share, or on all of its own items "
            "(default: all, with a note).",
        ),
    ] = None,
) -> None:
    """Main leaderboard (model x method, persona + few-shot, mean over datasets) with CIs."""
    if ci not in CI_MODES:
        raise typer.BadParameter(f"--ci must be one of {', '.join(CI_MODES)}")
    folders = results or [DEFAULT_OUT / "paper", DEFAULT_OUT / "standard"]
    hint = (
        "`distalign run` or `distalign import-reference`"
        if results
        else "`distalign import-reference`"
    )
    boards, temperatures = {}, {}
    for mode, items in _items_by_mode(folders, hint).items():
        items = _comparable(items, common_items)
        boards[mode] = _board(items, mode, ci, n_boot, seed)  # type: ignore[arg-type]
        temperatures[mode] = temperature_summary(items)
    target = out or folders[0].parent
    for mode, (board, baselines, gaps) in boards.items():
        _show(mode, board, baselines, gaps, target)
        _show_temperatures(mode, temperatures[mode], target)
    if with_humans:
        _humans_table(folders, target, n_boot, seed)
    from distalign.cli._position import show_position_bias  # runs with --option-orders > 1

    show_position_bias(folders, target, ci=ci, n_boot=n_boot, seed=seed)  # type: ignore[arg-type]
    from distalign.cli._knowledge import show_knowledge_tables  # gap split, steerability

    show_knowledge_tables(folders, target, ci=ci, n_boot=n_boot, seed=seed)
    if {"paper", "standard"} <= set(boards) and not any(b[0].empty for b in boards.values()):
        side = side_by_side(boards["paper"][0], boards["standard"][0])
        side = side.drop(columns=[c for c in ("model_name",) if c in side])
        print_frame(
            side, "Paper vs standard mode (same replies, different rules)", list(side.columns)
        )
        write_frame(side, target, "leaderboard_paper_vs_standard")
    console.print(f"tables written to {target}/")


def _items(folder: Path, hint: str) -> pd.DataFrame:
    """The items of one results folder; a missing folder or an empty table is an error."""
    from distalign.report.tables import NoResultsError

    if not folder.exists():
        raise NoResultsError(f"no results in {folder}: it does not exist; run {hint} first")
    file = folder / ITEMS_FILE if folder.is_dir() else folder
    if not file.exists():
        raise NoResultsError(f"no results in {folder} (no {ITEMS_FILE}): run {hint} first")
    items = load_results(folder)
    if items.empty:
        raise NoResultsError(f"no results in {folder} (the items table is empty): run {hint} first")
    return items


def _items_by_mode(folders: list[Path], hint: str) -> dict[str, pd.DataFrame]:
    """Each mode's items over every folder, completed with TS-Log-p and baselines."""
    from distalign.report.complete import dedupe_baselines, with_complement
    from distalign.report.items import disambiguate

    frames: dict[str, list[pd.DataFrame]] = {}
    for folder in folders:
        items = _items(folder, hint)  # NoResultsError (a DistalignError) when there are none
        manifest = load_manifest(folder)
        mode = str(manifest.get("mode", "standard"))
        completed = with_complement(folder, items, manifest).assign(source=str(folder))
        frames.setdefault(mode, []).append(completed)
    return {
        mode: disambiguate(dedupe_baselines(pd.concat(parts, ignore_index=True)))
        for mode, parts in frames.items()
    }


def _comparable(items: pd.DataFrame, common: bool | None) -> pd.DataFrame:
    """Say when the folders cover different items; restrict to the shared ones if asked."""
    shared = coverage(items)
    if not shared.differ:
        return items
    console.print(shared.message(), markup=False)
    if common:
        console.print("every row below is scored on the shared items only (--common-items)")
        return common_items(items)
    console.print(
        "rows below average over different items and are not comparable cell for cell: "
        "pass --common-items to score them on the shared items only"
    )
    return items


def _show_temperatures(mode: str, table: pd.DataFrame, target: Path) -> None:
    from distalign.reference.files import MODEL_DISPLAY_NAMES

    if table.empty:
        return
    table = table.assign(model=table["model"].map(lambda m: MODEL_DISPLAY_NAMES.get(m, m)))
    columns = ["model", "dataset", "steering", "temperatures", "n_scaled"]
    print_frame(
        table, f"TS-Log-p temperatures (cross-fit over question folds) [{mode} mode]", columns
    )
    write_frame(table, target, f"temperatures_{mode}")


def _humans_table(folders: list[Path], target: Path, n_boot: int, seed: int) -> None:
    from distalign.reference.files import MODEL_DISPLAY_NAMES
    from distalign.reference.humans import human_items, table2

    paper = [f for f in folders if load_manifest(f).get("mode") == "paper"]
    if not paper:
        raise typer.BadParameter("--with-humans needs a paper-mode reference import folder")
    data_dir = Path(str(load_manifest(paper[0])["data_dir"]))
    board = table2(load_results(paper[0]), human_items(data_dir), n_boot=n_boot, seed=seed)
    board["model"] = board["model"].map(lambda m: MODEL_DISPLAY_NAMES.get(m, m))
    columns = ["model", "method", "mean", "ci_low", "ci_high", "n_opinionqa", "n_nytimes"]
    print_frame(board, "Table 2: Verbalize vs humans, OpinionQA + NYT [paper mode]", columns)
    write_frame(board, target, "table2_humans")


def _board(
    items: pd.DataFrame, mode: str, ci: CIMode, n_boot: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    if mode == "paper":
        from distalign.reference import paper_baselines, paper_gap, paper_leaderboard

        board = paper_leaderboard(items, n_boot=n_boot, seed=seed)
        has_both = not board.empty and {"verbalize", "sequence"} <= set(board["method"])
        # Verbalize's mean TV of 0 leaves the ratio undefined: NaN with a note, not inf.
        gaps = mark_undefined_gaps(paper_gap(board)) if has_both else pd.DataFrame()
        return board, paper_baselines(items, n_boot=n_boot, seed=seed), gaps
    models = items[items["model"] != "baseline"]
    board = leaderboard(models, ci_mode=ci, n_boot=n_boot, seed=seed)
    baselines = leaderboard(
        items[items["model"] == "baseline"], steerings=None, ci_mode=ci, n_boot=n_boot, seed=seed
    )
    return board, baselines, gap_table(models, ci_mode=ci, n_boot=n_boot, seed=seed)


def _show(
    mode: str, board: pd.DataFrame, baselines: pd.DataFrame, gaps: pd.DataFrame, target: Path
) -> None:
    from distalign.reference.files import MODEL_DISPLAY_NAMES

    for frame in (board, gaps):
        if "model" in frame:
            frame["model"] = frame["model"].map(lambda m: MODEL_DISPLAY_NAMES.get(m, m))
    board = with_item_counts(board)
    columns = [
        c for c in ("model", "method", "mean", "ci_low", "ci_high", "half_width") if c in board
    ]
    counts = ("n_items", "n_scored", "n_parse_failures", "n_request_failures", "failure_rate")
    extra = [c for c in counts if c in board]
    ci_mode = board["ci_mode"].iloc[0] if "ci_mode" in board and len(board) else mode
    print_frame(board, f"Leaderboard [{mode} mode, CI: {ci_mode}]", columns + extra)
    print_frame(
        baselines,
        f"Baselines [{mode} mode]",
        columns + [c for c in ("n_scored",) if c in baselines],
    )
    gap_columns = [
        c
        for c in ("model", "steering", "verbalize", "sequence", "gap", "ci_low", "ci_high")
        if c in gaps
    ]
    if "note" in gaps and gaps["note"].fillna("").astype(str).str.len().gt(0).any():
        gap_columns.append("note")  # why a gap is undefined (shown as –)
    print_frame(gaps, f"Knowledge-to-simulation gap A(Seq)/A(V) - 1 [{mode} mode]", gap_columns)
    for name, frame in (("leaderboard", board), ("baselines", baselines), ("gap", gaps)):
        write_frame(frame, target, f"{name}_{mode}")


def side_by_side(paper: pd.DataFrame, standard: pd.DataFrame) -> pd.DataFrame:
    """Paper- and standard-mode means per (model, method), their difference and ranks."""
    keep = ["model", "method", "mean", "half_width"]
    merged = paper[keep].merge(
        standard[keep], on=["model", "method"], suffixes=("_paper", "_standard")
    )
    merged["delta"] = merged["mean_standard"] - merged["mean_paper"]
    for side in ("paper", "standard"):
        merged[f"rank_{side}"] = (
            merged.groupby("method")[f"mean_{side}"].rank(method="min").astype(int)
        )
    return merged.sort_values(["method", "mean_paper"]).reset_index(drop=True)
