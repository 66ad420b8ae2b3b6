"""rclpy.duration (stand-in)."""
from __future__ import annotations


class Duration:
    def __init__(self, *, seconds=0, nanoseconds=0):
        self._nanoseconds = int(seconds * 1e9) + int(nanoseconds)

    @property
    def nanoseconds(self) -> int:
        return self._nanoseconds

    def to_msg(self):
        from builtin_interfaces.msg import Duration as DurationMsg

        return DurationMsg(sec=self._nanoseconds // 10**9, nanosec=self._nanoseconds % 10**9)

    @classmethod
    def from_msg(cls, msg):
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec)

    def __eq__(self, other):
        return isinstance(other, Duration) and self._nanoseconds == other._nanoseconds

    def __lt__(self, other):
        return self._nanoseconds < other._nanoseconds

    def __repr__(self):
        return f"Duration(nanoseconds={self._nanoseconds})"
