"""Reading user text: strict for training files, forgiving for text to score or complete.

Lines are split on "\\n" only (not on the other breaks `str.splitlines` knows, such as
\\x0b or \\u2028, which occur inside real lines), and one trailing "\\r" is dropped so
Windows files read the same.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Iterable, Iterator
from typing import BinaryIO, NamedTuple, TypeVar

from wordlstm.errors import BadInput, first_line

STDIN = "-"
SNIFF_BYTES = 8192  # a NUL byte in this many leading bytes marks a file as binary
BOM = "\ufeff"
BOM_BYTES = BOM.encode()
PIECE_BYTES = 1 << 16  # the most of one line read at once: a longer one comes in pieces
SHOWN_BYTES = 1 << 20  # the most of a long line kept to show it by
BLOCK_BYTES = 1 << 16  # one read from an input
T = TypeVar("T")


def training_pieces(path: str, name: str | None = None) -> Iterator[tuple[str, bool]]:
    """The text of a training file in order, as (text, whether it ends a line): a line, or
    a piece of a long one (`LineReader`: cut between words), so that memory stays bounded
    for any file. Lines end at "\\n" only, a "\\r" before it and a BOM at the start are
    dropped. BadInput naming the file (`name`, else its path; "-" is stdin) if it is binary,
    not UTF-8 or has no words."""
    name = name or ("stdin" if path == STDIN else path)
    words = False
    opened = contextlib.nullcontext(sys.stdin.buffer) if path == STDIN else open_input(path)
    with opened as stream:
        try:
            for line in LineReader([stream], _piece_bytes(), strict=True):
                for text, ends in line.pieces() if isinstance(line, LongLine) else [(line, True)]:
                    words = words or not text.isspace() and bool(text)
                    yield text, ends
        except BadInput as e:
            raise BadInput(f"{name}: {e}") from None
        except OSError as e:
            raise BadInput(f"{name}: cannot read ({first_line(e)})") from None
    if not words:
        raise BadInput(f"{name}: is empty (no words to train on)")


def read_lines(files: Iterable[str]) -> LineReader:
    """The lines of the files in order, "-" meaning stdin, read as untrusted text (a
    `LineReader`: long lines come in pieces)."""
    return LineReader(_streams(files), _piece_bytes())


def _streams(files: Iterable[str]) -> Iterator[BinaryIO]:
    """Each file opened in turn (and closed once read), "-" meaning stdin."""
    for name in files:
        if name == STDIN:
            yield sys.stdin.buffer
            continue
        try:
            stream = open(name, "rb")
        except OSError as e:
            raise BadInput(f"cannot read {name}: {e.strerror}") from None
        with stream:
            yield stream


def _piece_bytes() -> int:
    """How much of a line is read at once: WORDLSTM_PIECE_BYTES (for the tests, which
    compare a line read in small pieces with one read at once) or PIECE_BYTES."""
    value = os.environ.get("WORDLSTM_PIECE_BYTES", "")
    return int(value) if value.isdigit() and int(value) > 0 else PIECE_BYTES


def open_input(path: str) -> BinaryIO:
    """A file opened to read bytes, or stdin's ("-"; left open when closed), with OS errors
    as one-line BadInput naming the file."""
    if path == STDIN:
        return open(sys.stdin.fileno(), "rb", closefd=False)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, not a text file") from None
    except PermissionError:
        raise BadInput(f"{path}: permission denied") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({first_line(e)})") from None


def ready_batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Groups items into lists of at most `size` without waiting for more: each list holds
    the next item and whatever else has already arrived, as the items' `ready()` tells
    (a `LineReader`; items without it are all there). A pipe that trickles is answered item
    by item, one that floods in full batches. A `LongLine` ends its list, since the items
    after it come only once its pieces have been read. An exception met reading an item is
    raised after the list of the items before it."""
    it = iter(items)
    ready = getattr(it, "ready", lambda: True)
    for first in it:
        batch, error = [first], None
        try:
            while len(batch) < size and not isinstance(batch[-1], LongLine) and ready():
                item = next(it, _END)
                if item is _END:
                    break
                batch.append(item)
        except Exception as e:  # raised after the items before it, as if met on its own
            error = e
        yield batch
        if error is not None:
            raise error


_END = object()


class LineReader:
    """The lines of untrusted byte streams, one stream after another, each line yielded as
    soon as it has arrived. Never fails on content: invalid UTF-8 becomes U+FFFD, NUL bytes
    and other controls pass through as they are; a BOM at the start of a stream is dropped.

    Reading is bounded, and all of it happens in the calling thread (so Ctrl-C interrupts a
    wait, and no thread is left holding the stream): bytes are read from the file descriptor
    in blocks of BLOCK_BYTES, and a line longer than `piece_bytes` comes as a `LongLine`,
    read piece by piece. A piece ends after the last space or tab within its `piece_bytes`,
    so that no word is cut and the pieces' tokens are the line's; a run of more than
    `piece_bytes` bytes without either is cut at `piece_bytes` (at a character boundary).
    Iterating yields str (a whole line) or LongLine.

    `strict` reads text as a training file is read: BadInput (not naming the stream) for
    NUL bytes near the start (a binary file) or for invalid UTF-8, with its offset."""

    def __init__(
        self, streams: Iterable[BinaryIO], piece_bytes: int = PIECE_BYTES, strict: bool = False
    ) -> None:
        self._streams = iter(streams)
        self._piece_bytes = piece_bytes
        self._strict = strict
        self._buf = bytearray()
        self._pos = 0  # where the unread bytes of _buf start
        self._offset = 0  # where _buf starts in the stream
        self._fd: int | None = None
        self._stream: BinaryIO | None = None
        self._eof = True  # of the current stream; there is none yet
        self._first = False  # the next piece is the first of its stream
        self._next: _Piece | None = None  # a piece taken by ready()
        self._long: LongLine | None = None  # the long line being read, if any

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> str | LongLine:
        self._finish_long()
        piece = self._take(wait=True)
        if piece is None:
            raise StopIteration
        if piece.ends:
            return self._decode(piece)
        self._long = LongLine(self, self._decode(piece), len(piece.raw))
        return self._long

    def ready(self) -> bool:
        """Whether the next line, or the start of a long one, has arrived (or the input has
        ended), so that taking it does not wait."""
        if self._long is not None:
            return False
        if self._next is None or self._next is _NOT_READY:
            self._next = self._take(wait=False)
        return self._next is not _NOT_READY

    def next_piece(self) -> tuple[str, bool]:
        """The next piece of the long line being read: (text, whether it ends the line)."""
        piece = self._take(wait=True) or _Piece(b"", True, 0)
        text = self._decode(piece)
        self._long.took(text, len(piece.raw))
        if piece.ends:
            self._long = None
        return text, piece.ends

    def _finish_long(self) -> None:
        """Skips what its reader left unread of a long line."""
        while self._long is not None:
            self.next_piece()

    def _take(self, wait: bool):
        """The next piece; None at the end of all streams; _NOT_READY if not wait and it
        has not arrived."""
        if self._next is not None:
            piece, self._next = self._next, None
            if piece is not _NOT_READY:
                return piece
        while True:
            if self._first:
                self._drop_bom()
            piece = None if self._first else self._cut()
            if piece is not None:
                return piece
            if self._eof:
                if not self._open_next():
                    return None
            elif not wait and not self._readable():
                return _NOT_READY
            else:
                self._fill()

    def _cut(self) -> _Piece | None:
        """The next whole line or piece in the buffer, if it holds one."""
        buf, pos, limit, at = self._buf, self._pos, self._piece_bytes, self._offset + self._pos
        end = buf.find(b"\n", pos, pos + limit + 1)
        if end >= 0:
            self._pos = end + 1
            return _Piece(bytes(buf[pos:end]), True, at)
        if len(buf) - pos > limit:
            self._pos = _cut_point(buf, pos, limit)
            return _Piece(bytes(buf[pos : self._pos]), False, at)
        if self._eof and len(buf) > pos:
            self._pos = len(buf)
            return _Piece(bytes(buf[pos:]), True, at)
        return None

    def _decode(self, piece: _Piece) -> str:
        """Text of a piece; the piece that ends a line drops one "\r" before the newline."""
        raw = piece.raw.removesuffix(b"\r") if piece.ends else piece.raw
        if not self._strict:
            return raw.decode("utf-8", errors="replace")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            offset = piece.at + e.start
            raise BadInput(f"not UTF-8 text (invalid byte at offset {offset})") from None

    def _drop_bom(self) -> None:
        """Drops a byte order mark at the start of a stream, once enough has come to tell."""
        head = self._buf[self._pos : self._pos + len(BOM_BYTES)]
        if not self._eof and len(head) < len(BOM_BYTES) and BOM_BYTES.startswith(head):
            return  # it may still become one
        if head == BOM_BYTES:
            self._pos += len(BOM_BYTES)
        self._first = False

    def _fill(self) -> None:
        """Reads one block (waiting for it), keeping only the unread bytes."""
        del self._buf[: self._pos]
        self._offset += self._pos
        self._pos = 0
        if self._fd is not None:
            data = os.read(self._fd, BLOCK_BYTES)
        else:
            data = self._stream.read(BLOCK_BYTES)
        sniffed = max(0, SNIFF_BYTES - self._offset - len(self._buf))
        if self._strict and b"\0" in data[:sniffed]:
            raise BadInput("looks like a binary file (it has NUL bytes), not text")
        self._buf += data
        self._eof = not data

    def _readable(self) -> bool:
        """Whether a read would return without waiting."""
        return self._fd is None or bool(select.select([self._fd], [], [], 0)[0])

    def _open_next(self) -> bool:
        """Moves on to the next stream; False if there is none."""
        self._stream = next(self._streams, None)
        if self._stream is None:
            return False
        try:
            self._fd = self._stream.fileno()
        except (AttributeError, OSError):  # io.BytesIO and the like: read it as a stream
            self._fd = None
        self._buf.clear()
        self._pos = self._offset = 0
        self._eof = False
        self._first = True
        return True


class LongLine:
    """A line longer than a piece, read on demand: iterating `pieces()` (once) reads it to
    its end. `size` counts its bytes read so far; `start` keeps its first pieces, up to
    SHOWN_BYTES of them (`start_size`), to show the line by."""

    def __init__(self, reader: LineReader, first: str, size: int) -> None:
        self._reader = reader
        self._first = first
        self.start, self.start_size = first, size
        self.size = size

    def pieces(self) -> Iterator[tuple[str, bool]]:
        """(text, whether it ends the line) for each piece, from the first."""
        yield self._first, False
        ends = False
        while not ends:
            text, ends = self._reader.next_piece()
            yield text, ends

    def took(self, text: str, size: int) -> None:
        """Counts a further piece of `size` bytes; keeps it in `start` while that fits."""
        if self.start_size == self.size and self.size + size <= SHOWN_BYTES:
            self.start += text
            self.start_size += size
        self.size += size


_NOT_READY = object()


class _Piece(NamedTuple):
    """A line or a part of one: its bytes (no newline), whether it ends its line, and the
    offset of its first byte in its stream."""

    raw: bytes
    ends: bool
    at: int


def _cut_point(buf: bytearray, start: int, limit: int) -> int:
    """Where a piece of at most `limit` bytes from `start` ends: after its last space or
    tab, else at the limit moved back to the start of a UTF-8 character."""
    end = start + limit
    space = max(buf.rfind(b" ", start, end), buf.rfind(b"\t", start, end))
    if space >= start:
        return space + 1
    cut = end
    while cut > start and buf[cut] & 0xC0 == 0x80:  # a continuation byte
        cut -= 1
    return cut if cut > start else end
