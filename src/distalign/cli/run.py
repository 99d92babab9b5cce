"""``distalign run``: benchmark a model end to end (default: the embedded SmolLM2)."""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from distalign.cli._position import parse_orders, show_position_bias
from distalign.cli._render import console, print_frame, write_frame
from distalign.errors import EXIT_INCOMPLETE
from distalign.results import failure_pattern


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


_URL_START = re.compile(r"^https?://", re.IGNORECASE)


def split_models(values: list[str] | None) -> list[str] | None:
    """Model specs from ``-m`` values: commas separate specs, except a comma followed by a URL,
    which continues the replica list of ``openai-compatible:MODEL@URL1,URL2``."""
    if not values:
        return None
    specs: list[str] = []
    for value in values:
        first = len(specs)
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if len(specs) > first and _URL_START.match(part):
                specs[-1] = f"{specs[-1]},{part}"
            else:
                specs.append(part)
    return specs or None


# RunConfig field -> the flag that sets it (for error messages)
_FLAGS = {
    "models": "-m/--model",
    "datasets": "--dataset",
    "steerings": "--steering",
    "methods": "--method",
    "groups": "--group",
    "questions": "--questions",
    "seeds": "--seed",
    "n": "--n",
    "prompt_mode": "--prompt-mode",
    "data_dir": "--data-dir",
    "out": "--out",
    "prices": "--prices",
    "threads": "--threads",
    "option_orders": "--option-orders",
}


def run_settings(config: Path | None = None, **flags: Any) -> dict[str, Any]:
    """The settings of a run: the TOML file's, overridden by the flags that were given.

    ``flags`` are run_command's option values by RunConfig field name (``models=["a,b"]``);
    list flags may hold comma-separated values. ``threads`` becomes the ``threads`` setting,
    which reaches llama.cpp models only (never an API backend's options).
    """
    settings = read_config_file(config) if config else {}
    given = {
        "models": split_models(flags.get("models")),
        "datasets": _split(flags.get("datasets")),
        "steerings": _split(flags.get("steerings")),
        "methods": _split(flags.get("methods")),
        "groups": _split(flags.get("groups")),
        "questions": flags.get("questions"),
        "seeds": flags.get("seeds") or None,
        "n": flags.get("n"),
        "prompt_mode": flags.get("prompt_mode"),
        "data_dir": _text(flags.get("data_dir")),
        "out": _text(flags.get("out")),
        "prices": _text(flags.get("prices")),
        "threads": flags.get("threads"),
        "option_orders": parse_orders(flags.get("option_orders")),
    }
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML config file's settings; a missing or malformed file is a ConfigError."""
    from distalign.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found: check the --config path") from None
    except IsADirectoryError:
        raise ConfigError(f"--config {str(path)!r} is a folder: give a TOML file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:  # "Invalid value (at line 2, column 11)"
        problem, _, where = str(error).rpartition(" (at ")
        where = where.removesuffix(")").replace("end of document", "the end of the file")
        if not problem:
            problem, where = str(error), "?"
        raise ConfigError(
            f"config file {str(path)!r} is not valid TOML at {where}: {problem}; fix it there"
        ) from None


def build_run_config(
    settings: dict[str, Any], config: Path | None = None, flags: set[str] | None = None
) -> Any:
    """``RunConfig(**settings)``; invalid settings raise one ConfigError, one line per field.

    ``config`` is the TOML file and ``flags`` the settings given as flags, to name in messages.
    """
    from distalign.errors import ConfigError
    from distalign.runner import RunConfig

    try:
        return RunConfig(**settings)
    except ValidationError as error:
        lines = [_field_problem(e, config, flags or set()) for e in error.errors()]
        if len(lines) == 1:
            raise ConfigError(lines[0]) from None
        raise ConfigError("invalid run settings:\n" + "\n".join(f"  {x}" for x in lines)) from None


def _field_problem(error: Any, config: Path | None, flags: set[str]) -> str:
    from distalign.runner import RunConfig

    loc = [str(part) for part in error.get("loc", ())]
    field = loc[0] if loc else "?"
    where = f" in {str(config)!r}" if config else ""
    if error.get("type") == "extra_forbidden":
        valid = list(RunConfig.model_fields)
        close = difflib.get_close_matches(field, valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown setting {field!r}{where}.{hint} Valid settings: {', '.join(valid)}"
    name = field + "".join(f"[{part}]" for part in loc[1:])
    value = error.get("input")
    message = str(error.get("msg", "invalid value"))
    if field in flags and field in _FLAGS:
        return f"{_FLAGS[field]} {value!r}: {message}"
    return f"{name} = {value!r}{where}: {message}"


def check_run_config(run_config: Any) -> None:
    """Fail on names and paths that the run would trip on, before any model loads.

    Checks the output folder, the methods, each model's backend and options, the datasets and
    the groups; each problem is a DistalignError with its own message.
    """
    from distalign.backends import check_spec
    from distalign.datasets import load_dataset
    from distalign.errors import ConfigError
    from distalign.methods import get_method
    from distalign.runner import chosen_groups

    out = Path(run_config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"the output {str(out)!r} is a file: -o/--out takes a folder (created if missing)"
        )
    for method in run_config.methods:
        get_method(method, n=run_config.n)
    for model in run_config.models:
        check_spec(model, **run_config.options_for(model))
    for dataset in run_config.datasets:
        chosen_groups(load_dataset(dataset, run_config.data_dir), run_config.groups)


def run_command(
    config: Annotated[Path | None, typer.Option(help="TOML file with the run settings.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model spec(s), comma-separated or repeated; "
            "openai-compatible:MODEL@URL1,URL2 keeps its replica URLs.",
        ),
    ] = None,
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
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Results folder (default results/run).")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the leaderboard.")] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count requests, tokens and cost; send nothing.")
    ] = False,
    prices: Annotated[Path | None, typer.Option(help="TOML/JSON file overriding prices.")] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="llama.cpp threads (embedded, gguf:); API models ignore it."),
    ] = None,
    option_orders: Annotated[
        str | None,
        typer.Option(
            help="Option orders per item: K (survey, reversed, shift1, ...) or names "
            "(survey,reversed,shift2); K > 1 reports position bias. Standard prompt mode only."
        ),
    ] = None,
) -> None:
    """Run a benchmark grid through the response cache, then print the leaderboard."""
    import pandas as pd

    from distalign.metrics import leaderboard
    from distalign.metrics.complete import complete_folder
    from distalign.runner import Runner

    flags: dict[str, Any] = {
        "models": model,
        "datasets": dataset,
        "steerings": steering,
        "methods": method,
        "groups": group,
        "questions": questions,
        "seeds": seed,
        "n": n,
        "prompt_mode": prompt_mode,
        "data_dir": data_dir,
        "out": out,
        "prices": prices,
        "threads": threads,
        "option_orders": option_orders,
    }
    settings = run_settings(config, **flags)
    given = {name for name, value in flags.items() if value is not None}
    run_config = build_run_config(settings, config, given)
    check_run_config(run_config)
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
    _failure_summary(stats.failures, frame)
    out = Path(run_config.out)
    # TS-Log-p and the baselines on the run's own items, saved beside them (complement.parquet)
    extra = complete_folder(frame, out, run_config.datasets, run_config.data_dir).items
    _leaderboard(
        pd.concat([frame, extra[extra["model"] != "baseline"]], ignore_index=True), out, n_boot
    )
    baselines = extra[extra["model"] == "baseline"]
    if not baselines.empty:
        board = leaderboard(baselines, steerings=None, n_boot=n_boot)
        print_frame(
            board,
            "Baselines on this run's items (mean TV)",
            ["method", "mean", "ci_low", "ci_high", "n_scored"],
        )
    show_position_bias([Path(run_config.out)], Path(run_config.out), n_boot=n_boot)
    if stats.calls_failed:
        raise typer.Exit(EXIT_INCOMPLETE)


def _failure_summary(request_failures: dict[str, int], frame: Any) -> None:
    """Calls that failed for good by reason, and parse failures by method and main reason."""
    if request_failures:
        total = sum(request_failures.values())
        reasons = ", ".join(
            f"{reason} {count}"
            for reason, count in sorted(request_failures.items(), key=lambda kv: -kv[1])
        )
        console.print(
            f"[red]{total} calls failed for good[/red]: {escape(reasons)}. "
            "Rerun the same command to retry them (exit code 3)."
        )
    failed = frame[frame["status"] == "parse_failure"]
    if failed.empty:
        return
    parts = []
    for method, rows in failed.groupby("method", sort=False):
        reasons = rows["detail"].astype(str).map(failure_pattern).value_counts()
        parts.append(f"{method} {len(rows)} (most often: {reasons.index[0]})")
    console.print(f"parse failures: {escape('; '.join(parts))}")


def _leaderboard(frame: Any, out: Path, n_boot: int) -> None:
    from distalign.metrics import leaderboard

    board = leaderboard(frame, steerings=None, n_boot=n_boot)
    columns = [
        "model",
        "method",
        "mean",
        "ci_low",
        "ci_high",
        "n_scored",
        "n_parse_failures",
        "n_request_failures",
    ]
    print_frame(board, "Leaderboard (mean TV, lower is better; CI: cluster bootstrap)", columns)
    write_frame(board, out, "leaderboard")
    console.print(f"results in {out}/ (items.parquet, manifest.json, leaderboard.csv/json)")
