"""wordlstm's Python API: load a model and ask it for next words, continuations and scores;
train one; list the models in the store. The command line is a thin layer over this module.

    >>> import wordlstm
    >>> m = wordlstm.load("default")
    >>> m.next_words("The cat sat on the", top=3)
    [Prediction(word='mat', prob=0.61), ...]

Failures are exceptions of `wordlstm.errors`, with the one-line messages the command line
prints (a `SettingError` names settings by their field names here, by flags there). The
heavy modules are imported by the functions that need them, so that importing this one is
cheap and reading a model never imports the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wordlstm.errors import (
    BadInput,
    Interrupted,
    RunFailure,
    SettingError,
    SettingsDiffer,
    WordlstmError,
    first_line,
)
from wordlstm.settings import ADAPTIVE_FROM, CACHE_SIZE, CompleteOptions, check_cache_size

if TYPE_CHECKING:
    from wordlstm.autocomplete import Typing
    from wordlstm.checkpoint import Loaded
    from wordlstm.explain import Attribution, Explanation
    from wordlstm.gradcheck import ParamCheck
    from wordlstm.pipeline import Completion, LineScore
    from wordlstm.text import LineReader, LongLine
    from wordlstm.trainjob import TrainResult

__all__ = [
    "ADAPTIVE_FROM",
    "BadInput",
    "CACHE_SIZE",
    "CompleteOptions",
    "Continuation",
    "Evaluation",
    "Interrupted",
    "LearningCurve",
    "Model",
    "ModelDetails",
    "ModelRow",
    "Prediction",
    "RunFailure",
    "ScoreTotals",
    "SettingError",
    "SettingsDiffer",
    "WordlstmError",
    "check_gradients",
    "first_line",
    "keep_freed_memory",
    "load",
    "models",
    "read_lines",
    "remove",
    "show",
    "store_home",
    "train",
    "use_threads",
]

PROMPT_BATCH = 64  # prompts read side by side


@dataclass
class Prediction:
    """A word and its probability."""

    word: str
    prob: float


@dataclass
class ScoreTotals:
    """Scores of lines added up: tokens, unknown words, log-probability, perplexity."""

    tokens: int = 0
    unknown: int = 0
    log_prob: float = 0.0

    def add(self, s: LineScore) -> None:
        self.tokens += s.tokens
        self.unknown += s.unknown
        self.log_prob += s.log_prob

    @property
    def ppl(self) -> float:
        return math.exp(-self.log_prob / self.tokens) if self.tokens else float("nan")

    @property
    def unknown_share(self) -> float:
        """Unknown words per token (0 without tokens)."""
        return self.unknown / self.tokens if self.tokens else 0.0


@dataclass
class Evaluation:
    """The benchmark protocol's figures on one file (`Model.evaluate`); the keyboard's are
    None when not asked for."""

    file: str
    model: str
    perplexity: float
    top1: float
    top5: float
    top1_words: float
    top5_words: float
    tokens: int
    unknown_rate: float
    model_perplexity: float  # without the word cache: the model's own (= perplexity if none)
    cache_size: int  # the word cache's steps per stream, 0 if none
    keystroke_savings: float | None = None
    top3_words: float | None = None  # the share of words offered before their first letter
    typed_words: int | None = None

    def to_dict(self) -> dict:
        """The figures as `wordlstm eval --json` prints them (without those not computed)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class Model:
    """A trained model, read from its folder: next words, continuations, scores."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def config(self) -> dict:
        """The model's config.json (README, "The model folder")."""
        return self.loaded.config

    def next_words(self, prompt: str, top: int = 5) -> list[Prediction]:
        """The `top` likeliest next words after `prompt`, best first (the prompt's last word
        counts as finished)."""
        (c,) = self.complete([prompt], CompleteOptions(top=top, partial=False))
        return [Prediction(w, p) for w, p in c.next]

    def complete_word(self, prompt: str, top: int = 5) -> list[Prediction]:
        """The `top` likeliest words that finish the unfinished last word of `prompt` (the
        next word if it ends in a space), best first."""
        from wordlstm.autocomplete import completions

        return [Prediction(s.word, s.prob) for s in completions(self.loaded, prompt, top)]

    def continue_text(
        self,
        prompt: str,
        words: int = 10,
        *,
        sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> str:
        """`prompt` continued by up to `words` words: greedy, or sampled (repeatably with a
        seed), cut to the `top_k` likeliest words or those making up `top_p`."""
        options = CompleteOptions(
            top=0, words=words, sample=sample, temperature=temperature, seed=seed,
            top_k=top_k, top_p=top_p,
        )  # fmt: skip
        (c,) = self.complete([prompt], options)
        return c.continued

    def beam(self, prompt: str, width: int = 3, words: int = 5) -> list[Continuation]:
        """The `width` likeliest continuations of `prompt` of up to `words` words (beam
        search), best first."""
        (c,) = self.complete([prompt], CompleteOptions(top=0, words=words, beam=width))
        return [Continuation(text, lp, ended, full) for text, lp, ended, full in c.beams]

    def complete(
        self, prompts: Iterable[str | LongLine], options: CompleteOptions | None = None
    ) -> Iterator[Completion]:
        """Each prompt's next words and continuation as `options` asks, in order. Prompts
        that have arrived are read side by side; a sampled prompt's continuation depends on
        the seed and its place in the stream only."""
        from wordlstm.pipeline import complete
        from wordlstm.text import ready_batches

        options = options or CompleteOptions()
        done = 0
        for batch in ready_batches(prompts, PROMPT_BATCH):
            for c in complete(self.loaded, batch, first=done, **asdict(options)):
                done += 1
                yield c

    def score(
        self, lines: Iterable[str | LongLine], *, continuous: bool = False, per_token: bool = False
    ) -> Iterator[LineScore]:
        """Each line's log-probability (natural log) and perplexity, as lines arrive: each
        line on its own, or with `continuous` the state carried from line to line."""
        from wordlstm.pipeline import score_lines

        return score_lines(self.loaded, lines, continuous=continuous, per_token=per_token)

    def evaluate(
        self,
        path: str,
        *,
        batch_size: int = 10,
        bptt: int = 35,
        keyboard: bool = True,
        cache_size: int = CACHE_SIZE,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Evaluation:
        """Perplexity and top-1/top-5 accuracy on a text file (the benchmark protocol), with
        the word cache of the text read so far (`wordlstm.wordcache`; cache_size 0 for the
        model alone, whose perplexity is also given) and, with `keyboard`, the keystroke
        savings of typing it with 3 suggestions (each line on its own, without the cache)."""
        from wordlstm.pipeline import evaluate_file

        figures = evaluate_file(
            self.loaded,
            path,
            batch_size=batch_size,
            bptt=bptt,
            cache_size=check_cache_size(cache_size),
            on_progress=on_progress or (lambda done, total: None),
        )
        if keyboard:
            from wordlstm.keyboard import keyboard_file

            figures |= keyboard_file(self.loaded, path)
        return Evaluation(**figures)

    def explain(self, prompt: str, units: int = 8, top: int = 5) -> Explanation:
        """The model reading `prompt`: every gate and state of every unit at every token,
        each unit's memory (half-life from its forget gate), the `units` units whose cell
        state moves most, and the `top` next words."""
        from wordlstm.explain import explain

        return explain(self.loaded, prompt, units=units, top=top)

    def attribute(
        self,
        prompt: str,
        word: str,
        other: str | None = None,
        spans: list[tuple[int, int]] | None = None,
    ) -> Attribution:
        """How much each token of `prompt` (and each token span [start, end)) moved log
        p(`word`) after it, or log p(`word`) - log p(`other`): by gradient x input through
        the hand-written backward pass, and by occlusion with <unk>."""
        from wordlstm.explain import attribute

        return attribute(self.loaded, prompt, word, other, spans)

    def token_texts(self, ids: Iterable[int]) -> list[str]:
        """The text each token of a line adds, in order, spaced as the tokenizer writes it
        after the tokens before it ("" for the end-of-line token)."""
        tok = self.loaded.tokenizer
        written, texts = "", []
        for i in ids:
            piece = "" if i == tok.eos_id else tok.decode([i], after=written)
            written += piece
            texts.append(piece)
        return texts

    def typing(self, top: int = 3) -> Typing:
        """A line to type into, with `top` suggestions after every keystroke."""
        from wordlstm.autocomplete import Typing

        return Typing(self.loaded, top=top)


@dataclass
class Continuation:
    """One of the likeliest continuations: its text, log-probability, whether it reached
    the end of the line, and the prompt so continued."""

    text: str
    log_prob: float
    ended: bool
    continued: str


def load(model: str = "default") -> Model:
    """The model `model`: a name in the store (`store_home()`) or a model folder's path."""
    from wordlstm.checkpoint import load_model

    return Model(load_model(model))


def read_lines(files: Iterable[str]) -> LineReader:
    """The lines of the files in order, "-" meaning stdin, read as untrusted text: long
    lines come in pieces (`LongLine`), invalid UTF-8 as U+FFFD."""
    from wordlstm.text import read_lines as text_lines

    return text_lines(files)


def use_threads(threads: int) -> int | None:
    """Sets the threads of NumPy's matrix products (its OpenBLAS) for the rest of the process;
    returns the count in use, None where NumPy's BLAS is not OpenBLAS. SettingError below 1.
    (`train` takes `threads` as a setting, and without it follows the load.)"""
    from wordlstm.threads import Threads

    return Threads(given=threads).choose()


def train(
    files: list[str] | None = None,
    model: str = "default",
    *,
    on_progress: Callable | None = None,
    on_epoch: Callable | None = None,
    on_retry: Callable | None = None,
    on_start: Callable | None = None,
    given: Iterable[str] | None = None,
    **settings: Any,
) -> TrainResult:
    """Trains a model on text files and saves it as `model` (a store name or a folder).

    `settings` are the fields of `trainjob.TrainJob` (valid, seed, resume, force,
    continued, grow_vocab), `TokenizerSettings` (split, lowercase, vocab_size, min_freq),
    `ModelSettings` (embed, hidden, layers, dropout, ...) and `training.Recipe` (epochs,
    max_time, optimizer, lr, ...), by name; `embed` defaults to `hidden`. `given` names the
    settings chosen rather than defaulted (default: those passed): a resumed or continued
    run takes the others from its model. The callbacks receive `training.Progress` after each
    step, `training.Epoch` after each epoch, `training.Retry` and `trainjob.TrainStart`.
    Sets `keep_freed_memory` for the process."""
    from wordlstm.settings import ModelSettings, Recipe, TokenizerSettings
    from wordlstm.trainjob import TrainJob, resumed_job
    from wordlstm.trainjob import train_files as run_job

    keep_freed_memory()

    given = set(settings if given is None else given) | ({"files"} if files else set())
    parts = {}
    for cls in (TokenizerSettings, ModelSettings, Recipe):
        names = {f.name for f in fields(cls)}
        parts[cls] = {k: settings.pop(k) for k in list(settings) if k in names}
    net = parts[ModelSettings]
    if net.get("embed") is None:
        net["embed"] = net.get("hidden", ModelSettings.hidden)
    job_fields = {f.name for f in fields(TrainJob)} - {"tokenizer", "net", "recipe", "given"}
    unknown = set(settings) - job_fields
    if unknown:
        raise TypeError(f"train() got unknown settings: {', '.join(sorted(unknown))}")
    job = TrainJob(
        files=list(files or []),
        model=model,
        tokenizer=TokenizerSettings(**parts[TokenizerSettings]),
        net=ModelSettings(**net),
        recipe=Recipe(**parts[Recipe]),
        given=frozenset(given),
        **settings,
    )
    if job.resume:
        job = resumed_job(job, given)
    elif not files:
        raise BadInput("give the files to train on (- for stdin), or resume an interrupted run")
    callbacks = dict(on_progress=on_progress, on_epoch=on_epoch, on_retry=on_retry)
    callbacks["on_start"] = on_start
    return run_job(job, **{k: v for k, v in callbacks.items() if v is not None})


def check_gradients(tied: bool = False, softmax: str = "full") -> list[ParamCheck]:
    """The hand-written backward pass checked here: on a tiny float64 model with every
    regulariser on (and the `softmax` chosen), each parameter's gradient against central
    finite differences over two BPTT chunks, as its largest relative error
    (`ParamCheck.passed`)."""
    from wordlstm import gradcheck

    problem = gradcheck.tiny_problem(tied, gradcheck.ALL_REGULARISERS, softmax=softmax)
    return gradcheck.check(problem)


def keep_freed_memory() -> None:
    """Lets this process's malloc keep freed blocks for reuse (a process-wide setting):
    faster training and scoring. The command line sets it; `train` sets it too."""
    from wordlstm.backend import keep_freed_memory as keep

    keep()


def store_home() -> Path:
    """The folder of the model store: WORDLSTM_HOME, or the default under the home folder."""
    from wordlstm import store

    return store.home()


@dataclass
class ModelRow:
    """A folder in the store as `wordlstm models` lists it (None where unknown)."""

    name: str
    status: str  # broken, training, interrupted or finished
    vocab: int | None
    layers: int | None
    hidden: int | None
    params: int | None
    valid_ppl: float | None
    tokens: int | None
    size: int  # bytes
    saved: str | None
    path: str
    problem: str | None  # why a broken folder is not a loadable model


def models() -> list[ModelRow]:
    """Every folder in the store, by name: the models and the broken folders."""
    from wordlstm import store

    return [_row(entry) for entry in store.survey()]


def _row(entry) -> ModelRow:
    config = entry.config or {}
    arch, metrics = (
        value if isinstance(value, dict) else {}
        for value in (config.get("architecture"), config.get("metrics"))
    )
    return ModelRow(
        name=entry.name,
        status="broken" if entry.problem else _run_status(entry.path, config),
        vocab=arch.get("vocab"),
        layers=arch.get("layers"),
        hidden=arch.get("hidden"),
        params=_count_params(arch) or None,
        valid_ppl=metrics.get("valid_ppl"),
        tokens=metrics.get("trained_tokens"),
        size=entry.size,
        saved=config.get("saved"),
        path=str(entry.path),
        problem=entry.problem,
    )


def _run_status(path: Path, config: dict) -> str:
    from wordlstm.store import run_status

    return run_status(path, config)


def _count_params(arch: dict) -> int:
    """Parameters of an architecture as config.json records it (0 if it is unreadable)."""
    from wordlstm.model import Architecture

    try:
        return Architecture(**arch).param_count()
    except (TypeError, WordlstmError):
        return 0


@dataclass
class LearningCurve:
    """A model's training per epoch (from 1): train and validation perplexity, where the
    learning rate changed and where weight averaging began."""

    train: list[float]
    valid: list[float]
    lr_changes: list[tuple[int, float]]  # (epoch, its new lr) where it differs from before
    averaging_from: int | None  # the first epoch validated with averaged weights

    @classmethod
    def of(cls, history: list[dict]) -> LearningCurve:
        """The curve of config.json's history; BadInput if it has no usable epochs."""
        try:
            train = [float(e["train_ppl"]) for e in history]
            valid = [float(e["valid_ppl"]) for e in history]
            lrs = [float(e["lr"]) for e in history]
        except (KeyError, TypeError, ValueError):
            raise BadInput("the model's history is damaged: no learning curve to draw") from None
        if not history:
            raise BadInput("the model has no finished epochs: no learning curve to draw")
        changes = [(k + 1, lr) for k, lr in enumerate(lrs) if k and lr != lrs[k - 1]]
        averaged = [k + 1 for k, e in enumerate(history) if e.get("averaged") is True]
        return cls(train, valid, changes, averaged[0] if averaged else None)


@dataclass
class ModelDetails:
    """Everything config.json records about a model, and its run's status."""

    name: str
    path: Path
    config: dict
    params: int
    status: str  # training, interrupted or finished
    resume_command: str | None  # for an interrupted run: the command that resumes it

    @property
    def curve(self) -> LearningCurve:
        """The learning curve of its history; BadInput if it has no usable epochs."""
        return LearningCurve.of(self.config.get("history") or [])


def show(name: str) -> ModelDetails:
    """The details of model `name` (a store name or a folder), checked to load."""
    import shlex

    from wordlstm import store

    path = store.resolve(name)
    config, _, _ = store.load(path)
    status = _run_status(path, config)
    command = None
    if status == "interrupted":
        files = config.get("data", {}).get("files")
        files = files if isinstance(files, list) and "-" in files else []
        command = shlex.join(["wordlstm", "train", *map(str, files), "--model", name, "--resume"])
    params = _count_params(config["architecture"])
    return ModelDetails(name, path, config, params, status, command)


def remove(name: str) -> Path:
    """Deletes model `name` from the store (a model in training is refused); its path."""
    from wordlstm import store

    path = store.resolve(name)
    store.remove(path)
    return path
