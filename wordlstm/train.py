"""The training loop: truncated BPTT over parallel streams, clipping, SGD or Adam, and
validation after each epoch. It reports through callbacks and never prints."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wordlstm.backend import xp
from wordlstm.data import batchify, chunks
from wordlstm.errors import BadInput, RunFailure
from wordlstm.model import LanguageModel
from wordlstm.optim import clip_global_norm, make_optimizer
from wordlstm.predict import evaluate

DEFAULT_LR = {"sgd": 20.0, "adam": 0.002}


@dataclass
class Recipe:
    """How to train: the PyTorch word-language-model example's defaults."""

    epochs: int = 40
    max_time: float | None = None
    optimizer: str = "sgd"
    lr: float | None = None
    clip: float = 0.25
    bptt: int = 35
    batch_size: int = 20
    eval_batch_size: int = 10

    def __post_init__(self) -> None:
        if self.optimizer not in DEFAULT_LR:
            raise BadInput(f"--optimizer must be one of {', '.join(DEFAULT_LR)}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.epochs < 1 or self.bptt < 1 or self.batch_size < 1:
            raise BadInput("--epochs, --bptt and --batch-size must be at least 1")
        if self.lr <= 0 or self.clip < 0:
            raise BadInput("--lr must be positive and --clip not negative")


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
    saved: bool


def train(
    model: LanguageModel,
    train_ids: np.ndarray,
    valid_ids: np.ndarray,
    recipe: Recipe,
    rng: np.random.Generator,
    *,
    on_progress: Callable[[Progress], None] = lambda p: None,
    on_epoch: Callable[[Epoch], None] = lambda e: None,
    save: Callable[[Epoch], None] = lambda e: None,
) -> list[Epoch]:
    """Trains the model in place; calls `save` whenever validation perplexity is the best so
    far. With SGD the learning rate is divided by 4 after an epoch that did not improve."""
    if len(train_ids) < 2 * recipe.batch_size:
        raise BadInput(
            f"the training text has {len(train_ids)} tokens; --batch-size {recipe.batch_size} "
            f"needs at least {2 * recipe.batch_size}"
        )
    if len(valid_ids) < 2:
        raise BadInput("the validation text needs at least one line with a word")
    data = batchify(train_ids, recipe.batch_size)
    steps = math.ceil((len(data) - 1) / recipe.bptt)
    optimizer = make_optimizer(recipe.optimizer, model.params, recipe.lr)
    start = time.perf_counter()
    best = math.inf
    history: list[Epoch] = []
    for epoch in range(1, recipe.epochs + 1):
        epoch_start = time.perf_counter()
        state = model.zero_state(recipe.batch_size)
        total_loss, tokens, out_of_time = 0.0, 0, False
        for step, (_, x, y) in enumerate(chunks(data, recipe.bptt), 1):
            if recipe.max_time is not None and time.perf_counter() - start >= recipe.max_time:
                out_of_time = True
                break
            out, state, cache = model.forward(xp.asarray(x), state, rng=rng)
            loss, dout, decoder_grads = model.loss(out, xp.asarray(y))
            if not math.isfinite(loss):
                raise RunFailure(
                    f"training diverged (loss {loss}) in epoch {epoch}; "
                    "the last saved model is kept; try a lower --lr"
                )
            grads, _ = model.backward(cache, dout, decoder_grads)
            clip_global_norm(grads, recipe.clip)
            optimizer.step(grads)
            total_loss += loss * y.size
            tokens += y.size
            on_progress(
                Progress(
                    epoch,
                    step,
                    steps,
                    tokens,
                    time.perf_counter() - epoch_start,
                    loss,
                    optimizer.lr,
                )
            )
        if tokens == 0:
            break
        valid = evaluate(model, valid_ids, batch_size=recipe.eval_batch_size, bptt=recipe.bptt)
        improved = valid.ppl < best
        result = Epoch(
            epoch=epoch,
            train_ppl=math.exp(total_loss / tokens),
            valid_ppl=valid.ppl,
            lr=optimizer.lr,
            seconds=time.perf_counter() - epoch_start,
            tokens=tokens,
            saved=improved,
        )
        history.append(result)
        if improved:
            best = valid.ppl
            save(result)
        elif recipe.optimizer == "sgd":
            optimizer.lr /= 4.0
        on_epoch(result)
        if out_of_time:
            break
    return history
