"""Bad input gets one `error:` line and exit 2, never a traceback; a killed run loses nothing."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY, run


def assert_one_error_line(proc, code=2, *words):
    assert proc.returncode == code, (proc.returncode, proc.err)
    lines = proc.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.err
    assert "Traceback" not in proc.err
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_training_file(home, tmp_path):
    proc = run("train", str(tmp_path / "nope.txt"), home=home)
    assert_one_error_line(proc, 2, "nope.txt")
    assert not home.exists() or not any(home.iterdir())


def test_empty_training_file(home, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_error_line(run("train", str(empty), home=home), 2, "empty.txt")


def test_binary_training_file(home, tmp_path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    assert_one_error_line(run("train", str(binary), home=home), 2, "blob.bin")


def test_unknown_model_name(home):
    assert_one_error_line(run("complete", "hello", "--model", "nosuch", home=home), 2, "nosuch")
    assert_one_error_line(run("score", "--model", "nosuch", input="hi\n", home=home), 2)


def test_path_that_is_no_model_folder(home, tmp_path):
    (tmp_path / "plain").mkdir()
    proc = run("complete", "hello", "--model", str(tmp_path / "plain"), home=home)
    assert_one_error_line(proc, 2, "plain")


def test_truncated_weights(trained, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained / "default", broken)
    weights = broken / "weights.npz"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    proc = run("score", "--model", str(broken), input="The cat\n", home=tmp_path)
    assert_one_error_line(proc, 2, "weights.npz")


def test_weights_that_do_not_fit_the_config(trained, tmp_path):
    import numpy as np

    broken = tmp_path / "broken"
    shutil.copytree(trained / "default", broken)
    with np.load(broken / "weights.npz") as w:
        arrays = {n: w[n] for n in w.files}
    arrays["rnn.weight_hh_l0"] = arrays["rnn.weight_hh_l0"][:, :-1]
    np.savez(broken / "weights.npz", **arrays)
    proc = run("complete", "The", "--model", str(broken), home=tmp_path)
    assert_one_error_line(proc, 2, "rnn.weight_hh_l0")


@pytest.mark.parametrize(
    "args",
    [
        ("train",),  # missing argument
        ("train", "x.txt", "--hidden", "many"),  # not a number
        ("complete", "x", "--top", "-1"),
        ("train", "x.txt", "--tied", "--embed", "8", "--hidden", "9"),
        ("frobnicate",),
    ],
)
def test_bad_usage(args, home, corpus):
    args = tuple(str(corpus) if a == "x.txt" else a for a in args)
    assert_one_error_line(run(*args, home=home), 2)


def test_invalid_model_name_cannot_escape_the_store(home, corpus):
    proc = run("train", str(corpus), "--model", "bad name!", home=home)
    assert_one_error_line(proc, 2, "bad name!")


def test_sigkill_during_training_leaves_the_previous_save_loadable(home, corpus, tmp_path):
    """Kill a training run at many instants, saves included; the model always loads."""
    big = tmp_path / "big.txt"
    big.write_text(corpus.read_text() * 3)
    run("train", str(big), *TINY, "--epochs", "1", "--model", "m", home=home, check=True)
    env = dict(os.environ, WORDLSTM_HOME=str(home), NO_COLOR="1")
    for delay in (0.4, 0.7, 0.9, 1.1, 1.3, 1.6, 2.0, 2.5):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wordlstm",
                "train",
                str(big),
                *TINY,
                "--epochs",
                "50",
                "--model",
                "m",
                "--lr",
                "1",
            ],  # a small lr improves every epoch: a save each
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check = run("score", "--model", "m", input="The cat sat.\n", home=home)
        assert check.returncode == 0, (delay, check.err)
        assert len(check.out.splitlines()) == 1
