"""A model is never lost by accident: training into a name that holds a model refuses unless
--force, a forced run leaves the old model in place until it has a validated epoch, and a
model in training cannot be removed."""

import hashlib
import json
import math
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY, assert_one_error_line, cli_env, read_epoch_line, run, start_training
from test_errors import SAVE_KILLER

from wordlstm.checkpoint import load_model

REPO = Path(__file__).resolve().parents[1]

# `wordlstm ARGS` in which Ctrl-C is pressed after step 3 of epoch 1, before any epoch ends
CTRL_C_IN_EPOCH_1 = """
import os, signal, sys
from wordlstm import cli, trainjob
real_train = trainjob.train
def train(*args, on_progress, **kwargs):
    def progress(p):
        on_progress(p)
        if (p.epoch, p.step) == (1, 3):
            os.kill(os.getpid(), signal.SIGINT)
    return real_train(*args, on_progress=progress, **kwargs)
trainjob.train = train
sys.argv = ["wordlstm", *sys.argv[1:]]
cli.main()
"""


def files_of(folder: Path) -> dict[str, str]:
    """The sha256 of every file under `folder`, by relative path."""
    return {
        str(file.relative_to(folder)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(folder.rglob("*"))
        if file.is_file()
    }


def cli_with_ctrl_c_in_epoch_1(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`wordlstm ARGS` through the real CLI, with Ctrl-C pressed in epoch 1."""
    proc = subprocess.run(
        [sys.executable, "-c", CTRL_C_IN_EPOCH_1, *args],
        env=cli_env(home),
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    proc.err = proc.stderr.decode()
    return proc


@pytest.fixture
def long_text(tmp_path, corpus) -> Path:
    """The corpus six times: epochs long enough to interrupt."""
    text = tmp_path / "long.txt"
    text.write_text(corpus.read_text() * 6)
    return text


def config_of(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


# Item 1: no silent overwrite


@pytest.mark.parametrize("name", [[], ["--model", "m"]], ids=["default", "--model m"])
def test_training_into_a_name_that_holds_a_model_refuses_and_keeps_it(home, corpus, name):
    run("train", str(corpus), *TINY, "--epochs", "2", *name, home=home, check=True)
    folder = home / (name[-1] if name else "default")
    before = files_of(folder)
    again = run("train", str(corpus), *TINY, "--epochs", "1", "--seed", "5", *name, home=home)
    line = assert_one_error_line(again, 2, "already holds a model", "--force", "--resume")
    assert "--continue" in line and "another --model" in line
    assert files_of(folder) == before
    assert sorted(os.listdir(home)) == [folder.name]


def test_force_replaces_the_model(home, corpus):
    run("train", str(corpus), *TINY, "--epochs", "2", home=home, check=True)
    before = files_of(home / "default")
    forced = run("train", str(corpus), *TINY, "--epochs", "1", "--force", home=home)
    assert forced.returncode == 0, forced.err
    assert files_of(home / "default") != before
    assert len(config_of(home / "default")["history"]) == 1


def test_ctrl_c_before_the_first_epoch_of_a_forced_run_keeps_the_old_model(home, corpus, long_text):
    run("train", str(corpus), *TINY, "--epochs", "2", "--model", "m", home=home, check=True)
    before = files_of(home / "m")
    args = ["train", str(long_text), *TINY, "--epochs", "3", "--model", "m", "--force"]
    proc = cli_with_ctrl_c_in_epoch_1(home, *args)
    assert proc.returncode == 130, proc.err
    assert proc.err.splitlines()[-1] == (
        "interrupted: stopped in epoch 1 after step 3, before any epoch was validated: "
        "nothing saved, m still holds the model it held before"
    )
    assert "resume with" not in proc.err and "error" not in proc.err
    assert files_of(home / "m") == before
    assert sorted(os.listdir(home)) == ["m"]


def test_ctrl_c_after_the_first_epoch_of_a_forced_run_saves_it_to_resume_without_force(
    home, corpus, long_text
):
    run("train", str(corpus), *TINY, "--epochs", "2", "--model", "m", home=home, check=True)
    proc = start_training(home, long_text, "m", "--force")
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, err
    command = shlex.split(err.splitlines()[-1].removeprefix("resume with: "))
    assert command[:2] == ["wordlstm", "train"] and "--force" not in command
    resumed = run(*command[1:], home=home)
    assert resumed.returncode == 0, resumed.err
    assert len(config_of(home / "m")["history"]) == 3
    assert config_of(home / "m")["data"]["files"] == [str(long_text)]


def test_a_fresh_name_interrupted_in_epoch_1_is_unfinished_and_refuses_a_plain_train(home, corpus):
    args = ["train", str(corpus), *TINY, "--epochs", "2", "--model", "m"]
    proc = cli_with_ctrl_c_in_epoch_1(home, *args)
    assert proc.returncode == 130, proc.err
    assert "(no epoch has ended: its weights are unvalidated)" in proc.err
    assert config_of(home / "m")["unfinished"] is True
    before = files_of(home / "m")
    again = run(*args, home=home)
    assert_one_error_line(again, 2, "m holds an interrupted run", "--resume", "--force")
    assert files_of(home / "m") == before
    resumed = run(*args, "--resume", home=home)
    assert resumed.returncode == 0, resumed.err
    assert "unfinished" not in config_of(home / "m")


def test_force_and_resume_together_are_refused(home, corpus):
    proc = run("train", str(corpus), *TINY, "--force", "--resume", home=home)
    assert_one_error_line(proc, 2, "--force", "--resume")


def assert_old_or_validated(home: Path, old: dict[str, str]) -> str:
    """'old' if `m` is byte for byte the old model, 'new' if it is a validated new one."""
    load_model(str(home / "m"))  # what score, complete and eval load
    if files_of(home / "m") == old:
        return "old"
    config = config_of(home / "m")
    assert "unfinished" not in config
    assert math.isfinite(config["metrics"]["valid_ppl"])
    assert config["recipe"]["seed"] == 7  # the forced run's
    return "new"


def forced_run_killed(home: Path, old: Path, args: list[str], signals) -> str:
    """Puts the old model in `m`, starts `wordlstm ARGS --force` into it, and goes through
    `signals`: ("line", n) waits for epoch n's line, ("wait", s) waits s seconds, ("sigint",)
    presses Ctrl-C; then SIGKILLs it. Returns what `m` holds then: "old" or "new"."""
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(old, home / "m")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", *args, "--force"],
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for what, *value in signals:
            if what == "line":
                assert read_epoch_line(proc.stderr).startswith(f"epoch {value[0]:3d} |".encode())
            elif what == "wait":
                time.sleep(value[0])  # a random instant, not a synchronisation
            else:
                proc.send_signal(signal.SIGINT)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()
    return assert_old_or_validated(home, files_of(old))


def test_sigkill_at_random_instants_of_a_forced_run_leaves_the_old_or_a_validated_model(
    home, tmp_path, corpus, long_text
):
    run("train", str(corpus), *TINY, "--epochs", "1", "--model", "old", home=tmp_path, check=True)
    old = tmp_path / "old"
    args = ["train", str(long_text), *TINY, "--epochs", "3", "--seed", "7", "--model", "m"]
    started = time.monotonic()
    assert forced_run_killed(home, old, args, [("line", 1)]) == "new"
    first_epoch = time.monotonic() - started  # from the start to the first epoch's line
    rng = random.Random(19)
    seen = []
    # random instants up to a little past the first epoch's end: SIGKILL there, or Ctrl-C
    # there and SIGKILL a moment later (while it saves, or after)
    for share in (0.3, 0.7, 0.9, 1.05):
        wait = ("wait", first_epoch * rng.uniform(share - 0.15, share + 0.15))
        seen.append(forced_run_killed(home, old, args, [wait]))
        moment = ("wait", rng.uniform(0.0, 0.1))
        seen.append(forced_run_killed(home, old, args, [wait, ("sigint",), moment]))
    assert "old" in seen  # some came before the first validated epoch
    # and later: in epoch 2 or 3, during their saves or between them
    for epoch, ctrl_c in [(1, False), (1, True), (2, False)]:
        plan = [*(("line", n) for n in range(1, epoch + 1)), ("wait", rng.uniform(0.0, 0.3))]
        if ctrl_c:
            plan += [("sigint",), ("wait", rng.uniform(0.0, 0.1))]
        assert forced_run_killed(home, old, args, plan) == "new"
    scored = run("score", "--model", "m", input="The cat sat.\n", home=home)
    assert scored.returncode == 0 and len(scored.out.splitlines()) == 1, scored.err


@pytest.mark.parametrize(
    "function, nth, kept",
    [("fsync", 1, "old"), ("rename", 1, "old"), ("rename", 2, "old"), ("rmtree", 1, "new")],
    ids=["writing files", "before moving the old model away", "between the renames",
         "before deleting the old model"],
)  # fmt: skip
def test_sigkill_in_the_first_save_of_a_forced_run(home, corpus, function, nth, kept):
    run("train", str(corpus), *TINY, "--epochs", "2", "--model", "m", home=home, check=True)
    old = files_of(home / "m")
    killed = subprocess.run(
        [sys.executable, "-c", SAVE_KILLER, function, "1", str(nth)]
        + [str(corpus), *TINY, "--epochs", "2", "--seed", "7", "--model", "m", "--force"],
        env=cli_env(home),
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert assert_old_or_validated(home, old) == kept


# Item 5: one writer, `models rm` included


def test_models_rm_refuses_a_model_in_training(home, long_text):
    training = start_training(home, long_text, "m", epochs=8)
    try:
        removed = run("models", "rm", "m", home=home)
        assert_one_error_line(removed, 1, "cannot remove", "being trained", f"pid {training.pid}")
        assert training.wait(timeout=120) == 0
    finally:
        training.kill()
        training.wait(timeout=60)
        training.stderr.close()
    assert len(config_of(home / "m")["history"]) == 8
    assert run("models", "rm", "m", home=home).returncode == 0
    assert sorted(os.listdir(home)) == []
