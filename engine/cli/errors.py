"""The CLI's user-error type, in its own module so that it is one class however the CLI starts.

Under ``python -m engine.cli.main`` the entry module is ``__main__``; a class defined there would
differ from the ``engine.cli.main.CliError`` that subcommands raise, and errors would escape as
tracebacks.
"""


class CliError(Exception):
    """A user error (bad path, empty folder): printed as one line, exit code 2.

    ``exit_code`` 1 is for a command that ran and failed (nothing to score, every photo failed).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
