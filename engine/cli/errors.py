"""The CLI's user-error type, in its own module so that it is one class however the CLI starts.

Under ``python -m engine.cli.main`` the entry module is ``__main__``; a class defined there would
differ from the ``engine.cli.main.CliError`` that subcommands raise, and errors would escape as
tracebacks.
"""


class CliError(Exception):
    """A user error (bad path, empty folder): printed as one line, exit code 2."""
