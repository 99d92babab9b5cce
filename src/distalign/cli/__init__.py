"""The ``distalign`` command line."""

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def version() -> None:
    """Print the distalign version."""
    from distalign import __version__

    typer.echo(__version__)
