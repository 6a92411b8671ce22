"""Ctrl-C and closed pipes, sent to the real CLI: a clean end with the conventional status."""

import os
import re
import signal
import subprocess
import sys

import pytest
from processes import Cli, cli_env

PROMPT = b"The cat sat on the mat.\n"
# what the answer to PROMPT ends with: score echoes the line, complete --json ends the object
ANSWER = {"score": b"\tThe cat sat on the mat.\n", "complete": b"}\n"}
SUMMARY = re.compile(r"^tokens \d+ \| unknown \d+ .*\| perplexity ", re.M)


@pytest.mark.parametrize("stdin", ["pipe", "pty"])
@pytest.mark.parametrize("command", ["score", "complete"])
def test_ctrl_c_while_waiting_for_input_ends_cleanly(trained, command, stdin):
    """The user's `sleep 20 | wordlstm score`, or score at a terminal, then Ctrl-C: what was
    answered so far is out, the summary line too, exit 130, no crash."""
    args = [command] + (["--json"] if command == "complete" else [])
    with Cli(*args, home=trained, stdin=stdin) as cli:
        cli.send(PROMPT)
        answered = cli.read_until(ANSWER[command])  # now it waits for the next line
        cli.proc.send_signal(signal.SIGINT)
        cli.proc.wait(timeout=60)  # stdin stays open: the end comes from Ctrl-C alone
        code, out, err = cli.finish()
    text = err.decode()
    assert "Fatal Python error" not in text and "Traceback" not in text, text
    assert code == 130, text
    assert out.startswith(answered)
    if command == "score":
        assert SUMMARY.search(text), text


def test_score_into_head_ends_silently_as_a_filter_does(trained, tmp_path):
    """`wordlstm score FILE | head -1`: when head has its line and goes, score dies of
    SIGPIPE as cat and grep do (status 141 in a shell), with nothing on stderr."""
    text = tmp_path / "many.txt"
    text.write_text("The cat sat on the mat.\n" * 20_000)  # far more than a pipe holds
    score = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", "score", str(text)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(trained),
    )
    head = subprocess.Popen(["head", "-1"], stdin=score.stdout, stdout=subprocess.PIPE)
    score.stdout.close()  # head holds the only reading end
    try:
        first, _ = head.communicate(timeout=120)
        assert first.endswith(b"\tThe cat sat on the mat.\n")
        assert score.wait(timeout=120) == -signal.SIGPIPE
        assert score.stderr.read() == b""
    finally:
        score.kill()
        score.wait(timeout=60)
        score.stderr.close()


@pytest.mark.parametrize(
    "args",
    [
        ["complete", "The cat"],
        ["score", "{corpus}"],
        ["eval", "{corpus}"],
        ["eval", "{corpus}", "--json"],
        ["models"],
        ["models", "show", "default"],
    ],
)
def test_every_reading_command_dies_of_sigpipe_when_its_reader_is_gone(trained, corpus, args):
    """Writing to a pipe whose reader has closed it: SIGPIPE, silently."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -0` would, before the command writes
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", *(a.format(corpus=corpus) for a in args)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=cli_env(trained),
    )
    os.close(write_end)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGPIPE, err.decode()
    assert err == b""


# Ctrl-C arriving while the CLI's modules are imported (typer's, the first heavy one)
INTERRUPTED_IMPORT = """
import sys
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
from wordlstm.__main__ import run
run()
"""


def test_ctrl_c_while_the_cli_is_imported_ends_without_a_traceback(trained):
    """The first instants of `wordlstm ...` (the console script calls the same run())."""
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT, "score"],
        capture_output=True,
        env=cli_env(trained),
        timeout=60,
    )
    assert proc.returncode == 130 and proc.stderr == b"", proc.stderr.decode()
