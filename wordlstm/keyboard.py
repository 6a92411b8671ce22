"""Keyboard metrics: how many keystrokes a word predictor on the model saves a typist.

The rule (the one the KenLM baseline is measured by): each line is typed word by word,
a word's context being the earlier words of its line (the line read from a zero state fed
the end-of-line token, as `score` reads it). After k = 0, 1, ... typed characters of a word
the suggestions are the SUGGESTIONS likeliest vocabulary words that start with the typed
prefix (case as typed, the rule of `wordlstm.prefix`; `<eos>` and `<unk>` never). A word
costs k + 1 keystrokes when it is suggested after k characters (accepting also types the
space), else its length + 1. A literal `<unk>` of the text is no word to type and is not
counted; a word the model does not know is typed in full. A word counts as suggested when
fewer than SUGGESTIONS of the prefix's words are strictly likelier (ties in its favour).

keystroke savings = 1 - keystrokes used / (sum of word lengths + 1 per word)
top-3 of words = share of the words suggested before their first character (k = 0)
"""

from dataclasses import dataclass

import numpy as np

from wordlstm.autocomplete import prefix_index
from wordlstm.backend import to_host, xp
from wordlstm.model import LanguageModel
from wordlstm.predict import READ_CHUNK
from wordlstm.tokenizer import UNK, Tokenizer

SUGGESTIONS = 3
BATCH_TOKENS = 8192  # tokens of lines read side by side
LOGIT_CELLS = 1 << 22  # logits computed at once: rows x vocabulary
GROUP_LINES = 10_000  # lines held at once, to batch by length


@dataclass
class Keystrokes:
    """Totals of the keyboard rule over a text."""

    words: int = 0  # words to type (literal <unk> left out)
    top: int = 0  # of them, suggested before their first character
    used: int = 0  # keystrokes with the suggestions
    full: int = 0  # keystrokes typing everything: word lengths + 1 per word

    def summary(self) -> dict:
        """The figures `wordlstm eval` reports."""
        return {
            "keystroke_savings": 1 - self.used / self.full if self.full else 0.0,
            "top3_words": self.top / self.words if self.words else 0.0,
            "typed_words": self.words,
        }


def typed_line(tok: Tokenizer, line: str) -> tuple[np.ndarray, np.ndarray]:
    """A line's token ids and, per token, the characters typed for it: the vocabulary
    word's length, the text's for an unknown word, -1 for a literal <unk> (not typed)."""
    ids, spans = tok.encode_spans(line)
    lengths = np.array([e - s for s, e in spans], dtype=np.int64)
    unknown = ids == tok.unk_id
    lengths[unknown & np.array([line[s:e] == UNK for s, e in spans], dtype=bool)] = -1
    return ids, lengths


class Counter:
    """Counts the keystrokes of known words from their logits, with each word's prefixes'
    matching ids looked up once per word type."""

    def __init__(self, tok: Tokenizer) -> None:
        self.words = tok.words()
        self.index = prefix_index(tok)
        self.special = np.array([tok.unk_id, tok.eos_id])
        self._prefixes: dict[int, list[np.ndarray]] = {}

    def prefixes(self, word: int) -> list[np.ndarray]:
        """The ids offered after 1, 2, ... len - 1 typed characters of a word."""
        if word not in self._prefixes:
            w = self.words[word]
            self._prefixes[word] = [self.index.matches(w[:k]) for k in range(1, len(w))]
        return self._prefixes[word]

    def add(self, total: Keystrokes, logits: np.ndarray, targets: np.ndarray) -> None:
        """Adds the known target words of rows of logits (N, V) to total."""
        true = logits[np.arange(len(targets)), targets]
        above = logits > true[:, None]
        first = above.sum(axis=1) - above[:, self.special].sum(axis=1)
        for z, t, zt, rank in zip(logits, targets.tolist(), true, first.tolist(), strict=True):
            length = len(self.words[t])
            total.words += 1
            total.full += length + 1
            if rank < SUGGESTIONS:
                total.top += 1
                total.used += 1
                continue
            cost = length + 1
            for k, ids in enumerate(self.prefixes(t), start=1):
                if int((z[ids] > zt).sum()) < SUGGESTIONS:
                    cost = k + 1
                    break
            total.used += cost


def keystrokes(model: LanguageModel, tok: Tokenizer, lines: list[str]) -> Keystrokes:
    """The keyboard rule over lines."""
    total = Keystrokes()
    count_lines(model, tok, Counter(tok), total, lines)
    return total


def count_lines(
    model: LanguageModel, tok: Tokenizer, counter: Counter, total: Keystrokes, lines: list[str]
) -> None:
    """Adds the keyboard rule over lines to total, reading them in batches of lines of
    similar length."""
    typed = [t for t in (typed_line(tok, line) for line in lines) if len(t[0])]
    batch: list = []
    for ids, lengths in sorted(typed, key=lambda t: len(t[0])):  # the longest comes last
        if batch and (len(batch) + 1) * len(ids) > BATCH_TOKENS:
            _count_batch(model, tok, counter, total, batch)
            batch = []
        batch.append((ids, lengths))
    if batch:
        _count_batch(model, tok, counter, total, batch)


def _count_batch(
    model, tok: Tokenizer, counter: Counter, total: Keystrokes, batch, state=None, lead=None
) -> tuple:
    """Reads a batch of lines side by side (from `state` after `lead`, if given) and counts
    its words; returns the state after them."""
    rows, targets, state = _rows_before_words(model, tok, batch, state, lead)
    for ids, lengths in batch:  # words the model does not know: typed in full
        unknown = lengths[(ids == tok.unk_id) & (lengths >= 0)]
        total.words += len(unknown)
        total.used += int(unknown.sum()) + len(unknown)
        total.full += int(unknown.sum()) + len(unknown)
    step = max(1, LOGIT_CELLS // model.arch.vocab)
    for s in range(0, len(targets), step):
        logits = to_host(model.logits(rows[s : s + step]))
        counter.add(total, logits, targets[s : s + step])
    return state


def _rows_before_words(model, tok: Tokenizer, batch, state=None, lead=None) -> tuple:
    """The decoder's input before each known word of the lines (read as `score` reads a
    line: from a zero state fed <eos>, or from `state` after the token `lead`), those
    words' ids, and the state after the lines."""
    B, T = len(batch), max(len(ids) for ids, _ in batch)
    inputs = np.full((T, B), tok.eos_id if lead is None else lead, dtype=np.int64)
    targets = np.zeros((T, B), dtype=np.int64)
    wanted = np.zeros((T, B), dtype=bool)
    for j, (ids, lengths) in enumerate(batch):
        inputs[1 : len(ids), j] = ids[:-1]
        targets[: len(ids), j] = ids
        wanted[: len(ids), j] = (ids != tok.unk_id) & (ids != tok.eos_id) & (lengths >= 0)
    state = model.zero_state(B) if state is None else state
    rows = []
    for s in range(0, T, READ_CHUNK):
        out, state, _ = model.forward(xp.asarray(inputs[s : s + READ_CHUNK]), state)
        rows.append(out[wanted[s : s + READ_CHUNK].reshape(-1)])
    return xp.concatenate(rows), targets[wanted], state  # both step by step, line by line


def _count_long_line(model, tok: Tokenizer, counter: Counter, total: Keystrokes, line) -> None:
    """Counts the words of a line too long to hold, piece by piece with the state carried
    (its pieces are cut between words, so they give the line's tokens)."""
    state = lead = None
    for text, _ in line.pieces():
        ids, lengths = typed_line(tok, text)
        if len(ids):
            state = _count_batch(model, tok, counter, total, [(ids, lengths)], state, lead)
            lead = int(ids[-1])


def keyboard_file(loaded, path: str) -> dict:
    """The keyboard figures of a text file on a loaded model, read in bounded memory."""
    from wordlstm.text import LineReader, LongLine, open_input

    model, tok = loaded.model, loaded.tokenizer
    counter, total = Counter(tok), Keystrokes()
    lines: list[str] = []
    with open_input(path) as stream:
        for line in LineReader([stream], strict=True):
            if isinstance(line, LongLine):
                _count_long_line(model, tok, counter, total, line)
                continue
            lines.append(line)
            if len(lines) == GROUP_LINES:
                count_lines(model, tok, counter, total, lines)
                lines = []
    count_lines(model, tok, counter, total, lines)
    return total.summary()
