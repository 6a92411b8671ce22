"""The training loop: truncated BPTT over parallel streams, clipping, SGD or Adam, and
validation after each epoch. It reports through callbacks and never prints.

Training can stop after any step and later go on exactly as if it never had: a `TrainState`
holds everything the next step depends on (weights, optimizer state, position in the data,
the LSTM state carried between chunks, the random generator), and `train` can start from one.

A non-finite loss, gradient or validation perplexity never reaches the weights that are
saved: training goes back to the state at the start of the epoch with the learning rate
divided by 4, up to MAX_RETRIES times for one epoch, and then gives up with a RunFailure.
"""

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from wordlstm.backend import from_host, to_host, xp
from wordlstm.data import batchify, chunks
from wordlstm.errors import BadInput, RunFailure, SettingError, literal
from wordlstm.model import LanguageModel
from wordlstm.optim import clip_scale, global_norm, make_optimizer
from wordlstm.predict import evaluate
from wordlstm.settings import Recipe

LR_DIVISOR = 4.0  # after an SGD epoch that did not improve, and after a divergence
MAX_RETRIES = 3  # divergences of one epoch before training gives up
DROPOUT_SMALL_CORPUS = 0.6  # up to DROPOUT_FULL_UNTIL training tokens per vocabulary word
DROPOUT_FULL_UNTIL = 12  # then DROPOUT_PER_DOUBLING less for each doubling
DROPOUT_PER_DOUBLING = 0.4
AVERAGE_FROM = 0.6  # averaging begins after this share of the budget even without a plateau
NEAR_BEST = 0.002  # a later epoch this close to the best validation perplexity is saved in
# its place: such gaps are below what the validation text can tell apart, and the later
# weights have trained longer
AVERAGE_EVERY = 10  # the average takes the weights after every 10th step of an epoch (its
# first included): neighbouring steps' weights hardly differ, and adding each costs time


def default_dropout(train_tokens: int, vocab: int) -> float:
    """The dropout when none is given: DROPOUT_SMALL_CORPUS up to DROPOUT_FULL_UNTIL training
    tokens per vocabulary word, then DROPOUT_PER_DOUBLING less for each doubling, rounded to
    a tenth, and none from about 32 per word. The more often a model of a given size sees
    each word, the less it overfits and the less regularisation it needs (the measurements
    behind the numbers: benchmarks/NOTES.md)."""
    doublings = math.log2(max(train_tokens, 1) / max(vocab, 1) / DROPOUT_FULL_UNTIL)
    dropout = DROPOUT_SMALL_CORPUS - DROPOUT_PER_DOUBLING * doublings
    return round(min(DROPOUT_SMALL_CORPUS, max(0.0, dropout)), 1)


@dataclass
class Progress:
    """Where training is, reported after every step."""

    epoch: int
    step: int
    steps: int
    tokens: int
    seconds: float
    loss: float
    lr: float

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


@dataclass
class Epoch:
    """One finished epoch, as its summary line shows it."""

    epoch: int
    train_ppl: float
    valid_ppl: float
    lr: float
    seconds: float
    tokens: int
    improved: bool  # below the best validation perplexity so far: the schedule's signal
    saved: bool  # improved, or within NEAR_BEST of the best: these weights are the model now
    averaged: bool = False  # the weights validated were the running average (ASGD)
    threads: int | None = None  # the BLAS threads in use at its end, where `train` is told


@dataclass
class Retry:
    """Training diverged and starts the epoch again with a lower learning rate."""

    epoch: int
    step: int
    reason: str
    lr: float  # the new, lower learning rate
    retry: int  # 1 to `retries`
    retries: int = MAX_RETRIES  # the most an epoch is tried again


@dataclass
class TrainState:
    """Everything the next training step depends on, as host arrays and JSON-able values.

    A state taken inside an epoch also keeps the state at the epoch's start, where a
    divergence sends training back: so a resumed run does what the uninterrupted one would.
    """

    epoch: int  # the epoch under way, from 1; the number of epochs + 1 once all are done
    step: int  # chunks of it done
    lr: float
    best_ppl: float | None  # the best validation perplexity at an epoch end so far
    retries: int  # divergences in this epoch so far
    loss_sum: float  # the epoch's training loss summed over its tokens so far
    tokens: int
    seconds: float
    rng: dict  # the random generator's bit_generator.state
    history: list[Epoch]
    params: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    hidden: dict[str, np.ndarray] | None  # "h" and "c" for the next chunk; None: zero
    average: dict[str, np.ndarray] | None = None  # the averaged weights, once averaging began
    averaged: int = 0  # how many steps' weights the average holds
    start: "TrainState | None" = field(default=None, repr=False)


class Diverged(Exception):
    """A non-finite loss, gradient or validation perplexity."""

    def __init__(self, reason: str, step: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.step = reason, step


def train_step(model: LanguageModel, optimizer, x, y, state: tuple, clip: float, rng=None):
    """One step of truncated BPTT on a chunk: forward, loss, backward through the chunk,
    global-norm clipping, update. Returns the loss and the state to carry into the next
    chunk; raises Diverged before a non-finite value reaches the weights. Everything the
    step allocates (activations, gradients) is freed when it returns."""
    out, state, cache = model.forward(xp.asarray(x), state, rng=rng)
    loss, dout, decoder_grads = model.loss(out, xp.asarray(y))
    if not math.isfinite(loss):
        raise Diverged(f"loss {loss}")
    grads, _ = model.backward(cache, dout, decoder_grads)
    del cache, out, dout, decoder_grads
    norm = global_norm(grads)
    if not math.isfinite(norm):
        raise Diverged(f"gradient norm {norm}")
    optimizer.step(grads, scale=clip_scale(norm, clip))
    return loss, state


def train(
    model: LanguageModel,
    train_ids: np.ndarray,
    valid_ids: np.ndarray,
    recipe: Recipe,
    rng: np.random.Generator,
    *,
    start: TrainState | None = None,
    on_progress: Callable[[Progress], None] = lambda p: None,
    on_epoch: Callable[[Epoch], None] = lambda e: None,
    on_retry: Callable[[Retry], None] = lambda r: None,
    save: Callable[[TrainState, Epoch | None], None] = lambda s, e: None,
    stop: Callable[[], bool] = lambda: False,
    threads: Callable[[], int | None] = lambda: None,
) -> str:
    """Trains the model in place, from `start` if given, until all epochs are done, the time
    budget is spent, or `stop()` is true after a step or an epoch; returns which: "done",
    "out of time" or "stopped".

    Calls `save(state, epoch)` after each epoch, with the state of the next one's start;
    `save(state, None)` when stopped inside an epoch; and `save(state, epoch)` with the
    unfinished epoch validated when out of time inside one. Validating an unfinished epoch
    does not change the course of training, so every saved state resumes exactly. With SGD and
    the plateau schedule the learning rate is divided by 4 (to no lower than the recipe's
    floor) after an epoch that did not improve on the best. `threads()` gives each epoch's
    summary the BLAS threads in use.
    """
    check_lengths(train_ids, valid_ids, recipe)
    valid_ids = valid_ids[: recipe.valid_tokens + 1]
    run = _Run(model, train_ids, recipe, rng, threads)
    if start is not None:
        run.restore(start)
    epoch_start = run.snapshot() if start is None else start.start or start
    begin = time.perf_counter()
    deadline = None if recipe.max_time is None else begin + recipe.max_time
    # overflow on the way to a divergence is caught below, not warned about
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        while run.epoch <= recipe.epochs:
            try:
                ended = run.train_steps(deadline, stop, on_progress)
                if ended == "stopped":
                    save(run.snapshot(epoch_start), None)
                    return ended
                if run.tokens == 0:  # out of time before the epoch's first step
                    return ended
                result = run.validate(valid_ids)
            except Diverged as e:
                if epoch_start.retries >= MAX_RETRIES:
                    raise RunFailure(
                        f"training diverged ({literal(e.reason)}) in epoch {run.epoch} even after "
                        f"lowering the learning rate to {epoch_start.lr:g}; nothing from this "
                        "epoch was saved; try a lower {lr} or {clip}",
                        names_settings=True,
                    ) from None
                epoch_start.retries += 1
                epoch_start.lr /= LR_DIVISOR
                run.restore(epoch_start)
                on_retry(Retry(run.epoch, e.step, e.reason, epoch_start.lr, epoch_start.retries))
                continue
            if ended == "out of time":
                with run.validated_weights():
                    save(run.snapshot(epoch_start), result)
                on_epoch(result)
                return ended
            run.end_epoch(result, _spent(run.epoch, recipe, begin))
            epoch_start = run.snapshot()
            with run.validated_weights():
                save(epoch_start, result)
            on_epoch(result)
            if stop():
                return "stopped"
    return "done"


def check_lengths(train_ids: np.ndarray, valid_ids: np.ndarray, recipe: Recipe) -> None:
    """BadInput unless the texts are long enough to train on and validate with."""
    if len(train_ids) < 2 * recipe.batch_size:
        raise SettingError(
            f"the training text has {len(train_ids)} tokens; {{batch_size}} "
            f"{recipe.batch_size} needs at least {2 * recipe.batch_size}"
        )
    if len(valid_ids) < 2:
        raise BadInput("the validation text needs at least one line with a word")


class _Run:
    """The live side of a TrainState: model, optimizer, generator and position in the data."""

    def __init__(
        self,
        model: LanguageModel,
        train_ids: np.ndarray,
        recipe: Recipe,
        rng,
        threads: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.model, self.recipe, self.rng = model, recipe, rng
        self.data = batchify(train_ids, recipe.batch_size)
        self.steps = math.ceil((len(self.data) - 1) / recipe.bptt)
        self.optimizer = make_optimizer(recipe.optimizer, model.params, recipe.lr)
        self.epoch, self.step, self.retries = 1, 0, 0
        self.best: float | None = None
        self.loss_sum, self.tokens = 0.0, 0
        self.clock = time.perf_counter()
        self.hidden: tuple | None = None
        self.history: list[Epoch] = []
        self.average: dict | None = None
        self.averaged = 0
        self.threads = threads  # the BLAS threads in use, for each epoch's summary

    def train_steps(
        self,
        deadline: float | None,
        stop: Callable[[], bool],
        on_progress: Callable[[Progress], None],
    ) -> str:
        """Trains on the rest of the epoch: "done" at its end, "stopped" when `stop()` is true
        after a step, "out of time" at the deadline. Raises Diverged before a bad update."""
        model, recipe = self.model, self.recipe
        if self.hidden is None:
            self.hidden = model.zero_state(recipe.batch_size)
        for _, x, y in chunks(self.data, recipe.bptt, start=self.step * recipe.bptt):
            if deadline is not None and time.perf_counter() >= deadline:
                return "out of time"
            try:
                loss, self.hidden = train_step(
                    model, self.optimizer, x, y, self.hidden, recipe.clip, self.rng
                )
            except Diverged as e:
                e.step = self.step + 1
                raise
            if self.average is not None and self.step % AVERAGE_EVERY == 0:
                self.averaged += 1
                for name, p in model.params.items():
                    a = self.average[name]
                    a += (p - a) * (1.0 / self.averaged)
            self.step += 1
            self.loss_sum += loss * y.size
            self.tokens += y.size
            on_progress(
                Progress(
                    self.epoch,
                    self.step,
                    self.steps,
                    self.tokens,
                    time.perf_counter() - self.clock,
                    loss,
                    self.optimizer.lr,
                )
            )
            if stop():
                return "stopped"
        return "done"

    def validate(self, valid_ids: np.ndarray) -> Epoch:
        """The epoch's summary with the validation perplexity of the current weights."""
        recipe = self.recipe
        with self.validated_weights():
            valid = evaluate(
                self.model,
                valid_ids,
                batch_size=recipe.eval_batch_size,
                bptt=recipe.bptt,
                accuracy=False,
            )
        if not math.isfinite(valid.ppl):
            raise Diverged(f"validation perplexity {valid.ppl}", self.step)
        return Epoch(
            epoch=self.epoch,
            train_ppl=float(np.exp(self.loss_sum / self.tokens)),
            valid_ppl=valid.ppl,
            lr=self.optimizer.lr,
            seconds=time.perf_counter() - self.clock,
            tokens=self.tokens,
            improved=self.best is None or valid.ppl < self.best,
            saved=self.best is None or valid.ppl <= self.best * (1 + NEAR_BEST),
            averaged=self.average is not None,
            threads=self.threads(),
        )

    def end_epoch(self, result: Epoch, spent: float) -> None:
        """Records a finished epoch, adjusts the learning rate and moves to the next start."""
        self.history.append(result)
        if result.improved:
            self.best = result.valid_ppl
        recipe = self.recipe
        plateau = not result.improved and recipe.schedule == "plateau"
        begin_average = (
            recipe.average and self.average is None and (plateau or spent >= AVERAGE_FROM)
        )
        # with averaging, a first plateau begins the average and keeps the learning rate
        # (non-monotonically triggered ASGD, Merity et al. 2017); later plateaus divide it
        if plateau and recipe.optimizer == "sgd" and not begin_average:
            lr = self.optimizer.lr
            self.optimizer.lr = max(lr / LR_DIVISOR, min(lr, recipe.lr_floor))
        if begin_average:
            self.average = {n: p.copy() for n, p in self.model.params.items()}
            self.averaged = 1
        self.epoch += 1
        self.step = self.retries = self.tokens = 0
        self.loss_sum = 0.0
        self.hidden = None
        self.clock = time.perf_counter()

    @contextlib.contextmanager
    def validated_weights(self) -> Iterator[None]:
        """Inside, the model holds the weights that are validated and saved: the running
        average once averaging has begun, else the current ones."""
        if self.average is None:
            yield
            return
        current = {n: p.copy() for n, p in self.model.params.items()}
        for name, p in self.model.params.items():
            p[...] = self.average[name]
        try:
            yield
        finally:
            for name, p in self.model.params.items():
                p[...] = current[name]

    def snapshot(self, start: TrainState | None = None) -> TrainState:
        """A copy of the live state; `start`, the state at the epoch's start, goes with it."""
        return TrainState(
            epoch=self.epoch,
            step=self.step,
            lr=self.optimizer.lr,
            best_ppl=self.best,
            retries=self.retries,
            loss_sum=self.loss_sum,
            tokens=self.tokens,
            seconds=time.perf_counter() - self.clock,
            rng=self.rng.bit_generator.state,
            history=list(self.history),
            params=_host_copies(self.model.params),
            optimizer=_host_copies(self.optimizer.state()),
            hidden=None if self.hidden is None else _host_copies(_named(self.hidden)),
            average=None if self.average is None else _host_copies(self.average),
            averaged=self.averaged,
            start=start,
        )

    def restore(self, state: TrainState) -> None:
        """Puts a saved state back; BadInput if it does not fit this model and recipe."""
        _check_fits(self.model.params, state.params, "weights")
        _check_fits(self.optimizer.state(), state.optimizer, "optimizer state")
        if state.hidden is not None:
            zero = self.model.zero_state(self.recipe.batch_size)
            _check_fits(_named(zero), state.hidden, "LSTM state")
        try:
            self.rng.bit_generator.state = state.rng
        except (TypeError, ValueError, KeyError) as e:
            raise BadInput(f"the saved random generator state is damaged ({e})") from None
        for name, p in self.model.params.items():
            p[...] = from_host(state.params[name])
        self.optimizer.load_state({k: from_host(a) for k, a in state.optimizer.items()})
        self.optimizer.lr = state.lr
        self.hidden = None
        if state.hidden is not None:
            self.hidden = (from_host(state.hidden["h"]), from_host(state.hidden["c"]))
        self.average, self.averaged = None, state.averaged
        if state.average is not None:
            _check_fits(self.model.params, state.average, "averaged weights")
            self.average = {n: from_host(a) for n, a in state.average.items()}
        self.epoch, self.step, self.retries = state.epoch, state.step, state.retries
        self.best, self.loss_sum, self.tokens = state.best_ppl, state.loss_sum, state.tokens
        self.clock = time.perf_counter() - state.seconds
        self.history = list(state.history)


def _spent(epoch: int, recipe: Recipe, begin: float) -> float:
    """The share of the budget used up after `epoch`: of the epochs, or of max_time."""
    share = epoch / recipe.epochs
    if recipe.max_time is not None:
        share = max(share, (time.perf_counter() - begin) / recipe.max_time)
    return share


def _host_copies(arrays: dict) -> dict[str, np.ndarray]:
    return {name: np.array(to_host(a)) for name, a in arrays.items()}


def _named(state: tuple) -> dict:
    """An LSTM state (h, c) as a dict of arrays."""
    h, c = state
    return {"h": h, "c": c}


def _check_fits(live: dict, saved: dict, what: str) -> None:
    """BadInput unless `saved` has exactly the names and shapes of `live`."""
    if set(live) != set(saved) or any(live[k].shape != saved[k].shape for k in live):
        raise BadInput(f"the saved training state does not fit the model ({what})")
