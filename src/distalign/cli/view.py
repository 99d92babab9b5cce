"""``distalign view``: browse results folders in a local, read-only web viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def view_command(
    results: Annotated[list[Path], typer.Argument(help="Results folders (or an import root).")],
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 0,
    host: Annotated[
        str, typer.Option(help="Address to listen on (the default is this machine only).")
    ] = "127.0.0.1",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the leaderboard.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Serve a read-only viewer: leaderboard, filterable item table, one page per item.

    Nothing is opened or fetched: open the printed URL in a browser. Ctrl-C stops it.
    """
    from distalign.view.server import check_installed, serve

    if not 0 <= port <= 65535:
        raise typer.BadParameter("--port must be between 0 and 65535")
    missing = [p for p in results if not p.exists()]
    if missing:
        raise typer.BadParameter(f"not found: {', '.join(map(str, missing))}")
    check_installed()  # one line naming `pip install 'distalign[view]'` when missing
    typer.echo("loading the results and computing the leaderboard ...", err=True)

    def ready(url: str) -> None:
        typer.echo(f"distalign view: {url}  (read-only; Ctrl-C stops it)")

    try:
        serve(results, host=host, port=port, n_boot=n_boot, seed=seed, on_ready=ready)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
