"""The one place where arrays are created, so that `numpy` can later become `cupy`.

Model, optimizer and training code take `xp` from here instead of importing numpy for
array creation, and move arrays to and from the host with `to_host` / `from_host`.
"""

import numpy as xp

DTYPE = xp.float32


def to_host(a) -> "xp.ndarray":
    """A NumPy array on the host (a no-op with NumPy, a copy with CuPy)."""
    return a


def from_host(a, dtype=None) -> "xp.ndarray":
    """An array on the compute device from a NumPy array."""
    return xp.asarray(a, dtype=dtype)
