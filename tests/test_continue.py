"""Training further on new text: `train NEW --model NAME --continue [--grow-vocab]` starts
from the model's weights, keeps its vocabulary (or appends the new text's words to it),
reports the old validation text's perplexity before and after, and resumes exactly."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    TINY,
    assert_one_error_line,
    cli_env,
    max_difference,
    read_epoch_line,
    run,
    tiny_job,
    training_lines,
)

from wordlstm import finetune, resume
from wordlstm.checkpoint import load_model
from wordlstm.errors import Interrupted
from wordlstm.settings import Recipe
from wordlstm.tokenizer import Tokenizer
from wordlstm.trainjob import TrainJob, train_files

NEW = [
    "The fox ran to the barn.",
    "A fox sat on the fence.",
    "We walked to the barn after lunch.",
    "The owl sat on the fence at night.",
]
NEW_WORDS = {"fox", "barn", "fence", "ran", "A", "owl", "at", "night"}


def new_text(path: Path, repeat: int = 30) -> Path:
    """The new text: NEW `repeat` times, then one line with a word seen once (zebra)."""
    path.write_text("\n".join(NEW * repeat) + "\nThe zebra sat.\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory, corpus):
    """A store holding `m`, trained on the corpus (dropout 0.3, so resuming needs the
    random generator's state), and the new text."""
    root = tmp_path_factory.mktemp("base")
    args = ["train", str(corpus), *TINY, "--epochs", "2", "--dropout", "0.3", "--model", "m"]
    run(*args, home=root / "store", check=True)
    return root / "store", new_text(root / "new.txt")


@pytest.fixture
def store(base, tmp_path) -> Path:
    """A copy of the base store to change."""
    shutil.copytree(base[0], tmp_path / "store")
    return tmp_path / "store"


def test_continue_trains_further_and_keeps_the_vocabulary(base, store):
    home, new = base
    proc = run("train", str(new), "--model", "m", "--continue", "--epochs", "2", "--json",
               home=store)  # fmt: skip
    assert proc.returncode == 0, proc.err
    tokenizer = "m/tokenizer.json"
    assert (store / tokenizer).read_bytes() == (home / tokenizer).read_bytes()
    assert max_difference(store / "m", home / "m") > 1e-3  # the weights have trained on
    old = json.loads((home / "m" / "config.json").read_text())
    config = json.loads((store / "m" / "config.json").read_text())
    # architecture and recipe are the model's; the rate goes on where its schedule ended
    assert config["architecture"] == old["architecture"]
    assert (config["recipe"]["bptt"], config["recipe"]["batch_size"]) == (6, 4)
    assert config["dropout"] == 0.3
    assert config["recipe"]["lr"] == old["history"][-1]["lr"]
    assert config["data"]["files"] == [str(new.resolve())]
    assert len(config["history"]) == 2
    summary = json.loads(proc.out)
    assert summary["vocab"] == old["architecture"]["vocab"]
    # the old validation text is the held-out tail of the corpus: before, the old model's
    before, after = summary["old_valid_ppl_before"], summary["old_valid_ppl_after"]
    assert before == pytest.approx(old["metrics"]["valid_ppl"], rel=1e-5)
    assert np.isfinite(after) and after != before
    line = next(x for x in proc.err.splitlines() if x.startswith("old validation"))
    assert f"{before:.2f} before" in line and f"{after:.2f} after" in line


def counts(path: Path) -> Counter:
    """How often each word occurs in the new text (its only punctuation is full stops)."""
    return Counter(w for line in training_lines([str(path)]) for w in
                   line.replace(".", " . ").split())  # fmt: skip


@pytest.mark.parametrize(
    "flags, added",
    [
        ([], NEW_WORDS | {"zebra"}),
        (["--min-freq", "2"], NEW_WORDS),
        (["--vocab-size", "VOCAB+3"], {"fox", "barn", "fence"}),  # the three most frequent
    ],
)
def test_grow_vocab_appends_the_new_frequent_words_after_the_old_ids(base, store, flags, added):
    home, new = base
    old = Tokenizer.from_str((home / "m" / "tokenizer.json").read_text())
    flags = [str(old.vocab_size + 3) if f == "VOCAB+3" else f for f in flags]
    proc = run("train", str(new), "--model", "m", "--continue", "--grow-vocab", "--epochs", "1",
               *flags, "--json", home=store)  # fmt: skip
    assert proc.returncode == 0, proc.err
    grown = load_model(str(store / "m")).tokenizer
    assert json.loads(proc.out)["vocab"] == grown.vocab_size == old.vocab_size + len(added)
    for i in range(old.vocab_size):  # the old ids are unchanged
        assert grown.id_to_token(i) == old.id_to_token(i)
    appended = [grown.id_to_token(i) for i in range(old.vocab_size, grown.vocab_size)]
    assert set(appended) == added
    seen = counts(new)
    assert [seen[w] for w in appended] == sorted((seen[w] for w in appended), reverse=True)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_the_grown_starting_model_keeps_the_old_rows_and_inits_the_new_ones(corpus, tmp_path, tied):
    folder = tmp_path / "m"
    job = tiny_job([corpus], folder, epochs=1)
    job.net.tied = tied
    train_files(job)
    old = load_model(str(folder))
    new = new_text(tmp_path / "new.txt", repeat=200)
    job, start = finetune.start(continue_job(new, folder, grow=True), folder, None)
    tokenizer = start.vocabulary(training_lines([str(new)]))
    model = start.model(tokenizer.vocab_size, np.random.default_rng(1))
    V, grown = old.tokenizer.vocab_size, tokenizer.vocab_size
    assert grown == V + len(NEW_WORDS) + 1
    weights, before = model.weights(), old.model.weights()
    assert model.arch.tied is tied and model.dropout == old.config["dropout"]
    for name, array in before.items():
        rows = weights[name][:V] if name.split(".")[0] in ("encoder", "decoder") else weights[name]
        assert np.array_equal(rows, array), name
    assert np.array_equal(weights["decoder.bias"][V:], np.zeros(grown - V))
    for name in ("encoder.weight", "decoder.weight"):
        rows = weights[name][V:]
        assert rows.shape == (grown - V, 16) and np.abs(rows).max() <= 0.1
        assert abs(rows.mean()) < 0.02 and rows.std() == pytest.approx(0.1 / 3**0.5, rel=0.2)
    if tied:
        assert np.shares_memory(model.decoder_weight, model.params["encoder.weight"])
    else:
        assert not np.array_equal(weights["encoder.weight"][V:], weights["decoder.weight"][V:])


def continue_job(new: Path, folder: Path, *, grow=False, epochs=3, resume=False) -> TrainJob:
    """The job of `wordlstm train NEW --model FOLDER --continue --epochs N [--grow-vocab]
    [--resume]`."""
    return TrainJob(
        files=[str(new)],
        model=str(folder),
        recipe=Recipe(epochs=epochs),
        resume=resume,
        continued=True,
        grow_vocab=grow,
        given=frozenset({"epochs"}),
    )


def sigint_at(epoch: int, step: int):
    def on_progress(p) -> None:
        if p.epoch == epoch and p.step == step:
            os.kill(os.getpid(), signal.SIGINT)

    return on_progress


@pytest.mark.parametrize("grow", [False, True], ids=["kept", "grown"])
@pytest.mark.parametrize(
    "stops",
    [[(1, 3), (1, 6)], [(2, 5)]],
    ids=["twice before any epoch ended", "mid-epoch"],
)
def test_ctrl_c_then_resume_gives_the_weights_of_an_uninterrupted_continue(
    base, tmp_path, grow, stops
):
    home, new = base
    reference, folder = tmp_path / "reference", tmp_path / "m"
    shutil.copytree(home / "m", reference)
    shutil.copytree(home / "m", folder)
    train_files(continue_job(new, reference, grow=grow))
    for i, (epoch, step) in enumerate(stops):
        with pytest.raises(Interrupted, match=f"stopped in epoch {epoch} after step {step}"):
            job = continue_job(new, folder, grow=grow, resume=i > 0)
            train_files(job, on_progress=sigint_at(epoch, step))
        assert resume.read(folder).state.step == step
        if epoch == 1:  # no epoch of the new run validated: the folder keeps the old model
            old = load_model(str(home / "m"))
            loaded = load_model(str(folder))
            tokenizer = (folder / "tokenizer.json").read_bytes()
            assert tokenizer == (home / "m" / "tokenizer.json").read_bytes()
            assert max_difference(folder, home / "m") == 0
            assert loaded.config["metrics"] == old.config["metrics"]
            assert loaded.config["data"] == old.config["data"]
    result = train_files(continue_job(new, folder, grow=grow, resume=True))
    assert max_difference(folder, reference) <= 1e-6
    assert max_difference(folder, reference, "training.npz") <= 1e-6
    assert (folder / "tokenizer.json").read_bytes() == (reference / "tokenizer.json").read_bytes()
    done = json.loads((folder / "config.json").read_text())
    expected = json.loads((reference / "config.json").read_text())
    assert [e["valid_ppl"] for e in done["history"]] == [
        e["valid_ppl"] for e in expected["history"]
    ]
    assert result.old_valid_ppl_before == expected["continued"]["old_valid_ppl_before"]
    assert "pending_run" not in done


def test_ctrl_c_in_the_cli_prints_how_to_resume_the_continued_run(base, tmp_path):
    home, _ = base
    store = tmp_path / "store"
    store.mkdir()
    for name in ("m", "ref"):
        shutil.copytree(home / "m", store / name)
    new = new_text(tmp_path / "long.txt", repeat=300)
    args = ["train", str(new), "--continue", "--grow-vocab", "--epochs", "3", "--model"]
    run(*args, "ref", home=store, check=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wordlstm", *args, "m"],
        env=cli_env(store),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert read_epoch_line(proc.stderr).startswith(b"epoch   1 |")
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 130, err
    finally:
        proc.kill()
        proc.stderr.close()
    lines = err.splitlines()
    assert lines[-2].startswith("interrupted: stopped in epoch ")
    command = shlex.split(lines[-1].removeprefix("resume with: "))
    assert command == ["wordlstm", *args, "m", "--resume"]
    resumed = run(*command[1:], home=store, check=True)
    assert "old validation" in resumed.err
    assert max_difference(store / "m", store / "ref") <= 1e-6


def test_the_old_validation_text_gone_is_said_and_the_new_one_reported(corpus, tmp_path):
    home = tmp_path / "store"
    text = tmp_path / "old.txt"
    shutil.copy(corpus, text)
    run("train", str(text), *TINY, "--epochs", "1", "--model", "m", home=home, check=True)
    text.unlink()
    new = new_text(tmp_path / "new.txt")
    proc = run("train", str(new), "--model", "m", "--continue", "--epochs", "1", "--json",
               home=home)  # fmt: skip
    assert proc.returncode == 0, proc.err
    summary = json.loads(proc.out)
    assert summary["old_valid_ppl_before"] is None and summary["old_valid_ppl_after"] is None
    assert np.isfinite(summary["valid_ppl"])
    line = next(x for x in proc.err.splitlines() if x.startswith("old validation"))
    assert str(text) in line and "only the new validation" in line


def test_the_old_validation_text_given_by_a_relative_valid_path_is_found(
    corpus, tmp_path, monkeypatch
):
    """The model records --valid as an absolute path, so a run elsewhere reads it again."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1]))  # this wordlstm, anywhere
    home, where = tmp_path / "store", tmp_path / "old"
    where.mkdir()
    (where / "v.txt").write_text("The cat sat on the rug.\nI had a loan.\n" * 5)
    args = ["train", str(corpus), *TINY, "--epochs", "1", "--valid", "v.txt", "--model", "m"]
    run(*args, home=home, cwd=where, check=True)
    new = new_text(tmp_path / "new.txt")
    proc = run("train", str(new), "--model", "m", "--continue", "--epochs", "1", "--json",
               home=home, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.err
    summary = json.loads(proc.out)
    old = json.loads((home / "m" / "config.json").read_text())["continued"]
    assert summary["old_valid"] == str(where / "v.txt")
    assert summary["old_valid_ppl_before"] == pytest.approx(old["metrics"]["valid_ppl"], rel=1e-5)
    assert np.isfinite(summary["old_valid_ppl_after"])


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--hidden", "32", "--layers", "2", "--embed", "16"],
         ["--hidden 16, not 32", "--layers 1, not 2"]),
        (["--lowercase", "--no-tied"], ["--lowercase", "--tied"]),
        (["--min-freq", "2"], ["--min-freq", "--grow-vocab"]),
        (["--grow-vocab", "--vocab-size", "5"], ["--vocab-size 5", "vocabulary of"]),
        (["--model", "nosuch"], ["nothing to continue", "nosuch"]),
    ],
)  # fmt: skip
def test_continue_refuses_flags_that_disagree_with_the_model(base, store, flags, words):
    home, new = base
    before = (store / "m" / "model.safetensors").read_bytes()
    proc = run("train", str(new), "--model", "m", "--continue", *flags, home=store)
    assert_one_error_line(proc, 2, *words)
    assert (store / "m" / "model.safetensors").read_bytes() == before


def test_grow_vocab_needs_continue(base, store):
    proc = run("train", str(base[1]), *TINY, "--model", "x", "--grow-vocab", home=store)
    assert_one_error_line(proc, 2, "--grow-vocab", "--continue")


def test_a_continued_run_resumes_only_as_one(base, store):
    """Plain --resume of an interrupted --continue run is refused, and the other way round."""
    _, new = base
    with pytest.raises(Interrupted):
        train_files(continue_job(new, store / "m"), on_progress=sigint_at(1, 3))
    proc = run("train", str(new), "--model", "m", "--epochs", "3", "--resume", home=store)
    assert_one_error_line(proc, 2, "cannot resume", "--continue --resume")
    run("train", str(new), *TINY, "--model", "p", "--epochs", "3", home=store, check=True)
    proc = run("train", str(new), "--model", "p", "--continue", "--resume", home=store)
    assert_one_error_line(proc, 2, "cannot resume", "not a --continue run")


def test_an_unfinished_model_cannot_be_continued(base, store, corpus):
    with pytest.raises(Interrupted):
        train_files(tiny_job([corpus], store / "u", epochs=2), on_progress=sigint_at(1, 3))
    proc = run("train", str(base[1]), "--model", "u", "--continue", home=store)
    assert_one_error_line(proc, 2, "nothing to continue", "--resume")
