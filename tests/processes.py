"""The CLI as a live process, for tests of signals, pipes and memory: every wait has a
timeout, and stdout is read straight from its file descriptor, so nothing depends on
PYTHONUNBUFFERED or on the test's own buffering."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell with the store at `home`, no colour, no
    PYTHONUNBUFFERED (the CLI must flush by itself), no debugging."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "WORDLSTM_DEBUG")}
    return env | {"WORDLSTM_HOME": str(home), "NO_COLOR": "1"} | extra


class Cli:
    """`python -m wordlstm ARGS` with its stdin on a pipe or on a pseudo-terminal that the
    test writes to, and its stdout and stderr on pipes."""

    def __init__(self, *args: str, home: Path, stdin: str = "pipe", **env: str) -> None:
        if stdin == "pty":
            self.writer, child_stdin = os.openpty()
        else:
            child_stdin, self.writer = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wordlstm", *args],
            stdin=child_stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(home, **env),
        )
        os.close(child_stdin)
        self.out = b""

    def send(self, data: bytes, timeout: float = 60) -> None:
        """Writes all of data to the child's stdin, failing if it stops reading."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([], [self.writer], [], left)[1], "stdin is stuck"
            view = view[os.write(self.writer, view[: 1 << 16]) :]

    def read_until(self, marker: bytes, timeout: float = 60) -> bytes:
        """Everything read from stdout up to and including the first `marker` after what
        was read before; fails after `timeout` seconds."""
        start = len(self.out)
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while marker not in self.out[start:]:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([fd], [], [], left)[0], f"no {marker!r} in time"
            chunk = os.read(fd, 1 << 16)
            assert chunk, f"stdout ended before {marker!r}: {self.out[start:]!r}"
            self.out += chunk
        end = self.out.index(marker, start) + len(marker)
        return self.out[start:end]

    def finish(self, timeout: float = 60) -> tuple[int, bytes, bytes]:
        """Closes stdin, waits for the exit: (status, all of stdout, all of stderr)."""
        os.close(self.writer)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self.out + out, err

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait(timeout=60)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        try:
            os.close(self.writer)
        except OSError:  # finish() closed it already
            pass
