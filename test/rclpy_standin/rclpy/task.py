"""rclpy.task (stand-in): Future."""
from __future__ import annotations

import threading


class Future:
    def __init__(self, *, executor=None):
        self._done = threading.Event()
        self._result = None
        self._exception = None
        self._cancelled = False
        self._callbacks = []

    def done(self) -> bool:
        return self._done.is_set()

    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        if not self.done():
            self._cancelled = True
            self._done.set()

    def result(self):
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self):
        return self._exception

    def set_result(self, result) -> None:
        self._result = result
        self._done.set()
        for cb in self._callbacks:
            cb(self)

    def set_exception(self, exception) -> None:
        self._exception = exception
        self._done.set()
        for cb in self._callbacks:
            cb(self)

    def add_done_callback(self, callback) -> None:
        if self.done():
            callback(self)
        else:
            self._callbacks.append(callback)
