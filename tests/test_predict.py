"""Prediction on ids: the evaluation protocol agrees with scoring line by line, and the
`eval` command reports it."""

import json
import math

import numpy as np
from conftest import run

from wordlstm import predict
from wordlstm.model import Architecture, LanguageModel

EOS, UNK = 1, 0


def random_model(vocab=12, seed=0) -> LanguageModel:
    arch = Architecture(vocab=vocab, embed=6, hidden=5, layers=2)
    model = LanguageModel.init(arch, np.random.default_rng(seed))
    for p in model.params.values():  # sharper distributions than the small init gives
        p *= 8
    return model


def lines_stream(rng, n_lines=7):
    lines = [rng.integers(2, 12, size=rng.integers(0, 6)) for _ in range(n_lines)]
    stream = np.concatenate([[EOS]] + [np.append(line, EOS) for line in lines])
    return lines, stream


def test_evaluate_on_one_stream_equals_scoring_lines_continuously():
    model = random_model()
    lines, stream = lines_stream(np.random.default_rng(1))
    ev = predict.evaluate(model, stream, batch_size=1, bptt=4, special=(UNK, EOS))
    state, nll = None, 0.0
    for ids in lines:
        reading = predict.read_lines(model, [ids], EOS, state)
        state = reading.state
        nll -= reading.scores[0].sum()
    assert ev.tokens == len(stream) - 1
    assert math.isclose(ev.nll, nll, rel_tol=1e-5)


def test_evaluate_counts_top_k_hits_as_a_full_sort_would():
    model = random_model()
    _, stream = lines_stream(np.random.default_rng(2), n_lines=20)
    ev = predict.evaluate(model, stream, batch_size=1, bptt=1000, special=(UNK, EOS))
    out, _, _ = model.forward(stream[:-1].reshape(-1, 1), model.zero_state(1))
    full = model.log_probs(out)
    order = np.argsort(-full, axis=1)
    targets = stream[1:]
    assert ev.top1 == int((order[:, 0] == targets).sum())
    assert ev.top5 == int((order[:, :5] == targets[:, None]).any(axis=1).sum())
    words = (targets != UNK) & (targets != EOS)
    assert ev.words == int(words.sum())
    assert ev.words_top1 == int(((order[:, 0] == targets) & words).sum())


def test_lines_read_side_by_side_equal_lines_read_alone(monkeypatch):
    """Padding, chunking and per-line ends must not change any line's figures."""
    monkeypatch.setattr(predict, "READ_CHUNK", 3)  # lines cross chunk boundaries
    model = random_model()
    lines, _ = lines_stream(np.random.default_rng(3), n_lines=6)
    together = predict.read_lines(model, lines, EOS, distributions=True)
    for b, ids in enumerate(lines):
        alone = predict.read_lines(model, [ids], EOS, distributions=True)
        np.testing.assert_allclose(together.scores[b], alone.scores[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(together.next_log_probs[b], alone.next_log_probs[0], atol=1e-5)
        for a, b_ in zip(together.state, alone.state, strict=True):
            np.testing.assert_allclose(a[:, b], b_[:, 0], atol=1e-6)
        # the next-token distribution after the line ends in its end-of-line score
        assert np.isclose(alone.next_log_probs[0][EOS], alone.scores[0][-1], atol=1e-5)


def test_top_k_is_sorted_and_leaves_out_excluded_ids():
    log_probs = np.log(np.array([0.05, 0.4, 0.1, 0.3, 0.15]))
    assert [i for i, _ in predict.top_k(log_probs, 3, exclude=(1,))] == [3, 4, 2]
    assert math.isclose(predict.top_k(log_probs, 1)[0][1], 0.4)


def test_eval_command_reports_the_protocol(trained, corpus):
    proc = run("eval", str(corpus), "--json", home=trained)
    assert proc.returncode == 0, proc.err
    r = json.loads(proc.out)
    assert {
        "perplexity",
        "top1",
        "top5",
        "top1_words",
        "top5_words",
        "tokens",
        "unknown_rate",
    } <= set(r)
    assert 1 < r["perplexity"] < 50 and 0 <= r["top1"] <= r["top5"] <= 1
    assert r["unknown_rate"] == 0
    table = run("eval", str(corpus), home=trained)
    assert table.out.splitlines()[0].split()[0] == "perplexity"
    assert f"{r['perplexity']:.2f}" in table.out
