"""The regularisers of training, each a forward and its backward: dropout (Zaremba et al.
2014) and those of AWD-LSTM (Merity, Keskar and Socher 2017).

Dropout multiplies an activation x by a mask m whose entries are 0 with probability p and
1/(1-p) otherwise ("inverted": the expected value of x * m is x, so nothing changes at
test time, when there is no mask). Its backward is the same product: dL/dx = dL/dy * m.

    dropout            y[n, t, b] = x[n, t, b] * m[n, t, b]    a new mask at every step
    locked dropout     y[n, t, b] = x[n, t, b] * m[n, b]       one mask per sequence b, the
                                                               same at every step t of a chunk
    embedding dropout  e[:, t, b] = E[w] * m[w],  w the token at (t, b): one factor per row
                       (word) of the embedding matrix for the chunk, so a dropped word loses
                       its whole vector wherever it occurs
    weight drop        W_hh' = W_hh * M,  one mask over the hidden-to-hidden weights for
                       every step of a chunk (DropConnect, Wan et al. 2013), so it drops the
                       same recurrent connections all along the recurrence;
                       dL/dW_hh = dL/dW_hh' * M

and two penalties added to the loss, on the last layer's output h (H, T, B):

    AR   alpha * mean(y^2)                   y = the output after dropout (the decoder's input)
    TAR  beta * mean((h_t - h_{t-1})^2)      h before dropout, over the steps t = 2..T of a chunk

AR keeps the activations small; TAR keeps them from changing fast from step to step.

A setting of 0 turns its regulariser off, and then it costs nothing: no mask is drawn and
no array is touched.
"""

import math
from dataclasses import dataclass

from wordlstm.backend import xp
from wordlstm.errors import SettingError

_RATES = ("dropout", "dropout_input", "dropout_hidden", "embed_dropout", "weight_drop")
_WEIGHTS = ("ar", "tar")


@dataclass(frozen=True)
class Regularisers:
    """Which regularisers training applies, and how strongly; all off by default."""

    dropout: float = 0.0  # dropout before the decoder
    dropout_input: float = 0.0  # dropout on the embeddings fed to the first layer
    dropout_hidden: float = 0.0  # dropout between layers
    locked: bool = False  # those three: one mask per sequence for a chunk, not one per step
    embed_dropout: float = 0.0  # whole words dropped from the embedding matrix for a chunk
    weight_drop: float = 0.0  # DropConnect on each layer's W_hh, one mask per chunk
    ar: float = 0.0  # the weight alpha of AR
    tar: float = 0.0  # the weight beta of TAR

    def __post_init__(self) -> None:
        for name in _RATES:
            if not 0.0 <= getattr(self, name) < 1.0:  # also refuses NaN
                raise SettingError(f"{{{name}}} must be in [0, 1)")
        for name in _WEIGHTS:
            if not 0.0 <= getattr(self, name) < math.inf:
                raise SettingError(f"{{{name}}} must be a finite number, at least 0")

    @classmethod
    def everywhere(cls, p: float) -> "Regularisers":
        """Zaremba et al.'s dropout: rate p on the embeddings, between layers and before the
        decoder, a new mask at every step; nothing else."""
        return cls(dropout=p, dropout_input=p, dropout_hidden=p)


def dropout_mask(rng, shape: tuple, p: float, dtype) -> "xp.ndarray | None":
    """Inverted dropout's mask: zeros with probability p, the rest 1/(1-p). None, drawing
    nothing, without a generator (not training) or with p = 0."""
    if rng is None or p <= 0.0:
        return None
    keep = rng.random(shape, dtype=xp.float32) >= p
    return keep.astype(dtype) * (1.0 / (1.0 - p))


def unit_mask(rng, shape: tuple, p: float, locked: bool, dtype) -> "xp.ndarray | None":
    """The dropout mask of activations of `shape` (units, T, B): a new one at every step, or
    with `locked` one per sequence, (units, 1, B), which broadcasts over the chunk's steps."""
    units, steps, batch = shape
    return dropout_mask(rng, (units, 1 if locked else steps, batch), p, dtype)


def word_mask(rng, inputs: "xp.ndarray", vocab: int, p: float, dtype) -> "xp.ndarray | None":
    """Embedding dropout's mask for token ids (T, B): a factor per row of the embedding
    matrix, drawn once for the chunk and read at each token, as a (1, T, B) factor on the
    embeddings (E, T, B)."""
    rows = dropout_mask(rng, (vocab,), p, dtype)
    return None if rows is None else rows[inputs][None]


def activation_penalty(y: "xp.ndarray", alpha: float) -> float:
    """AR = alpha * mean(y^2), y the last layer's output after dropout."""
    return alpha * float(xp.mean(y * y))


def activation_grad(y: "xp.ndarray", alpha: float) -> "xp.ndarray":
    """dAR/dy = 2 alpha y / N, N the number of entries of y."""
    return (2.0 * alpha / y.size) * y


def temporal_penalty(h: "xp.ndarray", beta: float) -> float:
    """TAR = beta * mean over t = 2..T of (h_t - h_{t-1})^2, h (H, T, B) the last layer's
    output before dropout; 0 for a chunk of one step, which has no pair of steps."""
    diff = h[:, 1:] - h[:, :-1]
    return beta * float(xp.mean(diff * diff)) if diff.size else 0.0


def temporal_grad(h: "xp.ndarray", beta: float) -> "xp.ndarray":
    """dTAR/dh: the step difference d_t = h_t - h_{t-1} contributes 2 beta d_t / N (N the
    entries of all the d_t) to dTAR/dh_t, and the same with a minus sign to dTAR/dh_{t-1}."""
    grad = xp.zeros_like(h)
    diff = h[:, 1:] - h[:, :-1]
    if diff.size:
        d = (2.0 * beta / diff.size) * diff  # through mean(d^2): 2 d / N
        grad[:, 1:] += d  # through d_t = h_t - ...
        grad[:, :-1] -= d  # through d_t = ... - h_{t-1}
    return grad
