"""rclpy.logging (stand-in): node loggers with rclpy's keyword arguments; lines are kept in rclpy._standin."""
from __future__ import annotations

import time
from enum import IntEnum

from rclpy import _standin


class LoggingSeverity(IntEnum):
    UNSET = 0
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50


class RcutilsLogger:
    def __init__(self, name: str = ""):
        self.name = name
        self._once: set = set()
        self._last: dict = {}
        self._level = LoggingSeverity.INFO

    def get_child(self, name: str) -> "RcutilsLogger":
        return RcutilsLogger(f"{self.name}.{name}" if self.name else name)

    def set_level(self, level) -> None:
        self._level = LoggingSeverity(level)

    def get_effective_level(self):
        return self._level

    def log(self, message, severity, *, throttle_duration_sec=None, throttle_time_source_type=None, once=False,
            skip_first=False, **kwargs) -> bool:
        key = (str(message), severity)
        if once:
            if key in self._once:
                return False
            self._once.add(key)
        if throttle_duration_sec:
            now = time.monotonic()
            caller = kwargs.get("_caller", key)
            if caller in self._last and now - self._last[caller] < throttle_duration_sec:
                return False
            self._last[caller] = now
        if severity < self._level:
            return False
        _standin.record(LoggingSeverity(severity).name, self.name, str(message))
        return True

    def debug(self, message, **kwargs):
        return self.log(message, LoggingSeverity.DEBUG, **kwargs)

    def info(self, message, **kwargs):
        return self.log(message, LoggingSeverity.INFO, **kwargs)

    def warning(self, message, **kwargs):
        return self.log(message, LoggingSeverity.WARN, **kwargs)

    warn = warning

    def error(self, message, **kwargs):
        return self.log(message, LoggingSeverity.ERROR, **kwargs)

    def fatal(self, message, **kwargs):
        return self.log(message, LoggingSeverity.FATAL, **kwargs)


def get_logger(name: str) -> RcutilsLogger:
    return RcutilsLogger(name)
