"""The hand-written backward pass against finite differences, and the fused forward pass
against a plain step-by-step reading of the gate equations."""

import numpy as np
import pytest

import wordlstm.model
from wordlstm import gradcheck, lstm
from wordlstm.model import Architecture, LanguageModel
from wordlstm.optim import SGD, Adam, RowGradient, dense, global_norm
from wordlstm.regularisers import Regularisers

# Every regulariser alone and all at once, each at a rate or weight large enough to matter
# in the gradient; "dropout" is Zaremba et al.'s, one rate at all three sites, a new mask
# per step.
REGULARISERS = {
    "dropout": Regularisers.everywhere(0.3),
    "locked dropout": Regularisers(dropout=0.3, dropout_input=0.5, dropout_hidden=0.2, locked=True),
    "embedding dropout": Regularisers(embed_dropout=0.5),
    "weight drop": Regularisers(weight_drop=0.5),
    "ar": Regularisers(ar=2.0),
    "tar": Regularisers(tar=2.0),
    "all": gradcheck.ALL_REGULARISERS,
}


@pytest.mark.parametrize("regularisers", list(REGULARISERS))
@pytest.mark.parametrize("tied", [False, True])
def test_every_parameter_matches_finite_differences_across_two_chunks(tied, regularisers):
    problem = gradcheck.tiny_problem(tied, REGULARISERS[regularisers])
    _, grads = gradcheck.loss_and_gradient(problem)
    expected = set(problem.model.arch.shapes()) - ({"decoder.weight"} if tied else set())
    assert set(grads) == expected
    for c in gradcheck.check(problem):
        assert c.passed, f"{c.name}: relative error {c.error:.2e}"


def test_the_gradient_at_the_embeddings_matches_finite_differences():
    # what `explain` attributes with: dL/d(each token's embedding vector), one per step
    problem = gradcheck.tiny_problem(False, Regularisers())
    model = problem.model
    x, y = problem.chunks[0]
    out, _, cache = model.forward(x, model.zero_state(x.shape[1]))
    _, dout, dec = model.loss(out, y)
    _, _, dx = model.backward_to_embeddings(cache, dout, dec)
    embedded = model.params["encoder.weight"].T[:, x]  # (E, T, B)
    numeric = np.zeros_like(embedded)
    eps = 1e-6

    def loss_at(e):
        h, c = model.zero_state(x.shape[1])
        for k in range(model.arch.layers):
            w_ih, w_hh, bias = model._layer(k)
            e, _ = lstm.forward(e, h[k], c[k], w_ih, w_hh, bias)
        return model.loss(np.ascontiguousarray(e.reshape(e.shape[0], -1).T), y)[0]

    for j in np.ndindex(embedded.shape):
        up, down = embedded.copy(), embedded.copy()
        up[j] += eps
        down[j] -= eps
        numeric[j] = (loss_at(up) - loss_at(down)) / (2 * eps)
    assert gradcheck.relative_error(dx, numeric) < gradcheck.TOLERANCE


def test_the_second_chunk_depends_on_the_first_through_the_carried_state():
    arch = Architecture(vocab=6, embed=3, hidden=3, layers=1)
    model = LanguageModel.init(arch, np.random.default_rng(0), dtype=np.float64)
    x = np.array([[1], [2], [3]])
    _, carried, _ = model.forward(x, model.zero_state(1))
    out_zero, _, _ = model.forward(x, model.zero_state(1))
    out_carried, _, _ = model.forward(x, carried)
    assert not np.allclose(out_zero, out_carried)


def plain_lstm(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """The gate equations one step and one gate at a time, as in the textbook."""
    H = h.shape[-1]

    def sigmoid(a):
        return 1.0 / (1.0 + np.exp(-a))

    def gate(k, x_t, h):
        rows = slice(k * H, (k + 1) * H)
        return x_t @ w_ih[rows].T + h @ w_hh[rows].T + b_ih[rows] + b_hh[rows]

    outputs = []
    for x_t in x:
        i = sigmoid(gate(0, x_t, h))
        f = sigmoid(gate(1, x_t, h))
        g = np.tanh(gate(2, x_t, h))
        o = sigmoid(gate(3, x_t, h))
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), h, c


def test_fused_forward_equals_the_plain_gate_equations():
    rng = np.random.default_rng(3)
    T, B, n_in, H = 6, 2, 5, 4
    x = rng.normal(size=(T, B, n_in))
    h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    w_ih, w_hh = rng.normal(size=(4 * H, n_in)), rng.normal(size=(4 * H, H))
    b_ih, b_hh = rng.normal(size=4 * H), rng.normal(size=4 * H)

    out, cache = lstm.forward(x.transpose(2, 0, 1), h0, c0, w_ih, w_hh, b_ih + b_hh)
    want_out, want_h, want_c = plain_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh)

    np.testing.assert_allclose(out.transpose(1, 2, 0), want_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.h[:, -1].T, want_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache.c[-1].T, want_c, rtol=1e-12, atol=1e-12)


# 5000: logits far past exp's float32 range; a bias of -200: every exp underflows to 0;
# 20 cells: the softmax in three blocks of two rows instead of one
@pytest.mark.parametrize(
    ("scale", "shift", "cells"),
    [(1.0, 0.0, None), (5000.0, 0.0, None), (1.0, -200.0, None), (1.0, 0.0, 20)],
)
def test_loss_and_scores_match_a_plain_log_softmax(scale, shift, cells, monkeypatch):
    if cells is not None:
        monkeypatch.setattr(wordlstm.model, "_DECODER_CELLS", cells)
    arch = Architecture(vocab=9, embed=4, hidden=4, layers=1)
    model = LanguageModel.init(arch, np.random.default_rng(0))
    model.params["decoder.weight"] *= scale
    model.params["decoder.bias"] += shift + np.random.default_rng(2).normal(size=9).astype("f4")
    rng = np.random.default_rng(1)
    out = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.integers(0, 9, size=6)
    W = model.params["decoder.weight"].astype(np.float64)
    z = out.astype(np.float64) @ W.T + model.params["decoder.bias"]
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    want = log_p[np.arange(6), y]
    dz = np.exp(log_p)
    dz[np.arange(6), y] -= 1.0
    want_dout = dz @ W / 6
    want_dW, want_db = dz.T @ out / 6, dz.sum(axis=0) / 6

    loss, dout, decoder = model.loss(out, y)
    scores, ranks = model.score(out, y, ranks=True)
    np.testing.assert_allclose(loss, -want.mean(), rtol=1e-4)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dout, want_dout, rtol=1e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(decoder["decoder.weight"], want_dW, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(decoder["decoder.bias"], want_db, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(ranks, (log_p > want[:, None]).sum(axis=1))


def test_the_untied_embedding_gradient_keeps_only_the_chunks_rows_and_updates_alike():
    arch = Architecture(vocab=50, embed=4, hidden=3, layers=1)
    model = LanguageModel.init(arch, np.random.default_rng(0))
    x = np.array([[3, 7], [7, 7], [41, 3]])
    out, _, cache = model.forward(x, model.zero_state(2))
    grads, _ = model.backward(cache, *model.loss(out, np.array([[1, 2], [3, 4], [5, 6]]))[1:])
    sparse = grads["encoder.weight"]
    assert isinstance(sparse, RowGradient)
    assert sparse.ids.tolist() == [3, 7, 41]
    full = {n: dense(g).copy() for n, g in grads.items()}
    assert np.count_nonzero(np.abs(full["encoder.weight"]).sum(axis=1)) == 3
    assert global_norm(grads) == pytest.approx(global_norm(full), rel=1e-6)

    before = {n: p.copy() for n, p in model.params.items()}
    SGD(model.params, lr=0.7).step(grads, scale=0.5)
    for name, p in model.params.items():
        np.testing.assert_allclose(p, before[name] - 0.35 * full[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_updates_reach_the_decoder_block_that_the_softmax_reads(tied, optimizer):
    # The softmax reads the decoder from one block [W^T; b; 1] that the parameters are views
    # of; log_probs reads the parameters themselves. After updates in place the two agree.
    arch = Architecture(vocab=30, embed=6, hidden=6, layers=1, tied=tied)
    model = LanguageModel.init(arch, np.random.default_rng(0))
    opt = optimizer(model.params, lr=0.5)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 30, size=(5, 2)), rng.integers(0, 30, size=(5, 2))
    before = model.decoder_weight.copy()
    for _ in range(3):
        out, _, cache = model.forward(x, model.zero_state(2))
        _, dout, dec = model.loss(out, y)
        grads, _ = model.backward(cache, dout, dec)
        opt.step(grads, scale=0.7)
    assert np.abs(model.decoder_weight - before).max() > 1e-3  # the updates did land
    out, _, _ = model.forward(x, model.zero_state(2))
    scores, _ = model.score(out, y)
    want = model.log_probs(out)[np.arange(10), y.reshape(-1)]
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)
