"""SafetyFilter and Watchdog: what stands between a policy's output and the robot. On doubt, hold.

Actions are OSC-style 7-d deltas (dx dy dz in units of `pos_scale` metres, axis-angle rotation in units of
`rot_scale` radians, gripper -1 open .. +1 closed), as in robomimic and robosuite.
"""
from __future__ import annotations

import math
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
        for name in ("workspace_min", "workspace_max", "gripper_range"):
            value = getattr(self, name)
            want = 2 if name == "gripper_range" else 3
            if len(value) != want or not all(math.isfinite(v) for v in value):
                raise ValueError(f"safety.{name}: expected {want} finite numbers, got {value}")
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max}")
        if self.gripper_range[0] > self.gripper_range[1]:
            raise ValueError(f"safety.gripper_range {self.gripper_range}: low end above the high end")
        for name in ("max_translation_per_tick_m", "max_rotation_per_tick_rad", "max_linear_velocity_mps",
                     "max_angular_velocity_radps", "pos_scale", "rot_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"safety.{name} must be a positive finite number, got {value!r} "
                                 "(NaN would switch the limit off, a negative one would reverse it)")


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
        eef = np.asarray(eef_pos, np.float64).reshape(-1)
        if eef.shape != (3,) or not np.all(np.isfinite(eef)):
            self.interventions["nonfinite_position"] += 1  # the box cannot be checked against an unknown position
            return self.hold_action()
        out = a.copy()
        # translation: per-tick and velocity limits, then the workspace box
        delta = a[:3] * c.pos_scale
        limit = min(c.max_translation_per_tick_m, c.max_linear_velocity_mps * dt)
        norm = np.linalg.norm(delta)
        if norm > limit:
            delta *= limit / norm
            self.interventions["translation_clamped"] += 1
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
    """Says when what it watches is not fresh, so the robot holds: the newest stamp fed to it (the capture time of
    an observation, the arrival time of a command) is older than `timeout_s` at `now`, lies ahead of `now` by more
    than `future_tolerance_s` (one frame stamped in the future must not blind the age check), is not finite, or
    went backwards (a clock or a recording that jumped). A stamp once seen ahead of the clock stays untrusted when
    the clock catches up with it (a camera that froze after one such frame would otherwise look fresh again).
    The reason is 'stale_<name>'; trips are counted."""

    def __init__(self, timeout_s: float = 0.2, name: str = "observation", future_tolerance_s: float = 0.05):
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"watchdog timeout must be a positive number of seconds, got {timeout_s!r}")
        self.timeout_s = float(timeout_s)
        self.name = name
        self.future_tolerance_s = float(future_tolerance_s)
        self.trips: Counter[str] = Counter()
        self.clear()

    def clear(self) -> None:
        """Forget what was fed (a new episode whose clock starts again, a recovery)."""
        self.last: float | None = None
        self.newest: float | None = None
        self._went_back = False
        self._ahead: float | None = None  # the last stamp seen ahead of the clock

    def feed(self, stamp: float) -> None:
        stamp = float(stamp)
        if math.isfinite(stamp) and self.newest is not None and stamp < self.newest:
            self._went_back = True
        elif math.isfinite(stamp):
            self._went_back = False
            self.newest = stamp
        self.last = stamp

    def problem(self, now: float) -> str | None:
        """None when fresh, else what is wrong (for messages); does not count a trip."""
        if self.last is None:
            return f"no {self.name} yet"
        if not math.isfinite(self.last):
            return f"{self.name} stamp is {self.last}"
        if self._went_back:
            return f"{self.name} stamp went back from {self.newest:.3f} to {self.last:.3f}"
        age = now - self.last
        if age < -self.future_tolerance_s:
            self._ahead = self.last
            return f"{self.name} stamped {-age:.3f} s in the future"
        if self.last == self._ahead:
            return f"{self.name} stamp {self.last:.3f} was ahead of the clock when it arrived; it is not trusted"
        if age > self.timeout_s:
            return f"{self.name} {age:.3f} s old (limit {self.timeout_s} s)"
        return None

    def check(self, now: float) -> str | None:
        """None when fresh, else the reason to hold ('stale_<name>'), counted in `trips`."""
        if self.problem(now) is None:
            return None
        reason = f"stale_{self.name}"
        self.trips[reason] += 1
        return reason
