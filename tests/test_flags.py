"""Each train flag and WORDLSTM_DEBUG in a successful run through the CLI, checked by what
it changes: the budget, stdin and several files as the text, the validation text, the
vocabulary's case and size, averaging, and the traceback."""

import json
import time
from pathlib import Path

import numpy as np
from conftest import SENTENCES, TINY, max_difference, run
from safetensors.numpy import load_file

from wordlstm.tokenizer import Tokenizer


def config_of(home: Path, model: str = "default") -> dict:
    return json.loads((home / model / "config.json").read_text())


def test_max_time_ends_the_run_when_the_budget_is_spent(home, corpus):
    began = time.monotonic()
    proc = run(
        "train", str(corpus), *TINY, "--epochs", "1000", "--max-time", "2", "--json", home=home
    )
    wall = time.monotonic() - began
    assert proc.returncode == 0, proc.err
    summary = json.loads(proc.out)
    assert 1 <= summary["epochs"] < 1000
    assert 2 <= summary["seconds"] < 12 and wall < 30  # the budget, then one validation
    assert len(config_of(home)["history"]) == summary["epochs"]


def test_train_dash_reads_the_text_from_stdin(home, corpus, trained):
    """`train -` on the corpus gives the very weights of `train CORPUS` (the fixture)."""
    text = corpus.read_bytes()
    run("train", "-", *TINY, "--epochs", "3", input=text, home=home, check=True)
    assert config_of(home)["data"]["files"] == ["-"]
    assert max_difference(home / "default", trained / "default") == 0.0


def test_several_files_train_as_their_concatenation(home, corpus, trained, tmp_path):
    lines = corpus.read_text().splitlines(keepends=True)
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("".join(lines[:100]))
    second.write_text("".join(lines[100:]))
    run("train", str(first), str(second), *TINY, "--epochs", "3", home=home, check=True)
    assert config_of(home)["data"]["files"] == [str(first), str(second)]
    assert max_difference(home / "default", trained / "default") == 0.0


def test_valid_validates_on_that_file_and_trains_on_all_the_text(home, corpus, trained, tmp_path):
    valid = tmp_path / "valid.txt"
    valid.write_text("The cat sat on the mat.\n" * 5)  # 7 tokens and <eos> a line
    run("train", str(corpus), *TINY, "--epochs", "3", "--valid", str(valid), home=home, check=True)
    data, held_out = config_of(home)["data"], config_of(trained)["data"]
    assert data["valid"] == str(valid) and data["valid_tokens"] == 40
    assert data["train_tokens"] == held_out["train_tokens"] + held_out["valid_tokens"]
    # the recorded perplexity is the saved weights' on that file, read as validation reads it
    # (20 streams: half its 40 tokens, below the 64 asked for; --bptt 6)
    proc = run("eval", str(valid), "--batch-size", "20", "--bptt", "6", "--json", home=home)
    assert proc.returncode == 0, proc.err
    ppl = json.loads(proc.out)["perplexity"]
    assert np.isclose(ppl, config_of(home)["metrics"]["valid_ppl"], rtol=1e-5)


def test_lowercase_reads_every_case_as_lowercase(home, corpus):
    run("train", str(corpus), *TINY, "--epochs", "1", "--lowercase", home=home, check=True)
    assert config_of(home)["tokenizer"]["lowercase"] is True
    text = "THE CAT SAT ON THE MAT.\nthe cat sat on the mat.\nThe Cat Sat On The Mat.\n"
    proc = run("score", "--json", input=text, home=home, check=True)
    scores = [json.loads(line)["log_prob"] for line in proc.out.splitlines()]
    assert len(scores) == 3 and scores[0] == scores[1] == scores[2]
    assert "unknown 0 " in proc.err


def test_min_freq_leaves_rare_words_out_of_the_vocabulary(home, corpus, trained, tmp_path):
    """The corpus plus a line of two words seen once: with --min-freq 2 the vocabulary is the
    corpus's alone, and those words are unknown."""
    text = tmp_path / "rare.txt"
    text.write_text(corpus.read_text() + "zebra quokka\n")
    run("train", str(text), *TINY, "--epochs", "1", "--min-freq", "2", home=home, check=True)
    config = config_of(home)
    assert config["tokenizer"]["min_freq"] == 2
    words = {w for s in SENTENCES for w in s.replace(",", " ").replace(".", " ").split()}
    vocab = len(words | {",", "."}) + 2  # and <unk>, <eos>
    assert config["architecture"]["vocab"] == config_of(trained)["architecture"]["vocab"] == vocab
    tokenizer = Tokenizer.from_str((home / "default" / "tokenizer.json").read_text())
    assert tokenizer.token_to_id("zebra") is None and tokenizer.token_to_id("quokka") is None
    proc = run("score", input="zebra quokka\n", home=home, check=True)
    assert "unknown 2 " in proc.err


def saved_as_trained(folder: Path) -> bool:
    """Whether the saved weights are the resume state's current weights (not an average)."""
    saved = load_file(folder / "model.safetensors")
    with np.load(folder / "training.npz") as state:
        return all(
            np.array_equal(saved[name], state[f"params/{name}"])
            for name in saved
            if f"params/{name}" in state.files  # a tied decoder.weight is the encoder's
        )


def has_average(folder: Path) -> bool:
    with np.load(folder / "training.npz") as state:
        return any(k.startswith("average/") for k in state.files)


def test_no_average_saves_the_trained_weights_themselves(home, corpus, trained):
    """By default the 3-epoch run averages from epoch 3 (the last 40% of the budget) and
    saves that average; with --no-average there is none, and the saved weights are those
    the last epoch (the best: each one improves on this text) ended with."""
    run("train", str(corpus), *TINY, "--epochs", "3", "--no-average", home=home, check=True)
    config = config_of(home)
    assert config["recipe"]["average"] is False and config["metrics"]["epoch"] == 3
    assert has_average(trained / "default") and not saved_as_trained(trained / "default")
    assert not has_average(home / "default") and saved_as_trained(home / "default")


def test_wordlstm_debug_shows_the_traceback_of_an_error(home):
    proc = run("complete", "The", "--model", "nope", home=home, env={"WORDLSTM_DEBUG": "1"})
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.err
    assert "no model named 'nope'" in proc.err
    plain = run("complete", "The", "--model", "nope", home=home)
    assert "Traceback" not in plain.err and plain.returncode == 2
