"""The tokenizer: exact vocabularies, both splits, unknown words, save/load, encoding, decoding."""

import numpy as np
import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st

from wordlstm import tokenizer as tokenizer_module
from wordlstm.errors import BadInput
from wordlstm.tokenizer import EOS, UNK, Tokenizer

TEXT = ["the cat sat on the mat .", "The cat 's hat , the dog !", "", "a <unk> word"]


def tokens(tok: Tokenizer, text: str) -> list[str]:
    return [tok.id_to_token(i) for i in tok.encode(text)]


def vocab(tok: Tokenizer) -> set[str]:
    return {tok.id_to_token(i) for i in range(tok.vocab_size)}


def test_whitespace_vocabulary_is_every_distinct_word_plus_specials():
    tok = Tokenizer.train(["Hello, world! hello", "world  hello\tx-y"], split="whitespace")
    assert vocab(tok) == {UNK, EOS, "Hello,", "world!", "hello", "world", "x-y"}
    assert (tok.unk_id, tok.eos_id) == (0, 1)
    assert tok.id_to_token(0) == UNK and tok.id_to_token(1) == EOS
    assert tok.id_to_token(2) == "hello"  # most frequent first
    assert tok.split == "whitespace" and tok.lowercase is False


def test_whitespace_vocabulary_counts_literal_unk_once():
    tok = Tokenizer.train(TEXT, split="whitespace")
    words = {w for line in TEXT for w in line.split()}
    assert vocab(tok) == words | {EOS}
    assert tok.vocab_size == len(words) + 1


def test_words_split_separates_punctuation_but_keeps_contractions():
    line = 'Today, due to my job (and don\'t ask) mother-in-law paid $3.5 ... "yes".'
    tok = Tokenizer.train([line])
    assert tokens(tok, line) == [
        "Today",
        ",",
        "due",
        "to",
        "my",
        "job",
        "(",
        "and",
        "don't",
        "ask",
        ")",
        "mother-in-law",
        "paid",
        "$",
        "3.5",
        "...",
        '"',
        "yes",
        '"',
        ".",
    ]
    assert tok.split == "words"


def test_lowercase_merges_cases_and_survives_save_load(tmp_path):
    tok = Tokenizer.train(["The the THE cat"], lowercase=True)
    assert vocab(tok) == {UNK, EOS, "the", "cat"}
    loaded = Tokenizer.from_str(tok.to_str())
    assert loaded.lowercase is True and loaded.split == "words"
    assert tokens(loaded, "tHe CAT.") == ["the", "cat", UNK]


def test_no_lowercase_keeps_cases_apart():
    tok = Tokenizer.train(["The the"])
    assert vocab(tok) == {UNK, EOS, "The", "the"}


def test_vocab_size_cap_counts_the_specials_and_keeps_most_frequent():
    lines = ["a a a a b b b c c d", "<unk> <unk> <unk> <unk> <unk>"]
    tok = Tokenizer.train(lines, split="whitespace", vocab_size=4)
    assert vocab(tok) == {UNK, EOS, "a", "b"}
    assert tokens(tok, "a b c d") == ["a", "b", UNK, UNK]


def test_frequency_ties_break_alphabetically():
    tok = Tokenizer.train(["z y x y x z"], split="whitespace", vocab_size=4)
    assert vocab(tok) == {UNK, EOS, "x", "y"}


def test_min_freq_drops_rare_words():
    tok = Tokenizer.train(["a a b c c c d"], split="whitespace", min_freq=2)
    assert vocab(tok) == {UNK, EOS, "a", "c"}


@pytest.mark.parametrize("split", ["words", "whitespace"])
def test_unknown_words_and_literal_marks(split):
    tok = Tokenizer.train(["a b <unk>", "c <eos> d"], split=split)
    ids = tok.encode("a zebra <unk> <eos> d")
    assert ids[1] == tok.unk_id and ids[2] == tok.unk_id
    assert tok.eos_id not in ids  # a literal <eos> in text is no end of line
    assert ids[0] == tok.token_to_id("a") and ids[-1] == tok.token_to_id("d")


def test_token_to_id_of_unknown_is_none():
    tok = Tokenizer.train(["a"])
    assert tok.token_to_id("zebra") is None
    assert tok.token_to_id(EOS) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"split": "chars"}, {"vocab_size": -1}, {"vocab_size": 2}, {"min_freq": 0}],
)
def test_bad_settings_are_bad_input(kwargs):
    with pytest.raises(BadInput):
        Tokenizer.train(["a b"], **kwargs)


@pytest.mark.parametrize("lines", [[], ["", "   ", "\t"], ["<unk> <unk>"]])
def test_no_words_is_bad_input(lines):
    with pytest.raises(BadInput, match="no words"):
        Tokenizer.train(lines, split="whitespace")


def test_save_load_roundtrip_and_plain_tokenizers_reads_the_file(tmp_path):
    tok = Tokenizer.train(TEXT)
    path = tmp_path / "tokenizer.json"
    path.write_text(tok.to_str(), encoding="utf-8")
    loaded = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    assert loaded.vocab_size == tok.vocab_size
    np.testing.assert_array_equal(loaded.encode_lines(TEXT), tok.encode_lines(TEXT))
    hf = tokenizers.Tokenizer.from_file(str(path))
    assert hf.encode("The cat 's hat").ids == tok.encode("The cat 's hat").tolist()


def test_from_str_rejects_garbage_and_foreign_files():
    with pytest.raises(BadInput, match="garbage.json"):
        Tokenizer.from_str("{not json", "garbage.json")
    no_eos = tokenizers.Tokenizer(tokenizers.models.WordLevel({UNK: 0, "a": 1}, unk_token=UNK))
    no_eos.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    with pytest.raises(BadInput, match=EOS):
        Tokenizer.from_str(no_eos.to_str())


def test_encode_lines_puts_eos_after_every_line(monkeypatch):
    monkeypatch.setattr(tokenizer_module, "BATCH_LINES", 2)  # cross batch boundaries
    tok = Tokenizer.train(TEXT)
    ids = tok.encode_lines(TEXT)
    assert ids.dtype == np.int32 and ids.ndim == 1
    expected = np.concatenate([np.append(tok.encode(line), tok.eos_id) for line in TEXT])
    np.testing.assert_array_equal(ids, expected)
    assert np.count_nonzero(ids == tok.eos_id) == len(TEXT)
    assert ids[-1] == tok.eos_id
    assert tok.encode("").dtype == np.int32 and tok.encode("").size == 0
    assert tok.encode_lines([]).dtype == np.int32 and tok.encode_lines([]).size == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(alphabet="ab ,.'<>\t", max_size=12), max_size=8))
def test_encode_lines_matches_encode_line_by_line(lines):
    tok = Tokenizer.train(["a b , . ' < > ab a'b"])
    expected = [i for line in lines for i in [*tok.encode(line).tolist(), tok.eos_id]]
    assert tok.encode_lines(iter(lines)).tolist() == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Today , due to my job .", "Today, due to my job."),
        ("Really ? Yes ! Fine ; ok : done", "Really? Yes! Fine; ok: done"),
        ("it 's mine and I do n't care", "it's mine and I don't care"),
        ("a ( b ) [ c ] { d } 5 % $ 7", "a (b) [c] {d} 5% $7"),
        ('he said " hi there " and left', 'he said "hi there" and left'),
        ("“ hi ” she said ...", "“hi” she said..."),
        ("1 @,@ 000 guest @-@ star 3 @.@ 5", "1,000 guest-star 3.5"),
    ],
)
def test_decode_spacing(text, expected):
    tok = Tokenizer.train([text], split="whitespace")
    assert tok.decode(tok.encode(text)) == expected


def test_decode_of_words_split_restores_ordinary_text():
    line = 'Today, due to my job (and family), I need a loan: "now".'
    tok = Tokenizer.train([line])
    assert tok.decode(tok.encode(line)) == line


def test_decode_leaves_special_tokens_as_text():
    tok = Tokenizer.train(["a b"])
    a, b = tok.token_to_id("a"), tok.token_to_id("b")
    assert tok.decode([a, tok.unk_id, b, tok.eos_id]) == "a <unk> b <eos>"


def test_id_outside_vocabulary_is_bad_input():
    tok = Tokenizer.train(["a"])
    with pytest.raises(BadInput):
        tok.id_to_token(tok.vocab_size)
