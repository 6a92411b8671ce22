"""The one place where arrays are created, so that `numpy` can later become `cupy`.

Model, optimizer and training code take `xp` from here instead of importing numpy for
array creation, and move arrays to and from the host with `to_host` / `from_host`.
"""

import ctypes

import numpy as xp

DTYPE = xp.float32


def keep_freed_memory() -> None:
    """Asks glibc's malloc to keep freed blocks of up to 32 MB for reuse instead of handing
    them back to the system, for the whole process: called by the command line's entry and
    at the start of training, never on import. Each step frees and allocates the same large
    arrays (gates, logits, gradients); by default they come back as fresh pages that the
    kernel must fault in and zero. A no-op where the C library has no mallopt (macOS, musl)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's largest allowed threshold
    mallopt(m_trim_threshold, 1 << 30)


def to_host(a) -> "xp.ndarray":
    """A NumPy array on the host (a no-op with NumPy, a copy with CuPy)."""
    return a


def from_host(a, dtype=None) -> "xp.ndarray":
    """An array on the compute device from a NumPy array."""
    return xp.asarray(a, dtype=dtype)
