"""``distalign data ...``: fetch, inspect and validate datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distalign.datasets import (
    DataNotFoundError,
    DatasetError,
    DownloadError,
    UnknownDatasetError,
    load_dataset,
    location,
)
from distalign.datasets.user import load_user_dataset
from distalign.errors import EXIT_USAGE

data_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Fetch, inspect and validate datasets."
)


def _fail(err: Exception) -> typer.Exit:
    """One line and exit code 2, like every expected error (``distalign.errors``)."""
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(code=EXIT_USAGE)


@data_app.command()
def download(
    dest: Annotated[
        Path | None,
        typer.Option("--dest", help="Target folder (default: the user cache)."),
    ] = None,
) -> None:
    """Download the reference data (paper repository at a pinned commit), checksum-verified."""
    try:
        target = location.download(dest)
    except DownloadError as err:
        raise _fail(err) from err
    typer.echo(f"reference data installed in {target}")
    if dest is not None and target != location.default_cache_dir():
        typer.echo(f"use it with --data-dir {target} or {location.ENV_VAR}={target}")


@data_app.command()
def info(
    name: Annotated[str, typer.Argument(help="A dataset name or a dataset file.")],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Folder holding the reference data."),
    ] = None,
) -> None:
    """Print a dataset's summary and the loader's notes."""
    try:
        dataset = load_dataset(name, data_dir=data_dir)
    except (DataNotFoundError, DatasetError, UnknownDatasetError) as err:
        raise _fail(err) from err
    typer.echo(dataset.summary())
    typer.echo(f"source: {dataset.source}")
    if dataset.pool is not None:
        typer.echo(f"pool: {dataset.pool.summary()}")
    for note in dataset.notes + (dataset.pool.notes if dataset.pool is not None else []):
        typer.echo(f"- {note}")


@data_app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A long-format .csv, .jsonl or .parquet file.")],
) -> None:
    """Check a user dataset file; list every problem found."""
    try:
        dataset = load_user_dataset(file)
    except DatasetError as err:
        raise _fail(err) from err
    typer.echo(f"OK: {dataset.summary()}")
