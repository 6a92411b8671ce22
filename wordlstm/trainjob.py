"""The train command's job, from text files to a saved model: read the files, build the
vocabulary, split off validation, train, and save the model folder after every epoch. Apart
from the jobs that only read a model (`pipeline`), so that those start without importing
the trainer."""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from wordlstm import resume, store
from wordlstm.data import hold_out
from wordlstm.errors import Interrupted, RunFailure
from wordlstm.model import Architecture, LanguageModel
from wordlstm.regularisers import Regularisers
from wordlstm.text import read_training_lines
from wordlstm.tokenizer import Tokenizer
from wordlstm.train import Epoch, Progress, Recipe, Retry, default_dropout, train

VALID_FRACTION = 0.1


@dataclass
class TokenizerSettings:
    split: str = "words"
    lowercase: bool = False
    vocab_size: int = 0
    min_freq: int = 1


@dataclass
class ModelSettings:
    embed: int = 200
    hidden: int = 200
    layers: int = 2
    dropout: float | None = None  # None: by tokens per vocabulary word (default_dropout)
    tied: bool = True
    forget_bias: float = 1.0  # cells start out remembering: see README, "train"
    dropout_input: float | None = None  # None: the dropout's
    dropout_hidden: float | None = None  # None: the dropout's
    locked: bool = False
    embed_dropout: float = 0.0
    weight_drop: float = 0.0
    ar: float = 0.0
    tar: float = 0.0


# Settings newer than the first resumable runs: a fingerprint leaves them out where they
# have their defaults, as the fingerprints of those runs do, so that they still resume
_LATER_SETTINGS = ("dropout_input", "dropout_hidden", "locked", "embed_dropout", "weight_drop")
_LATER_SETTINGS += ("ar", "tar")
_DEFAULT_NET = asdict(ModelSettings())


@dataclass
class TrainJob:
    """Everything `wordlstm train` was asked to do."""

    files: list[str]
    model: str = "default"
    valid: str | None = None
    seed: int = 1111
    tokenizer: TokenizerSettings = field(default_factory=TokenizerSettings)
    net: ModelSettings = field(default_factory=ModelSettings)
    recipe: Recipe = field(default_factory=Recipe)
    resume: bool = False


@dataclass
class TrainResult:
    model: str
    path: str
    epochs: int
    train_tokens: int
    seconds: float
    tokens_per_sec: float
    valid_ppl: float
    vocab: int
    params: int


def train_files(
    job: TrainJob,
    on_progress: Callable[[Progress], None] = lambda p: None,
    on_epoch: Callable[[Epoch], None] = lambda e: None,
    on_retry: Callable[[Retry], None] = lambda r: None,
) -> TrainResult:
    """Reads the files, builds the vocabulary, trains, and saves the model after every epoch:
    the best weights so far (or later ones near them) with the state to resume from
    (`job.resume` starts there).

    Holds the model's writer lock throughout, so a second run into it fails at once. The
    first Ctrl-C stops training after the current step, saves, and raises Interrupted.
    """
    clock = time.perf_counter()
    path = store.resolve(job.model)
    _regularisers(job.net, auto_dropout=0.0)  # a bad setting fails before any file is read
    settings = _settings(job)
    with store.writer_lock(path):
        saved = resume.read(path) if job.resume else None
        if saved is not None:
            resume.check_settings(saved, settings, path, job.recipe.epochs)
        tokenizer, train_ids, valid_ids = _training_data(job)
        digest = resume.data_digest(tokenizer.to_str(), train_ids, valid_ids)
        if saved is not None:
            resume.check_data(saved, digest, path)
        arch = Architecture(
            vocab=tokenizer.vocab_size,
            embed=job.net.embed,
            hidden=job.net.hidden,
            layers=job.net.layers,
            tied=job.net.tied,
        )
        reg = _regularisers(job.net, default_dropout(len(train_ids), tokenizer.vocab_size))
        rng = np.random.default_rng(job.seed)
        model = LanguageModel.init(arch, rng, dropout=reg, forget_bias=job.net.forget_bias)
        facts = _facts(job, train_ids, valid_ids, reg)
        saver = resume.Saver(path, model, tokenizer, facts, {"settings": settings, "data": digest})
        if saved is not None:
            saver.resume_from(saved)
        with resume.deferred_sigint() as interrupted:
            train(
                model,
                train_ids,
                valid_ids,
                job.recipe,
                rng,
                start=saved.state if saved is not None else None,
                on_progress=on_progress,
                on_epoch=on_epoch,
                on_retry=on_retry,
                save=saver,
                stop=interrupted,
            )
    state = saver.state
    if interrupted() and state is not None and state.epoch <= job.recipe.epochs:
        unvalidated = "" if saver.best else " (no epoch has ended: its weights are unvalidated)"
        raise Interrupted(
            f"stopped in epoch {state.epoch} after step {state.step}; "
            f"saved {job.model} ({path}){unvalidated}"
        )
    if saver.best is None:
        raise RunFailure("training ended before a model could be saved")
    history = saver.history
    return TrainResult(
        model=job.model,
        path=str(path),
        epochs=len(history),
        train_tokens=int(len(train_ids)),
        seconds=time.perf_counter() - clock,
        tokens_per_sec=sum(e.tokens for e in history) / max(1e-9, sum(e.seconds for e in history)),
        valid_ppl=saver.best["valid_ppl"],
        vocab=arch.vocab,
        params=arch.param_count(),
    )


def _regularisers(net: ModelSettings, auto_dropout: float) -> Regularisers:
    """The model's regularisers: the dropout (`auto_dropout` where none is given) before the
    decoder, and on the embeddings and between layers where those have no rate of their
    own; BadInput for a rate or weight out of range."""
    dropout = auto_dropout if net.dropout is None else net.dropout
    return Regularisers(
        dropout=dropout,
        dropout_input=dropout if net.dropout_input is None else net.dropout_input,
        dropout_hidden=dropout if net.dropout_hidden is None else net.dropout_hidden,
        locked=net.locked,
        embed_dropout=net.embed_dropout,
        weight_drop=net.weight_drop,
        ar=net.ar,
        tar=net.tar,
    )


def _settings(job: TrainJob) -> dict:
    """The flags a resumed run must share with the interrupted one (all but the budget)."""
    recipe = asdict(job.recipe)
    del recipe["epochs"], recipe["max_time"]
    net = asdict(job.net)
    if net["dropout"] is None:
        net["dropout"] = "auto"  # the same text gives the same value
    for name in _LATER_SETTINGS:
        if net[name] == _DEFAULT_NET[name]:
            del net[name]
    return {**net, **asdict(job.tokenizer), **recipe, "seed": job.seed}


def _facts(job: TrainJob, train_ids: np.ndarray, valid_ids: np.ndarray, reg: Regularisers) -> dict:
    """What config.json records about how the model was trained (the dropout before the
    decoder is config.json's own "dropout")."""
    applied = {name: value for name, value in asdict(reg).items() if name != "dropout"}
    return {
        "tokenizer": asdict(job.tokenizer),
        "recipe": {
            **asdict(job.recipe),
            "forget_bias": job.net.forget_bias,
            **applied,
            "seed": job.seed,
        },
        "data": {
            "files": [str(Path(f).resolve()) if f != "-" else "-" for f in job.files],
            "valid": job.valid,
            "train_tokens": int(len(train_ids)),
            "valid_tokens": int(len(valid_ids)),
        },
    }


def _training_data(job: TrainJob) -> tuple[Tokenizer, np.ndarray, np.ndarray]:
    """The tokenizer built on the training files and their token streams for training and
    validation (`job.valid`, else a held-out tail)."""
    lines = read_training_lines(job.files)
    valid_lines = read_training_lines([job.valid]) if job.valid else None
    tokenizer = Tokenizer.train(lines, **asdict(job.tokenizer))
    ids = tokenizer.encode_lines(lines)
    del lines
    if valid_lines is None:
        return tokenizer, *hold_out(ids, tokenizer.eos_id, VALID_FRACTION)
    return tokenizer, ids, tokenizer.encode_lines(valid_lines)
