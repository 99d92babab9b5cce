"""``distalign run``: benchmark a model end to end (default: the embedded SmolLM2)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from distalign.cli._render import console, print_frame, write_frame


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def run_command(
    config: Annotated[Path | None, typer.Option(help="TOML file with the run settings.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model spec(s).")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d")] = None,
    steering: Annotated[list[str] | None, typer.Option("--steering", "-s")] = None,
    method: Annotated[list[str] | None, typer.Option("--method")] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="e.g. POLPARTY=Democrat")
    ] = None,
    questions: Annotated[int | None, typer.Option(help="First N questions only.")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed")] = None,
    n: Annotated[
        int | None, typer.Option(help="Letters per Sequence / answers per Samples.")
    ] = None,
    prompt_mode: Annotated[str | None, typer.Option(help="standard or paper.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the leaderboard.")] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count requests, tokens and cost; send nothing.")
    ] = False,
    prices: Annotated[Path | None, typer.Option(help="TOML/JSON file overriding prices.")] = None,
    threads: Annotated[
        int | None, typer.Option(help="llama.cpp threads (default: all cores for prompts).")
    ] = None,
) -> None:
    """Run a benchmark grid through the response cache, then print the leaderboard."""
    from distalign.runner import RunConfig, Runner

    settings: dict[str, Any] = tomllib.loads(config.read_text()) if config else {}
    flags = {
        "models": _split(model),
        "datasets": _split(dataset),
        "steerings": _split(steering),
        "methods": _split(method),
        "groups": _split(group),
        "questions": questions,
        "seeds": seed or None,
        "n": n,
        "prompt_mode": prompt_mode,
        "data_dir": str(data_dir) if data_dir else None,
        "out": str(out) if out else None,
        "prices": str(prices) if prices else None,
    }
    settings.update({k: v for k, v in flags.items() if v is not None})
    if threads is not None:
        options = dict(settings.get("backend_options", {}))
        options.update(n_threads=threads, n_threads_batch=threads)
        settings["backend_options"] = options
    try:
        run_config = RunConfig(**settings)
    except ValidationError as error:
        raise typer.BadParameter(str(error)) from error
    if dry_run:
        estimate = Runner(run_config).dry_run()
        print_frame(estimate, "Dry run: what this run would send (nothing was sent)")
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[rate]}",
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("model calls", total=None, rate="")
        started: list[float] = []

        def progress(done: int, total: int) -> None:
            import time

            if not started:
                started.append(time.perf_counter())
            elapsed = max(time.perf_counter() - started[0], 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f} calls/s")

        runner = Runner(run_config, progress=progress)
        frame = runner.run()
    stats = runner.stats
    console.print(
        f"{stats.calls_total} calls: {stats.calls_cached} from cache, {stats.calls_sent} sent, "
        f"{stats.calls_failed} failed, in {stats.seconds:.1f} s"
    )
    _leaderboard(frame, Path(run_config.out), n_boot)


def _leaderboard(frame: Any, out: Path, n_boot: int) -> None:
    from distalign.metrics import leaderboard

    board = leaderboard(frame, steerings=None, n_boot=n_boot)
    columns = ["model", "method", "mean", "ci_low", "ci_high", "n_scored", "n_parse_failures"]
    print_frame(board, "Leaderboard (mean TV, lower is better; CI: cluster bootstrap)", columns)
    write_frame(board, out, "leaderboard")
    console.print(f"results in {out}/ (items.parquet, manifest.json, leaderboard.csv/json)")
