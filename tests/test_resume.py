"""Exact resume and divergence: Ctrl-C saves a state that resumes to the very weights of an
uninterrupted run, a different run is refused, and a NaN never reaches a saved model."""

import json
import math
import os
import shlex
import shutil
import signal
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np
import pytest
from conftest import TINY, assert_one_error_line, max_difference, run, start_training, tiny_job
from safetensors.numpy import load_file

import wordlstm.training
from wordlstm import identity, resume
from wordlstm.checkpoint import load_model
from wordlstm.errors import BadInput, Interrupted, RunFailure
from wordlstm.model import LanguageModel
from wordlstm.settings import ADAPTIVE_FROM, ModelSettings, Recipe
from wordlstm.trainjob import train_files

SETUPS = ["sgd", "adam, untied", "sgd, dropout", "sgd, regularised", "sgd, adaptive"]
DROPOUT = 0.3  # the "sgd, dropout" setup's: each step draws its masks from the generator


def job(corpus, folder, setup="sgd", **kw):
    """The tiny training job on the corpus: the default SGD recipe (tied weights; no dropout
    on this corpus), Adam with untied weights, SGD with dropout, SGD with two layers and
    every regulariser on (their masks drawn from the training generator), or SGD with the
    adaptive softmax (tied: its head's word rows; two clusters)."""
    adam = setup == "adam, untied"
    dropout = DROPOUT if setup == "sgd, dropout" else None
    j = tiny_job([corpus], folder, optimizer="adam" if adam else "sgd", dropout=dropout, **kw)
    j.net.tied = not adam
    if setup == "sgd, regularised":
        j.net = replace(
            j.net, layers=2, dropout=0.2, dropout_input=0.3, dropout_hidden=0.1, locked=True,
            embed_dropout=0.1, weight_drop=0.3, ar=1.0, tar=1.0,
        )  # fmt: skip
    if setup == "sgd, adaptive":
        j.net = replace(j.net, softmax="adaptive", cutoffs=[4, 12])
    return j


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus):
    """Uninterrupted 3-epoch runs, one per setup."""
    root = tmp_path_factory.mktemp("reference")
    for setup in SETUPS:
        train_files(job(corpus, root / setup, setup))
    return root


def sigint_at(epoch: int, step: int | str):
    """An on_progress callback that presses Ctrl-C after that step ("last": the epoch's last)."""

    def on_progress(p) -> None:
        if p.epoch == epoch and (p.step == step or (step == "last" and p.step == p.steps)):
            os.kill(os.getpid(), signal.SIGINT)

    return on_progress


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize(
    "epoch, step",
    [(1, 3), (2, 5), (1, "last")],
    ids=["before any epoch ended", "mid-epoch", "after the last step"],
)
def test_ctrl_c_then_resume_gives_the_weights_of_an_uninterrupted_run(
    corpus, tmp_path, reference, setup, epoch, step
):
    folder = tmp_path / "m"
    with pytest.raises(Interrupted, match=f"stopped in epoch {epoch} after step"):
        train_files(job(corpus, folder, setup), on_progress=sigint_at(epoch, step))
    config = json.loads((folder / "config.json").read_text())
    assert config.get("unfinished", False) == (epoch == 1)
    load_model(str(folder))  # an interrupted model loads, unfinished or not
    saved = resume.read(folder)
    assert saved.state.epoch == epoch and saved.state.step > 0 and saved.state.hidden
    train_files(job(corpus, folder, setup, resume=True))
    assert max_difference(folder, reference / setup) == 0.0  # bitwise
    assert max_difference(folder, reference / setup, "training.npz") == 0.0
    done = json.loads((folder / "config.json").read_text())
    expected = json.loads((reference / setup / "config.json").read_text())
    dropout = {"sgd, dropout": DROPOUT, "sgd, regularised": 0.2}.get(setup, 0)
    assert done["dropout"] == expected["dropout"] == dropout
    assert [e["valid_ppl"] for e in done["history"]] == [
        e["valid_ppl"] for e in expected["history"]
    ]
    assert "unfinished" not in done


def test_ctrl_c_at_an_epoch_end_resumes_exactly(corpus, tmp_path, reference):
    folder = tmp_path / "m"

    def on_epoch(e) -> None:
        if e.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="stopped in epoch 2 after step 0"):
        train_files(job(corpus, folder), on_epoch=on_epoch)
    assert resume.read(folder).state.hidden is None  # a fresh epoch starts from zero state
    train_files(job(corpus, folder, resume=True))
    assert max_difference(folder, reference / "sgd") <= 1e-6


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory, corpus):
    """A corpus whose epochs last long enough to interrupt, and its uninterrupted run."""
    root = tmp_path_factory.mktemp("cli")
    text = root / "long.txt"
    text.write_text(corpus.read_text() * 6)
    run("train", str(text), *TINY, "--epochs", "3", "--model", "ref", home=root, check=True)
    return root, text


def test_ctrl_c_in_the_cli_prints_how_to_resume_and_exits_130(cli_reference):
    home, text = cli_reference
    proc = start_training(home, text, "m")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 130, err
    assert "error" not in err and "Traceback" not in err
    lines = err.splitlines()
    assert lines[-2].startswith("interrupted: stopped in epoch ")
    command = lines[-1].removeprefix("resume with: ")
    args = ["train", str(text), *TINY, "--epochs", "3", "--model", "m"]
    assert shlex.split(command) == ["wordlstm", *args, "--resume"]
    resumed = run(*shlex.split(command)[1:], home=home, check=True)
    assert "saved m" in resumed.err
    assert max_difference(home / "m", home / "ref") <= 1e-6


def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(cli_reference):
    home, text = cli_reference
    proc = start_training(home, text, "k")
    proc.kill()
    proc.wait(timeout=60)
    proc.stderr.close()
    run("train", str(text), *TINY, "--epochs", "3", "--model", "k", "--resume", home=home)
    assert max_difference(home / "k", home / "ref") <= 1e-6


@pytest.fixture
def interrupted(corpus, tmp_path, monkeypatch):
    """A store holding `m`, interrupted in epoch 1 of `train CORPUS *TINY --epochs 2`."""
    home = tmp_path / "store"
    monkeypatch.setenv("WORDLSTM_HOME", str(home))
    with pytest.raises(Interrupted):
        train_files(job(corpus, home / "m", epochs=2), on_progress=sigint_at(1, 3))
    return home


@pytest.mark.parametrize(
    "change, words",
    [
        (["--hidden", "32"], ["--hidden 32 (the run used 16)"]),
        (["--lowercase"], ["--lowercase"]),
        (["--optimizer", "adam"], ["--optimizer"]),
        (["--seed", "5"], ["--seed"]),
        (["--dropout", "0.3"], ["--dropout"]),
        (["--dropout-input", "0.3"], ["--dropout-input"]),
        (["--locked"], ["--locked"]),
        (["--weight-drop", "0.3"], ["--weight-drop"]),
        (["--tar", "1"], ["--tar"]),
        (["--bptt", "7"], ["--bptt"]),
        (["OTHER"], ["text is not the one it was trained on"]),
        (["--valid", "OTHER"], ["text is not the one"]),
    ],
)
def test_resume_refuses_a_different_run(interrupted, corpus, tmp_path, change, words):
    other = tmp_path / "other.txt"
    other.write_text(corpus.read_text().replace("cat", "cow"))
    before = (interrupted / "m" / "training.json").read_bytes()
    args = ["train", str(corpus), *TINY, "--epochs", "2", "--model", "m", "--resume"]
    if change == ["OTHER"]:
        args[1] = str(other)
    else:
        args += [str(other) if a == "OTHER" else a for a in change]
    assert_one_error_line(run(*args, home=interrupted), 2, "cannot resume", *words)
    assert (interrupted / "m" / "training.json").read_bytes() == before


def test_resume_reports_every_disagreeing_flag_at_once_in_flag_words(interrupted, corpus):
    before = (interrupted / "m" / "training.json").read_bytes()
    args = ["train", str(corpus), *TINY, "--epochs", "2", "--model", "m", "--resume"]
    changes = ["--hidden", "32", "--seed", "5", "--no-tied", "--lowercase", "--dropout", "0.3"]
    proc = run(*args, *changes, home=interrupted)
    assert_one_error_line(
        proc,
        2,
        "cannot resume m: ",
        "--hidden 32 (the run used 16)",
        "--seed 5 (the run used 1111)",
        "--no-tied (the run used --tied)",
        "--lowercase (the run did not use it)",
        "--dropout 0.3 (the run used the default)",
    )
    assert (interrupted / "m" / "training.json").read_bytes() == before


# Resume without retyping: files and flags come from the model folder


def test_resume_with_no_files_or_flags_reads_them_from_the_model_folder(cli_reference, tmp_path):
    home, text = cli_reference
    proc = start_training(home, text, "r")
    proc.send_signal(signal.SIGINT)
    proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    resumed = run("train", "--model", "r", "--resume", home=home, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.err
    assert max_difference(home / "r", home / "ref") <= 1e-6


def test_resume_reads_a_relative_valid_file_back_from_another_folder(home, corpus, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "valid.txt").write_text(corpus.read_text()[:2000])
    args = ["train", str(corpus), *TINY, "--epochs", "1", "--valid", "valid.txt", "--model", "v"]
    run(*args, home=home, cwd=work, check=True)
    more = run("train", "--model", "v", "--resume", "--epochs", "2", home=home, cwd=tmp_path)
    assert more.returncode == 0, more.err
    assert len(json.loads((home / "v" / "config.json").read_text())["history"]) == 2


def test_resume_given_flags_must_agree_and_others_come_from_the_folder(interrupted):
    assert_one_error_line(
        run("train", "--model", "m", "--resume", "--bptt", "9", home=interrupted),
        2,
        "cannot resume m: --bptt 9 (the run used 6)",
    )
    done = run("train", "--model", "m", "--resume", "--bptt", "6", home=interrupted)
    assert done.returncode == 0, done.err
    assert len(json.loads((interrupted / "m" / "config.json").read_text())["history"]) == 2


def test_resume_without_files_of_a_run_on_stdin_says_to_give_them(interrupted):
    config_file = interrupted / "m" / "config.json"
    config = json.loads(config_file.read_text())
    config["data"]["files"] = ["-"]  # as a run on stdin records it
    config_file.write_text(json.dumps(config))
    proc = run("train", "--model", "m", "--resume", home=interrupted)
    assert_one_error_line(proc, 2, "cannot resume m without its text", "standard input")
    shown = run("models", "show", "m", home=interrupted)
    assert "resume with   wordlstm train - --model m --resume\n" in shown.out


def edit_config(folder, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


READ_BACK_DAMAGE = {
    "bad json": lambda m: (m / "training.json").write_text("{"),
    "settings not an object": lambda m: edit_state(m, lambda d: d.update(fingerprint=[])),
    "a setting of the wrong type": lambda m: edit_state(
        m, lambda d: d["fingerprint"]["settings"].update(hidden="many")
    ),
    "files not a list": lambda m: edit_config(m, lambda c: c["data"].update(files="a.txt")),
    "no recipe": lambda m: edit_config(m, lambda c: c.pop("recipe")),
    "pickled arrays": lambda m: (m / "training.npz").write_bytes(b"\x80\x04\x95\x05\x00\x00"),
}


@pytest.mark.parametrize("case", list(READ_BACK_DAMAGE))
def test_resume_without_files_refuses_a_damaged_folder_in_one_line(interrupted, case):
    READ_BACK_DAMAGE[case](interrupted / "m")
    proc = run("train", "--model", "m", "--resume", home=interrupted)
    assert_one_error_line(proc, 2, "m", "training.npz" if case == "pickled arrays" else "resume")


def test_train_without_files_and_without_resume_is_a_usage_error(home):
    proc = run("train", "--model", "m", home=home)
    assert_one_error_line(proc, 2, "FILES")


def models_row(home, name: str) -> list[str]:
    listing = run("models", home=home)
    assert listing.returncode == 0, listing.err
    return next(line.split() for line in listing.out.splitlines() if line.split()[0] == name)


def test_models_marks_interrupted_runs_and_show_prints_the_command_that_resumes(
    cli_reference, corpus
):
    home, text = cli_reference
    proc = start_training(home, text, "i")
    proc.send_signal(signal.SIGINT)
    proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert models_row(home, "i")[-1] == "interrupted"
    assert models_row(home, "ref")[-1] == "finished"
    shown = run("models", "show", "i", home=home)
    assert shown.returncode == 0, shown.err
    assert "status        interrupted\n" in shown.out
    command = next(line for line in shown.out.splitlines() if line.startswith("resume with"))
    assert command == "resume with   wordlstm train --model i --resume"
    resumed = run(*shlex.split(command.removeprefix("resume with"))[1:], home=home)
    assert resumed.returncode == 0, resumed.err
    assert models_row(home, "i")[-1] == "finished"
    assert "resume with" not in run("models", "show", "i", home=home).out


def test_models_marks_a_run_in_training(cli_reference):
    home, text = cli_reference
    proc = start_training(home, text, "t", epochs=8)
    try:
        assert models_row(home, "t")[-1] == "training"
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()
    assert models_row(home, "t")[-1] == "interrupted"


def test_a_run_that_its_time_budget_ended_is_finished_not_interrupted(home, corpus):
    args = ["train", str(corpus), *TINY, "--epochs", "10000", "--max-time", "1.5"]
    run(*args, "--model", "b", home=home, check=True)
    assert models_row(home, "b")[-1] == "finished"


def test_resume_may_raise_the_epochs(interrupted, corpus):
    run("train", str(corpus), *TINY, "--epochs", "3", "--model", "m", "--resume",
        home=interrupted, check=True)  # fmt: skip
    assert len(json.loads((interrupted / "m" / "config.json").read_text())["history"]) == 3


def test_resume_with_nothing_to_resume(trained, tmp_path):
    home = tmp_path / "store"
    shutil.copytree(trained, home)
    args = ["train", "CORPUS", *TINY, "--model"]
    proc = run(*args, "nosuch", "--resume", home=home)
    assert_one_error_line(proc, 2, "nothing to resume", "nosuch")
    proc = run(*args, "default", "--epochs", "3", "--resume", home=home)
    assert_one_error_line(proc, 2, "nothing to resume", "finished all its 3 epochs")
    (home / "default" / "training.json").unlink()
    proc = run(*args, "default", "--epochs", "5", "--resume", home=home)
    assert_one_error_line(proc, 2, "nothing to resume", "no training state")


DAMAGE = {
    "bad json": lambda m: (m / "training.json").write_text("{"),
    "newer version": lambda m: edit_state(m, lambda d: d.update(version=2)),
    "step not a number": lambda m: edit_state(m, lambda d: d["state"].update(step="3")),
    "bool epoch": lambda m: edit_state(m, lambda d: d["state"].update(epoch=True)),
    "bad rng": lambda m: edit_state(m, lambda d: d["state"].update(rng={"x": 1})),
    "bad history": lambda m: edit_state(m, lambda d: d["state"].update(history=[{"a": 1}])),
    "no arrays": lambda m: (m / "training.npz").unlink(),
    "wrong shapes": lambda m: np.savez(m / "training.npz", **{"params/encoder.weight": [1.0]}),
    "pickle": lambda m: (m / "training.npz").write_bytes(b"\x80\x04\x95\x05\x00\x00"),
}


def edit_state(folder, change) -> None:
    doc = json.loads((folder / "training.json").read_text())
    change(doc)
    (folder / "training.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_training_state_is_refused(interrupted, corpus, case):
    DAMAGE[case](interrupted / "m")
    with pytest.raises(BadInput) as caught:
        train_files(job(corpus, interrupted / "m", epochs=2, resume=True))
    assert "\n" not in str(caught.value)


def test_a_history_written_before_improved_existed_still_resumes(corpus, tmp_path, monkeypatch):
    """Until epochs recorded `improved` apart, `saved` meant the same; such a state reads so."""
    monkeypatch.setenv("WORDLSTM_HOME", str(tmp_path))
    with pytest.raises(Interrupted):
        train_files(job(corpus, tmp_path / "m", epochs=3), on_progress=sigint_at(2, 3))
    for epoch in json.loads((tmp_path / "m" / "training.json").read_text())["state"]["history"]:
        assert epoch["improved"] == epoch["saved"] is True
    edit_state(tmp_path / "m", lambda d: [e.pop("improved") for e in d["state"]["history"]])
    history = resume.read(tmp_path / "m").state.history
    assert [(e.improved, e.saved) for e in history] == [(True, True)]
    train_files(job(corpus, tmp_path / "m", epochs=3, resume=True))


def test_a_history_written_before_averaged_existed_still_resumes(corpus, tmp_path, monkeypatch):
    """Epochs recorded `averaged` from issue 23 on; an older state reads it as False."""
    monkeypatch.setenv("WORDLSTM_HOME", str(tmp_path))
    with pytest.raises(Interrupted):
        train_files(job(corpus, tmp_path / "m", epochs=3), on_progress=sigint_at(2, 3))
    edit_state(tmp_path / "m", lambda d: [e.pop("averaged") for e in d["state"]["history"]])
    assert [e.averaged for e in resume.read(tmp_path / "m").state.history] == [False]
    train_files(job(corpus, tmp_path / "m", epochs=3, resume=True))
    history = json.loads((tmp_path / "m" / "config.json").read_text())["history"]
    assert [type(e["averaged"]) for e in history] == [bool] * 3


def test_a_run_saved_before_the_regularisers_and_schedules_existed_resumes(interrupted, corpus):
    """A fingerprint without the settings added later (as runs saved before them have) reads
    as their defaults: the run resumes, and a run with one of them on is another run."""
    state = interrupted / "m" / "training.json"
    doc = json.loads(state.read_text())
    for name in identity.ADDED_SETTINGS:
        del doc["fingerprint"]["settings"][name]
    state.write_text(json.dumps(doc))
    regularised = job(corpus, interrupted / "m", epochs=2, resume=True)
    regularised.net.weight_drop = 0.3
    with pytest.raises(BadInput, match="weight_drop"):
        train_files(regularised)
    train_files(job(corpus, interrupted / "m", epochs=2, resume=True))


def test_the_added_settings_default_to_what_a_run_has_without_them():
    """ADDED_SETTINGS must be the defaults of the settings' own dataclasses, as a fingerprint
    records them (the softmax as chosen for a vocabulary that the full softmax serves)."""
    defaults = {**asdict(ModelSettings()), **asdict(Recipe())}
    defaults["softmax"] = ModelSettings().softmax_for(ADAPTIVE_FROM - 1)
    assert {name: defaults[name] for name in identity.ADDED_SETTINGS} == identity.ADDED_SETTINGS


# Divergence


def poison(monkeypatch, where: str, fails) -> Callable:
    """Makes the loss or the gradient norm NaN at the steps where `fails((epoch, step))`;
    returns the on_progress callback that tells it where training is."""
    position = (1, 1)

    def on_progress(p) -> None:
        nonlocal position
        position = (p.epoch + 1, 1) if p.step == p.steps else (p.epoch, p.step + 1)

    if where == "loss":
        real_loss = LanguageModel.loss

        def loss(self, out, targets):
            value, *rest = real_loss(self, out, targets)
            return (math.nan if fails(position) else value), *rest

        monkeypatch.setattr(LanguageModel, "loss", loss)
    else:
        real_norm = wordlstm.training.global_norm

        def norm(grads):
            return math.inf if fails(position) else real_norm(grads)

        monkeypatch.setattr(wordlstm.training, "global_norm", norm)
    return on_progress


def once(epoch: int, step: int):
    """True the first time at (epoch, step) only."""
    left = {(epoch, step)}

    def fails(position) -> bool:
        hit = position in left
        left.discard(position)
        return hit

    return fails


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_nan_sends_training_back_to_the_epoch_start_with_a_lower_lr(
    corpus, tmp_path, monkeypatch, where
):
    """Poisoned at two different steps of epoch 2, two runs end with the same weights: both
    went back to the same state at the start of the epoch, random generator included."""
    retries = []
    for name, step in (("a", 4), ("b", 30)):
        on_progress = poison(monkeypatch, where, once(2, step))
        train_files(job(corpus, tmp_path / name), on_progress=on_progress, on_retry=retries.append)
        monkeypatch.undo()
    assert [(r.epoch, r.step, r.lr, r.retry) for r in retries] == [(2, 4, 5.0, 1), (2, 30, 5.0, 1)]
    assert max_difference(tmp_path / "a", tmp_path / "b") == 0
    history = json.loads((tmp_path / "a" / "config.json").read_text())["history"]
    assert [e["lr"] for e in history][:2] == [20.0, 5.0]


def test_training_that_keeps_diverging_stops_and_keeps_the_last_good_save(
    corpus, tmp_path, monkeypatch
):
    retries = []
    on_progress = poison(monkeypatch, "loss", lambda position: position[0] >= 2)
    with pytest.raises(RunFailure, match="diverged .* in epoch 2 .* 0.3125") as e:
        train_files(job(corpus, tmp_path / "m"), on_progress=on_progress, on_retry=retries.append)
    assert str(e.value).endswith("try a lower lr or clip")  # the settings' names, not flags
    assert [r.lr for r in retries] == [5.0, 1.25, 0.3125]
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.config["metrics"]["epoch"] == 1
    assert all(np.isfinite(p).all() for p in loaded.model.params.values())
    assert resume.read(tmp_path / "m").state.epoch == 2  # resumable from there


def test_cli_divergence_is_one_error_line_and_saves_nothing(home, corpus):
    proc = run("train", str(corpus), *TINY, "--epochs", "2", "--lr", "1e38", home=home)
    assert proc.returncode == 1, proc.err
    errors = [line for line in proc.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged" in errors[0]
    assert errors[0].endswith("try a lower --lr or --clip")
    assert proc.err.splitlines()[-1] == errors[0]
    assert "Warning" not in proc.err and "Traceback" not in proc.err
    assert proc.err.count("back to the start of the epoch") == 3
    assert not home.exists() or os.listdir(home) == []


def test_averaged_weights_are_validated_saved_and_resumed_exactly(corpus, tmp_path):
    """--average: from the first epoch that does not improve, the running average of the
    weights is what is validated and saved; an interrupted run resumes it exactly."""
    EPOCHS = 10
    reference = tmp_path / "reference"
    train_files(job(corpus, reference, epochs=EPOCHS, average=True))
    saved = resume.read(reference)
    assert saved.state.averaged > 1  # averaging began (the tiny corpus plateaus early)
    history = json.loads((reference / "config.json").read_text())["history"]
    first_plateau = next(e["epoch"] for e in history if not e["saved"])
    assert first_plateau < EPOCHS - 1
    # the saved model is the average whenever the best epoch came after averaging began
    best = max(e["epoch"] for e in history if e["saved"])
    with np.load(reference / "training.npz") as state:
        current = {k.split("/", 1)[1]: state[k] for k in state.files if k.startswith("params/")}
        average = {k.split("/", 1)[1]: state[k] for k in state.files if k.startswith("average/")}
    assert average and max(float(np.abs(current[k] - average[k]).max()) for k in current) > 0

    interrupted = tmp_path / "interrupted"
    epoch = first_plateau + 1  # interrupted while averaging
    with pytest.raises(Interrupted):
        train_files(
            job(corpus, interrupted, epochs=EPOCHS, average=True), on_progress=sigint_at(epoch, 2)
        )
    train_files(job(corpus, interrupted, epochs=EPOCHS, average=True, resume=True))
    assert max_difference(interrupted, reference) <= 1e-6
    assert max_difference(interrupted, reference, "training.npz") <= 1e-6
    if best > first_plateau:
        w = load_file(reference / "model.safetensors")
        assert not np.array_equal(w["encoder.weight"], current["encoder.weight"])
