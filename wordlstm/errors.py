"""The two kinds of failure the CLI reports: bad input (exit 2) and run-time failure (exit 1)."""


class WordlstmError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1


class BadInput(WordlstmError):
    """The user gave something unusable: a missing file, a bad model folder, a bad flag value."""

    exit_code = 2


class RunFailure(WordlstmError):
    """Something went wrong while running: training diverged, the disk is full."""

    exit_code = 1
