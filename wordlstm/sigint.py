"""Ctrl-C during training: turned into a flag that training polls after each step, so that
it always stops where a state can be saved."""

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def deferred_sigint() -> Iterator[Callable[[], bool]]:
    """While inside, the first SIGINT (Ctrl-C) only makes the returned function true, for
    training to stop at the end of its step and save; a second one interrupts as usual.
    Outside the main thread, where Python runs no signal handlers, it is never true."""
    count = 0

    def handler(signum, frame) -> None:
        nonlocal count
        count += 1
        if count > 1:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: count > 0
    finally:
        signal.signal(signal.SIGINT, previous)
