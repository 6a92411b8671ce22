"""The word cache: a Bayesian mixture of the model and cache experts, read chunk by chunk."""

import json
import math

import numpy as np
import pytest
from conftest import assert_one_error_line, run

from wordlstm.wordcache import WordCache


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def chunks(rng, steps: int, T: int, B: int, V: int, H: int):
    """Random chunks of (log_p (T*B, V), out (T*B, H), targets (T, B))."""
    for _ in range(steps):
        yield (
            log_softmax(rng.normal(size=(T * B, V))).astype(np.float32),
            rng.normal(size=(T * B, H)).astype(np.float32),
            rng.integers(0, V, size=(T, B)),
        )


def mix(cache: WordCache, log_p, out, targets, block: int = 1) -> np.ndarray:
    """The mixture's log-probabilities of a whole chunk (T*B, V), made `block` steps at a
    time as eval makes them."""
    T, B = targets.shape
    mixing = cache.read(out, targets, log_p[np.arange(T * B), targets.reshape(-1)])
    steps = [range(t, min(T, t + block)) for t in range(0, T, block)]
    return np.concatenate([mixing.log_probs(s, log_p[s.start * B : s.stop * B]) for s in steps])


def direct(read: list, size: int, experts: list) -> list:
    """The docstring's formulas step by step for each stream: the reference for `mix`."""
    B = read[0][2].shape[1]
    kept = [[] for _ in range(B)]  # (h_i, x_{i+1}) per stream
    evidence = np.zeros((B, len(experts)))
    results = []
    for log_p, out, targets in read:
        T = targets.shape[0]
        mixed = np.zeros(log_p.shape)
        for t in range(T):
            for b in range(B):
                row, h, y = t * B + b, out[t * B + b].astype(np.float64), targets[t, b]
                p_model = np.exp(log_p[row].astype(np.float64))
                p_k = []
                for theta, weight in experts:
                    p_cache = np.zeros_like(p_model)
                    if kept[b]:
                        scores = np.array([theta * h @ k for k, _ in kept[b]])
                        a = np.exp(scores - scores.max())
                        for a_i, (_, w) in zip(a / a.sum(), kept[b], strict=True):
                            p_cache[w] += a_i
                    share = weight if kept[b] else 0.0
                    p_k.append((1 - share) * p_model + share * p_cache)
                pi = np.exp(evidence[b] - evidence[b].max())
                pi /= pi.sum()
                mixed[row] = np.log(sum(w * p for w, p in zip(pi, p_k, strict=True)))
                evidence[b] += [math.log(p[y]) for p in p_k]
                kept[b] = (kept[b] + [(h, y)])[-size:]
        results.append(mixed)
    return results


def test_mix_is_the_mixture_the_docstring_defines_across_chunks():
    rng = np.random.default_rng(0)
    read = list(chunks(rng, 3, T=4, B=2, V=7, H=3))  # 12 steps, a window of 5 crosses chunks
    cache = WordCache(5, streams=2, hidden=3)
    mixed = [mix(cache, *chunk, block=3) for chunk in read]  # blocks of 3 steps and of 1
    for got, want in zip(mixed, direct(read, 5, cache.experts), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_each_row_is_a_distribution_and_the_first_is_the_model_alone():
    rng = np.random.default_rng(1)
    cache = WordCache(10, streams=3, hidden=4)
    for i, (log_p, out, targets) in enumerate(chunks(rng, 3, T=5, B=3, V=11, H=4)):
        mixed = mix(cache, log_p, out, targets)
        np.testing.assert_allclose(np.exp(mixed.astype(np.float64)).sum(axis=1), 1, atol=1e-5)
        if i == 0:  # nothing kept before the first step of each stream
            np.testing.assert_allclose(mixed[:3], log_p[:3], atol=1e-6)


def periodic(V: int, period: int, steps: int, B: int, rng):
    """A stream repeating a random sequence of `period` words, read by a model that knows
    nothing (uniform p_model) but whose state is the current word (one-hot)."""
    seq = rng.integers(0, V, size=period)
    words = np.stack([np.roll(np.tile(seq, steps // period + 2), -b) for b in range(B)], 1)
    log_p = np.full((B, V), -math.log(V), dtype=np.float32)
    eye = np.eye(V, dtype=np.float32) * 3
    return words, log_p, eye


def nll(cache: WordCache, words: np.ndarray, log_p_row: np.ndarray, eye, T: int) -> float:
    total, count = 0.0, 0
    for s in range(0, len(words) - T - 1, T):
        x, y = words[s : s + T], words[s + 1 : s + T + 1]
        mixed = mix(cache, np.tile(log_p_row, (T, 1)), eye[x].reshape(-1, eye.shape[1]), y)
        total -= mixed[np.arange(y.size), y.reshape(-1)].sum()
        count += y.size
    return total / count


def test_a_text_that_repeats_itself_is_predicted_from_the_cache():
    rng = np.random.default_rng(2)
    V, B, T = 50, 2, 8
    words, log_p, eye = periodic(V, period=20, steps=400, B=B, rng=rng)
    loss = nll(WordCache(100, B, V), words, log_p, eye, T)
    assert loss < 0.3 * math.log(V)  # the model alone: log V per word


def test_where_the_cache_cannot_help_the_mixture_costs_almost_nothing():
    rng = np.random.default_rng(3)
    V, B, T = 50, 2, 8
    words = rng.integers(0, V, size=(2000, B))  # no repetition beyond chance
    log_p = np.full((B, V), -math.log(V), dtype=np.float32)
    cache = WordCache(100, B, V)
    loss = nll(cache, words, log_p, np.eye(V, dtype=np.float32) * 3, T)
    steps = (len(words) - T - 1) // T * T
    assert loss <= math.log(V) + math.log(len(cache.experts)) / steps + 1e-5  # float32
    # the experts that trust the cache have lost: the model alone leads
    assert np.argmax(cache.evidence[0]) == cache.experts.index((0.0, 0.0))


def test_cli_eval_reports_both_perplexities_and_size_0_is_the_model_alone(tmp_path, trained):
    text = tmp_path / "again.txt"
    text.write_text("the cat sat on the mat .\nthe dog sat on the log .\n" * 40)
    with_cache = json.loads(run("eval", str(text), "--json", home=trained, check=True).out)
    alone = json.loads(
        run("eval", str(text), "--json", "--cache-size", "0", home=trained, check=True).out
    )
    assert with_cache["cache_size"] == 300 and alone["cache_size"] == 0
    assert alone["perplexity"] == alone["model_perplexity"] == with_cache["model_perplexity"]
    assert with_cache["perplexity"] < alone["perplexity"]  # the text repeats itself
    shown = run("eval", str(text), "--no-keyboard", home=trained, check=True).out
    assert f"without the word cache  {alone['perplexity']:.2f}" in shown


@pytest.mark.parametrize("size", ["-1", "2.5"])
def test_cli_bad_cache_size_is_one_error_line(tmp_path, trained, size):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat .\n")
    proc = run("eval", str(text), "--cache-size", size, home=trained)
    assert_one_error_line(proc, 2, "--cache-size")
