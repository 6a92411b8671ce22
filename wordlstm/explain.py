"""Inside the LSTM while it reads a prompt: every gate of every unit at every token, how long
each unit's memory lasts, and which earlier tokens moved the next word's probability.

The prompt is read as `complete` reads it, after the end-of-line token, by the model's own
forward pass run in float64; each layer's cache holds what the gate equations gave:

    i_t = sigmoid(W_ii x_t + W_hi h_{t-1} + b_i)     f_t = sigmoid(W_if x_t + W_hf h_{t-1} + b_f)
    g_t = tanh(W_ig x_t + W_hg h_{t-1} + b_g)        o_t = sigmoid(W_io x_t + W_ho h_{t-1} + b_o)
    c_t = f_t * c_{t-1} + i_t * g_t                  h_t = o_t * tanh(c_t)

Memory. A cell keeps f_t of its content at step t, so with a steady forget value f it keeps
f^k after k steps: the time constant is tau = -1/ln f tokens (what is left falls by e in
tau steps) and the half-life ln 2 * tau. Over a prompt the forget values differ from step
to step; the steady value that keeps as much is their geometric mean, so
tau = -1 / mean_t(ln f_t). What was written at token s is still held at the last token by
the factor f_{s+1} * ... * f_T: a unit holds a token's information "still at half" while
that product is at least 1/2.

Why this word. The target is log p(word) after the prompt, or log p(word) - log p(other).
Gradient x input: the hand-written backward pass (`LanguageModel.backward_to_embeddings`),
run from the target back to the embeddings, gives d target / d e_t for each token's
embedding e_t; its dot product with e_t is that token's share to first order. Occlusion:
the token (or a span of them) replaced by <unk> and the target scored again; the drop is
the token's share.
"""

from dataclasses import dataclass, field

import numpy as np

from wordlstm import predict
from wordlstm.checkpoint import Loaded
from wordlstm.errors import BadInput, SettingError
from wordlstm.model import LanguageModel

GATES = ("i", "f", "g", "o")
HALF = 0.5  # "held at half": the share of a token's content a cell still keeps


@dataclass
class LayerTrace:
    """One layer over the prompt: each array is (tokens, units), float64."""

    i: np.ndarray  # input gate
    f: np.ndarray  # forget gate
    g: np.ndarray  # candidate values
    o: np.ndarray  # output gate
    c: np.ndarray  # cell state after the token
    h: np.ndarray  # hidden state (the layer's output) after the token

    @property
    def cell_norm(self) -> np.ndarray:
        """|c_t|, the Euclidean norm of the cell state after each token."""
        return np.linalg.norm(self.c, axis=1)


@dataclass
class UnitMemory:
    """How long one unit remembers over the prompt."""

    layer: int
    unit: int
    time_constant: float  # tau = -1 / mean ln f, in tokens
    half_life: float  # ln 2 * tau
    earliest: int  # the earliest token whose content the cell still holds at half
    kept: float  # the share of that token's content kept at the last token


@dataclass
class UnitChange:
    """A unit whose cell state moves much over the prompt."""

    layer: int
    unit: int
    spread: float  # max - min of c over the prompt's tokens


@dataclass
class Explanation:
    """A prompt read by the model: its tokens, every layer's gates and states, memory per
    unit (longest held first), the units that change most, and the next words."""

    prompt: str
    tokens: list[str]
    ids: list[int]
    layers: list[LayerTrace]
    memory: list[UnitMemory]
    changing: list[UnitChange]
    next: list[tuple[str, float]]
    unknown: list[str] = field(default_factory=list)


@dataclass
class Attribution:
    """How much each token of the prompt moved the target (log p(word), or log p(word) -
    log p(other) when other is given) after the prompt."""

    tokens: list[str]
    word: str
    other: str | None
    target: float
    gradient_x_input: np.ndarray  # (tokens,): d target / d e_t . e_t
    occlusion: np.ndarray  # (tokens,): target - target with the token read as <unk>
    spans: list[tuple[int, int]]  # token spans [start, end) occluded as a whole
    span_occlusion: np.ndarray  # (spans,): target - target with the span read as <unk>s


def float64_model(model: LanguageModel) -> LanguageModel:
    """A float64 copy of a model, without dropout: what explaining computes with."""
    params = {n: np.asarray(p, dtype=np.float64) for n, p in model.params.items()}
    return LanguageModel(model.arch, params)


def prompt_ids(loaded: Loaded, prompt: str) -> tuple[np.ndarray, list[str]]:
    """The prompt's token ids as `complete` reads them, and its words the model lacks."""
    if not prompt.strip():
        raise BadInput("the prompt is empty: give some words to explain")
    encoded = loaded.tokenizer.encode_prompt(prompt)
    if not len(encoded.ids):
        raise BadInput("the prompt has no words to explain")
    return encoded.ids.astype(np.int64), encoded.unknown


def read(model: LanguageModel, ids: np.ndarray, eos_id: int) -> tuple:
    """Reads id sequences side by side (columns of ids, (T, B)) after the end-of-line token
    from a zero state; returns the forward pass's (out, state, cache) for T + 1 steps."""
    inputs = np.vstack([np.full((1, ids.shape[1]), eos_id, dtype=np.int64), ids])
    return model.forward(inputs, model.zero_state(ids.shape[1]))


def explain(loaded: Loaded, prompt: str, units: int = 8, top: int = 5) -> Explanation:
    """Every gate of every unit at every token of the prompt, the units' memory, the
    `units` units whose cell state moves most, and the `top` next words."""
    if units < 0:
        raise SettingError("{units} must not be negative")
    ids, unknown = prompt_ids(loaded, prompt)
    tok = loaded.tokenizer
    model = float64_model(loaded.model)
    out, _, cache = read(model, ids[:, None], tok.eos_id)
    layers = [layer_trace(c) for c in cache.layers]
    log_probs = model.log_probs(out[-1:])[0]
    best = predict.top_k(log_probs, top, exclude=(tok.unk_id, tok.eos_id))
    return Explanation(
        prompt=prompt,
        tokens=[tok.id_to_token(i) for i in ids.tolist()],
        ids=ids.tolist(),
        layers=layers,
        memory=memory(layers),
        changing=changing(layers, units),
        next=[(tok.id_to_token(i), p) for i, p in best],
        unknown=unknown,
    )


def layer_trace(cache) -> LayerTrace:
    """The prompt's steps of a layer's forward cache (the first step, the end-of-line token
    read before the prompt, left out) as (tokens, units) arrays of one sequence."""
    H = cache.c.shape[1]
    gates = cache.gates[1:, :, 0]  # (T, 4H)
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
    return LayerTrace(i=i, f=f, g=g, o=o, c=cache.c[2:, :, 0], h=cache.h[:, 2:, 0].T)


def time_constant(f: np.ndarray) -> np.ndarray:
    """tau = -1 / mean ln f over the tokens (axis 0), in tokens: inf where f is 1."""
    with np.errstate(divide="ignore"):
        return -1.0 / np.mean(np.log(f), axis=0)


def half_life(f: np.ndarray) -> np.ndarray:
    """ln 2 * tau: the tokens after which a cell keeps half of what it held."""
    return np.log(2.0) * time_constant(f)


def kept_until_last(f: np.ndarray) -> np.ndarray:
    """kept[s, unit] = f_{s+1} * ... * f_T: the share of what token s wrote that the cell
    still holds after the last token (1 for the last token itself)."""
    after = np.vstack([f[1:], np.ones((1, f.shape[1]))])  # f_{s+1}, with 1 past the end
    return np.cumprod(after[::-1], axis=0)[::-1]


def memory(layers: list[LayerTrace]) -> list[UnitMemory]:
    """Every unit's memory over the prompt, those that hold the earliest token at half
    first (ties: the larger share kept)."""
    units = []
    for k, layer in enumerate(layers):
        tau, kept = time_constant(layer.f), kept_until_last(layer.f)
        for u in range(layer.f.shape[1]):
            earliest = int(np.argmax(kept[:, u] >= HALF))  # kept grows with s; last is 1
            units.append(
                UnitMemory(
                    k,
                    u,
                    float(tau[u]),
                    float(np.log(2.0) * tau[u]),
                    earliest,
                    float(kept[earliest, u]),
                )
            )
    return sorted(units, key=lambda m: (m.earliest, -m.kept))


def changing(layers: list[LayerTrace], n: int) -> list[UnitChange]:
    """The n units whose cell state spreads most over the prompt, most first."""
    units = [
        UnitChange(k, u, float(s))
        for k, layer in enumerate(layers)
        for u, s in enumerate(np.ptp(layer.c, axis=0))
    ]
    return sorted(units, key=lambda c: -c.spread)[: max(0, n)]


def word_id(loaded: Loaded, word: str) -> int:
    """The id of a vocabulary word; BadInput for one the model does not know."""
    tok = loaded.tokenizer
    i = tok.token_to_id(word)
    if i is None or i in (tok.unk_id, tok.eos_id):
        raise BadInput(f"{word!r} is not a word of the model's vocabulary")
    return i


def attribute(
    loaded: Loaded,
    prompt: str,
    word: str,
    other: str | None = None,
    spans: list[tuple[int, int]] | None = None,
) -> Attribution:
    """How much each token of the prompt, and each token span [start, end), moved
    log p(word) (or log p(word) - log p(other)) after it: by gradient x input and by
    occlusion."""
    ids, _ = prompt_ids(loaded, prompt)
    tok = loaded.tokenizer
    wanted = [word_id(loaded, word)] + ([] if other is None else [word_id(loaded, other)])
    spans = list(spans or [])
    n = len(ids)
    for start, end in spans:
        if not 0 <= start < end <= n:
            raise BadInput(f"span {start}:{end} is outside the prompt's {n} tokens")
    model = float64_model(loaded.model)
    out, _, cache = read(model, ids[:, None], tok.eos_id)
    target = targets(model, out[-1:], wanted)[0]
    # d target / d out at the last step: log p(w) = -loss(w), and the loss is linear in it
    dout = np.zeros_like(out)
    for sign, w in zip((1.0, -1.0), wanted, strict=False):
        dout[-1:] -= sign * model.loss(out[-1:], np.array([w]))[1]
    _, _, dx = model.backward_to_embeddings(cache, dout, {})
    embedded = model.params["encoder.weight"][ids]  # (n, E)
    gxi = np.einsum("te,te->t", dx[:, 1:, 0].T, embedded)
    # every token alone, then every span, each read as <unk>s, side by side
    occluded = np.repeat(ids[:, None], n + len(spans), axis=1)
    occluded[np.arange(n), np.arange(n)] = tok.unk_id
    for j, (start, end) in enumerate(spans):
        occluded[start:end, n + j] = tok.unk_id
    out_o, _, _ = read(model, occluded, tok.eos_id)
    dropped = target - targets(model, out_o[-occluded.shape[1] :], wanted)
    return Attribution(
        tokens=[tok.id_to_token(i) for i in ids.tolist()],
        word=word,
        other=other,
        target=float(target),
        gradient_x_input=gxi,
        occlusion=dropped[:n],
        spans=spans,
        span_occlusion=dropped[n:],
    )


def targets(model: LanguageModel, rows: np.ndarray, wanted: list[int]) -> np.ndarray:
    """log p(wanted[0]) - log p(wanted[1]) (or log p(wanted[0]) alone) after each row of
    the decoder's input."""
    log_probs = model.log_probs(rows)
    value = log_probs[:, wanted[0]]
    return value - log_probs[:, wanted[1]] if len(wanted) > 1 else value
