"""Beam search: the most likely continuations of a line, each with its log-probability."""

from dataclasses import dataclass

import numpy as np

from wordlstm.backend import to_host, xp
from wordlstm.model import LanguageModel


@dataclass
class Beam:
    """A continuation: its token ids (the end-of-line token left out), the sum of their
    log-probabilities (and the end-of-line token's, if it `ended` there)."""

    ids: list[int]
    log_prob: float
    ended: bool


def beam_search(
    model: LanguageModel,
    log_probs,
    state: tuple,
    width: int,
    steps: int,
    *,
    stop_id: int,
    exclude: tuple[int, ...] = (),
) -> list[Beam]:
    """The `width` most likely continuations of one line of up to `steps` tokens, best
    first, given the distribution of its next token (V,) and the state after it (each
    layers x 1 x hidden). A continuation ends at stop_id; those that end compete with the
    longer ones by their total log-probability. Each step feeds the live beams side by side."""
    beams = [Beam([], 0.0, False)]
    lp = np.asarray(to_host(log_probs), dtype=np.float64).reshape(1, -1)
    for step in range(steps):
        live = [b for b in beams if not b.ended]
        if not live:
            break
        total = lp + np.array([b.log_prob for b in live])[:, None]
        total[:, list(exclude)] = -np.inf
        flat = total.reshape(-1)
        k = min(width, int(np.isfinite(flat).sum()))
        best = np.argpartition(-flat, k - 1)[:k] if k else np.array([], dtype=int)
        rows, tokens = np.divmod(best, total.shape[1])
        grown = [
            (Beam([*live[r].ids, int(t)], float(flat[i]), int(t) == stop_id), int(r))
            for i, r, t in zip(best, rows, tokens, strict=True)
        ]
        pool = [(b, -1) for b in beams if b.ended] + grown
        pool.sort(key=lambda item: -item[0].log_prob)
        pool = pool[:width]
        beams = [b for b, _ in pool]
        parents = [r for b, r in pool if not b.ended]
        if not parents or step == steps - 1:
            break
        last = np.array([b.ids[-1] for b in beams if not b.ended]).reshape(1, -1)
        state = tuple(s[:, parents] for s in state)
        out, state, _ = model.forward(xp.asarray(last), state)
        lp = np.asarray(to_host(model.log_probs(out)), dtype=np.float64)
    for b in beams:
        if b.ended:
            b.ids.pop()
    return beams
