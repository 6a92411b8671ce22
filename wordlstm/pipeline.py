"""The jobs behind the commands, from text to text: train on files, complete a prompt,
score lines. They join the tokenizer, the model, the trainer and the store; the CLI only
parses flags and renders what these return."""

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from wordlstm import predict, resume, store
from wordlstm.checkpoint import Loaded
from wordlstm.data import hold_out
from wordlstm.errors import BadInput, Interrupted, RunFailure
from wordlstm.model import Architecture, LanguageModel
from wordlstm.text import read_training_lines, ready_batches
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
    the best weights so far with the state to resume from (`job.resume` starts there).

    Holds the model's writer lock throughout, so a second run into it fails at once. The
    first Ctrl-C stops training after the current step, saves, and raises Interrupted.
    """
    clock = time.perf_counter()
    path = store.resolve(job.model)
    if job.net.dropout is not None and not 0.0 <= job.net.dropout < 1.0:
        raise BadInput("--dropout must be in [0, 1)")
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
        dropout = job.net.dropout
        if dropout is None:
            dropout = default_dropout(len(train_ids), tokenizer.vocab_size)
        rng = np.random.default_rng(job.seed)
        model = LanguageModel.init(arch, rng, dropout=dropout, forget_bias=job.net.forget_bias)
        facts = _facts(job, train_ids, valid_ids)
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


def _settings(job: TrainJob) -> dict:
    """The flags a resumed run must share with the interrupted one (all but the budget)."""
    recipe = asdict(job.recipe)
    del recipe["epochs"], recipe["max_time"]
    net = asdict(job.net)
    if net["dropout"] is None:
        net["dropout"] = "auto"  # the same text gives the same value
    return {**net, **asdict(job.tokenizer), **recipe, "seed": job.seed}


def _facts(job: TrainJob, train_ids: np.ndarray, valid_ids: np.ndarray) -> dict:
    """What config.json records about how the model was trained."""
    return {
        "tokenizer": asdict(job.tokenizer),
        "recipe": {**asdict(job.recipe), "forget_bias": job.net.forget_bias, "seed": job.seed},
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


@dataclass
class TokenScore:
    token: str
    id: int
    log_prob: float


@dataclass
class LineScore:
    text: str
    tokens: int
    unknown: int
    log_prob: float
    token_scores: list[TokenScore]

    @property
    def ppl(self) -> float:
        return float(np.exp(-self.log_prob / self.tokens))


def score_lines(
    loaded: Loaded, lines: Iterable[str], continuous: bool = False, batch_size: int = 64
) -> Iterator[LineScore]:
    """Scores each line as it arrives: on its own from a zero state fed the end-of-line
    token, lines that arrive together side by side in one batch; or, when continuous, one
    after another with the state carried from line to line."""
    tok, model = loaded.tokenizer, loaded.model
    if continuous:
        state = None
        for text in lines:
            ids = tok.encode(text)
            reading = predict.read_lines(model, [ids], tok.eos_id, state)
            state = reading.state
            yield _line_score(tok, text, ids, reading.scores[0])
        return
    for batch in ready_batches(lines, batch_size):
        encoded = [tok.encode(text) for text in batch]
        reading = predict.read_lines(model, encoded, tok.eos_id)
        for text, ids, scores in zip(batch, encoded, reading.scores, strict=True):
            yield _line_score(tok, text, ids, scores)


def _line_score(tok: Tokenizer, text: str, ids: np.ndarray, log_probs: np.ndarray) -> LineScore:
    all_ids = [*ids.tolist(), tok.eos_id]
    return LineScore(
        text=text,
        tokens=len(all_ids),
        unknown=int(np.count_nonzero(ids == tok.unk_id)),
        log_prob=float(log_probs.sum(dtype=np.float64)),
        token_scores=[
            TokenScore(tok.id_to_token(i), i, float(lp))
            for i, lp in zip(all_ids, log_probs, strict=True)
        ],
    )


@dataclass
class Completion:
    prompt: str
    next: list[tuple[str, float]]
    continuation: str


def complete(
    loaded: Loaded,
    prompts: list[str],
    *,
    top: int = 5,
    words: int = 0,
    sample: bool = False,
    seed: int | None = None,
    first: int = 0,
    temperature: float = 1.0,
) -> list[Completion]:
    """The most likely next words after each prompt and, with words > 0, a continuation of
    up to that many words: greedy, or sampled with a generator per prompt seeded by
    (seed, first + its index), so a prompt's sample does not depend on its batch."""
    tok, model = loaded.tokenizer, loaded.model
    reading = predict.read_lines(
        model, [tok.encode(p) for p in prompts], tok.eos_id, distributions=True
    )
    rngs = None
    if sample:
        rngs = [
            np.random.default_rng(None if seed is None else [seed, first + i])
            for i in range(len(prompts))
        ]
    more = predict.continue_lines(
        model,
        reading.next_log_probs,
        reading.state,
        words,
        stop_id=tok.eos_id,
        exclude=(tok.unk_id,),
        rngs=rngs,
        temperature=temperature,
    )
    completions = []
    for prompt, log_probs, ids in zip(prompts, reading.next_log_probs, more, strict=True):
        best = predict.top_k(log_probs, top, exclude=(tok.unk_id,))
        ids = [i for i in ids if i != tok.eos_id]
        completions.append(
            Completion(
                prompt=prompt,
                next=[(tok.id_to_token(i), p) for i, p in best],
                continuation=tok.decode(ids) if ids else "",
            )
        )
    return completions


def evaluate_file(loaded: Loaded, path: str, *, batch_size: int = 10, bptt: int = 35) -> dict:
    """The benchmark protocol on one file: the whole text as one stream with the state
    carried across lines, read as `batch_size` parallel streams like the PyTorch example's
    validation. Returns perplexity, top-1/top-5 accuracy (also over word targets only,
    leaving out <unk> and <eos>), the token count and the unknown rate."""
    if batch_size < 1 or bptt < 1:
        raise BadInput("--batch-size and --bptt must be at least 1")
    tok = loaded.tokenizer
    ids = tok.encode_lines(read_training_lines([path]))
    result = predict.evaluate(
        loaded.model, ids, batch_size=batch_size, bptt=bptt, special=(tok.unk_id, tok.eos_id)
    )
    return {"file": path, "model": str(loaded.path), **result.summary()}
