"""Autocompletion on a loaded model: the word being typed and the words after it.

A text's last word is unfinished when the text does not end in whitespace (the API's and
the interactive rule) or, on the command line by default, when that word is not in the
vocabulary but begins some word of it (else it is read as an unknown word). An unfinished
word's completions are the vocabulary words the prefix rule of `wordlstm.prefix` offers
for it, ranked by the model's probability after the text before it and renormalised over
those words.
"""

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from wordlstm import predict
from wordlstm.backend import xp
from wordlstm.prefix import PrefixIndex
from wordlstm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from wordlstm.checkpoint import Loaded


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
    vocabulary but begins one of its words; False: never."""
    ids, spans = tok.encode_spans(text)
    if partial is False or not len(ids) or spans[-1][1] != len(text):
        return Split(ids, text, None)
    start = spans[-1][0]
    fragment = text[start:]
    if partial is None and (
        ids[-1] != tok.unk_id
        or tok.token_to_id(fragment) is not None
        or not len(prefix_index(tok).matches(fragment))
    ):
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


@dataclass
class Suggestion:
    """A word offered for the word being typed (or the next word), with its probability
    among the words offered."""

    word: str
    prob: float


@dataclass
class Continuation:
    """One of the best continuations: its text, its log-probability, and whether it
    reached the end of the line."""

    text: str
    log_prob: float
    ended: bool


def completions(loaded: "Loaded", text: str, top: int = 5) -> list[Suggestion]:
    """The `top` likeliest words for the word being typed at the end of text (the next word
    if text is empty or ends in whitespace), best first."""
    tok = loaded.tokenizer
    split = split_fragment(tok, text)
    reading = predict.read_lines(loaded.model, [split.context], tok.eos_id, distributions=True)
    return suggest(tok, reading.next_log_probs[0], split.fragment, top)


def continuations(
    loaded: "Loaded", text: str, width: int = 3, words: int = 5
) -> list[Continuation]:
    """The `width` likeliest continuations of text of up to `words` words (the first one
    finishing the word being typed, if any), best first."""
    from wordlstm.pipeline import complete

    (c,) = complete(loaded, [text], top=0, words=words, beam=width, partial=True)
    return [Continuation(t, lp, ended) for t, lp, ended, _ in c.beams]


def suggest(tok: Tokenizer, log_probs, fragment: str | None, top: int) -> list[Suggestion]:
    """The `top` likeliest words that the fragment may begin (any word for None)."""
    best = predict.top_k(fragment_log_probs(tok, log_probs, fragment), top)
    return [Suggestion(tok.id_to_token(i), p) for i, p in best if p > 0]


class Typing:
    """A line being typed, with its suggestions. The LSTM state and next-word distribution
    after each committed word are kept, so a change of the text costs one model step per
    word that it commits (a space after a word), none for a character inside a word (only a
    prefix lookup), and none for deleting back into earlier words."""

    def __init__(self, loaded: "Loaded", top: int = 3) -> None:
        self.top = top
        self._tok, self._model = loaded.tokenizer, loaded.model
        prefix_index(self._tok)  # built now, not on the first keystroke
        self._ids: list[int] = []
        start = self._step(self._tok.eos_id, self._model.zero_state(1))
        self._after: list[tuple] = [start]  # (state, log_probs) after each committed prefix
        self._split = Split(np.zeros(0, dtype=np.int32), "", None)
        self.text = ""

    def feed(self, text: str) -> None:
        """Types characters or whole words at the end of the line."""
        self.set_text(self.text + text)

    def set_text(self, text: str) -> None:
        """The line is now `text`: the model reads only the words that are new since the
        longest run of committed words that the line still begins with."""
        split = split_fragment(self._tok, text)
        ids = split.context.tolist()
        same = 0
        while same < min(len(ids), len(self._ids)) and ids[same] == self._ids[same]:
            same += 1
        del self._ids[same:], self._after[same + 1 :]
        for i in ids[same:]:
            self._after.append(self._step(i, self._after[-1][0]))
            self._ids.append(i)
        self._split, self.text = split, text

    @property
    def fragment(self) -> str | None:
        """The word being typed, None right after a space."""
        return self._split.fragment

    def suggestions(self) -> list[Suggestion]:
        """The likeliest words for the word being typed, or for the next word."""
        return suggest(self._tok, self._after[-1][1], self.fragment, self.top)

    def accept(self, choice: int = 0) -> str:
        """Types suggestion number `choice` in place of the word being typed, followed by a
        space (which commits it); returns the new text. An absent choice changes nothing."""
        offered = self.suggestions()
        if choice < len(offered):
            self.set_text(self._split.head + offered[choice].word + " ")
        return self.text

    def _step(self, token: int, state: tuple) -> tuple:
        """One model step: the state and next-token distribution after feeding token."""
        out, state, _ = self._model.forward(xp.asarray([[token]]), state)
        return state, self._model.log_probs(out)[0]
