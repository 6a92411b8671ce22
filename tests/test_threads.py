"""BLAS threads: `train --threads N` sets the count OpenBLAS runs with, the environment's
count is kept when no flag is given, and without either the count follows the load, chosen
again before each epoch; none of it makes a resumed run a different one."""

import json
import math
import os
import subprocess
import sys
import time

import pytest
from conftest import TINY, assert_one_error_line, run, tiny_job

from wordlstm import threads
from wordlstm.errors import SettingError
from wordlstm.threads import Threads, default_threads, openblas
from wordlstm.trainjob import TrainJob, train_files


@pytest.fixture
def blas():
    """NumPy's OpenBLAS, its thread count put back after the test."""
    found = openblas()
    assert found is not None, "NumPy's wheels bundle OpenBLAS"
    before = found.get()
    yield found
    found.set(before)


@pytest.mark.parametrize(
    "busy, cores, expected",
    [(0, 1, 1), (0, 2, 2), (1, 2, 1), (2, 2, 1), (5, 2, 1), (0, 16, 2), (14, 16, 2), (15, 16, 1)],
)
def test_the_default_is_one_thread_per_free_core_up_to_two(busy, cores, expected):
    assert default_threads(busy, cores) == expected


def test_a_given_count_is_what_openblas_reports_and_is_undone_after(blas):
    blas.set(1)
    with Threads(given=3).used():
        assert blas.get() == 3
    assert blas.get() == 1
    blas.set(2)
    assert blas.get() == 2


@pytest.mark.parametrize("busy, expected", [(0, 2), (1, 1)])
def test_without_flag_or_environment_the_load_decides(blas, monkeypatch, busy, expected):
    for name in threads.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "busy_others", lambda: busy)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    blas.set(3)
    chosen = Threads()
    assert chosen.by_load
    assert chosen.choose() == expected == blas.get()


def test_the_environment_is_honoured_and_the_flag_wins_over_it(blas, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(threads, "busy_others", lambda: pytest.fail("the load was read"))
    blas.set(3)  # as if OpenBLAS had read 3 from the environment as it loaded
    assert not Threads().by_load and Threads().choose() == 3
    assert Threads(given=2).choose() == 2 == blas.get()


def test_the_count_is_chosen_again_before_each_epoch(blas, monkeypatch, corpus, tmp_path):
    for name in threads.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    loads = iter([0, 1, 0])  # the load before epochs 1, 2 and 3
    monkeypatch.setattr(threads, "busy_others", lambda: next(loads, 0))
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "RECHECK_SECONDS", math.inf)  # only between epochs
    blas.set(1)
    epochs, starts = [], []
    result = train_files(
        tiny_job([corpus], tmp_path / "m"), on_epoch=epochs.append, on_start=starts.append
    )
    assert [e.threads for e in epochs] == [2, 1, 2]
    assert starts[0].threads == 2 and starts[0].threads_by_load
    assert result.threads == 2
    assert blas.get() == 1  # put back after the run


def test_the_load_is_read_again_within_an_epoch(blas, monkeypatch, corpus, tmp_path):
    for name in threads.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    loads = iter([0])  # quiet at the start, then busy
    monkeypatch.setattr(threads, "busy_others", lambda: next(loads, 1))
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "RECHECK_SECONDS", 0.0)  # at every step
    seen = []
    train_files(
        tiny_job([corpus], tmp_path / "m", epochs=1), on_progress=lambda p: seen.append(blas.get())
    )
    assert seen[0] == 2 and set(seen[1:]) == {1}


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_count_below_one_is_one_error_line(home, corpus, value):
    proc = run("train", str(corpus), *TINY, "--threads", value, home=home)
    assert_one_error_line(proc, 2, "--threads", "at least 1")
    assert not home.exists() or os.listdir(home) == []
    with pytest.raises(SettingError) as e:
        TrainJob(files=[str(corpus)], threads=int(value))
    assert e.value.fields == ["threads"]


def test_train_says_its_count_and_resumes_with_another(home, corpus):
    """The epoch line, the JSON summary and the history give the count; a resumed run may use
    another."""
    args = ["train", str(corpus), *TINY, "--epochs", "1", "--model", "m"]
    quiet = {"OPENBLAS_NUM_THREADS": "1"}
    first = run(*args, "--threads", "2", "--json", home=home, env=quiet, check=True)
    assert " | 2 threads | " in first.err.splitlines()[1]
    assert json.loads(first.out)["threads"] == 2
    resume = [*args[:-4], "--epochs", "2", "--model", "m", "--resume"]
    again = run(*resume, home=home, env=quiet, check=True)
    assert " | 1 thread | " in again.err.splitlines()[1]  # the environment's
    history = json.loads((home / "m" / "config.json").read_text())["history"]
    assert [e["threads"] for e in history] == [2, 1]


@pytest.mark.parametrize("command", ["score", "eval"])
def test_score_and_eval_take_a_count_too(trained, corpus, command, tmp_path):
    """They run with the count given (the process reports what OpenBLAS says it uses), and
    refuse one below 1 in one error line."""
    probe = tmp_path / "sitecustomize.py"  # reports the count as the process ends
    probe.write_text(
        "import atexit, sys\n"
        "def report():\n"
        "    from wordlstm.threads import openblas\n"
        "    sys.stderr.write(f'blas threads {openblas().get()}\\n')\n"
        "atexit.register(report)\n"
    )
    env = {"PYTHONPATH": str(tmp_path), "OPENBLAS_NUM_THREADS": "1"}
    args = [command, str(corpus)]
    done = run(*args, "--threads", "3", home=trained, env=env, check=True)
    assert done.err.splitlines()[-1] == "blas threads 3"
    plain = run(*args, home=trained, env=env, check=True)
    assert plain.err.splitlines()[-1] == "blas threads 1"
    assert_one_error_line(run(*args, "--threads", "0", home=trained), 2, "--threads")


def test_a_process_that_keeps_a_core_busy_counts_as_busy():
    """busy_others reads the machine: a spinning child is among the runnable threads, and
    this process's own (it runs as it reads) are not."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        assert threads.busy_others() >= 1
    finally:
        spinner.kill()
        spinner.wait()
    assert threads._own_runnable() >= 1  # the reading thread itself
