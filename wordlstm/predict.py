"""Prediction on token ids and hidden states: scoring, next-word distributions,
continuations and the benchmark evaluation. Strings stay with the tokenizer and the CLI."""

from __future__ import annotations  # np.random is imported only when a completion samples

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wordlstm.backend import to_host, xp
from wordlstm.data import TokenSpool, parallel_chunks
from wordlstm.model import LanguageModel

if TYPE_CHECKING:
    from wordlstm.wordcache import Mixing

# Steps fed at once when reading lines: bounds memory for any line length.
READ_CHUNK = 512
MIXED_CELLS = 1 << 22  # rows x vocabulary of the word cache's mixture made at once


@dataclass
class Reading:
    """What reading lines gives, per line: the log-probability of each of its tokens and of
    its end-of-line token, the distribution of the token after its last one, and the LSTM
    state after its last token (h and c, each layers x lines x hidden)."""

    scores: list[np.ndarray]
    next_log_probs: xp.ndarray | None
    state: tuple
    ranks: list[np.ndarray] | None = None  # each token's rank (0: the first choice), if asked


def read_lines(
    model: LanguageModel,
    lines: list[np.ndarray],
    eos_id: int,
    state: tuple | None = None,
    *,
    distributions: bool = False,
    lead: int | None = None,
    follow: int | None = None,
    ranks: bool = False,
) -> Reading:
    """Reads lines side by side, one per batch column, each as if it followed another:
    from `state` (zero if None) fed the end-of-line token, then its tokens. Shorter lines are
    padded at the end; each line's results are taken where it ends. Steps go in chunks of
    READ_CHUNK, so memory stays bounded for any line length. With `distributions`, also the
    full next-token distribution after each line (for completion); with `ranks`, also how
    many tokens the model found likelier than each scored one.

    A line read in parts goes on from the state after the part before: `lead` is then the
    token fed first instead of the end-of-line token, and `follow` the token scored after
    the last one instead of the end-of-line token. A part's last token is held back: it is
    the `follow` of its own call and the `lead` of the next."""
    B = len(lines)
    lengths = np.array([len(ids) + 1 for ids in lines])  # inputs: <eos> then the tokens
    T = int(lengths.max())
    inputs = np.full((T, B), eos_id, dtype=np.int64)
    targets = np.full((T, B), eos_id, dtype=np.int64)
    inputs[0] = eos_id if lead is None else lead
    for b, ids in enumerate(lines):
        inputs[1 : len(ids) + 1, b] = ids
        targets[: len(ids), b] = ids
        targets[len(ids), b] = eos_id if follow is None else follow
    valid = np.arange(T)[:, None] < lengths[None, :]
    scores = np.zeros((T, B))
    rank = np.zeros((T, B), dtype=np.int64) if ranks else None
    state = model.zero_state(B) if state is None else state
    end_h, end_c = (xp.empty_like(a) for a in state)
    nxt = xp.empty((B, model.arch.vocab), dtype=model.dtype) if distributions else None
    for start in range(0, T, READ_CHUNK):
        x = inputs[start : start + READ_CHUNK]
        out, state, cache = model.forward(xp.asarray(x), state)
        keep = valid[start : start + len(x)].reshape(-1)
        part = scores[start : start + len(x)].reshape(-1)
        y = xp.asarray(targets[start : start + len(x)].reshape(-1)[keep])
        log_probs, r = model.score(out[keep], y, ranks=ranks)
        part[keep] = to_host(log_probs)
        if ranks:
            rank[start : start + len(x)].reshape(-1)[keep] = to_host(r)
        ending = np.flatnonzero((lengths - 1 >= start) & (lengths - 1 < start + len(x)))
        steps = lengths[ending] - 1 - start
        for k, layer in enumerate(cache.layers):
            end_h[k, ending], end_c[k, ending] = layer.state_after(steps, ending)
        if distributions and len(ending):
            nxt[ending] = model.log_probs(out[steps * B + ending])
    per_line = None if rank is None else [rank[:n, b] for b, n in enumerate(lengths)]
    return Reading([scores[:n, b] for b, n in enumerate(lengths)], nxt, (end_h, end_c), per_line)


def top_k(log_probs, k: int, exclude: tuple[int, ...] = ()) -> list[tuple[int, float]]:
    """The k most likely ids with their probabilities, most likely first."""
    lp = np.array(to_host(log_probs), dtype=np.float64)
    lp[list(exclude)] = -np.inf
    k = min(k, len(lp) - len(set(exclude)))
    best = np.argpartition(-lp, k - 1)[:k] if k > 0 else np.array([], dtype=int)
    best = best[np.argsort(-lp[best], kind="stable")]
    return [(int(i), float(np.exp(lp[i]))) for i in best]


def continue_lines(
    model: LanguageModel,
    log_probs,
    state: tuple,
    n: int,
    *,
    stop_id: int,
    exclude: tuple[int, ...] = (),
    rngs: list[np.random.Generator] | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> list[list[int]]:
    """Up to n further ids for each row of log_probs (B, V), all rows fed side by side: the
    most likely each time, or sampled (each row with its own generator, so the result does
    not depend on what else is in the batch) from the distribution sharpened or flattened by
    temperature and `truncate`d to top_k / top_p. A row stops after stop_id."""
    B = log_probs.shape[0]
    out: list[list[int]] = [[] for _ in range(B)]
    running = np.ones(B, dtype=bool)
    for _ in range(n):
        lp = np.array(to_host(log_probs), dtype=np.float64)
        lp[:, list(exclude)] = -np.inf
        if rngs is None:
            nxt = lp.argmax(axis=1)
        else:
            z = lp / temperature
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p = truncate(p / p.sum(axis=1, keepdims=True), top_k, top_p)
            nxt = np.array(
                [rng.choice(p.shape[1], p=row) for rng, row in zip(rngs, p, strict=True)]
            )
        for b in np.flatnonzero(running):
            out[b].append(int(nxt[b]))
        running &= nxt != stop_id
        if not running.any():
            break
        o, state, _ = model.forward(xp.asarray(nxt.reshape(1, B)), state)
        log_probs = model.log_probs(o)
    return out


def truncate(p: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Each row of probabilities (B, V) cut to its top_k most likely tokens (0: all) and to
    the fewest most likely tokens whose probabilities sum to top_p or more (nucleus
    sampling), then renormalised. The most likely token always stays."""
    order = np.argsort(-p, axis=1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=1)
    keep = np.cumsum(ranked, axis=1) - ranked < top_p  # the mass before it falls short
    if top_k > 0:
        keep[:, top_k:] = False
    keep[:, 0] = True
    out = np.zeros_like(p)
    np.put_along_axis(out, order, np.where(keep, ranked, 0.0), axis=1)
    return out / out.sum(axis=1, keepdims=True)


@dataclass
class Evaluation:
    """Totals of the benchmark protocol over a token stream. The `words_` counts leave out
    positions whose target is the unknown or the end-of-line token."""

    tokens: int = 0
    nll: float = 0.0
    top1: int = 0
    top5: int = 0
    unknown: int = 0
    words: int = 0
    words_top1: int = 0
    words_top5: int = 0
    model_nll: float = 0.0  # the model's own, without the word cache (the same if none)

    @property
    def ppl(self) -> float:
        return float(np.exp(self.nll / max(1, self.tokens)))

    def summary(self) -> dict:
        """The figures `wordlstm eval` reports."""
        n, w = max(1, self.tokens), max(1, self.words)
        return {
            "perplexity": self.ppl,
            "model_perplexity": float(np.exp(self.model_nll / max(1, self.tokens))),
            "top1": self.top1 / n,
            "top5": self.top5 / n,
            "top1_words": self.words_top1 / w,
            "top5_words": self.words_top5 / w,
            "tokens": self.tokens,
            "unknown_rate": self.unknown / n,
        }


def evaluate(
    model: LanguageModel,
    ids: np.ndarray | TokenSpool,
    *,
    batch_size: int = 10,
    bptt: int = 35,
    special: tuple[int, int] = (0, 1),
    accuracy: bool = True,
    cache_size: int = 0,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> Evaluation:
    """Perplexity and top-1/top-5 accuracy of a stream (an array, or a spool for one too
    long to hold) read as `batch_size` parallel streams with the state carried from chunk
    to chunk, as the PyTorch example validates, the model's probabilities mixed with a
    word cache of each stream's last `cache_size` words if not 0 (`wordlstm.wordcache`).
    `special` is (unknown id, end-of-line id); accuracy=False skips ranking the targets
    (their counts stay 0), for validation, which needs the perplexity only. Calls
    `on_progress(tokens done, tokens in all)` after each chunk."""
    batch_size = max(1, min(batch_size, len(ids) // 2))
    state = model.zero_state(batch_size)
    words = None
    if cache_size:
        from wordlstm.wordcache import WordCache  # here: eval alone needs it

        words = WordCache(cache_size, batch_size, model.arch.hidden)
    total = Evaluation()
    positions = (len(ids) // batch_size - 1) * batch_size
    for x, y in parallel_chunks(ids, batch_size, bptt):
        out, state, _ = model.forward(xp.asarray(x), state)
        true, rank = model.score(out, xp.asarray(y), ranks=accuracy and words is None)
        total.model_nll -= float(to_host(true).sum(dtype=np.float64))
        if words is not None:
            true, rank = _mixed(model, out, y, words.read(to_host(out), y, to_host(true)))
        y = y.reshape(-1)
        total.tokens += len(y)
        total.nll -= float(to_host(true).sum(dtype=np.float64))
        on_progress(total.tokens, positions)
        if not accuracy:
            continue
        rank = to_host(rank)
        word = (y != special[0]) & (y != special[1])
        total.top1 += int((rank < 1).sum())
        total.top5 += int((rank < 5).sum())
        total.unknown += int((y == special[0]).sum())
        total.words += int(word.sum())
        total.words_top1 += int((word & (rank < 1)).sum())
        total.words_top5 += int((word & (rank < 5)).sum())
    return total


def _mixed(model: LanguageModel, out, targets: np.ndarray, mixing: Mixing) -> tuple:
    """log p of each target (T, B) under the word cache's `mixing` of a chunk, and how many
    tokens are likelier than each: the model's rows of log-probabilities made a block of
    steps at a time, so that a large vocabulary's never exist for the whole chunk."""
    T, B = targets.shape
    targets = targets.reshape(-1)
    block = max(1, MIXED_CELLS // (B * model.arch.vocab))
    true, rank = [], []
    for s in range(0, T, block):
        steps = range(s, min(T, s + block))
        rows = slice(steps.start * B, steps.stop * B)
        log_p = mixing.log_probs(steps, to_host(model.log_probs(out[rows])))
        t = log_p[np.arange(len(log_p)), targets[rows]]
        true.append(t)
        rank.append((log_p > t[:, None]).sum(axis=1))
    return np.concatenate(true), np.concatenate(rank)
