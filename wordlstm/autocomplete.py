"""Autocompletion on a loaded model: the word being typed and the words after it.

A text's last word is unfinished when the text does not end in whitespace (the API's and
the interactive rule) or, on the command line by default, when that word is not in the
vocabulary. An unfinished word's completions are the vocabulary words the prefix rule of
`wordlstm.prefix` offers for it, ranked by the model's probability after the text before
it and renormalised over those words.
"""

from dataclasses import dataclass
from functools import cache

import numpy as np

from wordlstm.prefix import PrefixIndex
from wordlstm.tokenizer import Tokenizer


@dataclass
class Split:
    """A text cut before its unfinished last word: the ids of what comes before, the text
    before it, and the fragment (None when the last word is finished)."""

    context: np.ndarray
    head: str
    fragment: str | None


@cache
def prefix_index(tok: Tokenizer) -> PrefixIndex:
    """The prefix index of a tokenizer's vocabulary, built on first use."""
    return PrefixIndex(tok.words(), exclude=(tok.unk_id, tok.eos_id))


def split_fragment(tok: Tokenizer, text: str, partial: bool | None = True) -> Split:
    """Cuts off the last word if it is unfinished. partial=True: a text not ending in
    whitespace ends in an unfinished word; None: only if that word is not in the
    vocabulary; False: never."""
    ids, spans = tok.encode_spans(text)
    if partial is False or not len(ids) or spans[-1][1] != len(text):
        return Split(ids, text, None)
    start = spans[-1][0]
    fragment = text[start:]
    if partial is None and (ids[-1] != tok.unk_id or tok.token_to_id(fragment) is not None):
        return Split(ids, text, None)
    return Split(ids[:-1], text[:start], fragment)


def restrict(log_probs: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """A next-token distribution conditioned on the token being one of `allowed`: their
    log-probabilities renormalised, -inf elsewhere (all -inf when none is allowed)."""
    out = np.full(log_probs.shape, -np.inf, dtype=np.float64)
    if len(allowed):
        lp = np.asarray(log_probs, dtype=np.float64)[allowed]
        out[allowed] = lp - (lp.max() + np.log(np.exp(lp - lp.max()).sum()))
    return out


def fragment_log_probs(tok: Tokenizer, log_probs: np.ndarray, fragment: str | None) -> np.ndarray:
    """The distribution of the word being typed: `restrict`ed to the fragment's matches, or
    for no fragment the next word's, with the special tokens left out."""
    if fragment is None:
        out = np.array(log_probs, dtype=np.float64)
        out[[tok.unk_id, tok.eos_id]] = -np.inf
        return out
    return restrict(log_probs, prefix_index(tok).matches(fragment))
