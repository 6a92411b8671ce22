"""The word cache (Grave, Joulin and Usunier 2017, "Improving neural language models with a
continuous cache"): a text repeats its own words — names, numbers, the topic's terms — and
the model's recent hidden states say when. While reading a stream the cache keeps the last
`size` pairs (h_i, x_{i+1}): the decoder's input at step i and the word that came next. At
step t, with h_t the decoder's input,

    a_i        = softmax_i(theta * h_t . h_i)          over the kept steps i < t
    p_cache(w) = sum of a_i over the steps i whose next word x_{i+1} is w
    p_k(w)     = (1 - weight_k) * p_model(w) + weight_k * p_cache(w)

How much a text repeats itself, and how sharp the attention should be, differ from text to
text, so the cache does not fix theta and the weight: each pair (theta, weight) of THETAS x
WEIGHTS is an expert p_k, weight 0 (the model alone) among them, and the prediction is
their Bayesian mixture, each expert weighted by how well it predicted the stream so far:

    p(w) = sum_k pi_k p_k(w),   pi_k proportional to the product of p_k(x_{s+1}) over s < t

which is never much worse than the best expert for the text (by at most log K nats in all,
K experts), and is the model alone where the cache does not help. p sums to 1 as each p_k
does. Nothing is trained: the keys are the model's own states.
"""

from dataclasses import dataclass

import numpy as np

THETAS = (0.5, 1.0)  # attention sharpness: dot products of states are a few units here
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # the cache's share of p


@dataclass
class Mixing:
    """How a chunk's rows (T*B, step by step) mix the model with the cache: p(w) =
    model_share * p_model(w) + the sum of `attention` over the kept steps whose next word
    (`values`) is w."""

    model_share: np.ndarray  # (T*B, 1) the sum of pi_k (1 - weight_k)
    attention: np.ndarray  # (B, T, P + T) the sum of pi_k weight_k a_i(theta_k)
    values: np.ndarray  # (B, P + T) x_{i+1} of each kept step

    def log_probs(self, steps: range, model_log_p: np.ndarray) -> np.ndarray:
        """log p of the mixture at `steps` of the chunk (its rows steps.start * B up to
        steps.stop * B), given the model's log-probabilities there (rows, V)."""
        B = self.values.shape[0]
        n, V = model_log_p.shape
        p = self.model_share[steps.start * B : steps.stop * B] * np.exp(
            model_log_p.astype(np.float64)
        )
        a = self.attention[:, steps.start : steps.stop]  # (B, steps, P + T)
        row = np.arange(len(steps))[None, :, None] * B + np.arange(B)[:, None, None]
        cells = (row * V + self.values[:, None, :]).ravel()
        p += np.bincount(cells, a.ravel(), minlength=n * V).reshape(n, V)  # p_cache's part
        return np.log(np.maximum(p, np.finfo(np.float32).tiny)).astype(model_log_p.dtype)


class WordCache:
    """The cache of `streams` parallel streams read in lockstep, chunk by chunk, each
    keeping its last `size` steps."""

    def __init__(self, size: int, streams: int, hidden: int) -> None:
        self.size = size
        self.keys = np.zeros((streams, 0, hidden), dtype=np.float32)  # h_i, oldest first
        self.values = np.zeros((streams, 0), dtype=np.int64)  # x_{i+1}
        self.experts = [(t, w) for t in THETAS for w in WEIGHTS if w > 0] + [(0.0, 0.0)]
        self.evidence = np.zeros((streams, len(self.experts)))  # sum of log p_k so far

    def read(self, out: np.ndarray, targets: np.ndarray, target_log_p: np.ndarray) -> Mixing:
        """Reads a chunk: `out` (T*B, H) the decoder's inputs, rows step by step as the model
        gives them, `targets` (T, B) the words that followed and `target_log_p` (T*B,) the
        model's log-probabilities of them. Each target joins the cache (and the experts'
        evidence) for the steps after its own. Returns how the chunk's rows mix."""
        T, B = targets.shape
        h = out.reshape(T, B, -1).transpose(1, 0, 2)  # (B, T, H): stream-major
        keys = np.concatenate([self.keys, h], axis=1)  # (B, P + T, H)
        values = np.concatenate([self.values, targets.T], axis=1)  # (B, P + T)
        P = self.keys.shape[1]
        attention = self._attention(h @ keys.transpose(0, 2, 1), P)
        hits = values[:, None, :] == targets.T[:, :, None]  # (B, T, P + T): x_{i+1} = x_{t+1}

        # each expert's probability of each target, and the mixture's weights before it
        ready = (P + np.arange(T) > 0)[None, :, None]  # a step with something kept: (1, T, 1)
        share = np.array([w for _, w in self.experts]) * ready  # (1, T, K): 0 while empty
        p_model = np.exp(target_log_p.astype(np.float64)).reshape(T, B).T  # (B, T)
        p_hit = {theta: (a * hits).sum(axis=2) for theta, a in attention.items()}  # (B, T)
        from_cache = np.stack([p_hit.get(t, np.zeros((B, T))) for t, _ in self.experts], 2)
        p_k = (1 - share) * p_model[:, :, None] + share * from_cache  # (B, T, K)
        log_k = np.log(np.maximum(p_k, np.finfo(np.float64).tiny))
        before = self.evidence[:, None, :] + np.cumsum(log_k, axis=1) - log_k
        pi = np.exp(before - before.max(axis=2, keepdims=True))
        pi /= pi.sum(axis=2, keepdims=True)  # pi_k, proportional to exp(evidence before t)
        self.evidence += log_k.sum(axis=1)
        first = max(0, keys.shape[1] - self.size)
        self.keys, self.values = keys[:, first:], values[:, first:]  # the window

        # the mixture's weights: p_model's share, and each kept step's through each theta
        cache = sum(
            (pi * share * np.array([t == theta for t, _ in self.experts])).sum(axis=2)[..., None]
            * a
            for theta, a in attention.items()
        )
        model_share = (pi * (1 - share)).sum(axis=2).T.reshape(-1, 1)  # (T*B, 1), row order
        return Mixing(model_share, cache, values)

    def _attention(self, dots: np.ndarray, P: int) -> dict[float, np.ndarray]:
        """a_i for each theta from the dot products h_t . h_i (B, T, P + T), P steps kept
        before the chunk: 0 outside the window of steps i < t (all 0 at a step with nothing
        kept, where the experts' cache share is 0)."""
        T = dots.shape[1]
        step = P + np.arange(T)[:, None]  # the position of step t among the keys
        i = np.arange(dots.shape[2])[None, :]
        kept = (i < step) & (i >= step - self.size)  # (T, P + T)
        attention = {}
        for theta in THETAS:
            scores = np.where(kept, theta * dots, -np.inf)
            top = scores.max(axis=2, keepdims=True)
            top[~np.isfinite(top)] = 0.0  # a step with nothing kept yet
            a = np.exp(scores - top)
            total = a.sum(axis=2, keepdims=True)
            attention[theta] = a / np.where(total > 0, total, 1.0)
        return attention
