"""SafetyFilter and Watchdog: what stands between a policy's output and the robot. On doubt, hold.

Actions are OSC-style 7-d deltas (dx dy dz in units of `pos_scale` metres, axis-angle rotation in units of
`rot_scale` radians, gripper -1 open .. +1 closed), as in robomimic and robosuite.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class SafetyConfig:
    workspace_min: list[float] = field(default_factory=lambda: [0.25, -0.45, 0.02])  # m, robot base frame
    workspace_max: list[float] = field(default_factory=lambda: [0.8, 0.45, 0.7])
    max_translation_per_tick_m: float = 0.02
    max_rotation_per_tick_rad: float = 0.15
    max_linear_velocity_mps: float = 0.5
    max_angular_velocity_radps: float = 1.5
    gripper_range: list[float] = field(default_factory=lambda: [-1.0, 1.0])
    pos_scale: float = 0.05  # metres per unit of action
    rot_scale: float = 0.5  # radians per unit of action

    def __post_init__(self):
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")


class SafetyFilter:
    """filter(action, eef_pos, dt) -> a safe action; every intervention is counted in `interventions`."""

    def __init__(self, config: SafetyConfig | None = None):
        self.config = config or SafetyConfig()
        self.interventions: Counter[str] = Counter()
        self.last_gripper = -1.0
        self.lo = np.asarray(self.config.workspace_min, np.float64)
        self.hi = np.asarray(self.config.workspace_max, np.float64)

    def hold_action(self) -> np.ndarray:
        """Stay where you are, keep the gripper as it is."""
        return np.array([0, 0, 0, 0, 0, 0, self.last_gripper], np.float32)

    def filter(self, action: np.ndarray, eef_pos: np.ndarray, dt: float) -> np.ndarray:
        c = self.config
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (7,):
            self.interventions["bad_shape"] += 1
            return self.hold_action()
        if not np.all(np.isfinite(a)):
            self.interventions["nonfinite"] += 1
            return self.hold_action()
        out = a.copy()
        # translation: per-tick and velocity limits, then the workspace box
        delta = a[:3] * c.pos_scale
        limit = min(c.max_translation_per_tick_m, c.max_linear_velocity_mps * dt)
        norm = np.linalg.norm(delta)
        if norm > limit:
            delta *= limit / norm
            self.interventions["translation_clamped"] += 1
        eef = np.asarray(eef_pos, np.float64)
        # Inside the box a step may reach its walls; outside it (after a disturbance) only steps back in are allowed.
        lowest = np.where(eef < self.lo, 0.0, self.lo - eef)
        highest = np.where(eef > self.hi, 0.0, self.hi - eef)
        boxed = np.clip(delta, lowest, highest)
        if not np.allclose(boxed, delta):
            self.interventions["workspace_clamped"] += 1
            delta = boxed
        out[:3] = delta / c.pos_scale
        # rotation
        rot = a[3:6] * c.rot_scale
        limit = min(c.max_rotation_per_tick_rad, c.max_angular_velocity_radps * dt)
        norm = np.linalg.norm(rot)
        if norm > limit:
            rot *= limit / norm
            self.interventions["rotation_clamped"] += 1
        out[3:6] = rot / c.rot_scale
        g = float(np.clip(a[6], *c.gripper_range))
        if g != a[6]:
            self.interventions["gripper_clamped"] += 1
        out[6] = self.last_gripper = g
        return out.astype(np.float32)


class Watchdog:
    """Holds when the observation or the command is older than its limit."""

    def __init__(self, observation_timeout_s: float = 0.2, command_timeout_s: float = 0.2):
        self.observation_timeout_s = observation_timeout_s
        self.command_timeout_s = command_timeout_s
        self.last_observation: float | None = None
        self.last_command: float | None = None
        self.trips: Counter[str] = Counter()

    def observation(self, stamp: float) -> None:
        self.last_observation = stamp

    def command(self, stamp: float) -> None:
        self.last_command = stamp

    def check(self, now: float) -> str | None:
        """None when all is fresh, else the reason to hold."""
        if self.last_observation is None or now - self.last_observation > self.observation_timeout_s:
            reason = "stale_observation"
        elif self.last_command is not None and now - self.last_command > self.command_timeout_s:
            reason = "stale_command"
        else:
            return None
        self.trips[reason] += 1
        return reason
