"""Token streams cut into parallel batches and truncated-BPTT chunks, as NumPy arrays."""

from collections.abc import Iterator

import numpy as np


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cuts one token stream into batch_size parallel streams, one per column (rows, B).
    The tail that does not fill a row is dropped, as in the PyTorch example."""
    rows = len(ids) // batch_size
    return np.ascontiguousarray(ids[: rows * batch_size].reshape(batch_size, rows).T)


def chunks(
    data: np.ndarray, bptt: int, start: int = 0
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(row, inputs, targets) for consecutive chunks of at most bptt rows; the targets are
    the inputs shifted one step ahead. The state carries over from one chunk to the next."""
    for i in range(start, len(data) - 1, bptt):
        n = min(bptt, len(data) - 1 - i)
        yield i, data[i : i + n], data[i + 1 : i + 1 + n]


def hold_out(ids: np.ndarray, eos_id: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Splits a stream into training text and a validation tail of about `fraction` of the
    tokens, cut at a line end so no line is split."""
    cut = int(len(ids) * (1 - fraction))
    ends = np.flatnonzero(ids[:cut] == eos_id)
    if len(ends):
        cut = int(ends[-1]) + 1
    return ids[:cut], ids[cut:]
