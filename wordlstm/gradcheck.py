"""The hand-written backward pass checked against finite differences, in float64.

For every parameter entry p, the slope of the loss measured by central differences,
(L(p + eps) - L(p - eps)) / (2 eps), must equal the gradient that `LanguageModel.backward`
computes. The loss runs over two BPTT chunks with the state carried from the first to the
second, and the gradient flows back across that border too, so the check covers the
recursion through time as well as each step.
"""

from dataclasses import dataclass

import numpy as np

from wordlstm.model import Architecture, LanguageModel
from wordlstm.optim import dense
from wordlstm.regularisers import Regularisers

TOLERANCE = 1e-5  # float64 central differences with eps = 1e-6 agree to about 1e-8 here
EPS = 1e-6

# Every regulariser on at once, each at a rate or weight large enough to matter in the
# gradient: the AR and TAR weights are comparable to the cross-entropy.
ALL_REGULARISERS = Regularisers(
    dropout=0.3,
    dropout_input=0.5,
    dropout_hidden=0.2,
    locked=True,
    embed_dropout=0.5,
    weight_drop=0.5,
    ar=2.0,
    tar=2.0,
)


@dataclass
class Problem:
    """A tiny model and the two consecutive chunks of (inputs, targets) it is checked on."""

    model: LanguageModel
    chunks: list[tuple[np.ndarray, np.ndarray]]
    dropout_seed: int


@dataclass
class ParamCheck:
    """One parameter: the largest relative error of its gradient over its entries."""

    name: str
    size: int
    error: float
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        return self.error < self.tolerance


def tiny_problem(
    tied: bool = False,
    regularisers: Regularisers | None = None,
    seed: int = 0,
    softmax: str = "full",
    div_value: float = 2.0,
) -> Problem:
    """A float64 model of two layers (vocabulary 7, embedding 5) and two chunks of 4 steps
    of 3 sequences. Its weights are shifted off their initial scale and its biases off zero,
    so that every gate term matters. The adaptive softmax has a head of 3 words and two
    clusters of 2, with projections of 2 units and 1 (`div_value` 2; 1: as wide as the
    hidden layer, their outputs tied when the weights are)."""
    split = {"cutoffs": (3, 5), "div_value": div_value} if softmax == "adaptive" else {}
    H = 5 if tied else 4
    arch = Architecture(vocab=7, embed=5, hidden=H, layers=2, tied=tied, softmax=softmax, **split)
    reg = regularisers if regularisers is not None else Regularisers()
    model = LanguageModel.init(arch, np.random.default_rng(seed), dropout=reg, dtype=np.float64)
    data_rng = np.random.default_rng(seed + 1)
    T, B = 4, 3
    stream = data_rng.integers(0, arch.vocab, size=(2 * T + 1, B))
    chunks = [(stream[:T], stream[1 : T + 1]), (stream[T : 2 * T], stream[T + 1 : 2 * T + 1])]
    for p in model.params.values():
        p += data_rng.uniform(-0.3, 0.3, p.shape)
    return Problem(model, chunks, dropout_seed=seed + 5)


def loss_and_gradient(problem: Problem) -> tuple[float, dict[str, np.ndarray]]:
    """The loss (cross-entropy plus AR and TAR) over the chunks with the state carried, and
    its exact gradient, from the last chunk back into the first through the state. The
    generator seeded alike draws the same dropout masks every time."""
    model = problem.model
    rng = np.random.default_rng(problem.dropout_seed)
    state = model.zero_state(problem.chunks[0][0].shape[1])
    total, steps = 0.0, []
    for x, y in problem.chunks:
        out, state, cache = model.forward(x, state, rng=rng)
        loss, dout, dec = model.loss(out, y)
        total += loss + model.penalty(cache)
        steps.append((cache, dout, dec))
    grads = {n: np.zeros_like(p) for n, p in model.params.items()}
    dstate = None
    for cache, dout, dec in reversed(steps):
        g, dstate = model.backward(cache, dout, dec, dstate)
        for n, v in g.items():
            grads[n] += dense(v)
    return total, grads


def numeric_gradient(problem: Problem, name: str) -> np.ndarray:
    """The loss's slope in each entry of one parameter, by central differences."""
    param = problem.model.params[name]
    numeric = np.zeros_like(param)
    for j in np.ndindex(param.shape):  # param may be a view (the decoder's): index it
        saved = param[j]
        param[j] = saved + EPS
        up, _ = loss_and_gradient(problem)
        param[j] = saved - EPS
        down, _ = loss_and_gradient(problem)
        param[j] = saved
        numeric[j] = (up - down) / (2 * EPS)
    return numeric


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| over max |a| + max |b|: scale-free, 0 when both are 0."""
    return float(np.abs(a - b).max() / max(1e-12, np.abs(a).max() + np.abs(b).max()))


def check(problem: Problem) -> list[ParamCheck]:
    """Every parameter's hand-written gradient against its finite differences."""
    _, grads = loss_and_gradient(problem)
    return [
        ParamCheck(name, p.size, relative_error(grads[name], numeric_gradient(problem, name)))
        for name, p in problem.model.params.items()
    ]
