"""Stopping a long run cleanly: SIGTERM (timeout, kill, a scheduler's pre-emption) stops it like Ctrl-C, and the
final checkpoint is written with both signals held off.

    with stop_on_sigterm():
        try:
            ...                       # the training loop
        except KeyboardInterrupt:
            with signals_ignored():
                save_checkpoint(...)  # a second signal cannot cut this save short

Why both: GNU `timeout` signals the command and then its whole process group, so the main process sees SIGTERM
twice; the second one used to land inside the final save and abort it.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # handlers can only be set there


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Inside the block the first SIGTERM raises KeyboardInterrupt; repeats are ignored (one stop is enough)."""
    if not _main_thread():
        yield
        return
    fired = False

    def handler(*_):
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM inside the block (a checkpoint save takes about a second)."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
