"""The language model: embedding -> stacked LSTM -> dropout -> linear decoder -> softmax.

Parameters live in one dict under the names and layouts of the PyTorch word-language-model
example (`encoder.weight`, `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`), so
the saved weights load into torch.nn.Embedding / nn.LSTM / nn.Linear unchanged. With tied
weights the decoder uses the encoder's matrix and the dict holds it once. The adaptive softmax
(`adaptive`) can take the full softmax's place, as nn.AdaptiveLogSoftmaxWithLoss would.

Dropout follows Zaremba et al. 2014: on the embeddings, between layers and before the
decoder, never on the recurrent connections. AWD-LSTM's regularisers (Merity et al. 2017)
can join it: locked dropout at those three sites, embedding dropout, weight drop on the
recurrent weights, and the AR and TAR penalties (`regularisers`).
"""

import math
from dataclasses import asdict, dataclass, replace

from wordlstm import adaptive, lstm, regularisers, softmax
from wordlstm.backend import DTYPE, xp
from wordlstm.errors import BadInput, SettingError
from wordlstm.optim import RowGradient, added
from wordlstm.regularisers import Regularisers

# Logits computed at once by the decoder (rows x vocabulary): bounds its memory to 32 MB in
# float32 while keeping the products large enough for BLAS to run near its peak.
_DECODER_CELLS = 8_000_000  # 32 MB of float32 logits: below malloc's reuse limit (backend)


@dataclass(frozen=True)
class Architecture:
    """The shape of a model: what must agree between config.json and the weights."""

    vocab: int
    embed: int
    hidden: int
    layers: int
    tied: bool = False
    softmax: str = "full"  # or "adaptive", split by `cutoffs` and `div_value` (`adaptive`)
    cutoffs: tuple[int, ...] = ()
    div_value: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(self.cutoffs))  # config.json gives a list
        if min(self.vocab, self.embed, self.hidden, self.layers) < 1:
            raise SettingError("vocabulary, {embed}, {hidden} and {layers} must be at least 1")
        if self.tied and self.embed != self.hidden:
            raise SettingError(
                f"{{tied}} needs {{embed}} == {{hidden}} (got {self.embed} and {self.hidden})"
            )
        adaptive.check_choice(self.softmax, bool(self.cutoffs))
        if self.softmax == "adaptive":
            self.clusters  # noqa: B018  (checks the cut-offs against the vocabulary)

    @property
    def clusters(self) -> adaptive.Clusters:
        """The adaptive softmax's split of the vocabulary."""
        return adaptive.Clusters(self.vocab, self.hidden, self.cutoffs, self.div_value)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The saved arrays and their shapes (decoder.weight, or adaptive.head.weight whole,
        is saved even when tied)."""
        V, E, H = self.vocab, self.embed, self.hidden
        shapes: dict[str, tuple[int, ...]] = {"encoder.weight": (V, E)}
        for k in range(self.layers):
            n_in = E if k == 0 else H
            shapes[f"rnn.weight_ih_l{k}"] = (4 * H, n_in)
            shapes[f"rnn.weight_hh_l{k}"] = (4 * H, H)
            shapes[f"rnn.bias_ih_l{k}"] = (4 * H,)
            shapes[f"rnn.bias_hh_l{k}"] = (4 * H,)
        if self.softmax == "adaptive":
            shapes.update(self.clusters.shapes())
        else:
            shapes["decoder.weight"] = (V, H)
            shapes["decoder.bias"] = (V,)
        return shapes

    def trained_shapes(self) -> dict[str, tuple[int, ...]]:
        """The arrays a model trains, its `params`: the saved ones less what tying shares
        with the embedding (the decoder's matrix, or the adaptive head's word rows and the
        output rows of its tied clusters)."""
        shapes = self.shapes()
        if self.tied and self.softmax == "adaptive":
            rows, H = shapes.pop(adaptive.HEAD_WEIGHT)[0] - self.clusters.shortlist, self.hidden
            shapes[adaptive.CLUSTER_ROWS] = (rows, H)
            for i in self.clusters.tied_tails(True):  # the embedding's rows of their words
                del shapes[adaptive.tail_names(i)[1]]
        elif self.tied:
            del shapes["decoder.weight"]
        return shapes

    def param_count(self) -> int:
        """Trainable parameters (what tying shares counted once)."""
        return sum(math.prod(s) for s in self.trained_shapes().values())

    def to_dict(self) -> dict:
        """As config.json records it; a full softmax's without the adaptive one's fields, as
        models saved before them have it."""
        d = asdict(self)
        if self.softmax == "full":
            del d["softmax"], d["cutoffs"], d["div_value"]
        else:
            d["cutoffs"] = list(self.cutoffs)
        return d


@dataclass
class Cache:
    """What the model's backward pass needs from its forward pass."""

    inputs: "xp.ndarray"
    layers: list
    masks: list  # dropout masks, embeddings then after each layer; None where none
    # (each (units, T, B), or (units, 1, B) when locked)
    out: "xp.ndarray"
    words: "xp.ndarray | None"  # embedding dropout's factors (1, T, B); None: none
    weight_masks: list  # weight drop's mask of each layer's W_hh; None where none


def add_rows(target: "xp.ndarray", ids: "xp.ndarray", rows: "xp.ndarray") -> None:
    """target[ids] += rows, with the rows of repeated ids all added: the embedding's
    gradient. np.add.at over flat element indices, whose 1-D fast path is about twice as
    fast as add.at over rows. The target's memory must be one block, in row or column order
    (the tied embedding's gradient is the decoder's, a column-order view)."""
    flat = target.ravel(order="K")
    if not xp.may_share_memory(flat, target):  # ravel copies what is not one block
        raise ValueError("add_rows needs a target whose memory is one block")
    row_step, column_step = (s // target.itemsize for s in target.strides)
    index = ids.astype(xp.int64)[:, None] * row_step + xp.arange(target.shape[1]) * column_step
    xp.add.at(flat, index.reshape(-1), rows.reshape(-1))


def initial(name: str, shape: tuple, hidden: int, rng, dtype=DTYPE) -> "xp.ndarray":
    """A parameter as PyTorch initialises it: the decoder bias 0, LSTM weights and biases
    U(-1/sqrt(hidden), 1/sqrt(hidden)), the embedding and decoder weights U(-0.1, 0.1). The
    adaptive softmax's biases and weights are made as the decoder's."""
    if name == "decoder.bias" or name.startswith("adaptive.") and name.endswith(".bias"):
        return xp.zeros(shape, dtype=dtype)
    limit = 1.0 / float(hidden) ** 0.5 if name.startswith("rnn.") else 0.1
    return xp.asarray(rng.uniform(-limit, limit, shape), dtype=dtype)


class LanguageModel:
    """An LSTM language model with a hand-written forward and backward pass."""

    def __init__(
        self, arch: Architecture, params: dict, dropout: "float | Regularisers" = 0.0
    ) -> None:
        """`dropout`: Zaremba et al.'s rate at all three sites, or every regulariser's
        setting. They act only in training, when `forward` is given a generator."""
        self.arch = arch
        self.params = params
        if not isinstance(dropout, Regularisers):
            dropout = Regularisers.everywhere(dropout)
        self.regularisers = dropout
        self._adaptive = None
        if arch.softmax == "adaptive":
            self._adaptive = adaptive.AdaptiveSoftmax(arch.clusters, params, arch.tied)
            return
        # the decoder's weight and bias become views of one block [W^T; b; 1] (`softmax`)
        name, H = "encoder.weight" if arch.tied else "decoder.weight", arch.hidden
        self._decoder = softmax.decoder_block(params[name], params["decoder.bias"])
        params[name], params["decoder.bias"] = self._decoder[:H].T, self._decoder[H]

    @classmethod
    def init(
        cls,
        arch: Architecture,
        rng,
        dropout: "float | Regularisers" = 0.0,
        forget_bias: float = 0.0,
        dtype=DTYPE,
    ) -> "LanguageModel":
        """PyTorch's initialisation: embedding and decoder U(-0.1, 0.1), decoder bias 0,
        LSTM weights and biases U(-1/sqrt(H), 1/sqrt(H)); plus `forget_bias` added to the
        forget gate's bias, so that the cell starts out remembering (Gers et al. 2000)."""
        params = {}
        for name, shape in arch.trained_shapes().items():
            params[name] = initial(name, shape, arch.hidden, rng, dtype)
        H = arch.hidden
        for k in range(arch.layers):
            params[f"rnn.bias_hh_l{k}"][H : 2 * H] += forget_bias
        return cls(arch, params, dropout)

    @classmethod
    def from_weights(
        cls, arch: Architecture, weights: dict, dropout: float = 0.0
    ) -> "LanguageModel":
        """A model from saved arrays, after checking every name and shape."""
        expected = arch.shapes()
        missing = sorted(set(expected) - set(weights))
        extra = sorted(set(weights) - set(expected))
        if missing or extra:
            raise BadInput(
                f"weights do not match the config: missing {missing}, unexpected {extra}"
            )
        for name, shape in expected.items():
            if tuple(weights[name].shape) != shape:
                raise BadInput(
                    f"weights do not match the config: {name} has shape "
                    f"{tuple(weights[name].shape)}, expected {shape}"
                )
        saved = {n: xp.asarray(weights[n], dtype=DTYPE) for n in expected}
        if arch.tied and arch.softmax == "adaptive":  # the head's word rows: the embedding's
            saved[adaptive.CLUSTER_ROWS] = saved[adaptive.HEAD_WEIGHT][arch.clusters.shortlist :]
        params = {n: saved[n] for n in arch.trained_shapes()}
        return cls(arch, params, dropout)

    def with_vocab(self, vocab: int, rng) -> "LanguageModel":
        """This model with rows for `vocab` - V new words appended to the embedding and the
        decoder (the adaptive softmax's last cluster, or its head if it has none), made as
        `init` makes a fresh model's; the old ids keep their rows."""
        arch = replace(self.arch, vocab=vocab)
        weights = dict(self.weights())
        last = ("decoder.weight", "decoder.bias")
        if arch.softmax == "adaptive":
            last = self.arch.clusters.last_output()
        for name in ("encoder.weight", *last):
            if name == "decoder.weight" and arch.tied:
                weights[name] = weights["encoder.weight"]
                continue
            old = weights[name]
            shape = (vocab - self.arch.vocab, *old.shape[1:])
            rows = initial(name, shape, arch.hidden, rng, old.dtype)
            weights[name] = xp.concatenate([old, rows])
        return LanguageModel.from_weights(arch, weights, self.dropout)

    def weights(self) -> dict:
        """The arrays to save, under the PyTorch names (decoder.weight, or the adaptive
        head's weight whole, included when tied)."""
        out = dict(self.params)
        if self._adaptive is not None:
            out.update(self._adaptive.weights())
        else:
            out["decoder.weight"] = self.decoder_weight
        return {n: out[n] for n in self.arch.shapes()}

    @property
    def dropout(self) -> float:
        """The dropout before the decoder."""
        return self.regularisers.dropout

    @property
    def decoder_weight(self) -> "xp.ndarray":
        return self.params["encoder.weight" if self.arch.tied else "decoder.weight"]

    @property
    def dtype(self):
        return self.params["encoder.weight"].dtype

    def zero_state(self, batch: int) -> tuple:
        """(h, c), each (layers, batch, hidden), as nn.LSTM takes it."""
        shape = (self.arch.layers, batch, self.arch.hidden)
        return xp.zeros(shape, dtype=self.dtype), xp.zeros(shape, dtype=self.dtype)

    def forward(self, inputs: "xp.ndarray", state: tuple, rng=None) -> tuple:
        """Runs token ids (T, B) from state; returns the decoder's input (T*B, H), the state
        after the last step and a cache for `backward`. The regularisers' masks are drawn
        from rng, and only when it is given (training)."""
        T, B = inputs.shape
        reg, L, dtype = self.regularisers, self.arch.layers, self.dtype
        x = self.params["encoder.weight"].T[:, inputs]  # (E, T, B), as lstm takes it
        words = regularisers.word_mask(rng, inputs, self.arch.vocab, reg.embed_dropout, dtype)
        if words is not None:
            x = x * words  # embedding dropout: a dropped word's vector is 0 all over the chunk
        masks = [regularisers.unit_mask(rng, x.shape, reg.dropout_input, reg.locked, dtype)]
        if masks[0] is not None:
            x = x * masks[0]
        h_state, c_state = state
        new_h, new_c, caches, weight_masks = [], [], [], []
        for k in range(L):
            w_ih, w_hh, bias = self._layer(k)
            drop = regularisers.dropout_mask(rng, w_hh.shape, reg.weight_drop, dtype)
            weight_masks.append(drop)
            if drop is not None:
                w_hh = w_hh * drop  # weight drop: one dropped W_hh for every step of the chunk
            x, cache = lstm.forward(x, h_state[k], c_state[k], w_ih, w_hh, bias)
            caches.append(cache)
            new_h.append(cache.h[:, -1].T)
            new_c.append(cache.c[-1].T)
            p = reg.dropout if k == L - 1 else reg.dropout_hidden
            mask = regularisers.unit_mask(rng, x.shape, p, reg.locked, dtype)
            masks.append(mask)
            if mask is not None:
                x = x * mask
        out = xp.ascontiguousarray(x.reshape(self.arch.hidden, T * B).T)  # a row per token
        cache = Cache(inputs, caches, masks, out, words, weight_masks)
        return out, (xp.stack(new_h), xp.stack(new_c)), cache

    def penalty(self, cache: Cache) -> float:
        """AR and TAR of a chunk: what the training objective adds to `loss`, and whose
        gradient `backward` adds to the loss's (0 when both are off). Training reports the
        cross-entropy alone, whose exponential is the perplexity."""
        reg, total = self.regularisers, 0.0
        if reg.ar > 0:
            total += regularisers.activation_penalty(cache.out, reg.ar)
        if reg.tar > 0:
            total += regularisers.temporal_penalty(cache.layers[-1].h[:, 1:], reg.tar)
        return total

    def _layer(self, k: int) -> tuple:
        p = self.params
        return (
            p[f"rnn.weight_ih_l{k}"],
            p[f"rnn.weight_hh_l{k}"],
            p[f"rnn.bias_ih_l{k}"] + p[f"rnn.bias_hh_l{k}"],
        )

    def loss(self, out: "xp.ndarray", targets: "xp.ndarray") -> tuple:
        """Mean cross-entropy of the softmax over the decoder's logits, fused with its
        gradient. Returns the loss, dL/dout and the decoder's gradients."""
        if self._adaptive is not None:
            return self._adaptive.cross_entropy(out, targets, _DECODER_CELLS)
        H = self.arch.hidden
        loss, dout, d_block = softmax.cross_entropy(self._decoder, out, targets, _DECODER_CELLS)
        decoder = {"decoder.bias": d_block[H]}
        decoder["encoder.weight" if self.arch.tied else "decoder.weight"] = d_block[:H].T
        return loss, dout, decoder

    def score(self, out: "xp.ndarray", targets: "xp.ndarray", ranks: bool = False) -> tuple:
        """log p of each target after each row of the decoder's input, and with ranks=True
        how many tokens the model finds likelier than each target (0 = its first choice)."""
        if self._adaptive is not None:
            return self._adaptive.target_log_probs(out, targets, _DECODER_CELLS, ranks)
        return softmax.target_log_probs(self._decoder, out, targets, _DECODER_CELLS, ranks)

    def backward(
        self, cache: Cache, dout: "xp.ndarray", decoder_grads: dict, dstate: tuple | None = None
    ) -> tuple:
        """Completes the gradient that `loss` began, that of loss + `penalty`: returns
        dL/d(every parameter) and dL/d(state) at the chunk's start. dstate is dL/d(final
        state) from beyond the chunk: None (zero) in truncated BPTT, the next chunk's result
        in an exact gradient check."""
        grads, dstate0, dx = self.backward_to_embeddings(cache, dout, decoder_grads, dstate)
        T, B = cache.inputs.shape
        rows = dx.reshape(-1, T * B).T  # the gradient at each token's embedding
        decoder = grads.get("encoder.weight")
        if decoder is not None and not isinstance(decoder, RowGradient):
            # tied: the decoder's gradient for this matrix is already there
            add_rows(decoder, cache.inputs.reshape(-1), rows)
        else:  # only the rows of the chunk's tokens are nonzero (and the adaptive head's)
            ids, where = xp.unique(cache.inputs, return_inverse=True)
            d_embed = xp.zeros((len(ids), rows.shape[1]), dtype=rows.dtype)
            add_rows(d_embed, where.reshape(-1), rows)
            embed = RowGradient(ids, d_embed, self.params["encoder.weight"].shape)
            grads["encoder.weight"] = embed if decoder is None else added(embed, decoder)
        return grads, dstate0

    def backward_to_embeddings(
        self, cache: Cache, dout: "xp.ndarray", decoder_grads: dict, dstate: tuple | None = None
    ) -> tuple:
        """`backward` up to the embeddings: returns the gradients of the LSTM's parameters
        (with the decoder's given), dL/d(state) at the chunk's start and dL/d(each token's
        embedding) as (E, T, B), before the embedding's rows of the chunk gather it."""
        L, H = self.arch.layers, self.arch.hidden
        reg = self.regularisers
        T, B = cache.inputs.shape
        if dstate is None:
            dstate = self.zero_state(B)
        grads = dict(decoder_grads)
        dh0, dc0 = [None] * L, [None] * L
        if reg.ar > 0:  # through AR on the decoder's input
            dout = dout + regularisers.activation_grad(cache.out, reg.ar)
        dx = dout.T.reshape(H, T, B)
        for k in reversed(range(L)):
            if cache.masks[k + 1] is not None:  # through the dropout after layer k
                dx = dx * cache.masks[k + 1]
            if k == L - 1 and reg.tar > 0:  # through TAR on the last layer's output
                dx = dx + regularisers.temporal_grad(cache.layers[k].h[:, 1:], reg.tar)
            w_ih, w_hh, _ = self._layer(k)
            drop = cache.weight_masks[k]
            if drop is not None:
                w_hh = w_hh * drop  # the dropped W_hh that the forward pass ran
            dx, dh0[k], dc0[k], dw_ih, dw_hh, dbias = lstm.backward(
                dx, dstate[0][k], dstate[1][k], cache.layers[k], w_ih, w_hh
            )
            if drop is not None:  # through W_hh' = W_hh * M: only the kept weights learn
                dw_hh *= drop
            grads[f"rnn.weight_ih_l{k}"] = dw_ih
            grads[f"rnn.weight_hh_l{k}"] = dw_hh
            grads[f"rnn.bias_ih_l{k}"] = dbias
            grads[f"rnn.bias_hh_l{k}"] = dbias.copy()
        if cache.masks[0] is not None:  # through the dropout on the embeddings
            dx = dx * cache.masks[0]
        if cache.words is not None:  # through embedding dropout: e = E[w] * m[w]
            dx = dx * cache.words
        return grads, (xp.stack(dh0), xp.stack(dc0)), dx

    def log_probs(self, out: "xp.ndarray") -> "xp.ndarray":
        """log softmax over the vocabulary for each row of the decoder's input."""
        if self._adaptive is not None:
            return self._adaptive.log_probs(out)
        return softmax.log_softmax(self.logits(out))

    def logits(self, out: "xp.ndarray") -> "xp.ndarray":
        """Each word's score after each row of the decoder's input, in the order of its
        probability: log p up to a constant per row (the full softmax's logits, the
        adaptive softmax's log p itself)."""
        if self._adaptive is not None:
            return self._adaptive.log_probs(out)
        z = out @ self.decoder_weight.T
        z += self.params["decoder.bias"]
        return z
