"""The recipe's rules: the learning-rate schedule and when averaging begins (with the
validation perplexities scripted so that each rule is exercised on its own), the default
dropout and the default forget-gate bias."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, max_difference, run, tiny_job
from test_resume import sigint_at

import wordlstm.training
from wordlstm.errors import BadInput, Interrupted
from wordlstm.model import Architecture, LanguageModel
from wordlstm.predict import Evaluation
from wordlstm.resume import read
from wordlstm.settings import ModelSettings, Recipe
from wordlstm.training import AVERAGE_EVERY, AVERAGE_FROM, default_dropout, train
from wordlstm.trainjob import TrainJob, train_files


def script_validation(monkeypatch, perplexities, validated=None) -> None:
    """Makes training's validation return `perplexities`, one per call; `validated` gets the
    length of each validation text."""
    script = iter(perplexities)

    def fake_evaluate(model, ids, **kw):
        if validated is not None:
            validated.append(len(ids))
        return Evaluation(tokens=1, nll=float(np.log(next(script))))

    monkeypatch.setattr(wordlstm.training, "evaluate", fake_evaluate)


def scripted_run(
    monkeypatch, perplexities, validated=None, watch=None, on_epoch=None, **recipe
) -> list:
    """Trains a tiny model with validation returning `perplexities` epoch by epoch; returns
    the state saved after each epoch. `validated` gets the length of each validation text;
    `watch(progress, model)` is called after every step, `on_epoch(epoch)` after each epoch."""
    script_validation(monkeypatch, perplexities, validated)
    arch = Architecture(vocab=11, embed=4, hidden=4, layers=1)
    rng = np.random.default_rng(0)
    model = LanguageModel.init(arch, rng)
    ids = rng.integers(0, 11, size=400)
    saved = []
    train(
        model,
        ids,
        ids[:50],
        Recipe(epochs=len(perplexities), batch_size=4, bptt=5, **recipe),
        rng,
        save=lambda state, epoch: saved.append(state),
        on_progress=lambda progress: watch and watch(progress, model),
        on_epoch=on_epoch or (lambda epoch: None),
    )
    return saved


PLATEAUS = [100, 90, 95, 80, 85, 70, 60, 50, 40, 30]  # epochs 3 and 5 do not improve


def test_averaging_begins_at_the_first_epoch_that_does_not_improve(monkeypatch):
    saved = scripted_run(monkeypatch, PLATEAUS)
    assert [s.average is not None for s in saved[:3]] == [False, False, True]
    # the first plateau begins the average instead of dividing; the next one divides
    assert [s.lr for s in saved[:6]] == [20, 20, 20, 20, 5, 5]


def test_without_averaging_every_plateau_divides_the_learning_rate(monkeypatch):
    saved = scripted_run(monkeypatch, PLATEAUS, average=False)
    assert [s.lr for s in saved[:6]] == [20, 20, 5, 5, 1.25, 1.25]


@pytest.mark.parametrize("epochs", [5, 10])
def test_averaging_begins_late_in_the_budget_when_validation_keeps_improving(monkeypatch, epochs):
    saved = scripted_run(monkeypatch, list(range(100, 100 - epochs, -1)))
    first = next(i for i, s in enumerate(saved) if s.average is not None) + 1
    assert first == int(np.ceil(AVERAGE_FROM * epochs))  # the epoch that reaches that share
    assert all(s.lr == 20 for s in saved)  # no plateau, so the learning rate stays


def test_a_later_epoch_near_the_best_is_saved_but_does_not_count_as_better(monkeypatch):
    """90.1 is within NEAR_BEST (0.2%) of 90: saved in its place, yet the schedule sees no
    improvement (the rate is divided, the best stays 90, so 90.15 is near it too); 90.2 is not
    near; 89 is a new best."""
    epochs = []
    saved = scripted_run(
        monkeypatch, [100, 90, 90.1, 90.15, 90.2, 89], on_epoch=epochs.append, average=False
    )
    assert [e.improved for e in epochs] == [True, True, False, False, False, True]
    assert [e.saved for e in epochs] == [True, True, True, True, False, True]
    assert [s.lr for s in saved] == [20, 20, 5, 1.25, 0.3125, 0.3125]
    assert [s.best_ppl for s in saved] == pytest.approx([100, 90, 90, 90, 90, 89])


def test_the_model_folder_holds_the_near_best_epoch_and_its_history_both_flags(
    tmp_path, monkeypatch, corpus
):
    monkeypatch.setenv("WORDLSTM_HOME", str(tmp_path))
    script_validation(monkeypatch, [100, 90, 90.1, 95])
    settings = ModelSettings(embed=8, hidden=8, layers=1)
    job = TrainJob(files=[str(corpus)], model="near", net=settings, recipe=Recipe(epochs=4))
    result = train_files(job)
    config = json.loads((Path(result.path) / "config.json").read_text())
    assert config["metrics"]["epoch"] == 3
    assert result.valid_ppl == pytest.approx(90.1)
    history = read(Path(result.path)).state.history
    assert [e.improved for e in history] == [True, True, False, False]
    assert [e.saved for e in history] == [True, True, True, False]


def test_no_averaging_without_average(monkeypatch):
    saved = scripted_run(monkeypatch, [100, 90, 95, 80, 70], average=False)
    assert all(s.average is None for s in saved)


def test_validation_reads_only_the_first_valid_tokens(monkeypatch):
    validated = []
    scripted_run(monkeypatch, [100, 90], validated, valid_tokens=20)
    assert validated == [21, 21]  # 20 tokens to predict, after the one before them
    validated.clear()
    scripted_run(monkeypatch, [100, 90], validated)  # the default cap is above these 50
    assert validated == [50, 50]


def test_the_average_holds_the_weights_of_every_tenth_step_since_it_began(monkeypatch):
    seen = {}  # (epoch, step) -> the weights after that step

    def watch(progress, model):
        seen[progress.epoch, progress.step] = {n: p.copy() for n, p in model.params.items()}

    saved = scripted_run(monkeypatch, [100, 110, 120], watch=watch)  # epoch 2 begins it
    steps = max(step for epoch, step in seen if epoch == 3)
    taken = [seen[2, steps]] + [seen[3, s] for s in range(1, steps + 1, AVERAGE_EVERY)]
    assert saved[2].averaged == len(taken) == 3
    for name, average in saved[2].average.items():
        expected = np.mean([w[name] for w in taken], axis=0)
        assert np.allclose(average, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "tokens, vocab, dropout",
    [(1, 1, 0.6), (73_760, 6_022, 0.6), (120_000, 10_000, 0.6), (245_569, 14_143, 0.4),
     (240_000, 10_000, 0.2), (300_000, 10_000, 0.1), (400_000, 10_000, 0.0),
     (169_861, 253, 0.0), (3_200_000, 10_000, 0.0), (3_200_000, 320_000, 0.6)],
)  # fmt: skip
def test_the_default_dropout_shrinks_as_each_word_is_seen_more_often(tokens, vocab, dropout):
    assert default_dropout(tokens, vocab) == dropout


def word_soup(path: Path, per_word: int, words: int = 300) -> None:
    """Writes a text of `words` distinct words, each `per_word` times, shuffled into lines."""
    tokens = [f"w{i}" for i in range(words)] * per_word
    random.Random(0).shuffle(tokens)
    lines = (" ".join(tokens[i : i + 9]) for i in range(0, len(tokens), 9))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "per_word, flags, dropout",
    [(6, [], 0.6), (24, [], 0.2), (6, ["--dropout", "0.25"], 0.25)],
    ids=["6 per word", "24 per word", "given"],
)
def test_train_records_the_dropout_its_text_calls_for(tmp_path, per_word, flags, dropout):
    """Without --dropout, a model trained through the CLI gets the rule's value for how often
    its text repeats each word, worked out here by hand: 6 training tokens per vocabulary
    word is under 12, so 0.6; 24 is one doubling past 12, so 0.6 - 0.4 = 0.2. A given
    --dropout is kept."""
    text, home = tmp_path / "soup.txt", tmp_path / "store"
    word_soup(text, per_word)
    run("train", str(text), *TINY, "--epochs", "1", *flags, home=home, check=True)
    config = json.loads((home / "default" / "config.json").read_text())
    seen = config["data"]["train_tokens"] / config["architecture"]["vocab"]
    assert per_word - 0.5 < seen < per_word + 0.5  # the text repeats each word as meant
    assert config["dropout"] == dropout


def test_the_default_model_starts_with_its_forget_gates_open():
    """The default forget-gate bias (1) goes into the forget rows of each layer's bias and
    nowhere else: a fresh cell keeps sigmoid(1) = 73% of its state per step, not half."""
    arch = Architecture(vocab=30, embed=16, hidden=16, layers=2)
    bias = ModelSettings().forget_bias
    opened = LanguageModel.init(arch, np.random.default_rng(0), forget_bias=bias)
    plain = LanguageModel.init(arch, np.random.default_rng(0))
    H = arch.hidden
    for name, p in opened.params.items():
        delta = p - plain.params[name]
        if name.startswith("rnn.bias_hh"):
            assert np.allclose(delta[H : 2 * H], 1.0), name
            delta[H : 2 * H] = 0.0
        assert not delta.any(), name


# The lr floor and the budget-planned schedule (options; the default is the plateau schedule)

FLAT = [100, 110, 120, 130, 140, 150, 160, 170]  # no epoch after the first improves


def test_the_lr_floor_stops_the_division_and_training_goes_on_at_it(monkeypatch):
    """Without averaging every plateau divides by 4: 20, 5, 1.25, then the floor of 1 (not
    0.3125), where the remaining epochs train, every step at it."""
    rates = []
    saved = scripted_run(
        monkeypatch, FLAT, watch=lambda p, m: rates.append(p.lr), average=False, lr_floor=1.0
    )
    assert [s.lr for s in saved] == [20, 5, 1.25, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert len(saved) == len(FLAT) and min(rates) == 1.0


def test_the_lr_floor_with_averaging(monkeypatch):
    """The first plateau begins the average and keeps the rate; the later ones divide it
    down to the floor and no further."""
    saved = scripted_run(monkeypatch, FLAT, lr_floor=0.5)
    assert [s.lr for s in saved] == [20, 20, 5, 1.25, 0.5, 0.5, 0.5, 0.5]


def test_a_floor_above_the_rate_never_raises_it(monkeypatch):
    """A rate already below the floor (here --lr; or after a divergence retry, which may go
    below it) is kept at plateaus, not brought up to the floor."""
    saved = scripted_run(monkeypatch, [100, 110, 120], average=False, lr=0.5, lr_floor=1.0)
    assert [s.lr for s in saved] == [0.5, 0.5, 0.5]


@pytest.mark.parametrize("epochs", [5, 10])
def test_the_budget_schedule_keeps_the_rate_and_averages_the_last_part(monkeypatch, epochs):
    """--schedule budget: plateaus (epochs 3 and 5) neither divide the rate nor begin the
    average; it begins once AVERAGE_FROM of the budget is spent, and the rate never moves."""
    rates = []
    saved = scripted_run(
        monkeypatch, PLATEAUS[:epochs], watch=lambda p, m: rates.append(p.lr), schedule="budget"
    )
    first = next(i for i, s in enumerate(saved) if s.average is not None) + 1
    assert first == int(np.ceil(AVERAGE_FROM * epochs))
    assert all(s.lr == 20 for s in saved) and set(rates) == {20}


def test_the_budget_schedule_without_averaging_keeps_the_rate_throughout(monkeypatch):
    saved = scripted_run(monkeypatch, FLAT, schedule="budget", average=False)
    assert all(s.lr == 20 and s.average is None for s in saved)


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"lr_floor": -1.0}, "^lr_floor must be a finite number, not negative$"),
        ({"lr_floor": float("inf")}, "^lr_floor"),
        ({"lr_floor": float("nan")}, "^lr_floor"),
        ({"schedule": "cosine"}, "^schedule must be one of plateau, budget$"),
    ],
)
def test_bad_schedule_options_are_refused(recipe, message):
    """The settings say what is wrong by field name (the CLI by flag: test_flags)."""
    with pytest.raises(BadInput, match=message):
        Recipe(**recipe)


def test_the_cli_passes_the_schedule_options_and_a_resume_must_agree(home, corpus):
    """Recorded in config.json's recipe; --resume with another floor or schedule is refused
    (exit 2, one line, the flag named); with the same ones it trains on."""
    args = ["train", str(corpus), *TINY, "--model", "m"]
    run(*args, "--epochs", "1", "--lr-floor", "0.5", "--schedule", "budget", home=home, check=True)
    recipe = json.loads((home / "m" / "config.json").read_text())["recipe"]
    assert (recipe["lr_floor"], recipe["schedule"]) == (0.5, "budget")
    more = [*args, "--epochs", "2", "--resume"]
    changes = [
        (["--lr-floor", "0.25", "--schedule", "budget"], "--lr-floor 0.25 (the run used 0.5)"),
        (["--lr-floor", "0.5", "--schedule", "plateau"], "--schedule"),
    ]
    for change, flag in changes:
        proc = run(*more, *change, home=home)
        assert proc.returncode == 2, proc.err
        assert proc.err.startswith("error: cannot resume") and flag in proc.err, proc.err
        assert len(proc.err.strip().splitlines()) == 1
    run(*more, "--lr-floor", "0.5", "--schedule", "budget", home=home, check=True)
    assert len(json.loads((home / "m" / "config.json").read_text())["history"]) == 2
    proc = run(*args, "--epochs", "1", "--schedule", "cosine", "--model", "n", home=home)
    assert proc.returncode == 2 and proc.err.startswith("error: --schedule"), proc.err


@pytest.mark.parametrize(
    "options",
    [{"lr_floor": 2.0, "average": False}, {"schedule": "budget"}],
    ids=["lr floor", "budget schedule"],
)
def test_a_run_with_the_schedule_options_resumes_exactly(corpus, tmp_path, options):
    """Interrupted late (at the floor; averaging under the budget plan), resumed with the same
    options: the weights and training state of the uninterrupted run."""
    epochs = 10
    reference = tmp_path / "reference"
    train_files(tiny_job([corpus], reference, epochs=epochs, dropout=0.2, **options))
    history = json.loads((reference / "config.json").read_text())["history"]
    state = read(reference).state
    if "lr_floor" in options:
        assert [e["lr"] for e in history][-3:] == [2.0] * 3  # the floor was reached
    else:
        assert state.averaged > 1 and {e["lr"] for e in history} == {20.0}
    interrupted = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        train_files(
            tiny_job([corpus], interrupted, epochs=epochs, dropout=0.2, **options),
            on_progress=sigint_at(8, 2),
        )
    train_files(tiny_job([corpus], interrupted, epochs=epochs, dropout=0.2, resume=True, **options))
    assert max_difference(interrupted, reference) <= 1e-6
    assert max_difference(interrupted, reference, "training.npz") <= 1e-6


def test_a_run_saved_before_the_schedule_options_existed_resumes_with_their_defaults(
    corpus, tmp_path
):
    """Its fingerprint lacks them; it trained as the defaults do (plateau, no floor), so it
    resumes with those and is refused with others."""
    folder = tmp_path / "m"
    train_files(tiny_job([corpus], folder, epochs=1))
    doc = json.loads((folder / "training.json").read_text())
    for key in ("schedule", "lr_floor"):
        del doc["fingerprint"]["settings"][key]
    (folder / "training.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="schedule"):
        train_files(tiny_job([corpus], folder, epochs=2, resume=True, schedule="budget"))
    train_files(tiny_job([corpus], folder, epochs=2, resume=True))
    assert len(read(folder).state.history) == 2
