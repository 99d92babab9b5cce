"""The ``distalign`` command line."""

import typer

from distalign.cli.reference import import_reference, leaderboard_command
from distalign.cli.report import compare_command, report_command
from distalign.cli.run import run_command

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Benchmark the distributional alignment of LLMs against human survey distributions.",
)
app.command("run")(run_command)
app.command("import-reference")(import_reference)
app.command("leaderboard")(leaderboard_command)
app.command("report")(report_command)
app.command("compare")(compare_command)


def _mount_subcommands() -> None:
    from distalign.cli.data import data_app
    from distalign.cli.toy import toy_app

    app.add_typer(data_app, name="data", help="Find, download, inspect and validate datasets.")
    app.add_typer(toy_app, name="toy", help="The biased-coin and biased-die calibration toys.")


_mount_subcommands()


@app.command()
def version() -> None:
    """Print the distalign version."""
    from distalign import __version__

    typer.echo(__version__)
