"""The interactive line of `wordlstm suggest`, on prompt_toolkit: the suggestions for the
word before the cursor (the next words after a space) in a bar above the line, updated on
every change; Tab or a digit accepts one, Up/Down choose which Tab takes. Enter hands the
line over and starts a new one; Ctrl-D hands over what was typed and ends; Ctrl-C ends,
dropping the line being typed."""

import sys
from collections.abc import Callable

from wordlstm.autocomplete import Suggestion, Typing
from wordlstm.errors import BadInput

INTERRUPTED = 130  # the exit status of a line ended by Ctrl-C, as for any interrupt


class SuggestLine:
    """Joins a Typing to an editor buffer: keeps it in step with the text before the
    cursor, draws its suggestions and accepts them into the buffer."""

    def __init__(self, typing: Typing) -> None:
        self.typing = typing
        self.choice = 0
        self.ending = False  # Ctrl-D was pressed: hand over the line, then stop

    def update(self, buffer) -> None:
        """The buffer or its cursor changed: read the new text, highlight the first word."""
        self.typing.set_text(buffer.document.text_before_cursor)
        self.choice = 0

    def shown(self) -> list[Suggestion]:
        return self.typing.suggestions()

    def bar(self) -> list[tuple[str, str]]:
        """The bar above the line: the numbered suggestions, the one Tab takes highlighted,
        then the prompt of the line. (A prompt, unlike prompt_toolkit's bottom toolbar, is
        drawn even on terminals that do not report the cursor's position.)"""
        shown = self.shown()
        words = [
            ("reverse" if i == self.choice else "", f" {i + 1} {s.word} ")
            for i, s in enumerate(shown)
        ]
        return (words or [("", " no suggestions")]) + [("", "\n> ")]

    def accept(self, buffer, choice: int) -> None:
        """Puts suggestion `choice` and a space in place of the word before the cursor."""
        shown = self.shown()
        if choice >= len(shown):
            return
        buffer.delete_before_cursor(len(self.typing.fragment or ""))
        buffer.insert_text(shown[choice].word + " ")

    def bindings(self):
        """Tab, 1-9 (a digit beyond the suggestions shown is typed), Up/Down, Ctrl-D."""
        from prompt_toolkit.key_binding import KeyBindings

        keys = KeyBindings()

        @keys.add("tab")
        def _(event) -> None:
            self.accept(event.current_buffer, self.choice)

        @keys.add("up")
        @keys.add("down")
        def _(event) -> None:
            n = len(self.shown())
            if n:
                self.choice = (self.choice + (1 if event.key_sequence[0].key == "down" else -1)) % n

        @keys.add("c-d")
        def _(event) -> None:
            self.ending = True
            event.app.exit(result=event.current_buffer.text)

        for digit in "123456789":

            @keys.add(digit)
            def _(event) -> None:
                n = int(event.data) - 1
                if n < len(self.shown()):
                    self.accept(event.current_buffer, n)
                else:
                    event.current_buffer.insert_text(event.data)

        return keys


def run(typing: Typing, write: Callable[[str], object], *, input=None, output=None) -> int:
    """Edits lines until Ctrl-D (returns 0) or Ctrl-C (returns 130), writing each line
    finished with Enter, and what Ctrl-D found typed, with `write`. input and output are
    prompt_toolkit's (the terminal when None)."""
    from prompt_toolkit import PromptSession

    line = SuggestLine(typing)
    session = PromptSession(
        message=line.bar,
        key_bindings=line.bindings(),
        erase_when_done=True,
        input=input,
        output=output,
    )
    session.default_buffer.on_text_changed += line.update
    session.default_buffer.on_cursor_position_changed += line.update
    while not line.ending:
        try:
            text = session.prompt()
        except KeyboardInterrupt:
            return INTERRUPTED
        if text or not line.ending:
            write(text + "\n")
    return 0


def terminal_output():
    """prompt_toolkit's output on the terminal: stdout, or stderr when stdout is redirected
    (so that `wordlstm suggest >> notes.txt` collects the lines). BadInput without one."""
    if not sys.stdin.isatty():
        raise BadInput("suggest is interactive: its input must be a terminal")
    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            from prompt_toolkit.output import create_output

            return create_output(stdout=stream)
    raise BadInput("suggest is interactive: stdout or stderr must be a terminal")
