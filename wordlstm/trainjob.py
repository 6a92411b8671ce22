"""The train command's job, from text files to a saved model: read the files, build the
vocabulary, split off validation, train, and save the model folder after every epoch. Apart
from the jobs that only read a model (`pipeline`), so that those start without importing
the trainer."""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wordlstm import identity, resume, store, tokencache
from wordlstm.data import hold_out
from wordlstm.errors import BadInput, Interrupted, RunFailure, SettingError, literal
from wordlstm.model import Architecture, LanguageModel
from wordlstm.regularisers import Regularisers
from wordlstm.saver import Saver
from wordlstm.settings import ModelSettings, Recipe, TokenizerSettings
from wordlstm.sigint import deferred_sigint
from wordlstm.threads import Threads, check_threads
from wordlstm.tokenizer import Tokenizer
from wordlstm.training import (
    Epoch,
    Progress,
    Retry,
    check_lengths,
    default_dropout,
    train,
)

if TYPE_CHECKING:
    from wordlstm.finetune import Start

VALID_FRACTION = 0.1


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
    force: bool = False  # replace the model the folder holds (else that is refused)
    continued: bool = False  # train the model in `model` further on the files (finetune)
    grow_vocab: bool = False  # continued: add the files' words to its vocabulary
    given: frozenset[str] = frozenset()  # the settings given (field names); a continued
    # run takes the others from its model
    threads: int | None = None  # BLAS threads; None: the environment's, else by the load
    # (`threads.Threads`); not part of the run's identity: a resumed run may use others

    def __post_init__(self) -> None:
        check_threads(self.threads)
        if self.force and self.resume:
            raise SettingError("{force} replaces the model and {resume} continues it: give one")
        if self.force and self.continued:
            raise SettingError(
                "{force} replaces the model and {continued} trains it further: give one"
            )


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
    old_valid_ppl_before: float | None = None  # continued: on the old validation text
    old_valid_ppl_after: float | None = None
    old_valid: str | None = None  # what that text is, or why it cannot be read
    new_words: int | None = None  # continued: words added to the vocabulary
    stopped_by_budget: bool = False  # the time budget ended the run before all its epochs
    threads: int | None = None  # the BLAS threads of the last epoch (None: not OpenBLAS)


@dataclass
class TrainStart:
    """What a run is about to train on, reported once before its first step."""

    vocab: int
    train_tokens: int
    valid_tokens: int  # the validation text's tokens
    validated_tokens: int  # of those, how many validation reads (Recipe.valid_tokens)
    params: int
    epochs: int  # the run's budget: the epochs it trains at most
    max_time: float | None  # and its seconds, if it has a time budget
    threads: int | None = None  # BLAS threads for the first epoch (None: not OpenBLAS)
    threads_by_load: bool = False  # chosen by the load again as the run goes (`Threads`)


def train_files(
    job: TrainJob,
    on_progress: Callable[[Progress], None] = lambda p: None,
    on_epoch: Callable[[Epoch], None] = lambda e: None,
    on_retry: Callable[[Retry], None] = lambda r: None,
    on_start: Callable[[TrainStart], None] = lambda s: None,
) -> TrainResult:
    """Reads the files, builds the vocabulary, trains, and saves the model after every epoch:
    the best weights so far (or later ones near them) with the state to resume from
    (`job.resume` starts there). `job.continued` starts from the model in the folder
    (`finetune`), which stays there until the run has validated an epoch.

    Holds the model's writer lock throughout, so a second run into it fails at once. The
    first Ctrl-C stops training after the current step, saves, and raises Interrupted.
    A folder that holds a model is only trained into to resume it, or with `job.force`,
    and then saved into only once an epoch is validated (see `store`).
    """
    clock = time.perf_counter()
    path = store.resolve(job.model)
    _regularisers(job.net, auto_dropout=0.0)  # a bad setting fails before any file is read
    if job.grow_vocab and not job.continued:
        raise SettingError("{grow_vocab} goes with {continued}")
    with store.writer_lock(path):
        replacing = not (job.resume or job.continued) and _replacing(job, path)
        saved = resume.read(path) if job.resume else None
        start = None
        if job.continued:
            from wordlstm import finetune  # it builds on this module

            job, start = finetune.start(job, path, saved)
        elif saved is not None and "continued" in saved.fingerprint:
            raise SettingError(
                f"cannot resume {literal(path)}: its run continues a model on new text; "
                "resume it with {continued} {resume}"
            )
        if saved is not None:  # the same text: the saved model's vocabulary
            settings = _settings(job, saved.config["architecture"]["vocab"])
            identity.check_settings(saved, settings, path, job.recipe.epochs)
        tokenizer, train_ids, valid_ids = _training_data(job, start)
        digest = identity.data_digest(tokenizer.to_str(), train_ids, valid_ids)
        if saved is not None:
            identity.check_data(saved, digest, path)
        arch = Architecture(
            vocab=tokenizer.vocab_size,
            embed=job.net.embed,
            hidden=job.net.hidden,
            layers=job.net.layers,
            tied=job.net.tied,
            softmax=job.net.softmax_for(tokenizer.vocab_size),
            cutoffs=job.net.split(tokenizer.vocab_size),
            div_value=job.net.div_value,
        )
        reg = _regularisers(job.net, default_dropout(len(train_ids), tokenizer.vocab_size))
        rng = np.random.default_rng(job.seed)
        fingerprint = {"settings": _settings(job, tokenizer.vocab_size), "data": digest}
        facts = _facts(job, train_ids, valid_ids, reg)
        if start is None:
            model = LanguageModel.init(arch, rng, dropout=reg, forget_bias=job.net.forget_bias)
            keep = None
        else:
            model = start.model(arch.vocab, rng)
            model.regularisers = reg
            fingerprint["continued"] = asdict(start.base)
            new_words = arch.vocab - start.base.vocab
            facts["continued"] = {**fingerprint["continued"], "new_words": new_words}
            keep = start.kept()
        saver = Saver(path, model, tokenizer, facts, fingerprint, hold=replacing, keep=keep)
        if saved is not None:
            saver.resume_from(saved)
        check_lengths(train_ids, valid_ids, job.recipe)  # before the start line says go
        threads = Threads(job.threads)

        def progressed(p: Progress) -> None:
            on_progress(p)
            threads.follow()

        def epoch_ended(e: Epoch) -> None:
            on_epoch(e)
            if threads.by_load:
                threads.choose()  # for the next epoch

        with threads.used():
            on_start(_start(arch, train_ids, valid_ids, job.recipe, threads))
            with deferred_sigint() as interrupted:
                ended = train(
                    model,
                    train_ids,
                    valid_ids,
                    job.recipe,
                    rng,
                    start=saved.state if saved is not None else None,
                    on_progress=progressed,
                    on_epoch=epoch_ended,
                    on_retry=on_retry,
                    save=saver,
                    stop=interrupted,
                    threads=lambda: threads.count,
                )
        state = saver.state
        if not interrupted() and state is not None and state.epoch <= job.recipe.epochs:
            saver.ran_out_of_time()
    if interrupted() and state is not None and state.epoch <= job.recipe.epochs:
        if not saver.written:
            raise Interrupted(
                f"stopped in epoch {state.epoch} after step {state.step}, before any epoch was "
                f"validated: nothing saved, {job.model} still holds the model it held before",
                resumable=False,
            )
        unvalidated = "" if saver.best else " (no epoch has ended: its weights are unvalidated)"
        if saver.best is None and start is not None:
            unvalidated = " (no epoch has ended: it still holds the model it continues)"
        raise Interrupted(
            f"stopped in epoch {state.epoch} after step {state.step}; "
            f"saved {job.model} ({path}){unvalidated}"
        )
    if saver.best is None:
        raise RunFailure("training ended before a model could be saved")
    history = saver.history
    result = TrainResult(
        model=job.model,
        path=str(path),
        epochs=len(history),
        train_tokens=int(len(train_ids)),
        seconds=time.perf_counter() - clock,
        tokens_per_sec=sum(e.tokens for e in history) / max(1e-9, sum(e.seconds for e in history)),
        valid_ppl=saver.best["valid_ppl"],
        vocab=arch.vocab,
        params=arch.param_count(),
        stopped_by_budget=ended == "out of time",
        threads=history[-1].threads if history else threads.count,
    )
    if start is not None:
        result.old_valid_ppl_before = start.base.old_valid_ppl_before
        result.old_valid_ppl_after = start.old_valid_ppl(arch, saver.best_weights, job.recipe)
        result.old_valid = start.old_valid
        result.new_words = arch.vocab - start.base.vocab
    return result


def _start(
    arch: Architecture,
    train_ids: np.ndarray,
    valid_ids: np.ndarray,
    recipe: Recipe,
    threads: Threads,
) -> TrainStart:
    """What the run is about to train on, and with how many threads."""
    return TrainStart(
        vocab=arch.vocab,
        train_tokens=int(len(train_ids)),
        valid_tokens=int(len(valid_ids)),
        validated_tokens=int(min(len(valid_ids), recipe.valid_tokens)),
        params=arch.param_count(),
        epochs=recipe.epochs,
        max_time=recipe.max_time,
        threads=threads.count,
        threads_by_load=threads.by_load,
    )


def resumed_job(job: TrainJob, given: set[str]) -> TrainJob:
    """`job` with the fields not in `given` (the names of those the user gave) taken from
    the interrupted run in its model folder: its files, settings and budget, so that a run
    resumes without retyping them. Those given are checked against the run's when it starts."""
    path = store.resolve(job.model)
    run = resume.read_run(path)
    saved = {
        **run.settings,
        "files": run.files,
        "valid": run.valid,
        "epochs": run.epochs,
        "max_time": run.max_time,
    }
    if saved.get("dropout") == "auto":
        saved["dropout"] = None

    def filled(part):
        taken = {}
        for f in fields(part):
            if f.name in saved and f.name not in given:
                current, value = getattr(part, f.name), saved[f.name]
                if not _same_kind(current, value):
                    raise BadInput(f"cannot resume {job.model}: its saved {f.name} is {value!r}")
                taken[f.name] = value
        return replace(part, **taken)

    job = replace(
        filled(job), tokenizer=filled(job.tokenizer), net=filled(job.net), recipe=filled(job.recipe)
    )
    if "files" not in given and "-" in job.files:
        raise SettingError(
            f"cannot resume {literal(job.model)} without its text: the run read it from "
            f"standard input; give its files again ({literal(' '.join(job.files))}) with {{resume}}"
        )
    return job


def _same_kind(current: object, value: object) -> bool:
    """Whether a saved value can stand for the current one: the same type, any two numbers
    that are not bools, or either one None."""
    if current is None or value is None:
        return True
    if isinstance(current, bool) or isinstance(value, bool):
        return type(current) is type(value)
    if isinstance(current, int | float) and isinstance(value, int | float):
        return True
    return type(current) is type(value)


def _replacing(job: TrainJob, path: Path) -> bool:
    """True if `path` holds a model that the forced job replaces; BadInput if it holds one
    and the job is not forced."""
    if not store.holds_model(path):
        return False
    if job.force:
        return True
    if store.interrupted(path, store.read_config(path)):
        raise SettingError(
            f"{literal(job.model)} holds an interrupted run: {{resume}} continues it, {{force}} "
            "replaces it, {continued} trains it further on new text, or choose another {model}"
        )
    raise SettingError(
        f"{literal(job.model)} already holds a model: {{force}} replaces it, {{resume}} continues "
        "its training, {continued} trains it further on new text, or choose another {model}"
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


def _settings(job: TrainJob, vocab: int) -> dict:
    """The flags a resumed run must share with the interrupted one (all but the budget), the
    softmax as chosen for `vocab` words."""
    recipe = asdict(job.recipe)
    del recipe["epochs"], recipe["max_time"]
    net = asdict(job.net) | {"softmax": job.net.softmax_for(vocab)}
    if net["dropout"] is None:
        net["dropout"] = "auto"  # the same text gives the same value
    settings = {**net, **asdict(job.tokenizer), **recipe, "seed": job.seed}
    if job.continued:
        settings["grow_vocab"] = job.grow_vocab
    return settings


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
            "valid": str(Path(job.valid).resolve()) if job.valid not in (None, "-") else job.valid,
            "train_tokens": int(len(train_ids)),
            "valid_tokens": int(len(valid_ids)),
        },
    }


def _training_data(
    job: TrainJob, start: "Start | None" = None
) -> tuple[Tokenizer, np.ndarray, np.ndarray]:
    """The tokenizer built on the training files (or that of the model a continued run
    `start`s from) and their token streams for training and validation (`job.valid`, else
    a held-out tail), memory-mapped from the token cache (`tokencache`)."""
    valid = tokencache.Text([job.valid]) if job.valid else None  # missing: fails here
    with tokencache.Text(job.files) as text:
        if start is None:
            settings = asdict(job.tokenizer)
            how = json.dumps({"train": settings}, sort_keys=True)
            tokenizer = text.vocabulary(how, lambda lines: Tokenizer.train(lines, **settings))
        elif start.grow is None:
            tokenizer = start.loaded.tokenizer
        else:
            how = json.dumps({"grow": asdict(start.grow), "from": start.loaded.tokenizer.to_str()})
            tokenizer = text.vocabulary(how, start.vocabulary)
        ids = text.token_ids(tokenizer)
    if valid is None:
        return tokenizer, *hold_out(ids, tokenizer.eos_id, VALID_FRACTION)
    with valid:
        return tokenizer, ids, valid.token_ids(tokenizer)
