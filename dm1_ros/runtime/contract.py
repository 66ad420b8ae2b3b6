"""The observation and action contracts every part speaks: sim, real robot, recordings, datasets, policies."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

PROPRIO_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
PROPRIO_DIMS = (3, 4, 2)
ACTION_NAMES = ("dx", "dy", "dz", "drx", "dry", "drz", "gripper")


@dataclass
class Observation:
    """images: name -> (H, W, 3) uint8, upright; proprio: (P,) float32; stamp: seconds of capture;
    points: name -> (N, 3) float32 point cloud in metres (runtime/pointcloud.py), for point-cloud policies."""

    images: dict[str, np.ndarray]
    proprio: np.ndarray
    stamp: float = 0.0
    points: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class ActionChunk:
    """actions: (Ta, Da) float32 in robot units; stamp: the observation's stamp; model_id: the bundle's id."""

    actions: np.ndarray
    stamp: float
    model_id: str
    latency_ms: float = 0.0
    extras: dict = field(default_factory=dict)


class Robot(Protocol):
    """What the control loop drives; SimRobot (robosuite) and FrankaBridge (franky) both provide it.

    apply() takes one 7-d delta action (OSC: dx dy dz in m / 0.05, axis-angle rotation / 0.5, gripper -1 open
    .. +1 closed) and runs it through the robot's own safety filter (`safety`, limits and workspace box in the
    robot's coordinates) before it moves anything; hold() keeps the current pose; observe() returns the latest
    Observation; observation_spec says what observe() provides. A robot that can fault on its own (FrankaBridge:
    a reflex, a lost connection) says so in `fault` (None when fine) and raises RuntimeError from apply().
    """

    rate_hz: float
    safety: "SafetyFilter"  # noqa: F821 - dm1_ros.runtime.safety.SafetyFilter

    def observe(self) -> Observation: ...

    def apply(self, action: np.ndarray) -> None: ...

    def hold(self) -> None: ...

    def reset(self, seed: int | None = None) -> Observation: ...

    def close(self) -> None: ...
