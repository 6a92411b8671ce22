"""How many threads NumPy's matrix products use: set at run time in the OpenBLAS that NumPy
loaded (found among the libraries mapped into the process, called through ctypes), chosen
by a setting, else by the environment, else by the load on the machine (read again each epoch
and every RECHECK_SECONDS).

A matrix product splits its work between the threads and waits for the slowest one, so a
thread that shares its core with another busy process holds all of them back: on a busy
machine one thread trains faster than two.
"""

import contextlib
import ctypes
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wordlstm.errors import SettingError

ENVIRONMENT = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")  # read by OpenBLAS as it loads
MOST_BY_DEFAULT = 2  # more threads hardly speed up products of a few hundred rows
SAMPLES = 3  # readings of the runnable processes, SAMPLE_GAP seconds apart: the fewest counts
SAMPLE_GAP = 0.01
RECHECK_SECONDS = 10.0  # while the count follows the load, it is chosen again this often


def check_threads(threads: int | None) -> None:
    """SettingError unless `threads` is None (not given) or at least 1."""
    if threads is not None and (type(threads) is not int or threads < 1):
        raise SettingError("{threads} must be a whole number, at least 1")


def default_threads(busy_others: int, cores: int) -> int:
    """The threads to use when neither a setting nor the environment says: one per core
    that no other busy process takes, at least 1 and at most MOST_BY_DEFAULT."""
    return max(1, min(MOST_BY_DEFAULT, cores - busy_others))


@dataclass
class Threads:
    """The thread count of a run: `given` (None: not given) wins over the environment, and
    without either `choose` follows the load (before each epoch, and every RECHECK_SECONDS
    with `follow`); `count` is the count in use, None where NumPy has no OpenBLAS to set."""

    given: int | None = None
    count: int | None = None
    chosen: float = -math.inf  # when the count was last chosen (time.monotonic)

    def __post_init__(self) -> None:
        check_threads(self.given)

    @property
    def by_load(self) -> bool:
        """Whether the count follows the load: neither given nor in the environment."""
        return self.given is None and not any(os.environ.get(name) for name in ENVIRONMENT)

    @contextlib.contextmanager
    def used(self) -> Iterator[None]:
        """Inside, OpenBLAS runs with this run's count (`choose`); after, with the one it had."""
        blas = openblas()
        before = None if blas is None else blas.get()
        try:
            self.choose()
            yield
        finally:
            if before is not None:
                blas.set(before)

    def choose(self) -> int | None:
        """Sets the count for what runs next (an epoch): the given one, else the
        environment's (left as OpenBLAS read it), else `default_threads` for the load now.
        Returns the count in use."""
        self.chosen = time.monotonic()
        blas = openblas()
        if blas is None:
            return None
        if self.given is not None:
            blas.set(self.given)
        elif self.by_load:
            blas.set(default_threads(busy_others(), cores()))
        self.count = blas.get()
        return self.count

    def follow(self) -> None:
        """Chooses again if the count follows the load and RECHECK_SECONDS have passed since
        it was last chosen: a long epoch adapts to processes that start or end in it."""
        if time.monotonic() - self.chosen >= RECHECK_SECONDS and self.by_load:
            self.choose()


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def busy_others() -> int:
    """How many threads of other processes are running or waiting for a core now (the
    fewest of SAMPLES readings of /proc/loadavg's runnable count, less this process's own
    runnable threads), so that a moment's blip does not count; 0 where it cannot be read."""
    counts = []
    for k in range(SAMPLES):
        if k:
            time.sleep(SAMPLE_GAP)
        try:
            runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(runnable - _own_runnable())
    return max(0, min(counts))


def _own_runnable() -> int:
    """This process's threads that are running or runnable (state R)."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        count += stat[stat.rindex(")") + 2] == "R"  # the state follows the command name
    return count


class OpenBLAS:
    """The thread-count functions of a loaded OpenBLAS library."""

    def __init__(self, library: ctypes.CDLL, suffix: str, prefix: str) -> None:
        self._set = getattr(library, f"{prefix}_set_num_threads{suffix}")
        self._get = getattr(library, f"{prefix}_get_num_threads{suffix}")
        self._set.argtypes, self._set.restype = [ctypes.c_int], None
        self._get.argtypes, self._get.restype = [], ctypes.c_int

    def set(self, threads: int) -> None:
        self._set(threads)

    def get(self) -> int:
        return int(self._get())


# the names the thread functions have in NumPy's builds of OpenBLAS: (prefix, suffix)
_NAMES = [
    (prefix, suffix) for prefix in ("scipy_openblas", "openblas") for suffix in ("64_", "_64", "")
]
_found: list[OpenBLAS | None] = []


def openblas() -> OpenBLAS | None:
    """The OpenBLAS that NumPy loaded, or None if it uses another BLAS (found once)."""
    if not _found:
        import numpy  # noqa: F401  (it loads its BLAS)

        _found.append(_find())
    return _found[0]


def _find() -> OpenBLAS | None:
    """The first OpenBLAS among the libraries mapped into this process."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = dict.fromkeys(
        line.split(None, 5)[-1]
        for line in maps.splitlines()
        if "openblas" in line.rsplit("/", 1)[-1].lower() and ".so" in line
    )
    for path in paths:
        try:
            library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
        except OSError:
            continue
        for prefix, suffix in _NAMES:
            if hasattr(library, f"{prefix}_set_num_threads{suffix}"):
                return OpenBLAS(library, suffix, prefix)
    return None
