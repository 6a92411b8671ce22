"""The commands end to end, run as a user runs them: train -> complete -> score -> models."""

import json
import math
import os
import re
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY, cli_env, read_line, run
from safetensors.numpy import load_file

from wordlstm import __version__


def test_version_and_help():
    assert run("--version").out.strip() == f"wordlstm {__version__}"
    for command in ("train", "complete", "score", "models"):
        proc = run(command, "--help")
        assert proc.returncode == 0 and "Usage" in proc.out, command


def test_train_writes_a_model_folder_with_the_contract_files(trained):
    folder = trained / "default"
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == 1
    assert config["architecture"]["hidden"] == 16
    # the default dropout: 2,196 training tokens of a 34-word vocabulary, 65 per word: none
    assert (config["data"]["train_tokens"], config["architecture"]["vocab"]) == (2196, 34)
    assert config["dropout"] == 0.0
    assert config["recipe"]["forget_bias"] == 1.0  # the default: forget gates start open
    assert config["metrics"]["valid_ppl"] > 1
    w = load_file(folder / "model.safetensors")
    names = set(w)
    assert all(w[n].dtype == np.float32 for n in names)
    assert names == {
        "encoder.weight",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "decoder.weight",
        "decoder.bias",
    }
    from tokenizers import Tokenizer

    assert Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size() > 10


def test_train_prints_an_epoch_line_and_json_summary(home, corpus):
    proc = run("train", str(corpus), *TINY, "--epochs", "2", "--model", "m", "--json", home=home)
    assert proc.returncode == 0, proc.err
    summary = json.loads(proc.out)
    for key in (
        "model",
        "path",
        "epochs",
        "train_tokens",
        "seconds",
        "tokens_per_sec",
        "valid_ppl",
    ):
        assert key in summary
    assert summary["epochs"] == 2
    assert proc.err.count("valid ppl") == 2


def test_same_seed_same_weights(home, corpus):
    for name in ("a", "b"):
        run(
            "train",
            str(corpus),
            *TINY,
            "--epochs",
            "1",
            "--seed",
            "7",
            "--model",
            name,
            home=home,
            check=True,
        )
    run(
        "train",
        str(corpus),
        *TINY,
        "--epochs",
        "1",
        "--seed",
        "8",
        "--model",
        "c",
        home=home,
        check=True,
    )
    a, b, c = (load_file(home / name / "model.safetensors") for name in "abc")
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["encoder.weight"], c["encoder.weight"])


def test_complete_shows_top_words_with_probabilities(trained):
    proc = run("complete", "The cat sat on the", "--top", "3", home=trained)
    assert proc.returncode == 0, proc.err
    rows = [line.split("\t") for line in proc.out.strip().splitlines()]
    assert len(rows) == 3
    probs = [float(p) for _, p in rows]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


@pytest.mark.parametrize(
    "command",
    [
        ["complete", "I"],
        ["score", "-"],
        ["score", "--color"],
        ["eval", "CORPUS"],
        ["explain", "I", "--why", "sat"],
        ["models", "show", "default"],
    ],
    ids=" ".join,
)
def test_commands_that_read_a_model_start_without_the_trainer(trained, corpus, command):
    """They answer fast by not importing what only training needs (the loop, its job and
    resume), nor rich's progress bar: the modules the process had loaded at its end."""
    loaded = loaded_modules(trained, [str(corpus) if a == "CORPUS" else a for a in command])
    assert "wordlstm.store" in loaded  # it did read the model
    for module in ("wordlstm.training", "wordlstm.trainjob", "wordlstm.resume", "rich.progress"):
        assert module not in loaded


def test_complete_starts_without_what_only_sampling_or_old_folders_need(trained):
    """A greedy completion from a model.safetensors folder imports neither numpy's random
    generators (sampling), nor tempfile (spooling a stream), nor zipfile (0.1's npz)."""
    loaded = loaded_modules(trained, ["complete", "I"])
    assert "wordlstm.predict" in loaded
    for module in ("numpy.random", "tempfile", "zipfile"):
        assert module not in loaded
    assert "numpy.random" in loaded_modules(trained, ["complete", "I", "--sample"])


def loaded_modules(home, args: list[str]) -> list[str]:
    """The modules a CLI process with `args` had loaded at its end (a line on its stdin)."""
    code = (
        "import sys, atexit; from wordlstm.cli import app; atexit.register(lambda: "
        "print(*sorted(sys.modules), file=sys.stderr))\n"
        "sys.argv = ['wordlstm', *sys.argv[1:]]; app()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        input=b"a line\n",
        capture_output=True,
        env=cli_env(home),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr.decode().split()


def test_complete_json_reads_one_prompt_per_stdin_line(trained):
    proc = run(
        "complete", "--json", "--words", "4", input="The dog sat\nI like green\n", home=trained
    )
    assert proc.returncode == 0, proc.err
    objs = [json.loads(line) for line in proc.out.splitlines()]
    assert [o["prompt"] for o in objs] == ["The dog sat", "I like green"]
    for o in objs:
        assert len(o["next"]) == 5 and set(o["next"][0]) == {"word", "prob"}
        assert isinstance(o["continuation"], str) and o["continuation"]
        # the greedy continuation starts with the most likely next word
        assert o["continuation"].split()[0].startswith(o["next"][0]["word"])


def test_sampling_is_repeatable_with_a_seed(trained):
    args = ("complete", "The", "--words", "8", "--sample", "--temperature", "1.5", "--json")
    first = run(*args, "--seed", "3", home=trained).out
    assert first == run(*args, "--seed", "3", home=trained).out
    others = {
        json.loads(run(*args, "--seed", str(s), home=trained).out)["continuation"]
        for s in range(4, 8)
    }
    assert len(others) > 1


def test_score_writes_one_tsv_line_per_input_line(trained):
    text = "The cat sat on the mat.\nmat the on sat cat The.\n\nzebra quantum\n"
    proc = run("score", input=text, home=trained)
    assert proc.returncode == 0, proc.err
    rows = [line.split("\t") for line in proc.out.split("\n")[:-1]]
    assert len(rows) == 4
    texts = [r[3] for r in rows]
    assert texts == ["The cat sat on the mat.", "mat the on sat cat The.", "", "zebra quantum"]
    for ppl, log_prob, tokens, _ in rows:
        want = math.exp(-float(log_prob) / int(tokens))
        assert math.isclose(float(ppl), want, rel_tol=1e-3, abs_tol=0.005)  # printed as %.2f
    assert [int(r[2]) for r in rows] == [8, 8, 1, 3]  # words and punctuation + end of line
    assert float(rows[0][1]) > float(rows[1][1])  # the real sentence is the likelier one
    assert "tokens 20" in proc.err and "unknown 2" in proc.err and "perplexity" in proc.err


def test_score_json_per_token_sums_to_the_line(trained):
    proc = run("score", "--json", "--per-token", input="I like green tea.\n", home=trained)
    obj = json.loads(proc.out)
    assert set(obj) == {"text", "tokens", "log_prob", "ppl", "token_log_probs"}
    toks = obj["token_log_probs"]
    assert [t["token"] for t in toks] == ["I", "like", "green", "tea", ".", "<eos>"]
    assert math.isclose(sum(t["log_prob"] for t in toks), obj["log_prob"], rel_tol=1e-9)
    assert obj["tokens"] == len(toks)


def test_continuous_carries_state_from_line_to_line(trained):
    text = "The cat sat on the mat.\nThe dog sat on the rug.\n"
    alone = [
        json.loads(x) for x in run("score", "--json", input=text, home=trained).out.splitlines()
    ]
    carried = [
        json.loads(x)
        for x in run("score", "--json", "--continuous", input=text, home=trained).out.splitlines()
    ]
    assert alone[0]["log_prob"] == pytest.approx(carried[0]["log_prob"], rel=1e-6)
    assert alone[1]["log_prob"] != pytest.approx(carried[1]["log_prob"], rel=1e-6)


def test_score_reads_files_and_streams(trained, tmp_path):
    f = tmp_path / "in.txt"
    f.write_text("The cat sat.\nThe dog sat.\n")
    proc = run("score", str(f), str(f), home=trained)
    assert len(proc.out.splitlines()) == 4


def test_models_lists_shows_and_removes(home, corpus):
    run("train", str(corpus), *TINY, "--epochs", "1", "--model", "one", home=home, check=True)
    listing = run("models", home=home)
    assert listing.returncode == 0
    assert listing.out.splitlines()[0].split()[:2] == ["name", "vocab"]
    assert listing.out.splitlines()[1].split()[0] == "one"
    shown = run("models", "show", "one", "--json", home=home)
    assert json.loads(shown.out)["architecture"]["layers"] == 1
    assert run("models", "rm", "one", home=home).returncode == 0
    assert not (home / "one").exists()
    assert "one" not in run("models", home=home).out


def test_model_flag_takes_a_folder_path(trained, tmp_path):
    proc = run("complete", "The", "--model", str(trained / "default"), home=tmp_path / "other")
    assert proc.returncode == 0, proc.err


def test_score_streams_output_before_input_ends(trained):
    """Each line is answered as it arrives, so score works on an endless pipe."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", "score"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=cli_env(trained),
    )
    try:
        proc.stdin.write(b"The cat sat on the mat.\n")
        proc.stdin.flush()
        first = read_line(proc.stdout).decode()  # stdin is still open
        assert first.endswith("\tThe cat sat on the mat.\n")
        proc.stdin.write(b"The dog sat.\n")
        proc.stdin.close()
        assert read_line(proc.stdout).decode().endswith("\tThe dog sat.\n")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_sampled_continuation_does_not_depend_on_the_batch(trained):
    args = ("complete", "--json", "--words", "6", "--sample", "--seed", "11")
    alone = run(*args, input="The dog sat\n", home=trained).out.splitlines()
    together = run(*args, input="The dog sat\nI like green\nThe cat\n", home=trained)
    first, solo = json.loads(together.out.splitlines()[0]), json.loads(alone[0])
    assert first["continuation"] == solo["continuation"]
    assert [w["word"] for w in first["next"]] == [w["word"] for w in solo["next"]]
    assert len(together.out.splitlines()) == 3


def test_no_command_shows_the_help():
    proc = run()
    assert proc.returncode == 0 and proc.out.startswith("Usage: ")
    assert all(c in proc.out for c in ("train", "complete", "score", "eval", "models"))


def test_a_continuation_reads_as_text_with_its_punctuation_in_place(trained):
    """complete --words writes the words as text is written ("job, I had a loan."), not as
    tokens with spaces between ("job , I had a loan .")."""
    prompt = "Today, due to my"
    shown = run("complete", prompt, "--words", "8", "--json", home=trained, check=True)
    words = json.loads(shown.out)["continuation"]
    assert "," in words and words.endswith(".")  # the model learnt the corpus's punctuation
    assert not re.search(r"\s[,.]", words), words
    text = run("complete", prompt, "--words", "8", "--top", "0", home=trained, check=True)
    assert text.out.splitlines()[0] == f"{prompt} {words}"


def test_models_show_prints_the_config_as_text(trained):
    proc = run("models", "show", "default", home=trained, check=True)
    config = json.loads((trained / "default" / "config.json").read_text())
    arch = config["architecture"]
    lines = proc.out.split("\n\n")[0].splitlines()  # the learning curve follows a blank line
    fields = dict(line.split(None, 1) for line in lines if not line.startswith(" "))
    assert fields["name"] == "default"
    assert fields["path"] == str(trained / "default")
    assert fields["saved"] == config["saved"]
    assert f"embed 16, 1 x 16 LSTM, vocabulary {arch['vocab']:,}, tied" in fields["architecture"]
    V = arch["vocab"]  # tied 16-wide embedding and decoder, one LSTM layer of 16, biases
    assert fields["parameters"] == f"{V * 16 + 2 * 4 * 16 * 16 + 2 * 4 * 16 + V:,}"
    assert json.loads(fields["recipe"])["epochs"] == 3
    history = [line.split() for line in lines if line.startswith("  epoch")]
    assert [h[1] for h in history] == ["1", "2", "3"]
    assert float(history[-1][history[-1].index("valid") + 2]) == pytest.approx(
        config["history"][-1]["valid_ppl"], abs=0.01
    )


def read_terminal(fd: int, timeout: float) -> str:
    """All that a process writes to the pseudo-terminal whose master is `fd`, until it
    closes its side; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"the terminal went quiet for {timeout:g} s: {b''.join(chunks)[-500:]!r}"
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the other side is closed
            data = b""
        if not data:
            return b"".join(chunks).decode("utf-8", "replace")
        chunks.append(data)


def test_train_draws_its_progress_bar_on_a_terminal(home, corpus):
    """On a terminal, train shows rich's live bar (a pipe gets only the epoch lines, so the
    other tests never draw it): under a pseudo-terminal the bar appears and the run succeeds."""
    master, slave = os.openpty()
    env = cli_env(home, TERM="xterm", COLUMNS="120", LINES="40")
    env.pop("NO_COLOR")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wordlstm", "train", str(corpus), *TINY, "--epochs", "2"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        try:
            shown = read_terminal(master, timeout=120)
            assert proc.wait(timeout=60) == 0, shown
        finally:
            proc.kill()
            proc.wait()
    finally:
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)  # without the terminal's controls
    assert re.search(r"epoch 2/2 .*tok/s", text), text  # the bar, after its last update
    assert "epoch   2 | train ppl" in text  # and the epoch lines


def test_a_continuation_that_starts_with_punctuation_is_glued_to_the_prompt(trained):
    """ "Last year" goes on ", due to my job, ..." in the corpus: the continued prompt reads
    "Last year, due", not "Last year , due"."""
    prompt = "Last year"
    shown = run("complete", prompt, "--words", "4", "--json", home=trained, check=True)
    words = json.loads(shown.out)["continuation"]
    assert words.startswith(","), words  # the model learnt what follows "Last year"
    text = run("complete", prompt, "--words", "4", "--top", "0", home=trained, check=True)
    assert text.out.splitlines()[0] == f"{prompt}{words}"
