"""``distalign toy coin|die``: can the model sample from a distribution it is told?"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from distalign.cli._render import console, fmt, print_frame

toy_app = typer.Typer(
    no_args_is_help=True,
    help="Toy calibration checks: a biased coin (the paper's) and a biased die.",
)

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model spec.")]
RepeatsOption = Annotated[
    int, typer.Option(min=1, help="Repetitions (seeds) per prompt for the sampled methods.")
]
NOption = Annotated[int, typer.Option(min=2, help="Flips per Sequence / answers per Samples.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Folder for cache and results.")]
MethodsOption = Annotated[
    list[str] | None,
    typer.Option("--methods", help="Methods, comma-separated or repeated; default all four."),
]


@toy_app.command("coin")
def coin_command(
    model: ModelOption = "embedded",
    repeats: RepeatsOption = 5,
    n: NOption = 30,
    out: OutOption = Path("results/toy"),
    methods: MethodsOption = None,
) -> None:
    """Biased coin: P(heads) stated as 0%, 10%, ..., 100%; what does each method produce?"""
    _run("coin", model, repeats, n, out, methods)


@toy_app.command("die")
def die_command(
    model: ModelOption = "embedded",
    repeats: RepeatsOption = 5,
    n: NOption = 30,
    out: OutOption = Path("results/toy"),
    methods: MethodsOption = None,
) -> None:
    """Biased die: uniform, one face at 50%, a ramp and random distributions over 6 faces."""
    _run("die", model, repeats, n, out, methods)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _run(name: str, model: str, repeats: int, n: int, out: Path, methods: list[str] | None) -> None:
    from distalign.toy import TOY_METHODS, check_settings, run_toy

    chosen = _split(methods) or list(TOY_METHODS)
    try:
        check_settings(chosen, repeats, n)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    started = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("model calls", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result, paths = run_toy(
            name, model=model, out=out, methods=chosen, repeats=repeats, n=n, progress=progress
        )
    stats = result.stats
    console.print(
        f"{stats.calls_total} calls: {stats.calls_cached} from cache, {stats.calls_sent} sent, "
        f"{stats.calls_failed} failed; {time.perf_counter() - started:.1f} s in all"
    )
    columns = ["method", "calibration_error", "tv", "targets_scored", "n_valid", "failures"]
    title = f"{name}: calibration error per method (mean |produced - stated|, lower is better)"
    print_frame(result.calibration, title, columns)
    if name == "coin":
        _print_coin(result.table)
    else:
        _print_die(result.table)
    console.print(f"saved in {out}/: " + ", ".join(p.name for p in paths) + ", cache.sqlite")


def _print_coin(table: pd.DataFrame) -> None:
    """Mean ± std of the produced P(heads) for each stated P(heads) and method."""
    heads = table[table["outcome"] == "H"]
    methods = list(dict.fromkeys(heads["method"]))
    view = Table(title="coin: produced P(heads), mean ± std over repetitions", title_justify="left")
    view.add_column("stated p", justify="right")
    for method in methods:
        view.add_column(method, justify="right")
    for stated in sorted(heads["stated"].unique()):
        rows = heads[heads["stated"] == stated]
        cells = [_mean_std(rows[rows["method"] == m]) for m in methods]
        view.add_row(fmt(float(stated), 1), *cells)
    console.print(view)


def _mean_std(rows: pd.DataFrame) -> str:
    if rows.empty or pd.isna(rows["produced_mean"].iloc[0]):
        return "–"
    row = rows.iloc[0]
    return f"{row['produced_mean']:.2f} ± {row['produced_std']:.2f}"


def _print_die(table: pd.DataFrame) -> None:
    """Per stated distribution: each method's mean absolute error over the six faces."""
    from distalign.toy import mean_abs_error

    methods = list(dict.fromkeys(table["method"]))
    view = Table(title="die: mean |produced - stated| over faces", title_justify="left")
    view.add_column("stated", justify="left")
    for method in methods:
        view.add_column(method, justify="right")
    for target, rows in table.groupby("target", sort=False):
        cells = []
        for method in methods:
            part = rows[rows["method"] == method]
            produced = part["produced_mean"].astype(float)
            empty = part.empty or produced.isna().any()
            cells.append("–" if empty else fmt(mean_abs_error(produced, part["stated"])))
        view.add_row(str(target), *cells)
    console.print(view)
