"""The word cache's settings on a trained model: perplexity of the model mixed with a cache of
each fixed (N steps kept, theta, weight), and of the Bayesian mixture over the weights that
`wordlstm.wordcache` uses, for one theta and N at a time (benchmarks/NOTES.md, 2026-12-07).

    python benchmarks/cache_grid.py MODEL_FOLDER EVAL_TEXT [--sizes 100,300,1000,3000]

The eval protocol's reading: 10 streams with the state carried, 35 steps a chunk.
"""

import argparse

import numpy as np

from wordlstm.checkpoint import load_model
from wordlstm.data import TokenSpool, parallel_chunks
from wordlstm.pipeline import _spool_tokens

THETAS = (0.3, 0.5, 1.0, 2.0)
WEIGHTS = (0.05, 0.1, 0.15, 0.2, 0.3)
MIXED = np.array([0, 0.05, 0.1, 0.2, 0.3, 0.5])  # the weights wordcache.py mixes
STREAMS, STEPS = 10, 35


def cache_probs(model, ids, sizes) -> tuple[np.ndarray, dict]:
    """p_model of each target (steps, streams) and p_cache of it for each (N, theta)."""
    state = model.zero_state(STREAMS)
    H = model.arch.hidden
    keys = np.zeros((STREAMS, 0, H), np.float32)
    values = np.zeros((STREAMS, 0), np.int64)
    p_model, p_cache = [], {(n, t): [] for n in sizes for t in THETAS}
    for x, y in parallel_chunks(ids, STREAMS, STEPS):
        out, state, _ = model.forward(x, state)
        true, _ = model.score(out, y)
        T = x.shape[0]
        p_model.append(np.exp(np.asarray(true, np.float64)).reshape(T, STREAMS))
        h = np.asarray(out).reshape(T, STREAMS, H).transpose(1, 0, 2)
        k = np.concatenate([keys, h], 1)
        v = np.concatenate([values, y.T], 1)
        P = keys.shape[1]
        dots = h @ k.transpose(0, 2, 1)  # (B, T, P + T)
        hit = v[:, None, :] == y.T[:, :, None]
        i, step = np.arange(P + T)[None, :], P + np.arange(T)[:, None]
        for n in sizes:
            kept = (i < step) & (i >= step - n)
            for theta in THETAS:
                s = np.where(kept, theta * dots, -np.inf)
                top = s.max(2, keepdims=True)
                top[~np.isfinite(top)] = 0
                a = np.exp(s - top)
                z = a.sum(2)
                p_cache[(n, theta)].append(((a * hit).sum(2) / np.maximum(z, 1e-30)).T)
        keys, values = k[:, -max(sizes) :], v[:, -max(sizes) :]
    return np.concatenate(p_model), {key: np.concatenate(p) for key, p in p_cache.items()}


def bayes(p_model: np.ndarray, p_cache: np.ndarray) -> float:
    """Perplexity of the Bayesian mixture over MIXED, each stream's evidence its own."""
    pk = (1 - MIXED[:, None, None]) * p_model[None] + MIXED[:, None, None] * p_cache[None]
    lk = np.log(pk)
    before = np.cumsum(lk, axis=1) - lk
    w = np.exp(before - before.max(0))
    w /= w.sum(0)
    return float(np.exp(-np.log((w * pk).sum(0)).mean()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("text")
    p.add_argument("--sizes", default="100,300,1000,3000")
    args = p.parse_args()
    loaded = load_model(args.model)
    sizes = [int(n) for n in args.sizes.split(",")]
    with TokenSpool() as ids:
        _spool_tokens(loaded.tokenizer, args.text, ids)
        p_model, p_cache = cache_probs(loaded.model, ids, sizes)
    print(f"model alone: {np.exp(-np.log(p_model).mean()):.2f}")
    print("N theta | " + " ".join(f"w {w}" for w in WEIGHTS) + " | mixture")
    for (n, theta), c in p_cache.items():
        fixed = [np.exp(-np.log((1 - w) * p_model + w * c).mean()) for w in WEIGHTS]
        row = " ".join(f"{f:.2f}" for f in fixed)
        print(f"{n} {theta} | {row} | {bayes(p_model, c):.2f}")


if __name__ == "__main__":
    main()
