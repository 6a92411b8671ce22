"""The arithmetic of a training step against the textbook: Adam's update, clipping to the
global norm --clip, and inverted dropout's 1/(1-p) scaling. Each is checked by its own
formula computed here by hand, not by the code under test."""

import math

import numpy as np
import pytest

from wordlstm import lstm
from wordlstm.model import Architecture, LanguageModel
from wordlstm.optim import SGD, Adam, clip_scale, dense, global_norm
from wordlstm.training import train_step


def test_adam_takes_the_textbook_steps():
    """Three steps of Kingma & Ba's Algorithm 1 on known gradients: the moments, their bias
    correction and the update, each written out here."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p0 = np.array([0.5, -1.0, 2.0, 0.0])
    gradients = [
        np.array([1.0, -2.0, 0.5, 0.0]),
        np.array([0.5, 1.0, -0.5, 3.0]),
        np.array([-1.5, 0.25, 0.5, -1.0]),
    ]
    params = {"w": p0.copy()}
    adam = Adam(params, lr=lr, betas=(b1, b2), eps=eps)
    p, m, v = p0.copy(), np.zeros(4), np.zeros(4)
    for t, g in enumerate(gradients, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        adam.step({"w": g.copy()})
        np.testing.assert_allclose(params["w"], p, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(adam.state()["m.w"], m, rtol=1e-12)
        np.testing.assert_allclose(adam.state()["v.w"], v, rtol=1e-12)
    # the first step moves every weight with a gradient by lr against its sign
    first = Adam({"w": p0.copy()}, lr=lr)
    first.step({"w": gradients[0].copy()})
    np.testing.assert_allclose(p0 - first.params["w"], lr * np.sign(gradients[0]), rtol=1e-5)


@pytest.mark.parametrize("norm, clip", [(5.0, 0.25), (5.0, 1.0), (0.1, 0.25), (3.0, 0.0)])
def test_clipping_scales_the_global_norm_to_clip(norm, clip):
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=7)}
    total = math.sqrt(sum(float((g**2).sum()) for g in grads.values()))
    grads = {n: g * (norm / total) for n, g in grads.items()}
    assert global_norm(grads) == pytest.approx(norm)
    scale = clip_scale(global_norm(grads), clip)
    clipped = {n: g * scale for n, g in grads.items()}
    want = min(norm, clip) if clip > 0 else norm  # 0: no clipping
    assert global_norm(clipped) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("tied", [False, True])
def test_a_training_step_moves_the_weights_by_at_most_clip(tied):
    """With SGD at lr 1 the whole update is the clipped gradient: its global norm is --clip
    when the gradient's is larger, and the update is the gradient scaled down."""
    arch = Architecture(vocab=20, embed=6, hidden=6, layers=2, tied=tied)
    model = LanguageModel.init(arch, np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 20, size=(5, 3)), rng.integers(0, 20, size=(5, 3))
    out, _, cache = model.forward(x, model.zero_state(3))
    _, dout, dec = model.loss(out, y)
    grads, _ = model.backward(cache, dout, dec)
    full = {n: dense(g).copy() for n, g in grads.items()}
    norm, clip = global_norm(full), 0.05
    assert norm > 4 * clip  # so the step must clip
    before = {n: p.copy() for n, p in model.params.items()}
    train_step(model, SGD(model.params, lr=1.0), x, y, model.zero_state(3), clip)
    moved = {n: before[n] - p for n, p in model.params.items()}
    assert global_norm(moved) == pytest.approx(clip, rel=1e-5)
    for name, step in moved.items():
        np.testing.assert_allclose(step, full[name] * (clip / norm), rtol=1e-5, atol=1e-12)


def test_inverted_dropout_zeros_a_share_p_and_scales_the_rest_by_one_over_one_minus_p():
    """The masks the forward pass draws keep each unit with probability 1-p at 1/(1-p), so
    a unit's expected value is unchanged, and the forward pass applies exactly them."""
    p = 0.3
    arch = Architecture(vocab=40, embed=50, hidden=60, layers=1)
    model = LanguageModel.init(arch, np.random.default_rng(0), dropout=p, dtype=np.float64)
    x = np.random.default_rng(1).integers(0, 40, size=(30, 20))
    out, _, cache = model.forward(x, model.zero_state(20), rng=np.random.default_rng(2))
    for mask in cache.masks:
        values, counts = np.unique(mask, return_counts=True)
        np.testing.assert_allclose(values, [0.0, 1 / (1 - p)])
        assert counts[0] / mask.size == pytest.approx(p, abs=0.01)
        assert mask.mean() == pytest.approx(1.0, abs=0.02)
    # the output is the layer run on the masked embeddings, then masked
    embedded = model.params["encoder.weight"].T[:, x] * cache.masks[0]
    h, c = model.zero_state(20)
    w_ih, w_hh = model.params["rnn.weight_ih_l0"], model.params["rnn.weight_hh_l0"]
    bias = model.params["rnn.bias_ih_l0"] + model.params["rnn.bias_hh_l0"]
    layer, _ = lstm.forward(embedded, h[0], c[0], w_ih, w_hh, bias)
    want = (layer * cache.masks[1]).reshape(arch.hidden, -1).T
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    assert model.forward(x, model.zero_state(20))[2].masks == [None, None]  # no rng: no dropout
