"""rclpy.timer (stand-in): timers that come due on the stand-in clock; executors call them when due."""
from __future__ import annotations

from rclpy import _standin


class Timer:
    def __init__(self, callback, callback_group, timer_period_ns, clock, *, context=None):
        self.callback = callback
        self.callback_group = callback_group
        self._period_ns = int(timer_period_ns)
        self._clock = clock
        self._canceled = False
        self._last_ns = _standin.now_ns()

    @property
    def timer_period_ns(self) -> int:
        return self._period_ns

    @timer_period_ns.setter
    def timer_period_ns(self, value) -> None:
        self._period_ns = int(value)

    def cancel(self) -> None:
        self._canceled = True

    def is_canceled(self) -> bool:
        return self._canceled

    def reset(self) -> None:
        self._canceled = False
        self._last_ns = _standin.now_ns()

    def is_ready(self) -> bool:
        return not self._canceled and _standin.now_ns() - self._last_ns >= self._period_ns

    def time_until_next_call(self):
        if self._canceled:
            return None
        return max(0, self._last_ns + self._period_ns - _standin.now_ns())

    def _call(self) -> None:
        self._last_ns = _standin.now_ns()
        self.callback()

    def destroy(self) -> None:
        self._canceled = True
