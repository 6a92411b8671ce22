"""Corpora larger than memory: a training text is tokenised once, streaming, into a cache of
token ids that training memory-maps; the cache is reused while the text and settings stay,
built again when damaged, resumes exactly, and training's memory does not grow with the
corpus."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    TINY,
    assert_one_error_line,
    cli_env,
    max_difference,
    run,
    start_training,
    training_lines,
)

from wordlstm import data, identity, tokencache
from wordlstm import tokenizer as tokenizer_module
from wordlstm.data import batchify, hold_out
from wordlstm.tokenizer import Tokenizer

HOW = json.dumps({"train": {"split": "words", "lowercase": False}})


def zipf_text(path: Path, lines: int, seed: int = 0, vocab: int = 5000) -> Path:
    """`lines` lines of 5 to 20 words drawn from a Zipfian vocabulary of `vocab` words."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)])
    ranks = np.minimum(rng.zipf(1.2, size=lines * 20), vocab) - 1
    lengths = rng.integers(5, 21, size=lines)
    cuts = np.cumsum(lengths)[:-1]
    path.write_text(
        "\n".join(" ".join(w) for w in np.split(words[ranks[: lengths.sum()]], cuts)) + "\n"
    )
    return path


def train_vocabulary(text):
    return Tokenizer.train(text)


def cached(path: Path, how: str = HOW, build=train_vocabulary):
    """The tokenizer and ids of a file through the cache, as training gets them."""
    with tokencache.Text([str(path)]) as text:
        tokenizer = text.vocabulary(how, build)
        return tokenizer, text.token_ids(tokenizer)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "wordlstm" / "tokens"


@pytest.fixture
def encodings(monkeypatch) -> list[int]:
    """Counts the texts encoded (one entry each)."""
    encoded, encode = [], Tokenizer.encode_pieces

    def counted(self, pieces):
        encoded.append(1)
        return encode(self, pieces)

    monkeypatch.setattr(Tokenizer, "encode_pieces", counted)
    return encoded


def test_cached_ids_are_those_of_the_text_read_whole(tmp_path, cache, monkeypatch):
    text = tmp_path / "t.txt"
    long_line = " ".join(f"word{i % 37}," for i in range(200))  # read in pieces
    text.write_bytes(
        "\ufeffThe cat sat.\r\n\n<eos> on the mat\n".encode() + long_line.encode() + b"\nend"
    )
    monkeypatch.setenv("WORDLSTM_PIECE_BYTES", "64")
    tokenizer, ids = cached(text)
    lines = training_lines([text])
    assert lines[-2] == long_line
    whole = Tokenizer.train(lines)
    assert tokenizer.to_str() == whole.to_str()
    assert isinstance(ids, np.memmap) and not ids.flags.writeable
    np.testing.assert_array_equal(ids, whole.encode_lines(lines))


def test_encoding_goes_in_batches_of_bounded_text(monkeypatch):
    """Long pieces (a file of long lines) make smaller batches, so that memory stays bounded;
    the ids are those of the whole text encoded at once."""
    monkeypatch.setattr(tokenizer_module, "BATCH_CHARS", 1000)
    tokenizer = Tokenizer.train(["a b c"])
    pieces = [("a b " * 100, k % 3 == 2) for k in range(30)]  # 400 characters each
    batches = list(tokenizer.encode_pieces(pieces))
    assert len(batches) == 10  # 3 pieces reach 1,000 characters
    lines = ["".join(text for text, _ in pieces[k : k + 3]) for k in range(0, 30, 3)]
    np.testing.assert_array_equal(np.concatenate(batches), tokenizer.encode_lines(lines))


def test_the_cache_is_reused_until_the_text_changes(tmp_path, cache, encodings):
    text = zipf_text(tmp_path / "t.txt", 200)
    tokenizer, first = cached(text)
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.iterdir()}
    assert len(files) == 3 and encodings == [1]  # the vocabulary, the ids and their record

    def not_again(text):
        raise AssertionError("the vocabulary built again")

    again = cached(text, build=not_again)[1]
    np.testing.assert_array_equal(again, first)
    copy = tmp_path / "copy.txt"  # the same bytes elsewhere: the same ids
    copy.write_bytes(text.read_bytes())
    np.testing.assert_array_equal(cached(copy, build=not_again)[1], first)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.iterdir()} == files
    assert encodings == [1]
    with pytest.raises(AssertionError, match="built again"):  # other settings
        cached(text, HOW.replace("words", "whitespace"), not_again)
    text.write_text(text.read_text().replace("w1 ", "w2 ", 1))
    with pytest.raises(AssertionError, match="built again"):  # another text
        cached(text, build=not_again)
    with tokencache.Text([str(text)]) as changed:  # not even in the same vocabulary
        changed.token_ids(tokenizer)
    assert encodings == [1, 1]


def flip_a_byte(file: Path) -> None:
    with open(file, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        byte = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([byte[0] ^ 1]))


def truncate(file: Path) -> None:
    os.truncate(file, file.stat().st_size - 8)


def garble(file: Path) -> None:
    file.write_text("{not json")


@pytest.mark.parametrize(
    "damage, file",
    [
        (flip_a_byte, "ids"),
        (truncate, "ids"),
        (garble, "record"),
        (Path.unlink, "record"),
        (garble, "vocabulary"),
        (truncate, "vocabulary"),
    ],
)
def test_a_damaged_cache_is_built_again(tmp_path, cache, encodings, damage, file):
    text = zipf_text(tmp_path / "t.txt", 200)
    tokenizer, first = cached(text)
    expected = np.array(first)
    (npy,) = cache.glob("*.npy")
    (vocabulary,) = cache.glob("vocabulary-*.json")
    damage({"ids": npy, "record": npy.with_suffix(".json"), "vocabulary": vocabulary}[file])
    built = []
    again, ids = cached(text, build=lambda t: built.append(1) or Tokenizer.train(t))
    assert built == ([1] if file == "vocabulary" else [])
    assert encodings == ([1] if file == "vocabulary" else [1, 1])
    assert again.to_str() == tokenizer.to_str()
    np.testing.assert_array_equal(ids, expected)
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_batches_and_the_validation_tail_are_views_of_the_mapped_ids(tmp_path, cache):
    _, ids = cached(zipf_text(tmp_path / "t.txt", 300))
    train, valid = hold_out(ids, 1, 0.1)
    rows = batchify(train, 7)
    for part in (train, valid, rows):
        assert np.shares_memory(part, ids) and isinstance(part, np.memmap)
    np.testing.assert_array_equal(rows, np.array(train[: rows.size]).reshape(7, -1).T)


@pytest.mark.parametrize("seed", range(6))
def test_the_validation_tail_is_cut_at_the_last_line_end_before_a_tenth(monkeypatch, seed):
    monkeypatch.setattr(data, "BLOCK_TOKENS", 5)  # the search goes back over many blocks
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 9, size=int(rng.integers(1, 200)))
    ids[rng.random(len(ids)) < rng.choice([0.0, 0.02, 0.3])] = 1
    train, valid = hold_out(ids, 1, 0.1)
    cut = int(len(ids) * 0.9)
    ends = np.flatnonzero(ids[:cut] == 1)  # the rule, read off the whole stream
    expected = int(ends[-1]) + 1 if len(ends) else cut
    assert len(train) == expected and len(train) + len(valid) == len(ids)


MAPPED = """
import resource, sys
import numpy as np
from wordlstm import identity
from wordlstm.data import batchify, chunks
ids = np.load(sys.argv[1], mmap_mode="r")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
total = 0
for _, x, y in chunks(batchify(ids, 20), 35):
    total += int(x.sum())
identity.data_digest("", ids[:-1000], ids[-1000:])
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, total)
"""


def test_reading_mapped_ids_through_does_not_fill_memory(tmp_path):
    """Training's chunks and the data digest read a mapped stream whole; the pages read are
    released as they go, so the process's peak memory grows by far less than the stream."""
    size = 32 << 20  # tokens: 128 MB
    ids = np.lib.format.open_memmap(tmp_path / "ids.npy", "w+", np.int32, (size,))
    ids[:] = np.arange(size, dtype=np.int32) % 1000
    ids.flush()
    del ids
    proc = subprocess.run(
        [sys.executable, "-c", MAPPED, str(tmp_path / "ids.npy")],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    grown, total = map(int, proc.stdout.split())
    assert total > 0
    assert grown < 64 << 20, f"peak memory grew by {grown >> 20} MB reading a 128 MB stream"


PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def peak_of_training(text: Path, home: Path, *args: str) -> int:
    """The peak resident memory (bytes) of `wordlstm train TEXT *TINY ARGS`."""
    command = [sys.executable, "-m", "wordlstm", "train", str(text), *TINY, *args]
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *command],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def test_training_memory_does_not_grow_with_the_corpus(tmp_path, cache):
    """Two corpora, the larger one with 60 times the tokens: training on it (time-bounded),
    tokenising it included, peaks well below the memory of its ids above the small one's
    (the tokeniser's batches and the mapped pages in use cost a few MB that do not grow
    with the corpus); a second run on it reads the cache and tokenises nothing."""
    small = zipf_text(tmp_path / "small.txt", 10_000, seed=1)
    large = zipf_text(tmp_path / "large.txt", 600_000, seed=2)
    budget = ["--epochs", "1", "--max-time", "2", "--valid", str(small)]
    peak_small = peak_of_training(small, tmp_path / "store", "--model", "s", *budget)
    cached = set(cache.glob("*.npy"))
    peak_large = peak_of_training(large, tmp_path / "store", "--model", "l", *budget)
    npy = max(set(cache.glob("*.npy")) - cached, key=lambda p: p.stat().st_size)
    ids = npy.stat().st_size
    assert ids > 24 << 20
    assert peak_large - peak_small < ids // 2, (peak_small >> 20, peak_large >> 20, ids >> 20)
    files = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.iterdir()}
    peak_of_training(large, tmp_path / "store", "--model", "l2", *budget)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.iterdir()} == files


def test_a_killed_run_resumes_exactly_from_the_cache(tmp_path, cache, corpus):
    home = tmp_path / "store"
    text = tmp_path / "long.txt"
    text.write_text(corpus.read_text() * 6)
    run("train", str(text), *TINY, "--epochs", "3", "--model", "ref", home=home, check=True)
    (npy,) = cache.glob("*.npy")
    before = npy.stat()
    proc = start_training(home, text, "k")
    proc.kill()
    proc.wait(timeout=60)
    proc.stderr.close()
    resumed = run("train", "--model", "k", "--resume", home=home, check=True)
    assert "saved k" in resumed.err
    assert max_difference(home / "k", home / "ref") <= 1e-6
    after = npy.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list(cache.glob("*.npy")) == [npy]
    saved = json.loads((home / "k" / "training.json").read_text())["fingerprint"]["data"]
    ids = np.load(npy, mmap_mode="r")
    tokenizer = Tokenizer.from_str((home / "k" / "tokenizer.json").read_text())
    assert saved == identity.data_digest(tokenizer.to_str(), *hold_out(ids, 1, 0.1))


def test_a_missing_validation_file_fails_before_the_text_is_tokenised(tmp_path, cache, corpus):
    missing = tmp_path / "missing.txt"
    proc = run("train", str(corpus), *TINY, "--valid", str(missing), home=tmp_path / "store")
    assert_one_error_line(proc, 2, "missing.txt: no such file")
    assert not cache.exists() or list(cache.iterdir()) == []
