"""Prediction on token ids and hidden states: scoring, next-word distributions,
continuations and the benchmark evaluation. Strings stay with the tokenizer and the CLI."""

from dataclasses import dataclass

import numpy as np

from wordlstm.backend import to_host, xp
from wordlstm.data import batchify, chunks
from wordlstm.model import LanguageModel

# Steps fed at once when reading one long sequence: bounds memory for any line length.
READ_CHUNK = 512


def read(model: LanguageModel, inputs: np.ndarray, state: tuple, targets=None) -> tuple:
    """Feeds one sequence of ids (batch 1) in chunks of READ_CHUNK steps, so memory stays
    bounded for any length. Returns (the log-probability of each target, targets[t] being
    the token after inputs[t]; or without targets the log-probabilities over the vocabulary
    after the last input) and the state after the last input."""
    scores = None if targets is None else np.empty(len(targets), dtype=np.float64)
    for start in range(0, len(inputs), READ_CHUNK):
        chunk = xp.asarray(inputs[start : start + READ_CHUNK]).reshape(-1, 1)
        out, state, _ = model.forward(chunk, state)
        if targets is not None:
            part = xp.asarray(targets[start : start + len(chunk)])
            scores[start : start + len(part)] = to_host(model.score(out, part)[0])
    return (model.log_probs(out[-1:])[0] if targets is None else scores), state


def score_line(model: LanguageModel, ids: np.ndarray, eos_id: int, state: tuple | None = None):
    """log p of each token of a line and of its end-of-line token, reading the line as if it
    followed another: from `state` (a zero state if None) fed the end-of-line token first.
    Returns (log-probabilities as a host array of len(ids) + 1, the state after the line)."""
    if state is None:
        state = model.zero_state(1)
    inputs = np.concatenate([[eos_id], ids]).astype(np.int64)
    targets = np.concatenate([ids, [eos_id]]).astype(np.int64)
    return read(model, inputs, state, targets)


def next_log_probs(model: LanguageModel, ids: np.ndarray, eos_id: int) -> tuple:
    """The distribution of the word after a prompt read as `score_line` reads a line:
    (log-probabilities over the vocabulary, the state after the prompt)."""
    inputs = np.concatenate([[eos_id], ids]).astype(np.int64)
    return read(model, inputs, model.zero_state(1))


def top_k(log_probs, k: int, exclude: tuple[int, ...] = ()) -> list[tuple[int, float]]:
    """The k most likely ids with their probabilities, most likely first."""
    lp = np.array(to_host(log_probs), dtype=np.float64)
    lp[list(exclude)] = -np.inf
    k = min(k, len(lp) - len(set(exclude)))
    best = np.argpartition(-lp, k - 1)[:k] if k > 0 else np.array([], dtype=int)
    best = best[np.argsort(-lp[best], kind="stable")]
    return [(int(i), float(np.exp(lp[i]))) for i in best]


def continue_ids(
    model: LanguageModel,
    log_probs,
    state: tuple,
    n: int,
    *,
    stop_id: int,
    exclude: tuple[int, ...] = (),
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
) -> list[int]:
    """Up to n further ids: the most likely each time, or sampled from the distribution
    sharpened or flattened by temperature when rng is given. Stops after stop_id."""
    out: list[int] = []
    for _ in range(n):
        lp = np.array(to_host(log_probs), dtype=np.float64)
        lp[list(exclude)] = -np.inf
        if rng is None:
            nxt = int(np.argmax(lp))
        else:
            z = lp / temperature
            p = np.exp(z - z.max())
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        out.append(nxt)
        if nxt == stop_id:
            break
        log_probs, state = read(model, np.array([nxt]), state)
    return out


@dataclass
class Evaluation:
    """Totals of the benchmark protocol over a token stream. The `words_` counts leave out
    positions whose target is the unknown or the end-of-line token, as ANCHORS.md reports."""

    tokens: int = 0
    nll: float = 0.0
    top1: int = 0
    top5: int = 0
    unknown: int = 0
    words: int = 0
    words_top1: int = 0
    words_top5: int = 0

    @property
    def ppl(self) -> float:
        return float(np.exp(self.nll / max(1, self.tokens)))

    def summary(self) -> dict:
        """The figures `wordlstm eval` reports."""
        n, w = max(1, self.tokens), max(1, self.words)
        return {
            "perplexity": self.ppl,
            "top1": self.top1 / n,
            "top5": self.top5 / n,
            "top1_words": self.words_top1 / w,
            "top5_words": self.words_top5 / w,
            "tokens": self.tokens,
            "unknown_rate": self.unknown / n,
        }


def evaluate(
    model: LanguageModel,
    ids: np.ndarray,
    *,
    batch_size: int = 10,
    bptt: int = 35,
    special: tuple[int, int] = (0, 1),
) -> Evaluation:
    """Perplexity and top-1/top-5 accuracy of a stream read as `batch_size` parallel
    streams with the state carried from chunk to chunk, as the PyTorch example validates.
    `special` is (unknown id, end-of-line id)."""
    batch_size = max(1, min(batch_size, len(ids) // 2))
    data = batchify(ids, batch_size)
    state = model.zero_state(batch_size)
    total = Evaluation()
    for _, x, y in chunks(data, bptt):
        out, state, _ = model.forward(xp.asarray(x), state)
        true, rank = (to_host(a) for a in model.score(out, xp.asarray(y), ranks=True))
        y = y.reshape(-1)
        word = (y != special[0]) & (y != special[1])
        total.tokens += len(y)
        total.nll -= float(true.sum(dtype=np.float64))
        total.top1 += int((rank < 1).sum())
        total.top5 += int((rank < 5).sum())
        total.unknown += int((y == special[0]).sum())
        total.words += int(word.sum())
        total.words_top1 += int((word & (rank < 1)).sum())
        total.words_top5 += int((word & (rank < 5)).sum())
    return total
