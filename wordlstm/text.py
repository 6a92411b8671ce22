"""Reading user text: strict for training files, forgiving for text to score or complete.

Lines are split on "\\n" only (not on the other breaks `str.splitlines` knows, such as
\\x0b or \\u2028, which occur inside real lines), and one trailing "\\r" is dropped so
Windows files read the same.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TypeVar

from wordlstm.errors import BadInput

STDIN = "-"
SNIFF_BYTES = 8192  # a NUL byte in this many leading bytes marks a file as binary
BOM = "\ufeff"
T = TypeVar("T")


def read_training_lines(paths: list[str]) -> list[str]:
    """All lines of the training files in order ("-" reads stdin).

    Returns a list because training reads the text twice: once to build the vocabulary,
    once to encode it. Any unusable file is a BadInput naming it.
    """
    lines: list[str] = []
    for path in paths:
        lines.extend(_lines(_decode(path, _read_bytes(path))))
    return lines


def iter_input_lines(stream: BinaryIO) -> Iterator[str]:
    """The lines of an untrusted byte stream, each yielded as soon as it has arrived.

    Never fails on content: invalid UTF-8 becomes U+FFFD, NUL bytes and other controls
    pass through as they are.
    """
    first = True
    for raw in stream:  # a binary stream iterates by b"\n"-ended lines, reading lazily
        line = raw.decode("utf-8", errors="replace").removesuffix("\n").removesuffix("\r")
        yield line.removeprefix(BOM) if first else line
        first = False


def argument_text(arg: str) -> str:
    """A command-line argument as text: bytes that were not UTF-8 (which Python keeps as
    lone surrogates) become U+FFFD, as in `iter_input_lines`."""
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_bytes(path: str) -> bytes:
    """The whole content of a file or of stdin, with OS errors as one-line BadInput."""
    if path == STDIN:
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, not a text file") from None
    except PermissionError:
        raise BadInput(f"{path}: permission denied") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror or e})") from None


def _decode(path: str, data: bytes) -> str:
    """The UTF-8 text of a training file; BadInput if it is binary, not UTF-8 or empty."""
    name = "stdin" if path == STDIN else path
    if b"\0" in data[:SNIFF_BYTES]:
        raise BadInput(f"{name}: looks like a binary file (it has NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadInput(f"{name}: not UTF-8 text (invalid byte at offset {e.start})") from None
    text = text.removeprefix(BOM)
    if not text.strip():
        raise BadInput(f"{name}: is empty (no words to train on)")
    return text


def _lines(text: str) -> list[str]:
    """Split on "\\n" only; a final newline does not start another line."""
    lines = text.removesuffix("\n").split("\n")
    return [line.removesuffix("\r") for line in lines]


def ready_batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Groups items into lists of at most `size` without waiting for more: each list holds
    the next item and whatever else has already arrived. A pipe that trickles is answered
    item by item, one that floods in full batches. A background thread does the reading;
    an exception it meets is raised here, after the items before it."""
    pending: queue.Queue = queue.Queue(maxsize=4 * size)
    end = object()

    def pump() -> None:
        try:
            for item in items:
                pending.put(item)
        except BaseException as e:  # handed over to the consumer, in order
            pending.put(_Raised(e))
        pending.put(end)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        batch = [pending.get()]
        while len(batch) < size and not pending.empty():
            batch.append(pending.get())
        stop = next(
            (i for i, item in enumerate(batch) if item is end or isinstance(item, _Raised)), None
        )
        if stop is None:
            yield batch
            continue
        if stop:
            yield batch[:stop]
        if isinstance(batch[stop], _Raised):
            raise batch[stop].error
        return


class _Raised:
    """An exception met by the reading thread, queued in its place."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
