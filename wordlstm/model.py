"""The language model: embedding -> stacked LSTM -> dropout -> linear decoder -> softmax.

Parameters live in one dict under the names and layouts of the PyTorch word-language-model
example (`encoder.weight`, `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`), so
the saved weights load into torch.nn.Embedding / nn.LSTM / nn.Linear unchanged. With tied
weights the decoder uses the encoder's matrix and the dict holds it once.

Dropout follows Zaremba et al. 2014: on the embeddings, between layers and before the
decoder, never on the recurrent connections. AWD-LSTM's regularisers (Merity et al. 2017)
can join it: locked dropout at those three sites, embedding dropout, weight drop on the
recurrent weights, and the AR and TAR penalties (`regularisers`).
"""

import math
from dataclasses import asdict, dataclass, replace

from wordlstm import lstm, regularisers
from wordlstm.backend import DTYPE, xp
from wordlstm.errors import BadInput
from wordlstm.optim import RowGradient
from wordlstm.regularisers import Regularisers

# Logits computed at once by the decoder (rows x vocabulary): bounds its memory to 32 MB in
# float32 while keeping the products large enough for BLAS to run near its peak.
_DECODER_CELLS = 8_000_000  # 32 MB of float32 logits: below malloc's reuse limit (backend)
_TINY_SUM, _HUGE_SUM = 1e-30, 1e38  # softmax row sums safely inside float32's range


@dataclass(frozen=True)
class Architecture:
    """The shape of a model: what must agree between config.json and weights.npz."""

    vocab: int
    embed: int
    hidden: int
    layers: int
    tied: bool = False

    def __post_init__(self) -> None:
        if min(self.vocab, self.embed, self.hidden, self.layers) < 1:
            raise BadInput("vocabulary, --embed, --hidden and --layers must be at least 1")
        if self.tied and self.embed != self.hidden:
            raise BadInput(f"--tied needs --embed == --hidden (got {self.embed} and {self.hidden})")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The saved arrays and their shapes (decoder.weight is saved even when tied)."""
        V, E, H = self.vocab, self.embed, self.hidden
        shapes: dict[str, tuple[int, ...]] = {"encoder.weight": (V, E)}
        for k in range(self.layers):
            n_in = E if k == 0 else H
            shapes[f"rnn.weight_ih_l{k}"] = (4 * H, n_in)
            shapes[f"rnn.weight_hh_l{k}"] = (4 * H, H)
            shapes[f"rnn.bias_ih_l{k}"] = (4 * H,)
            shapes[f"rnn.bias_hh_l{k}"] = (4 * H,)
        shapes["decoder.weight"] = (V, H)
        shapes["decoder.bias"] = (V,)
        return shapes

    def param_count(self) -> int:
        """Trainable parameters (the tied decoder matrix counted once)."""
        shapes = self.shapes()
        if self.tied:
            del shapes["decoder.weight"]
        return sum(math.prod(s) for s in shapes.values())

    def to_dict(self) -> dict:
        return asdict(self)


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


def decoder_block(params: dict, arch: Architecture) -> "xp.ndarray":
    """Moves the decoder's weight W (V, H) and bias b into one (H + 2, V) array, the rows
    [W^T; b; 1], and leaves views of it in params. The logits z = [h, 1] @ [W^T; b] then
    come with their bias out of one product, e @ [W^T; b; 1]^T gives e @ W and the row sums
    of e at once, and the gradient [dW^T; db] is one product too. Rows rather than columns:
    W's view is then one stretch of memory (in column order), which NumPy's elementwise
    passes (the optimizer's) cover at full speed; a view with gaps at each row's end they
    walk row by row, several times slower (benchmarks/NOTES.md)."""
    name = "encoder.weight" if arch.tied else "decoder.weight"
    W, b = params[name], params["decoder.bias"]
    H = W.shape[1]
    block = xp.empty((H + 2, W.shape[0]), dtype=W.dtype)
    block[:H], block[H], block[H + 1] = W.T, b, 1.0
    params[name], params["decoder.bias"] = block[:H].T, block[H]
    return block


def initial(name: str, shape: tuple, hidden: int, rng, dtype=DTYPE) -> "xp.ndarray":
    """A parameter as PyTorch initialises it: the decoder bias 0, LSTM weights and biases
    U(-1/sqrt(hidden), 1/sqrt(hidden)), the embedding and decoder weights U(-0.1, 0.1)."""
    if name == "decoder.bias":
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
        self._decoder = decoder_block(params, arch)

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
        for name, shape in arch.shapes().items():
            if name == "decoder.weight" and arch.tied:
                continue
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
        params = {n: xp.asarray(weights[n], dtype=DTYPE) for n in expected}
        if arch.tied:
            del params["decoder.weight"]
        return cls(arch, params, dropout)

    def with_vocab(self, vocab: int, rng) -> "LanguageModel":
        """This model with rows for `vocab` - V new words appended to the embedding and the
        decoder, made as `init` makes a fresh model's; the old ids keep their rows."""
        arch = replace(self.arch, vocab=vocab)
        weights = dict(self.weights())
        for name in ("encoder.weight", "decoder.weight", "decoder.bias"):
            if name == "decoder.weight" and arch.tied:
                weights[name] = weights["encoder.weight"]
                continue
            old = weights[name]
            rows = initial(name, (vocab - len(old), *old.shape[1:]), arch.hidden, rng, old.dtype)
            weights[name] = xp.concatenate([old, rows])
        return LanguageModel.from_weights(arch, weights, self.dropout)

    def weights(self) -> dict:
        """The arrays to save, under the PyTorch names (decoder.weight included when tied)."""
        out = dict(self.params)
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

    def _softmax_blocks(
        self, out: "xp.ndarray", targets: "xp.ndarray", ranks: bool = False, grad: bool = False
    ):
        """The decoder's softmax in blocks of rows, so the N x V logits never exist at once.
        Yields (first row, targets, h1, e, true, rank, right) per block: h1 = [h, 1], the
        block's rows of the decoder's input; e = exp(z - shift) for the logits
        z = h1 @ [W^T; b]; true the targets' z - shift; each target's rank among the logits
        (if asked); and right = e @ [W^T; b; 1]^T = [e @ W, e @ b, e @ 1] when grad (the
        gradient needs e @ W) or else e @ 1. Either way the row sums of e are right's last
        column (or right itself), and log p(target) = true - log(sums)."""
        H, V = self.arch.hidden, self.arch.vocab
        N = out.shape[0]
        targets = targets.reshape(N)
        rows = min(N, max(1, _DECODER_CELLS // V))
        block = xp.empty((rows, V), dtype=out.dtype)  # reused by every block
        h1 = xp.ones((rows, H + 1), dtype=out.dtype)  # [h, 1], for the bias
        w_b = self._decoder[: H + 1]
        # the sums as a product too (one BLAS call, 3x numpy's sum here)
        right = self._decoder.T if grad else self._decoder[H + 1]
        for s in range(0, N, rows):
            y = targets[s : s + rows]
            n = len(y)
            h1[:n, :H] = out[s : s + n]
            z = xp.matmul(h1[:n], w_b, out=block[:n])
            true = z[xp.arange(n), y]
            rank = (z > true[:, None]).sum(axis=1) if ranks else None
            with xp.errstate(over="ignore", under="ignore", invalid="ignore"):
                xp.exp(z, out=z)
                prod = z @ right
            sums = prod[:, -1] if grad else prod
            # exp leaves float32's range past a logit of about +-88; the usual block never
            # comes near, so the shift by each row's max is only made where the sums show it
            if not (float(sums.min()) > _TINY_SUM and float(sums.max()) < _HUGE_SUM):
                z = xp.matmul(h1[:n], w_b, out=z)
                z -= z.max(axis=1)[:, None]
                true = z[xp.arange(n), y]
                xp.exp(z, out=z)
                prod = z @ right
            yield s, y, h1[:n], z, true, rank, prod

    def loss(self, out: "xp.ndarray", targets: "xp.ndarray") -> tuple:
        """Mean cross-entropy of the softmax over the decoder's logits, fused with its
        gradient. Returns the loss, dL/dout and the decoder's gradients."""
        N, H = out.shape
        W_t = self._decoder[:H]  # W^T, (H, V)
        dout = xp.empty_like(out)
        d_block = xp.empty((H + 1, self.arch.vocab), dtype=out.dtype)  # [dW^T; db]
        total = 0.0
        for s, y, h1, e, true, _, right in self._softmax_blocks(out, targets, grad=True):
            n = len(y)
            sums = right[:, -1]
            total += float(xp.sum(xp.log(sums) - true))
            # dL/dz = (softmax - onehot) / N = r * (e - sums * onehot) with r = 1 / (N sums)
            # per row. So dL/dh = r * (e @ W) - W[y] / N, with e @ W from the block's product;
            # for [dW^T; db] = [h, 1]^T @ dL/dz the target entries of e change in place, and r
            # scales the small (n, H + 1) side of the product instead of the (n, V) block
            r = 1.0 / (sums * N)
            xp.multiply(right[:, :H], r[:, None], out=dout[s : s + n])
            dout[s : s + n] -= W_t[:, y].T * (1.0 / N)
            e[xp.arange(n), y] -= sums
            h1_r = h1 * r[:, None]
            if s == 0:
                xp.matmul(h1_r.T, e, out=d_block)
            else:
                d_block += h1_r.T @ e
        decoder = {"decoder.bias": d_block[H]}
        decoder["encoder.weight" if self.arch.tied else "decoder.weight"] = d_block[:H].T
        return total / N, dout, decoder

    def score(self, out: "xp.ndarray", targets: "xp.ndarray", ranks: bool = False) -> tuple:
        """log p of each target after each row of the decoder's input, and with ranks=True
        how many tokens the model finds likelier than each target (0 = its first choice)."""
        N = out.shape[0]
        log_probs = xp.empty(N, dtype=xp.float64)
        rank = xp.empty(N, dtype=xp.int64) if ranks else None
        for s, y, _, _, true, r, sums in self._softmax_blocks(out, targets, ranks):
            log_probs[s : s + len(y)] = true - xp.log(sums)
            if ranks:
                rank[s : s + len(y)] = r
        return log_probs, rank

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
        if self.arch.tied:  # the decoder's gradient for this matrix is already there
            add_rows(grads["encoder.weight"], cache.inputs.reshape(-1), rows)
        else:  # only the rows of the chunk's tokens are nonzero
            ids, where = xp.unique(cache.inputs, return_inverse=True)
            d_embed = xp.zeros((len(ids), rows.shape[1]), dtype=rows.dtype)
            add_rows(d_embed, where.reshape(-1), rows)
            grads["encoder.weight"] = RowGradient(ids, d_embed, self.params["encoder.weight"].shape)
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
        z = out @ self.decoder_weight.T
        z += self.params["decoder.bias"]
        z -= z.max(axis=1, keepdims=True)
        z -= xp.log(xp.exp(z).sum(axis=1, keepdims=True))
        return z
