"""rclpy.time (stand-in)."""
from __future__ import annotations

from rclpy.clock import ClockType
from rclpy.duration import Duration


class Time:
    def __init__(self, *, seconds=0, nanoseconds=0, clock_type=ClockType.SYSTEM_TIME):
        if seconds < 0 or nanoseconds < 0:
            raise ValueError("Seconds and nanoseconds must not be negative")
        self._nanoseconds = int(seconds * 1e9) + int(nanoseconds)
        self._clock_type = clock_type

    @property
    def nanoseconds(self) -> int:
        return self._nanoseconds

    @property
    def clock_type(self):
        return self._clock_type

    def seconds_nanoseconds(self):
        return self._nanoseconds // 10**9, self._nanoseconds % 10**9

    def to_msg(self):
        from builtin_interfaces.msg import Time as TimeMsg

        sec, nsec = self.seconds_nanoseconds()
        return TimeMsg(sec=sec, nanosec=nsec)

    @classmethod
    def from_msg(cls, msg, clock_type=ClockType.ROS_TIME):
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec, clock_type=clock_type)

    def __add__(self, other):
        if isinstance(other, Duration):
            return Time(nanoseconds=self._nanoseconds + other.nanoseconds, clock_type=self._clock_type)
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, Time):
            return Duration(nanoseconds=self._nanoseconds - other._nanoseconds)
        if isinstance(other, Duration):
            return Time(nanoseconds=self._nanoseconds - other.nanoseconds, clock_type=self._clock_type)
        return NotImplemented

    def __eq__(self, other):
        return isinstance(other, Time) and self._nanoseconds == other._nanoseconds

    def __lt__(self, other):
        return self._nanoseconds < other._nanoseconds

    def __le__(self, other):
        return self._nanoseconds <= other._nanoseconds

    def __repr__(self):
        return f"Time(nanoseconds={self._nanoseconds}, clock_type={self._clock_type.name})"
