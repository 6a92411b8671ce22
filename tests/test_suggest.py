"""`wordlstm suggest`: keystrokes in through prompt_toolkit's pipe input, the screen and
the printed lines checked; then once in a real terminal (tmux)."""

import io
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run as run_cli

from wordlstm.autocomplete import Typing
from wordlstm.checkpoint import load_model
from wordlstm.suggest import run

PROMPT = "Last year, due to my job, I"


@pytest.fixture(scope="module")
def loaded(demo_home):
    return load_model(str(demo_home / "default"))


def wait_for(condition, what: str, timeout: float = 20.0):
    """Polls condition() until it is true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def type_keys(loaded, *keys: str) -> tuple[int, list[str]]:
    """Runs the editor on a pipe, sends the keys at once; its exit code and the lines."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    lines: list[str] = []
    with create_pipe_input() as pipe:
        pipe.send_text("".join(keys))
        code = run(Typing(loaded), lines.append, input=pipe, output=DummyOutput())
    return code, lines


class Recording(Typing):
    """A Typing that records what the editor's bar asked it for: (text, words)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.drawn: list[tuple[str, list[str]]] = []

    def suggestions(self):
        offered = super().suggestions()
        self.drawn.append((self.text, [s.word for s in offered]))
        return offered


def test_the_suggestions_follow_each_keystroke_and_tab_takes_the_first(loaded):
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    screen = io.StringIO()
    output = Vt100_Output(screen, lambda: Size(rows=10, columns=100), term="xterm")
    typing = Recording(loaded)
    lines: list[str] = []
    codes: list[int] = []
    with create_pipe_input() as pipe:
        editor = threading.Thread(
            target=lambda: codes.append(run(typing, lines.append, input=pipe, output=output))
        )
        editor.start()
        try:
            typed = f"{PROMPT} h"
            pipe.send_text(typed[:-4])
            for n in range(len(typed) - 3, len(typed) + 1):  # key by key: the bar follows
                pipe.send_text(typed[n - 1])
                wait_for(lambda n=n: typing.drawn and typing.drawn[-1][0] == typed[:n], "bar")
            words = typing.drawn[-1][1]
            assert words[0] == "had" and all(w.startswith("h") for w in words)
            assert all(w in screen.getvalue() for w in words)
            pipe.send_text("\t")
            wait_for(lambda: typing.drawn[-1][0] == f"{PROMPT} had ", "the accepted word")
            pipe.send_text("\r")
            wait_for(lambda: lines, "the line")
            pipe.send_text("The c\x04")
        finally:
            editor.join(20)
    assert codes == [0]
    assert lines == [f"{PROMPT} had \n", "The c\n"]


def test_digits_and_arrows_choose_another_suggestion(loaded):
    typing = Typing(loaded)
    typing.feed(f"{PROMPT} h")
    first, second = (s.word for s in typing.suggestions()[:2])
    assert type_keys(loaded, f"{PROMPT} h", "2", "\r", "\x04") == (0, [f"{PROMPT} {second} \n"])
    down, up = "\x1b[B", "\x1b[A"
    assert type_keys(loaded, f"{PROMPT} h", down, "\t", "\r", "\x04")[1] == [
        f"{PROMPT} {second} \n"
    ]
    assert type_keys(loaded, f"{PROMPT} h", down, up, "\t", "\x04")[1] == [f"{PROMPT} {first} \n"]
    # a digit beyond the three suggestions shown is typed as a digit
    assert type_keys(loaded, "in 5", "\x04")[1] == ["in 5\n"]


def test_ctrl_d_ends_and_ctrl_c_interrupts(loaded):
    assert type_keys(loaded, "\x04") == (0, [])  # nothing typed: nothing printed
    assert type_keys(loaded, "one\r", "two\x03") == (130, ["one\n"])


def test_suggest_needs_a_terminal(demo_home):
    proc = run_cli("suggest", input="hello\n", home=demo_home)
    assert proc.returncode == 2 and proc.err.startswith("error: ") and "terminal" in proc.err
    proc = run_cli("suggest", "--top", "0", home=demo_home)
    assert proc.returncode == 2 and proc.err.startswith("error: ")


SOCKET = f"wordlstm-test-{os.getpid()}"  # a tmux server of the test's own


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], check=True, capture_output=True, text=True, timeout=20
    ).stdout


def test_suggest_in_a_real_terminal(demo_home, tmp_path):
    """Types into `wordlstm suggest >> notes` in tmux and reads the screen."""
    session = f"wordlstm-test-{os.getpid()}"
    notes, status = tmp_path / "notes.txt", tmp_path / "status"
    command = (
        f"WORDLSTM_HOME={shlex.quote(str(demo_home))} PYTHONPATH={shlex.quote(str(ROOT))} "
        f"{shlex.quote(sys.executable)} -m wordlstm suggest >> {shlex.quote(str(notes))}; "
        f"echo $? > {shlex.quote(str(status))}"
    )
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "20", command)
    try:

        def screen() -> str:
            alive = subprocess.run(["tmux", "-L", SOCKET, "has-session"], timeout=20).returncode
            assert alive == 0, f"suggest ended early, exit {status.read_text().strip()}"
            return tmux("capture-pane", "-p", "-t", session)

        wait_for(lambda: "1 " in screen() and ">" in screen(), "the first prompt", 30)
        tmux("send-keys", "-t", session, "-l", f"{PROMPT} h")

        def offered() -> str:
            s = screen()
            return s if f"{PROMPT} h" in s and " had " in s else ""

        bar = next(line for line in wait_for(offered, "'had'").splitlines() if "had" in line)
        assert bar.split()[:2] == ["1", "had"]
        tmux("send-keys", "-t", session, "Tab")
        wait_for(lambda: f"{PROMPT} had" in screen(), "the accepted word")
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: notes.exists() and notes.read_text() == f"{PROMPT} had \n", "the line")
        tmux("send-keys", "-t", session, "C-d")
        wait_for(lambda: status.exists() and status.read_text().strip(), "the exit", 20)
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True, timeout=20)


ROOT = Path(__file__).resolve().parents[1]
