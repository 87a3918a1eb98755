"""SIGTERM as a named interruption, so a stopped run says what stopped it.

``kill``, ``ray job stop``, a batch scheduler and Kubernetes stop a command with SIGTERM, whose default
action ends the process without running any cleanup (``FAILED`` then said only ``SystemExit: 1``).
Inside :func:`sigterm_raises`, SIGTERM raises :class:`Interrupted` instead: the run directory's
``FAILED`` reads ``Interrupted: terminated by SIGTERM``, a private Ray is shut down, and the command
exits with 128 + 15.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal. A ``KeyboardInterrupt``, so code that already cleans up
    after Ctrl-C (Ray Tune saves its state) does the same here, and ``except Exception`` never swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.exit_code = 128 + signum  # the shell's convention for a signal's death


_seen: list[int] = []  # signals the handler below raised as Interrupted in this process


def named(err: BaseException) -> BaseException:
    """``err``, or the :class:`Interrupted` it stands for. A signal that arrives while the main thread is blocked in
    Ray (``ray.get``, a streaming generator) runs the handler inside Ray's C++ wait, and Ray re-raises what it raised
    as a plain ``KeyboardInterrupt``: without this the signal's name and exit code would be lost (exit 130)."""
    if type(err) is KeyboardInterrupt and _seen:
        return Interrupted(_seen[-1])
    return err


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, the first SIGTERM raises :class:`Interrupted` in the main thread; a second one
    (cleanup taking too long) ends the process as SIGTERM normally does."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _seen.append(signum)
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    _seen.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def kept_sigterm() -> Iterator[None]:
    """Keep the SIGTERM handler across the block: ``ray.init`` replaces the driver's with ``sys.exit``."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
