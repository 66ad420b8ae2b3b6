"""rclpy.clock (stand-in): every clock reads the stand-in world's settable time."""
from __future__ import annotations

from enum import IntEnum

from rclpy import _standin


class ClockType(IntEnum):
    UNINITIALIZED = 0
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


class Clock:
    def __init__(self, *, clock_type=ClockType.SYSTEM_TIME):
        self.clock_type = clock_type

    def now(self):
        from rclpy.time import Time

        return Time(nanoseconds=_standin.now_ns(), clock_type=self.clock_type)


class ROSClock(Clock):
    def __init__(self):
        super().__init__(clock_type=ClockType.ROS_TIME)

    @property
    def ros_time_is_active(self) -> bool:
        return False
