"""Ctrl-C in a sweep: every process stops quietly, its running trials recorded to run again, and one
line says what happened.

Inside :func:`quiet_interrupt` the first SIGINT sends the process's output to /dev/null (Lightning's,
W&B's and Optuna's shutdown messages and tracebacks) and raises KeyboardInterrupt, as Python does.
Python can lose that exception: raised inside a garbage-collection callback it is only reported as
"ignored", and the training goes on. So until the code that handles it calls :func:`interrupt_taken`,
the process interrupts itself again every :data:`REPEAT_SECONDS`; once taken, further SIGINTs (a
second Ctrl-C, the parent's) are ignored, so that recording the trials is not cut short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Seconds between the repeated interrupts of a process whose KeyboardInterrupt was lost.
REPEAT_SECONDS = 3.0
#: How many times at most (then the parent's deadline, or another Ctrl-C, decides).
REPEATS = 20

_taken = threading.Event()


def interrupt_taken() -> None:
    """Say that a KeyboardInterrupt reached code that handles it: stop repeating it, ignore further ones."""
    _taken.set()


@contextlib.contextmanager
def quiet_interrupt() -> Iterator[None]:
    """Ctrl-C (SIGINT) inside the context: output to /dev/null until the context ends, KeyboardInterrupt
    raised (and raised again until :func:`interrupt_taken`). A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved: list[int] = []

    def repeat() -> None:
        for _ in range(REPEATS):
            if _taken.wait(REPEAT_SECONDS):
                return
            os.kill(os.getpid(), signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        if _taken.is_set():
            return
        if not saved:
            devnull = os.open(os.devnull, os.O_WRONLY)
            for fd in (1, 2):
                saved.append(os.dup(fd))
                os.dup2(devnull, fd)
            os.close(devnull)
            threading.Thread(target=repeat, name="repeat-interrupt", daemon=True).start()
        raise KeyboardInterrupt

    _taken.clear()
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _taken.set()  # stops the repeating thread
        if saved:
            for stream in (sys.stdout, sys.stderr):  # what was written meanwhile goes to /dev/null too
                with contextlib.suppress(Exception):
                    stream.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


__all__ = ["REPEATS", "REPEAT_SECONDS", "interrupt_taken", "quiet_interrupt"]
