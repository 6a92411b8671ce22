"""Token streams cut into parallel batches and truncated-BPTT chunks, as NumPy arrays."""

import os
from collections.abc import Iterator

import numpy as np

RELEASE_TOKENS = 1 << 20  # a memory-mapped stream's pages are dropped after this many tokens
BLOCK_TOKENS = 1 << 20  # a stream is read whole in blocks of this many tokens


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cuts one token stream into batch_size parallel streams, one per column (rows, B).
    The tail that does not fill a row is dropped, as in the PyTorch example. A view, not a
    copy: a memory-mapped stream stays on disk."""
    rows = len(ids) // batch_size
    return ids[: rows * batch_size].reshape(batch_size, rows).T


def chunks(
    data: np.ndarray, bptt: int, start: int = 0
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(row, inputs, targets) for consecutive chunks of at most bptt rows; the targets are
    the inputs shifted one step ahead. The state carries over from one chunk to the next.
    The pages read of a memory-mapped `data` are released every RELEASE_TOKENS tokens."""
    every = max(1, RELEASE_TOKENS // (bptt * max(1, data.shape[1])))
    for k, i in enumerate(range(start, len(data) - 1, bptt), start=1):
        n = min(bptt, len(data) - 1 - i)
        yield i, data[i : i + n], data[i + 1 : i + 1 + n]
        if k % every == 0:
            release(data)


def blocks(ids: np.ndarray) -> Iterator[np.ndarray]:
    """A stream in consecutive blocks of BLOCK_TOKENS, its pages released after each, so
    that reading a memory-mapped stream whole costs no resident memory."""
    for i in range(0, len(ids), BLOCK_TOKENS):
        yield ids[i : i + BLOCK_TOKENS]
        release(ids)


def release(ids: np.ndarray) -> None:
    """Drops the pages of the file a memory-mapped array maps from this process's memory:
    they stay in the system's file cache and come back from there when read again, so a
    stream larger than memory can be read through. Does nothing for an array in memory."""
    import mmap  # here: only training reads a stream through

    base = ids
    while base is not None and not isinstance(getattr(base, "_mmap", None), mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(mmap, "MADV_DONTNEED"):
        base._mmap.madvise(mmap.MADV_DONTNEED)


def parallel_chunks(ids, batch_size: int, bptt: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) of `chunks(batchify(ids, batch_size), bptt)`, sliced from `ids`
    chunk by chunk, so that a stream kept on disk (a TokenSpool) is never read whole."""
    rows = len(ids) // batch_size
    for i in range(0, rows - 1, bptt):
        n = min(bptt, rows - 1 - i)
        block = np.stack([ids[b * rows + i : b * rows + i + n + 1] for b in range(batch_size)], 1)
        yield block[:-1], block[1:]


class TokenSpool:
    """A token stream in a temporary file, so that its length costs disk, not memory:
    append int32 ids, then slice it as an array (step 1), as `parallel_chunks` does."""

    def __init__(self) -> None:
        import tempfile  # here: reading a prompt or a model needs no spool

        self._file = tempfile.TemporaryFile()
        self._length = 0

    def append(self, ids: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self._length += len(ids)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, part: slice) -> np.ndarray:
        start, stop, _ = part.indices(self._length)
        self._file.flush()
        size = np.dtype(np.int32).itemsize
        data = os.pread(self._file.fileno(), max(0, stop - start) * size, start * size)
        return np.frombuffer(data, dtype=np.int32)

    def __enter__(self) -> "TokenSpool":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


def hold_out(ids: np.ndarray, eos_id: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Splits a stream into training text and a validation tail of about `fraction` of the
    tokens, cut at a line end so no line is split. Both are views of `ids`."""
    cut = int(len(ids) * (1 - fraction))
    for stop in range(cut, 0, -BLOCK_TOKENS):  # back from the cut to the line end before it
        begin = max(0, stop - BLOCK_TOKENS)
        ends = np.flatnonzero(ids[begin:stop] == eos_id)
        if len(ends):
            cut = begin + int(ends[-1]) + 1
            break
    return ids[:cut], ids[cut:]
