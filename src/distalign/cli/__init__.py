"""The ``distalign`` command line.

Errors: every command runs inside :class:`ErrorHandlingGroup`. An expected error (a
:class:`~distalign.errors.DistalignError`: a bad flag or config key, an unknown name, a missing
key, file or package, an unreachable server) prints ``error: <message>`` on stderr and exits
with code 2, without a traceback; ``--debug`` (or ``DISTALIGN_DEBUG=1``) re-raises it to show
the traceback. Ctrl-C prints one line and exits with 130 (completed calls are in the cache).
Anything else is a bug and keeps its traceback (exit 1). Usage errors found by typer itself
(``typer.BadParameter``, a missing argument) keep typer's own message and exit code 2.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from distalign.cli.reference import import_reference, leaderboard_command
from distalign.cli.report import compare_command, report_command
from distalign.cli.run import run_command
from distalign.errors import EXIT_INTERRUPTED, DistalignError

DEBUG_ENV = "DISTALIGN_DEBUG"
INTERRUPTED = "interrupted: completed calls are cached; rerun the same command to resume"


class ErrorHandlingGroup(TyperGroup):
    """The top-level group: turns expected errors into one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except DistalignError as error:
            if debug_enabled(ctx):
                raise
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            if debug_enabled(ctx):
                raise
            typer.echo(INTERRUPTED, err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def debug_enabled(ctx: Any = None) -> bool:
    """``--debug`` on the command line, or DISTALIGN_DEBUG set to 1/true/yes/on."""
    if ctx is not None and ctx.find_root().params.get("debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def fail(message: str, code: int) -> None:
    """Print ``error: <message>`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message.strip()}", err=True)
    raise typer.Exit(code)


app = typer.Typer(
    cls=ErrorHandlingGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold API keys
    help="Benchmark the distributional alignment of LLMs against human survey distributions.",
    epilog="Exit codes: 0 done; 1 an unexpected error (a bug: report it with the traceback); "
    "2 an expected error, whose message says what to do; 3 a run finished but some calls "
    "failed; 130 interrupted (completed calls are cached: rerun to resume).",
)


@app.callback()
def _options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help=f"Show the traceback of an expected error too (or set {DEBUG_ENV}=1).",
        ),
    ] = False,
) -> None:
    """Options for every command (the app's help text is the Typer's ``help``)."""


app.command("run")(run_command)
app.command("import-reference")(import_reference)
app.command("leaderboard")(leaderboard_command)
app.command("report")(report_command)
app.command("compare")(compare_command)


def _mount_subcommands() -> None:
    from distalign.cli.data import data_app
    from distalign.cli.plan import plan_command
    from distalign.cli.toy import toy_app
    from distalign.cli.view import view_command

    app.command("plan")(plan_command)
    app.command("view")(view_command)
    app.add_typer(data_app, name="data", help="Find, download, inspect and validate datasets.")
    app.add_typer(toy_app, name="toy", help="The biased-coin and biased-die calibration toys.")


_mount_subcommands()


@app.command()
def version() -> None:
    """Print the distalign version."""
    from distalign import __version__

    typer.echo(__version__)


def main() -> None:
    """The ``distalign`` console script (and ``python -m distalign.cli``)."""
    app(prog_name="distalign")
