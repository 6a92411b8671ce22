"""README.md as a doctest: every `$ command` shown runs, and prints what README shows; the
Python example runs as a doctest.

How: the commands run in order with bash from the repository root, in a fresh store
(WORDLSTM_HOME) and with `wordlstm` on PATH, stdout a terminal (README shows what a terminal
shows) and stderr after it. Training budgets are the one thing changed: `--max-time 180`
becomes `--max-time 2` with a 1 x 32 network (and epochs enough to meet the budget), and
the Python example's `max_time=30` becomes `max_time=2`, so that the whole README runs in
seconds; the shapes of the outputs are the same.

Expected output is what follows a command, up to a blank line. A line `...` stands for any
lines. Elsewhere each line is compared token by token (split on whitespace): a number (a
token with digits and no letters) matches any number, any other token must be the same.
Outputs that depend on what a model learned (its words) are marked by a trailing
`# varies` on the command: their lines are compared by how many numbers they hold. The
Python example's `...` is doctest's ELLIPSIS.

The install line (a fresh virtualenv and `pip install .`) and the test-suite line are not
run here: the first is how this environment was made, the second is this very suite.
"""

import doctest
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT, cli_env

README = (ROOT / "README.md").read_text(encoding="utf-8")
BUDGETS = {
    "--max-time 180": "--max-time 2 --epochs 1000 --hidden 32 --layers 1",
    "max_time=30": "max_time=2",
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def shown_commands(text: str) -> list[tuple[str, list[str]]]:
    """The `$ command` lines of README's indented blocks and the output lines after each."""
    commands: list[tuple[str, list[str]]] = []
    current = None
    for line in text.splitlines():
        if line.startswith("    $ "):
            current = []
            commands.append((line[6:], current))
        elif current is not None and line.startswith("    "):
            current.append(line[4:])
        else:  # a blank or unindented line ends the block
            current = None
    return commands


def python_example(text: str) -> str:
    """README's Python example: the indented block that starts `>>> import wordlstm`."""
    lines = text.splitlines()
    start = lines.index("    >>> import wordlstm")
    end = start
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return "\n".join(line[4:] for line in lines[start:end]) + "\n"


def is_number(token: str) -> bool:
    return any(ch.isdigit() for ch in token) and not any(ch.isalpha() for ch in token)


def line_matches(expected: str, got: str, varies: bool) -> bool:
    want, have = expected.split(), got.split()
    if varies:
        return sum(map(is_number, want)) == sum(map(is_number, have))
    if len(want) != len(have):
        return False
    return all(
        is_number(w) and is_number(h) if is_number(w) else w == h
        for w, h in zip(want, have, strict=True)
    )


def output_matches(expected: list[str], got: list[str], varies: bool) -> bool:
    """Whether `got` has the shape of `expected` (`...` lines standing for any lines)."""
    if not expected:
        return not got
    if expected[0].strip() == "...":
        return any(output_matches(expected[1:], got[k:], varies) for k in range(len(got) + 1))
    return (
        bool(got)
        and line_matches(expected[0], got[0], varies)
        and output_matches(expected[1:], got[1:], varies)
    )


def run_shown(command: str, env: dict) -> tuple[int, list[str]]:
    """Runs a README command with bash, stdout a terminal; (status, stdout + stderr lines)."""
    main, terminal = pty.openpty()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    os.close(terminal)
    out = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end is closed
                return
            if not chunk:
                return
            out.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    reader.join(timeout=60)
    os.close(main)
    text = ANSI.sub("", out.decode() + err.decode()).replace("\r", "")
    return proc.returncode, [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """A fresh store, and `wordlstm` and this Python first on PATH."""
    home = tmp_path_factory.mktemp("readme") / "store"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return cli_env(home, PATH=path, COLUMNS="200")


def test_readme_stays_short():
    assert len(README.splitlines()) <= 200


def test_the_parser_finds_commands_and_outputs():
    """The doctest itself can fail: it finds every `$` line and tells shapes apart."""
    commands = shown_commands(README)
    assert [re.search(r"wordlstm (\w+)", c)[1] for c, _ in commands] == [
        "train",
        "complete",
        "score",
        "complete",
        "models",
    ]
    assert [len(out) for _, out in commands] == [4, 5, 3, 4, 2]
    assert output_matches(["a 1", "...", "b 2.5"], ["a 3", "x", "y", "b 7"], False)
    assert not output_matches(["a 1"], ["b 1"], False)
    assert not output_matches(["a 1"], ["a 1", "extra"], False)
    assert output_matches(["had 0.2"], ["sat 0.9"], True)
    assert not output_matches(["had 0.2"], ["sat"], True)


def test_every_shell_command_in_readme_runs_as_shown(env):
    for command, expected in shown_commands(README):
        varies = command.rstrip().endswith("# varies")
        for shown, quick in BUDGETS.items():
            command = command.replace(shown, quick)
        code, got = run_shown(command, env)
        assert code == 0, (command, got)
        assert output_matches(expected, got, varies), (command, expected, got)


def test_the_python_example_in_readme_runs(env, monkeypatch):
    """After the shell commands (module order): the model `default` is the tour's."""
    monkeypatch.setenv("WORDLSTM_HOME", env["WORDLSTM_HOME"])
    monkeypatch.chdir(ROOT)
    text = python_example(README)
    for shown, quick in BUDGETS.items():
        text = text.replace(shown, quick)
    test = doctest.DocTestParser().get_doctest(text, {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert len(test.examples) >= 6
    assert runner.summarize(verbose=False).failed == 0


def test_every_flag_in_readme_is_one_that_help_lists():
    """README's flags are checked against `--help`: a renamed or removed flag fails here."""
    helps = ""
    commands = ["train", "complete", "suggest", "score", "eval", "explain", "gradcheck"]
    for command in [*commands, "models", "models show"]:
        proc = subprocess.run(
            [sys.executable, "-m", "wordlstm", *command.split(), "--help"],
            capture_output=True,
            text=True,
            env=cli_env(COLUMNS="200"),
            timeout=60,
        )
        helps += proc.stdout
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", README))
    assert {"--max-time", "--grow-vocab", "--per-token", "--beam"} <= flags
    listed = set(re.findall(r"--[a-z][a-z-]*", helps))
    assert flags - listed == set()
