"""Optimizers and gradient clipping, updating a dict of parameters in place."""

import math

from wordlstm.backend import xp


class RowGradient:
    """A gradient that is zero but in a few rows, kept as those rows: the embedding's, whose
    only nonzero rows are the chunk's tokens' (a few hundred of 10,000), so the optimizer and
    the norm need not pass over the whole matrix."""

    def __init__(self, ids: "xp.ndarray", rows: "xp.ndarray", shape: tuple) -> None:
        self.ids = ids  # distinct row numbers
        self.rows = rows  # rows[k] is the gradient's row ids[k]
        self.shape = shape

    def dense(self) -> "xp.ndarray":
        """The gradient as a full array."""
        out = xp.zeros(self.shape, dtype=self.rows.dtype)
        out[self.ids] = self.rows
        return out


def added(a: RowGradient, b: RowGradient) -> RowGradient:
    """The sum of two row gradients of one matrix, over the rows of both."""
    ids, where = xp.unique(xp.concatenate([a.ids, b.ids]), return_inverse=True)
    rows = xp.zeros((len(ids), a.rows.shape[1]), dtype=a.rows.dtype)
    rows[where[: len(a.ids)]] += a.rows  # ids are distinct within each: no repeats to add
    rows[where[len(a.ids) :]] += b.rows
    return RowGradient(ids, rows, a.shape)


def dense(g) -> "xp.ndarray":
    """A gradient as a full array, whether or not it is a RowGradient."""
    return g.dense() if isinstance(g, RowGradient) else g


def global_norm(grads: dict) -> float:
    """The joint L2 norm of all gradients, as if they were one vector."""
    nonzero = (g.rows if isinstance(g, RowGradient) else g for g in grads.values())
    flat = (g.ravel(order="K") for g in nonzero)  # no copy for a column-order gradient
    return math.sqrt(sum(float(xp.vdot(g, g)) for g in flat))


def clip_scale(norm: float, max_norm: float) -> float:
    """The factor that scales all gradients together to a joint norm of at most max_norm
    (0: no clipping): the cure for exploding gradients that keeps their direction. The
    optimizers apply it in their update, which saves a pass over the gradients."""
    if max_norm > 0 and norm > max_norm:
        return max_norm / (norm + 1e-6)
    return 1.0


class SGD:
    """Plain stochastic gradient descent: p -= lr * g."""

    def __init__(self, params: dict, lr: float) -> None:
        self.params = params
        self.lr = lr

    def step(self, grads: dict, scale: float = 1.0) -> None:
        """One update with the gradients times scale (the clipping factor)."""
        for name, p in self.params.items():
            g = grads[name]
            if isinstance(g, RowGradient):
                g.rows *= self.lr * scale
                p[g.ids] -= g.rows
                continue
            g *= self.lr * scale  # the gradients are spent after the step: scale them in place
            p -= g

    def state(self) -> dict:
        """Arrays to save for an exact resume (SGD keeps none)."""
        return {}

    def load_state(self, arrays: dict) -> None:
        """Restores what `state` returned."""


class Adam:
    """Adam (Kingma & Ba 2015): per-parameter steps scaled by running moment estimates."""

    def __init__(self, params: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = params
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.m = {n: xp.zeros_like(p) for n, p in params.items()}
        self.v = {n: xp.zeros_like(p) for n, p in params.items()}

    def step(self, grads: dict, scale: float = 1.0) -> None:
        """One update with the gradients times scale (the clipping factor)."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step = self.lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for name, p in self.params.items():
            g, m, v = dense(grads[name]), self.m[name], self.v[name]
            if scale != 1.0:
                g *= scale
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            p -= step * m / (xp.sqrt(v) + self.eps)

    def state(self) -> dict:
        """Arrays to save for an exact resume: both moments and the step count."""
        out = {f"m.{n}": a for n, a in self.m.items()}
        out.update({f"v.{n}": a for n, a in self.v.items()})
        out["t"] = xp.asarray(self.t)
        return out

    def load_state(self, arrays: dict) -> None:
        """Restores what `state` returned."""
        for n in self.params:
            self.m[n][...] = arrays[f"m.{n}"]
            self.v[n][...] = arrays[f"v.{n}"]
        self.t = int(arrays["t"])


def make_optimizer(name: str, params: dict, lr: float):
    """The optimizer called `name` ("sgd" or "adam") over params."""
    return {"sgd": SGD, "adam": Adam}[name](params, lr)
