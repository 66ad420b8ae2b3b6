"""rclpy.qos (stand-in): profiles and policies, with the presets rclpy offers."""
from __future__ import annotations

from enum import IntEnum


class HistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2
    UNKNOWN = 3


class ReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2
    UNKNOWN = 3


class DurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2
    UNKNOWN = 3


class QoSProfile:
    def __init__(self, **kwargs):
        if "history" not in kwargs and "depth" not in kwargs:
            raise TypeError("History and/or depth settings are required to create a QoSProfile")
        self.history = HistoryPolicy(kwargs.get("history", HistoryPolicy.KEEP_LAST))
        self.depth = int(kwargs.get("depth", 0))
        if self.history == HistoryPolicy.KEEP_LAST and self.depth == 0 and "depth" in kwargs:
            pass
        self.reliability = ReliabilityPolicy(kwargs.get("reliability", ReliabilityPolicy.RELIABLE))
        self.durability = DurabilityPolicy(kwargs.get("durability", DurabilityPolicy.VOLATILE))

    def __repr__(self):
        return (f"QoSProfile(history={self.history.name}, depth={self.depth}, reliability={self.reliability.name}, "
                f"durability={self.durability.name})")

    def __eq__(self, other):
        return isinstance(other, QoSProfile) and vars(self) == vars(other)


qos_profile_sensor_data = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                     reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
qos_profile_system_default = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10)
qos_profile_services_default = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10)
qos_profile_parameters = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000)


class QoSPresetProfiles:
    class _P:
        def __init__(self, value):
            self.value = value

    SENSOR_DATA = _P(qos_profile_sensor_data)
    SYSTEM_DEFAULT = _P(qos_profile_system_default)
    SERVICES_DEFAULT = _P(qos_profile_services_default)


def as_profile(qos) -> QoSProfile:
    if isinstance(qos, QoSProfile):
        return qos
    if isinstance(qos, int) and not isinstance(qos, bool):
        return QoSProfile(depth=qos)
    raise TypeError("Expected QoSProfile or int, but received " + repr(type(qos)))
