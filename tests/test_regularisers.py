"""The AWD-LSTM regularisers: what each one drops, the penalties' values, that with all of
them off a training step is exactly plain dropout's, and their flags on `wordlstm train`.
Their gradients are checked against finite differences in test_gradients.py."""

import json

import numpy as np
import pytest
from conftest import TINY, run

import wordlstm.model
from wordlstm import lstm
from wordlstm.model import Architecture, LanguageModel
from wordlstm.optim import dense
from wordlstm.regularisers import Regularisers

T, B = 12, 6


def model_with(reg: Regularisers, layers: int = 2, vocab: int = 30, tied: bool = False):
    arch = Architecture(vocab=vocab, embed=8, hidden=8, layers=layers, tied=tied)
    return LanguageModel.init(arch, np.random.default_rng(0), dropout=reg, dtype=np.float64)


def tokens(vocab: int = 30, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(T, B))


def dropped_sites(cache, out) -> list:
    """Where dropout acts, each as (units, T, B) after its mask: the embeddings fed to the
    first layer, the second layer's input and the decoder's input."""
    return [cache.layers[0].x, cache.layers[1].x, out.T.reshape(-1, T, B)]


@pytest.mark.parametrize("locked", [True, False])
def test_locked_dropout_keeps_one_mask_per_sequence_for_the_whole_chunk(locked):
    reg = Regularisers(dropout=0.5, dropout_input=0.5, dropout_hidden=0.5, locked=locked)
    model = model_with(reg)
    same_word = np.full((T, B), 3)  # every step feeds the same embedding into each sequence
    out, _, cache = model.forward(same_word, model.zero_state(B), rng=np.random.default_rng(1))
    embeddings = cache.layers[0].x
    assert (
        np.array_equal(embeddings, np.broadcast_to(embeddings[:, :1], embeddings.shape)) == locked
    )
    for site in dropped_sites(cache, out):
        zeros = site == 0
        assert zeros.any() and not zeros.all()
        assert (zeros == zeros[:, :1]).all() == locked  # the same units dropped at every step
        columns = {tuple(zeros[:, 0, b]) for b in range(B)}
        assert len(columns) > 1  # and other units in other sequences


def test_embedding_dropout_drops_whole_words_for_the_chunk():
    vocab = 10
    model = model_with(Regularisers(embed_dropout=0.5), vocab=vocab)
    E = model.params["encoder.weight"]
    rng = np.random.default_rng(1)
    x = tokens(vocab)
    fates = []
    for _ in range(2):  # two chunks, each with its own draw
        _, _, cache = model.forward(x, model.zero_state(B), rng=rng)
        kept, dropped = set(), set()
        for t, b in np.ndindex(T, B):
            vector, word = cache.layers[0].x[:, t, b], int(x[t, b])
            if vector.any():
                np.testing.assert_allclose(vector, E[word] / 0.5, rtol=1e-12)
                kept.add(word)
            else:
                dropped.add(word)
        assert kept and dropped and not kept & dropped  # every occurrence shares its word's fate
        fates.append(dropped)
    assert fates[0] != fates[1]


def test_weight_drop_runs_every_step_of_a_chunk_with_one_dropped_w_hh():
    model = model_with(Regularisers(weight_drop=0.5), layers=1)
    p = model.params
    rng = np.random.default_rng(1)
    x = tokens()
    masks = []
    for _ in range(2):
        out, _, cache = model.forward(x, model.zero_state(B), rng=rng)
        (mask,) = cache.weight_masks
        assert mask.shape == p["rnn.weight_hh_l0"].shape
        assert set(np.unique(mask)) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
        zero = np.zeros((B, 8))
        bias = p["rnn.bias_ih_l0"] + p["rnn.bias_hh_l0"]
        embeddings = p["encoder.weight"].T[:, x]
        h, _ = lstm.forward(
            embeddings, zero, zero, p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"] * mask, bias
        )
        np.testing.assert_allclose(out.T.reshape(8, T, B), h, rtol=1e-12, atol=1e-15)
        plain, _ = lstm.forward(
            embeddings, zero, zero, p["rnn.weight_ih_l0"], p["rnn.weight_hh_l0"], bias
        )
        assert not np.allclose(h, plain)
        masks.append(mask)
    assert not np.array_equal(*masks)  # a new mask for the next chunk


@pytest.mark.parametrize("ar, tar", [(2.0, 0.0), (0.0, 3.0), (2.0, 3.0)])
def test_ar_and_tar_are_the_mean_squares_of_the_dropped_output_and_of_the_steps(ar, tar):
    model = model_with(Regularisers(dropout=0.5, ar=ar, tar=tar))  # dropout only at the output
    x, state = tokens(), model.zero_state(B)
    undropped, _, _ = model.forward(x, state)
    out, _, cache = model.forward(x, state, rng=np.random.default_rng(1))
    assert not np.allclose(out, undropped)
    h = undropped.reshape(T, B, -1)  # the last layer's output, step by step
    want = ar * np.mean(out**2) + tar * np.mean((h[1:] - h[:-1]) ** 2)
    assert model.penalty(cache) == pytest.approx(want, rel=1e-12)


def test_tar_of_a_one_step_chunk_is_zero():
    model = model_with(Regularisers(tar=3.0))
    _, _, cache = model.forward(tokens()[:1], model.zero_state(B))
    assert model.penalty(cache) == 0.0


def plain_dropout_step(model: LanguageModel, x, y, rng, p: float) -> tuple:
    """Zaremba et al.'s dropout read off its definition: a fresh inverted mask per unit and
    step on the embeddings and after each layer; the model's own softmax loss and lstm's
    forward and backward. Returns the loss and the dense gradients."""

    def mask(shape):
        return (rng.random(shape, dtype=np.float32) >= p).astype(model.dtype) * (1.0 / (1.0 - p))

    params, L = model.params, model.arch.layers
    h0 = np.zeros((B, model.arch.hidden), dtype=model.dtype)
    embeddings = params["encoder.weight"].T[:, x]
    masks = [mask(embeddings.shape)]
    h, caches = embeddings * masks[0], []
    for k in range(L):
        bias = params[f"rnn.bias_ih_l{k}"] + params[f"rnn.bias_hh_l{k}"]
        h, cache = lstm.forward(
            h, h0, h0, params[f"rnn.weight_ih_l{k}"], params[f"rnn.weight_hh_l{k}"], bias
        )
        caches.append(cache)
        masks.append(mask(h.shape))
        h = h * masks[-1]
    out = np.ascontiguousarray(h.reshape(model.arch.hidden, -1).T)
    loss, dout, decoder = model.loss(out, y)
    grads = {n: g.copy() for n, g in decoder.items()}
    dh = dout.T.reshape(-1, T, B)
    for k in reversed(range(L)):
        dh = dh * masks[k + 1]
        dh, _, _, dw_ih, dw_hh, dbias = lstm.backward(
            dh, h0, h0, caches[k], params[f"rnn.weight_ih_l{k}"], params[f"rnn.weight_hh_l{k}"]
        )
        grads[f"rnn.weight_ih_l{k}"], grads[f"rnn.weight_hh_l{k}"] = dw_ih, dw_hh
        grads[f"rnn.bias_ih_l{k}"] = grads[f"rnn.bias_hh_l{k}"] = dbias
    dh = dh * masks[0]
    embedding = grads.get("encoder.weight", np.zeros_like(params["encoder.weight"]))
    np.add.at(embedding, x.reshape(-1), dh.reshape(model.arch.embed, -1).T)
    grads["encoder.weight"] = embedding
    return loss, grads


def refuse(*args, **kwargs):
    raise AssertionError("a regulariser that is off did some work")


@pytest.mark.parametrize("tied", [False, True])
def test_with_the_awd_regularisers_off_a_step_is_bitwise_plain_dropout(tied, monkeypatch):
    for name in ("activation_penalty", "activation_grad", "temporal_penalty", "temporal_grad"):
        monkeypatch.setattr(wordlstm.model.regularisers, name, refuse)
    arch = Architecture(vocab=30, embed=8, hidden=8, layers=2, tied=tied)
    model = LanguageModel.init(arch, np.random.default_rng(0), dropout=0.3)  # float32
    x, y = tokens(), tokens(seed=3)
    rng, plain_rng = np.random.default_rng(1), np.random.default_rng(1)
    out, _, cache = model.forward(x, model.zero_state(B), rng=rng)
    loss, dout, decoder = model.loss(out, y)
    assert model.penalty(cache) == 0.0
    grads, _ = model.backward(cache, dout, decoder)
    want_loss, want = plain_dropout_step(model, x, y, plain_rng, 0.3)
    assert loss == want_loss
    assert sorted(grads) == sorted(want)
    for name, g in grads.items():
        assert np.array_equal(dense(g), want[name]), name
    assert rng.random() == plain_rng.random()  # no other random draws


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--dropout-input", "1", "--dropout-input must be in [0, 1)"),
        ("--dropout-hidden", "-0.1", "--dropout-hidden must be in [0, 1)"),
        ("--embed-dropout", "1.5", "--embed-dropout must be in [0, 1)"),
        ("--weight-drop", "nan", "--weight-drop must be in [0, 1)"),
        ("--dropout", "1", "--dropout must be in [0, 1)"),
        ("--ar", "-1", "--ar must be a finite number, at least 0"),
        ("--tar", "inf", "--tar must be a finite number, at least 0"),
    ],
)
def test_a_bad_regulariser_is_refused_before_anything_is_read(home, tmp_path, flag, value, message):
    proc = run("train", str(tmp_path / "not-read.txt"), flag, value, home=home)
    assert proc.returncode == 2, proc.err
    assert proc.err.strip() == f"error: {message}"
    assert not home.exists()


def test_train_records_the_regularisers_it_trained_with(home, corpus):
    flags = ["--layers", "2", "--dropout", "0.2", "--dropout-hidden", "0.1", "--locked"]
    flags += ["--embed-dropout", "0.1", "--weight-drop", "0.3", "--ar", "2", "--tar", "1"]
    run("train", str(corpus), *TINY, *flags, "--epochs", "1", "--model", "m", home=home, check=True)
    config = json.loads((home / "m" / "config.json").read_text())
    assert config["dropout"] == 0.2  # before the decoder
    recorded = {k: config["recipe"][k] for k in ("dropout_input", "dropout_hidden", "locked")}
    assert recorded == {
        "dropout_input": 0.2,
        "dropout_hidden": 0.1,
        "locked": True,
    }  # input: --dropout's
    recorded = {k: config["recipe"][k] for k in ("embed_dropout", "weight_drop", "ar", "tar")}
    assert recorded == {"embed_dropout": 0.1, "weight_drop": 0.3, "ar": 2.0, "tar": 1.0}
    assert run("complete", "The", "--model", "m", home=home, check=True).out


def test_train_without_the_flags_records_every_regulariser_off(trained):
    recipe = json.loads((trained / "default" / "config.json").read_text())["recipe"]
    assert (recipe["locked"], recipe["embed_dropout"], recipe["weight_drop"]) == (False, 0, 0)
    assert (recipe["ar"], recipe["tar"]) == (0, 0)
    assert recipe["dropout_input"] == recipe["dropout_hidden"] == 0.0  # the automatic dropout
