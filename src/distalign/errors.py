"""The errors a user can cause and fix, as opposed to bugs.

Every expected error (a bad flag, an unknown name, an invalid data file, a missing key, an
unreachable server) is a :class:`DistalignError`. The command line prints its message in one
line and exits with :data:`EXIT_USAGE`; anything else is a bug and keeps its traceback.
``--debug`` (or ``DISTALIGN_DEBUG=1``) shows the traceback of an expected error too.

Exit codes of the ``distalign`` command:

* ``0`` (:data:`EXIT_OK`): done.
* ``1``: an unexpected error (a bug: please report it with the traceback).
* ``2`` (:data:`EXIT_USAGE`): an expected error; the message says what to do. Nothing ran, or
  nothing was lost.
* ``3`` (:data:`EXIT_INCOMPLETE`): the run finished but some calls failed for good (after
  every retry); results were saved with those items as ``request_failure``. Rerunning the same
  command sends only the failed calls.
* ``130`` (:data:`EXIT_INTERRUPTED`): interrupted by Ctrl-C; every completed call is in the
  cache and a rerun resumes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130


class DistalignError(Exception):
    """An expected error: its message tells the user what to do. Exit code 2."""

    exit_code = EXIT_USAGE


class ConfigError(DistalignError, ValueError):
    """A flag, config file key or option value that is not valid."""


class UnknownNameError(DistalignError, ValueError):
    """A method, backend, dataset or group name that does not exist."""
