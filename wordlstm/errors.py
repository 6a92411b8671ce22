"""The failures the CLI reports: bad input (exit 2), run-time failure (exit 1), and an
interrupted training run (exit 130)."""

import json
from collections.abc import Callable
from dataclasses import dataclass


class WordlstmError(Exception):
    """A failure with a one-line message meant for the user. With `names_settings` the
    message is a template naming settings as `{field}`: `str()` gives it with the settings'
    field names, as the Python API takes them ("lr must be positive"); `worded` with other
    names for them, such as the command line's flags."""

    exit_code = 1

    def __init__(self, message: str, *, names_settings: bool = False) -> None:
        self.template = message if names_settings else literal(message)
        super().__init__(self.worded(str))

    @property
    def fields(self) -> list[str]:
        """The settings the message names, in order."""
        import string  # here: only a failure pays its import

        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name]

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with each setting called `name(field)`."""
        return self.template.format_map({field: name(field) for field in self.fields})


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


class SettingError(BadInput):
    """A setting with an unusable value; its message names the settings as `{field}`."""

    def __init__(self, template: str) -> None:
        super().__init__(template, names_settings=True)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its OS reason, for an OSError), or its
    type's name if it has none: what a one-line error says of it."""
    text = getattr(e, "strerror", None) or str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def literal(text: object) -> str:
    """Text to put into a SettingError's template as it is (its braces doubled)."""
    return str(text).replace("{", "{{").replace("}", "}}")


@dataclass
class Difference:
    """A setting of a resumed run that is not the interrupted run's."""

    field: str  # as in the settings (trainjob._settings)
    given: object
    saved: object


class SettingsDiffer(BadInput):
    """A resumed run's settings are not the interrupted run's: all the `differences`."""

    def __init__(self, path: object, differences: list[Difference]) -> None:
        listed = ", ".join(
            f"{d.field} {json.dumps(d.given)} (the run used {json.dumps(d.saved)})"
            for d in differences
        )
        super().__init__(f"cannot resume {path}: {listed}; resume with the run's own settings")
        self.differences = differences
