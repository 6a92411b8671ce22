"""Training text tokenised once into a cache of token ids, memory-mapped for training.

A corpus larger than memory is read as a stream: once to build the vocabulary, once to
encode it. Both are kept in the cache folder under keys made of a digest of the text's
bytes: the vocabulary (`vocabulary-<key>.json`) with what else makes it (the tokenizer
settings), the ids (`<key>.npy`, int32) with the vocabulary they are in, their count and
checksum beside them (`<key>.json`). So the same text with the same settings is never
tokenised again, the same text in the same vocabulary (a validation file, the old text of a
continued model) shares its ids, and a changed text never meets stale ones. The ids are
opened with `np.load(mmap_mode="r")`: they take disk and the system's file cache, not the
process's memory (`data.release`). Every file is written to a temporary name and renamed
into place; ids that do not match their checksum (damaged, truncated, half replaced) are
encoded again, never trusted.
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


def folder() -> Path:
    """Where the cache lives: wordlstm/tokens in $XDG_CACHE_HOME, else in ~/.cache (the
    system's place for files that can be made again; the store holds models only)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "wordlstm" / "tokens"


class Text:
    """Training files to tokenise through the cache, known by a digest of their bytes; use
    it as a context manager (standard input, "-", is copied to a temporary file, deleted at
    its end, since the text is read more than once). BadInput naming a file that cannot be
    read as text."""

    def __init__(self, files: list[str]) -> None:
        for path in files:
            if path != STDIN:
                open_input(path).close()  # a missing file fails before any is read
        self._files = files
        self._spools: list[str] = []
        self.sources: list[tuple[str, str]] = []  # (name, path) of each file
        self.digest = ""

    def __enter__(self) -> "Text":
        self._root = folder()
        digest = hashlib.sha256(f"wordlstm text {VERSION}\n".encode())
        try:
            for path in self._files:
                name = path
                if path == STDIN:
                    name, path = "stdin", self._spool()
                self.sources.append((name, path))
                digest.update(_file_digest(path).encode())
        except BaseException:
            self.__exit__()
            raise
        self.digest = digest.hexdigest()
        return self

    def __exit__(self, *exc) -> None:
        for spool in self._spools:
            os.unlink(spool)

    def _spool(self) -> str:
        """A copy of standard input in a temporary file in the cache folder."""
        self._root.mkdir(parents=True, exist_ok=True)
        spool = tempfile.NamedTemporaryFile(dir=self._root, prefix=".stdin-", delete=False)
        self._spools.append(spool.name)
        with spool:
            shutil.copyfileobj(sys.stdin.buffer, spool, READ_BYTES)
        return spool.name

    def pieces(self) -> Iterator[tuple[str, bool]]:
        """The text of the files in order, as `text.training_pieces` gives it."""
        return chain.from_iterable(training_pieces(path, name) for name, path in self.sources)

    def vocabulary(self, how: str, build: Callable[[Iterable[str]], Tokenizer]) -> Tokenizer:
        """The tokenizer that `build` makes from the text's pieces, where `how` (JSON) says
        what else it depends on (the settings); from the cache if built before."""
        file = self._root / f"vocabulary-{self._key(how)}.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, BadInput):
            saved = json.loads(file.read_text(encoding="utf-8"))
            if saved["version"] == VERSION:
                return Tokenizer.from_str(saved["tokenizer"])
        tokenizer = build(text for text, _ in self.pieces())
        self._write(file, json.dumps({"version": VERSION, "tokenizer": tokenizer.to_str()}))
        return tokenizer

    def token_ids(self, tokenizer: Tokenizer) -> np.ndarray:
        """The read-only, memory-mapped int32 ids of the text's lines in this vocabulary,
        each line followed by the end-of-line id; from the cache if its ids are there and
        match their checksum, else encoded into it."""
        name = self._key(tokenizer.to_str())
        ids = _cached(self._root, name)
        if ids is not None:
            return ids
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            with _replacing(self._root / f"{name}.npy") as stream:
                tokens, checksum = _write_ids(stream, tokenizer.encode_pieces(self.pieces()))
        except OSError as e:
            raise _unwritable(self._root, e) from None
        self._write(
            self._root / f"{name}.json",
            json.dumps({"version": VERSION, "tokens": tokens, "sha256": checksum}),
        )
        return np.load(self._root / f"{name}.npy", mmap_mode="r", allow_pickle=False)

    def _key(self, what: str) -> str:
        """The name of the cache's files for this text and `what`."""
        return hashlib.sha256(f"{self.digest}\n{what}".encode()).hexdigest()

    def _write(self, file: Path, text: str) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            with _replacing(file) as stream:
                stream.write(text.encode())
        except OSError as e:
            raise _unwritable(self._root, e) from None


def _unwritable(root: Path, e: OSError) -> RunFailure:
    return RunFailure(f"cannot write the token cache in {root}: {first_line(e)}")


def _file_digest(path: str) -> str:
    """The sha256 of a file's bytes; BadInput naming it if it cannot be read."""
    with open_input(path) as stream:
        try:
            return _digest(stream)
        except OSError as e:
            raise BadInput(f"{path}: cannot read ({first_line(e)})") from None


def _digest(stream) -> str:
    """The sha256 of the rest of a binary stream, read in blocks of READ_BYTES."""
    digest = hashlib.sha256()
    while block := stream.read(READ_BYTES):
        digest.update(block)
    return digest.hexdigest()


def _cached(root: Path, name: str) -> np.ndarray | None:
    """The ids cached under `name` if both its files are there and the ids match the
    checksum recorded with them; None otherwise."""
    try:
        meta = json.loads((root / f"{name}.json").read_text(encoding="utf-8"))
        if meta.get("version") != VERSION:
            return None
        ids = np.load(root / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        if ids.dtype != DTYPE or ids.shape != (meta["tokens"],):
            return None
        if _ids_digest(root / f"{name}.npy", ids.offset) != meta["sha256"]:
            return None
        return ids
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _ids_digest(file: Path, offset: int) -> str:
    """The sha256 of a .npy file's data (from `offset`), read with plain reads, so that
    checking it does not map the file into memory."""
    with open(file, "rb") as stream:
        stream.seek(offset)
        return _digest(stream)


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
