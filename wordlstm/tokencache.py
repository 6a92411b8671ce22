"""Training text tokenised once into a cache of token ids, memory-mapped for training.

A corpus larger than memory is read as a stream twice, once to build the vocabulary and
once to encode it, and its ids are written to `<key>.npy` in the cache folder, with the
tokenizer and a checksum of the ids in `<key>.json`. The key is a digest of the text's bytes
and of what makes the vocabulary (the tokenizer settings, or the tokenizer it starts from),
so the same text with the same settings is never tokenised again, and a changed one never
meets stale ids. The ids are opened with `np.load(mmap_mode="r")`: they take disk and the
system's file cache, not the process's memory (`data.release`). Both files are written to a
temporary name and renamed into place; a cache whose ids do not match its checksum (damaged,
truncated, or half replaced) is built again, never trusted.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path

import numpy as np

from wordlstm.errors import BadInput, RunFailure, first_line
from wordlstm.text import STDIN, open_input, training_pieces
from wordlstm.tokenizer import Tokenizer

VERSION = 1  # of the cache's files: a new version's keys never meet an older version's files
READ_BYTES = 1 << 20  # the most of a file read at once to hash or copy it
DTYPE = np.dtype("<i4")

Vocabulary = Callable[[Iterable[str]], Tokenizer]  # builds the tokenizer from a text's pieces


def folder() -> Path:
    """Where the cache lives: wordlstm/tokens in $XDG_CACHE_HOME, else in ~/.cache (the
    system's place for files that can be made again; the store holds models only)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "wordlstm" / "tokens"


def token_ids(files: list[str], how: str, vocabulary: Vocabulary) -> tuple[Tokenizer, np.ndarray]:
    """The tokenizer and the read-only, memory-mapped int32 stream of the files' lines (each
    followed by the end-of-line id), from the cache if it holds them. `how` says what makes
    the vocabulary besides the text (the settings, as JSON); `vocabulary` makes it from the
    text's pieces, on a cache miss. BadInput naming a file that cannot be read as text."""
    for path in files:
        if path != STDIN:
            open_input(path).close()  # a missing file fails before any is read
    root = folder()
    with _readable(files, root) as sources:
        key = hashlib.sha256(f"wordlstm tokens {VERSION}\n{how}\n".encode())
        for _, path in sources:
            key.update(_file_digest(path).encode())
        name = key.hexdigest()
        found = _cached(root, name)
        if found is not None:
            return found
        return _build(root, name, sources, vocabulary)


@contextlib.contextmanager
def _readable(files: list[str], root: Path) -> Iterator[list[tuple[str, str]]]:
    """(name, path) of each file, with standard input copied to a temporary file (deleted
    afterwards): the text is read more than once."""
    spools = []
    try:
        sources = []
        for path in files:
            if path != STDIN:
                sources.append((path, path))
                continue
            root.mkdir(parents=True, exist_ok=True)
            spool = tempfile.NamedTemporaryFile(dir=root, prefix=".stdin-", delete=False)
            spools.append(spool.name)
            with spool:
                shutil.copyfileobj(sys.stdin.buffer, spool, READ_BYTES)
            sources.append(("stdin", spool.name))
        yield sources
    finally:
        for spool in spools:
            os.unlink(spool)


def _file_digest(path: str) -> str:
    """The sha256 of a file's bytes, read in bounded blocks."""
    digest = hashlib.sha256()
    with open_input(path) as stream:
        try:
            while block := stream.read(READ_BYTES):
                digest.update(block)
        except OSError as e:
            raise BadInput(f"{path}: cannot read ({first_line(e)})") from None
    return digest.hexdigest()


def _cached(root: Path, name: str) -> tuple[Tokenizer, np.ndarray] | None:
    """The tokenizer and ids cached under `name` if both files are there and the ids match
    the checksum recorded with them; None otherwise."""
    try:
        meta = json.loads((root / f"{name}.json").read_text(encoding="utf-8"))
        if meta.get("version") != VERSION:
            return None
        ids = np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        if ids.dtype != DTYPE or ids.shape != (meta["tokens"],):
            return None
        if _ids_digest(root / f"{name}.npy", ids.offset) != meta["sha256"]:
            return None
        return Tokenizer.from_str(meta["tokenizer"]), ids
    except (OSError, ValueError, KeyError, TypeError, AttributeError, BadInput):
        return None


def _ids_digest(file: Path, offset: int) -> str:
    """The sha256 of a .npy file's data (from `offset`), read with plain reads, so that
    checking it does not map the file into memory."""
    digest = hashlib.sha256()
    with open(file, "rb") as stream:
        stream.seek(offset)
        while block := stream.read(READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _build(
    root: Path, name: str, sources: list[tuple[str, str]], vocabulary: Vocabulary
) -> tuple[Tokenizer, np.ndarray]:
    """Builds the vocabulary from the text, encodes it into `name`.npy, writes `name`.json
    and returns them as `_cached` would."""

    def pieces() -> Iterator[tuple[str, bool]]:
        return chain.from_iterable(training_pieces(path, shown) for shown, path in sources)

    tokenizer = vocabulary(text for text, _ in pieces())
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _replacing(root / f"{name}.npy") as stream:
            tokens, checksum = _write_ids(stream, tokenizer.encode_pieces(pieces()))
        meta = {
            "version": VERSION,
            "tokens": tokens,
            "sha256": checksum,
            "tokenizer": tokenizer.to_str(),
        }
        with _replacing(root / f"{name}.json") as stream:
            stream.write(json.dumps(meta).encode())
    except OSError as e:
        raise RunFailure(f"cannot write the token cache in {root}: {first_line(e)}") from None
    ids = np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
    return tokenizer, ids


def _write_ids(stream, parts: Iterable[np.ndarray]) -> tuple[int, str]:
    """Writes the parts as one 1-D int32 .npy array; returns its length and the sha256 of
    its data. The header is written first with length 0 and then again with the length:
    numpy pads it so that it keeps its size."""
    header = _header(0)
    stream.write(header)
    tokens, digest = 0, hashlib.sha256()
    for part in parts:
        data = np.ascontiguousarray(part, dtype=DTYPE).tobytes()
        stream.write(data)
        digest.update(data)
        tokens += len(part)
    final = _header(tokens)
    if len(final) != len(header):
        raise OSError(f"the .npy header of {tokens} tokens does not fit")
    stream.seek(0)
    stream.write(final)
    return tokens, digest.hexdigest()


def _header(tokens: int) -> bytes:
    """The .npy header of a 1-D int32 array of `tokens` ids."""
    header = {"descr": DTYPE.str, "fortran_order": False, "shape": (tokens,)}
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


@contextlib.contextmanager
def _replacing(file: Path) -> Iterator:
    """A binary stream to a temporary file beside `file`, renamed to it once written and
    synced (removed if writing fails)."""
    stream = tempfile.NamedTemporaryFile(dir=file.parent, prefix=f".{file.name}.", delete=False)
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(stream.name, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(stream.name)
        raise
