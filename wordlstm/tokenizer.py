"""The word tokenizer: text to int32 token ids and back, backed by a HuggingFace WordLevel model.

Everything the rest of wordlstm knows about tokens goes through `Tokenizer`. The settings
(`split`, `lowercase`) live in the HF json itself, as its normalizer and pre-tokenizer, so the
saved `tokenizer.json` alone reproduces the encoding, in wordlstm or in `tokenizers`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np
from tokenizers import Regex, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from wordlstm.errors import BadInput, first_line

UNK = "<unk>"
EOS = "<eos>"
SPLITS = ("words", "whitespace")
BATCH_LINES = 10_000
BATCH_CHARS = 1 << 22  # and at most about this much text in one batch

# After whitespace splitting, "words" cuts each piece into: a literal <unk> mark, numbers with
# inner separators (3.5, 1,000, 10:30), words with inner apostrophes or hyphens (don't,
# mother-in-law), an ellipsis, or any other single character (punctuation).
WORD_PATTERN = r"<unk>|\d+(?:[.,:]\d+)+|\w+(?:['’-]\w+)*|\.\.\.|\S"

# Detokenizing: tokens glued to the word before them, and tokens the next word is glued to.
NO_SPACE_BEFORE = frozenset(",.!?;:)]}%…»”’") | {"...", "n't", "n’t"}
NO_SPACE_AFTER = frozenset("([{$«“‘")
JOINERS = {"@-@": "-", "@,@": ",", "@.@": "."}  # WikiText's marks for split-up 1,000 and x-y


@dataclass
class Prompt:
    """A prompt as token ids, with the words outside the vocabulary, in order (each once),
    and those read as a known word in another case (as written -> as read)."""

    ids: np.ndarray
    unknown: list[str]
    recased: dict[str, str]


class Tokenizer:
    """A word-level tokenizer with `<unk>` (id 0) and `<eos>` (id 1)."""

    def __init__(self, hf: HFTokenizer) -> None:
        """Wrap a HF tokenizer; use `train` or `load` to get one."""
        self._hf = hf
        self.split, self.lowercase = _read_settings(json.loads(hf.to_str()))
        unk, eos = hf.token_to_id(UNK), hf.token_to_id(EOS)
        if unk is None or eos is None:
            raise BadInput(f"the tokenizer lacks the special tokens {UNK} and {EOS}")
        self._unk, self._eos = unk, eos

    @classmethod
    def train(
        cls,
        lines: Iterable[str],
        *,
        split: str = "words",
        lowercase: bool = False,
        vocab_size: int = 0,
        min_freq: int = 1,
    ) -> Tokenizer:
        """Build the vocabulary from training lines, most frequent words first.

        `vocab_size` counts the two special tokens; 0 keeps every word seen at least
        `min_freq` times. Ties in frequency are broken alphabetically, so training is
        deterministic.
        """
        if split not in SPLITS:
            raise BadInput(f"unknown split {split!r}: use 'words' or 'whitespace'")
        _check_sizes(vocab_size, min_freq)
        words = _ranked_words(lines, split, lowercase, vocab_size, min_freq)
        if not words:
            raise BadInput("the training text has no words to build a vocabulary from")
        if vocab_size:
            words = words[: vocab_size - 2]
        vocab = {UNK: 0, EOS: 1} | {w: i for i, w in enumerate(words, start=2)}
        return cls._built(split, lowercase, vocab)

    def grow(self, lines: Iterable[str], *, vocab_size: int = 0, min_freq: int = 1) -> Tokenizer:
        """This vocabulary and, after its ids, the words of `lines` seen at least `min_freq`
        times that it lacks, most frequent first, up to `vocab_size` tokens in all (0 = no
        limit). Growing the grown vocabulary on the same lines adds nothing."""
        _check_sizes(vocab_size, min_freq)
        vocab = self._hf.get_vocab()
        words = _ranked_words(lines, self.split, self.lowercase, 0, min_freq)
        new = [w for w in words if w not in vocab]
        if vocab_size:
            new = new[: max(0, vocab_size - len(vocab))]
        if not new:
            return self
        added = {w: i for i, w in enumerate(new, start=len(vocab))}
        return self._built(self.split, self.lowercase, vocab | added)

    @classmethod
    def _built(cls, split: str, lowercase: bool, vocab: dict[str, int]) -> Tokenizer:
        hf = _pipeline(split, lowercase)
        hf.model = models.WordLevel(vocab, unk_token=UNK)
        return cls(hf)

    @classmethod
    def from_str(cls, text: str, source: str = "tokenizer.json") -> Tokenizer:
        """A tokenizer from the json text that `to_str` returned; source names it in errors."""
        try:
            hf = HFTokenizer.from_str(text)
        except Exception as e:  # tokenizers raises plain Exception for bad json
            raise BadInput(f"cannot load tokenizer {source}: {first_line(e)}") from e
        return cls(hf)

    def to_str(self) -> str:
        """The HF json text (what `tokenizers.Tokenizer.from_str` reads), for the store."""
        return self._hf.to_str(pretty=True)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, the two special ones included."""
        return self._hf.get_vocab_size()

    @property
    def unk_id(self) -> int:
        """Id of `<unk>`, which every word outside the vocabulary maps to."""
        return self._unk

    @property
    def eos_id(self) -> int:
        """Id of `<eos>`, which ends every line in `encode_lines`."""
        return self._eos

    def id_to_token(self, i: int) -> str:
        """The token string of an id; BadInput for an id outside the vocabulary."""
        token = self._hf.id_to_token(int(i))
        if token is None:
            raise BadInput(f"token id {i} is outside the vocabulary of {self.vocab_size}")
        return token

    def token_to_id(self, token: str) -> int | None:
        """The id of an exact token string, or None if it is not in the vocabulary."""
        return self._hf.token_to_id(token)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int32) of one line, without an end-of-line token."""
        ids = np.array(self._hf.encode(text, add_special_tokens=False).ids, dtype=np.int32)
        return self._unspecial(ids)

    def encode_prompt(self, text: str) -> Prompt:
        """Token ids of a prompt to continue, where a word unknown as written is read in the
        case the vocabulary knows it in ("i" as "I"; of several, the most frequent), with the
        words still unknown and those read in another case. Scoring uses `encode`, which
        takes the text exactly as written."""
        encoding = self._hf.encode(text, add_special_tokens=False)
        ids = np.array(encoding.ids, dtype=np.int32)
        unknown: list[str] = []
        recased: dict[str, str] = {}
        for k in np.flatnonzero(ids == self._unk):
            start, end = encoding.offsets[k]
            word = text[start:end]
            if word == UNK:  # a literal mark: the unknown token is what it means
                continue
            known = self._other_case(word)
            if known is not None:
                ids[k], recased[word] = self._hf.token_to_id(known), known
            elif word not in unknown:
                unknown.append(word)
        return Prompt(self._unspecial(ids), unknown, recased)

    def _other_case(self, word: str) -> str | None:
        """The most frequent (lowest-id) word of the vocabulary that is `word` in another
        case: lower, upper, capitalized or title case; None if there is none."""
        found = [
            (i, form)
            for form in {word.lower(), word.upper(), word.capitalize(), word.title()} - {word}
            if (i := self._hf.token_to_id(form)) is not None and i not in (self._unk, self._eos)
        ]
        return min(found)[1] if found else None

    def encode_spans(self, text: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Token ids of one line, as `encode`, with each token's (start, end) in the text."""
        enc = self._hf.encode(text, add_special_tokens=False)
        return self._unspecial(np.array(enc.ids, dtype=np.int32)), list(enc.offsets)

    def words(self) -> list[str]:
        """Every token string, in id order."""
        vocab = self._hf.get_vocab()
        words = [""] * len(vocab)
        for word, i in vocab.items():
            words[i] = word
        return words

    def encode_lines(self, lines: Iterable[str]) -> np.ndarray:
        """One int32 stream of all lines, each followed by the end-of-line id.

        Lines go through the HF tokenizer in batches and straight into NumPy arrays, so a
        corpus of tens of millions of words never becomes one Python list of ints.
        """
        parts = list(self.encode_pieces((line, True) for line in lines))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def encode_pieces(self, pieces: Iterable[tuple[str, bool]]) -> Iterator[np.ndarray]:
        """The int32 ids of (text, whether it ends a line) pieces, as `text.training_pieces`
        gives them, in batches of BATCH_LINES pieces or BATCH_CHARS characters: a piece that
        ends a line is followed by the end-of-line id. A stream of any length, in bounded
        memory."""
        texts: list[str] = []
        ends: list[bool] = []
        size = 0
        for text, end in pieces:
            texts.append(text)
            ends.append(end)
            size += len(text)
            if len(texts) == BATCH_LINES or size >= BATCH_CHARS:
                yield self._encode_batch(texts, np.array(ends, dtype=bool))
                texts, ends, size = [], [], 0
        if texts:
            yield self._encode_batch(texts, np.array(ends, dtype=bool))

    def decode(self, ids: Iterable[int], after: str = "") -> str:
        """Tokens joined with natural spacing: "Today , he 's ( 5 % ) ." -> "Today, he's (5%)."
        With `after`, the text they follow, they begin with the space that goes between the
        two, if any ("Last year" + ", I had" but "I" + " had").

        Special tokens come out as their text (`<eos>`, `<unk>`); callers filter them.
        """
        out: list[str] = []
        # no space before the first token, unless it follows text that wants one
        glue_next = not after or after[-1].isspace() or after[-1] in NO_SPACE_AFTER
        open_quote = False
        for i in ids:
            token = self.id_to_token(i)
            if token in JOINERS:
                out.append(JOINERS[token])
                glue_next = True
                continue
            if token == '"':  # straight quotes alternate: opening, then closing
                glue = glue_next or open_quote
                glue_next = open_quote = not open_quote
            else:
                glue = glue_next or token in NO_SPACE_BEFORE or token[0] in "'’"
                glue_next = token in NO_SPACE_AFTER
            out.append(token if glue else " " + token)
        return "".join(out)

    def _encode_batch(self, batch: list[str], ends: np.ndarray) -> np.ndarray:
        """Ids of a batch of pieces with the end-of-line id after each that `ends` a line."""
        rows = [e.ids for e in self._hf.encode_batch(batch, add_special_tokens=False)]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        words = np.fromiter(chain.from_iterable(rows), dtype=np.int32, count=int(lengths.sum()))
        out = np.full(words.size + int(ends.sum()), self._eos, dtype=np.int32)
        keep = np.ones(out.size, dtype=bool)
        keep[(np.cumsum(lengths + ends) - 1)[ends]] = False
        out[keep] = self._unspecial(words)
        return out

    def _unspecial(self, ids: np.ndarray) -> np.ndarray:
        """Map a literal "<eos>" in the text to unknown: only line ends are end-of-line."""
        ids[ids == self._eos] = self._unk
        return ids


def _check_sizes(vocab_size: int, min_freq: int) -> None:
    if vocab_size < 0 or vocab_size in (1, 2):
        raise BadInput(f"vocabulary size must be 0 (no limit) or at least 3, not {vocab_size}")
    if min_freq < 1:
        raise BadInput(f"minimum word frequency must be at least 1, not {min_freq}")


def _ranked_words(
    lines: Iterable[str], split: str, lowercase: bool, vocab_size: int, min_freq: int
) -> list[str]:
    """The words of `lines` seen at least `min_freq` times, most frequent first (ties in
    alphabetical order), without the special tokens; `vocab_size` > 0 bounds the count."""
    counter = _pipeline(split, lowercase)
    # The trainer gets no special tokens: it would add them as "added tokens", which HF
    # matches inside any text, so a literal "<eos>" would turn special. It may still list
    # <unk>/<eos> as ordinary words (PTB has <unk> marks), hence the 2 spare places.
    counter.train_from_iterator(
        lines,
        trainers.WordLevelTrainer(
            vocab_size=vocab_size or 2**63 - 1, min_frequency=min_freq, show_progress=False
        ),
    )
    counted = counter.get_vocab()
    return [w for w in sorted(counted, key=counted.__getitem__) if w not in (UNK, EOS)]


def _pipeline(split: str, lowercase: bool) -> HFTokenizer:
    """An untrained HF tokenizer with the normalizer and pre-tokenizer for the settings."""
    hf = HFTokenizer(models.WordLevel(unk_token=UNK))
    if lowercase:
        hf.normalizer = normalizers.Lowercase()
    if split == "whitespace":
        hf.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        hf.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated"),
            ]
        )
    return hf


def _read_settings(spec: dict) -> tuple[str, bool]:
    """(split, lowercase) from a HF tokenizer json; BadInput if wordlstm did not write it."""
    norm, pre = spec.get("normalizer"), spec.get("pre_tokenizer") or {}
    steps = [p.get("type") for p in pre.get("pretokenizers", [])]
    if pre.get("type") == "WhitespaceSplit":
        split = "whitespace"
    elif steps == ["WhitespaceSplit", "Split"]:
        split = "words"
    else:
        raise BadInput("the tokenizer file was not written by wordlstm (unknown pre-tokenizer)")
    if norm is not None and norm.get("type") != "Lowercase":
        raise BadInput("the tokenizer file was not written by wordlstm (unknown normalizer)")
    if spec.get("model", {}).get("type") != "WordLevel":
        raise BadInput("the tokenizer file was not written by wordlstm (not a WordLevel model)")
    return split, norm is not None
