"""The failures the CLI reports: bad input (exit 2), run-time failure (exit 1), and an
interrupted training run (exit 130)."""


class WordlstmError(Exception):
    """A failure with a one-line message meant for the user."""

    exit_code = 1


class BadInput(WordlstmError):
    """The user gave something unusable: a missing file, a bad model folder, a bad flag value."""

    exit_code = 2


class RunFailure(WordlstmError):
    """Something went wrong while running: training diverged, the disk is full."""

    exit_code = 1


class Interrupted(WordlstmError):
    """Training stopped at the user's request (Ctrl-C), after saving a state it can resume
    unless `resumable` is false (nothing was saved)."""

    exit_code = 130

    def __init__(self, message: str, *, resumable: bool = True) -> None:
        super().__init__(message)
        self.resumable = resumable
