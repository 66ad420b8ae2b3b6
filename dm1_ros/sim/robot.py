"""SimRobot: robosuite behind the same interface as the Franka bridge (observe, apply, hold, reset, close).

The control loop and the ROS nodes cannot tell it from the real robot. Time is simulated: one apply() advances
the world by one control period, and observation stamps are simulation seconds. Like FrankaBridge it owns the
safety filter (`self.safety`, workspace box in robosuite's world frame): every action goes through it in apply().
"""
from __future__ import annotations

import numpy as np

from dm1_ros.runtime.bundle import ObservationSpec
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.gripper import GripperLatch
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter
from dm1_ros.sim.env import SimConfig, SimEnv


OSC_POSITION_RANGE_M = 0.05  # robosuite OSC_POSE: an action of 1 moves the goal 5 cm


def sim_safety_config() -> SafetyConfig:
    """robosuite world frame (table top at z = 0.8 m). Step limits equal the OSC action range, so the filter does
    not change what the policy learned from the experts; it still rejects NaN and keeps the hand over the table."""
    return SafetyConfig(workspace_min=[-0.45, -0.5, 0.8], workspace_max=[0.45, 0.5, 1.4], max_translation_per_tick_m=0.05 * 3 ** 0.5,
                        max_rotation_per_tick_rad=0.5 * 3 ** 0.5, max_linear_velocity_mps=10.0, max_angular_velocity_radps=100.0)


class SimRobot:
    def __init__(self, config: SimConfig | None = None, gripper_latch: GripperLatch | None = None,
                 safety: SafetyConfig | None = None):
        """gripper_latch: hysteresis on the gripper channel, as on the Franka (None: the default latch).
        safety: the filter's limits (None: sim_safety_config())."""
        self.env = SimEnv(config)
        self.safety = SafetyFilter(safety or sim_safety_config())
        self.gripper_latch = gripper_latch or GripperLatch()
        self.rate_hz = self.env.config.control_rate_hz
        self._obs: Observation | None = None
        self.done = False
        self.success = False
        self.gripper = -1.0
        self._hold_position: np.ndarray | None = None  # where the current hold began

    @property
    def observation_spec(self) -> ObservationSpec:
        return self.env.observation_spec

    def reset(self, seed: int | None = None) -> Observation:
        self._obs = self.env.reset(seed=seed)
        self.done = self.success = False
        self.gripper = -1.0
        self._hold_position = None
        self.gripper_latch.reset()
        self.safety.last_gripper = -1.0
        return self._obs

    def observe(self) -> Observation:
        if self._obs is None:
            raise RuntimeError("SimRobot.observe() before reset()")
        return self._obs

    def apply(self, action: np.ndarray) -> None:
        """One 7-d OSC delta through the safety filter (limits per control period), then one simulation step."""
        self._hold_position = None
        self._step(action)

    def _step(self, action: np.ndarray) -> None:
        action = np.array(self.safety.filter(action, self.observe().proprio[:3], 1.0 / self.rate_hz), np.float64)
        action[6] = self.gripper_latch(float(action[6]))
        self._obs, _, self.done, info = self.env.step(action)
        self.success = bool(info["success"])
        self.gripper = float(action[6])

    def hold(self) -> None:
        """Keep the hand where the hold began, gripper unchanged: OSC deltas back to that position, as the Franka
        holds its last target. (A zero delta only damps the motion: a moving hand drifted on 7-14 mm, measured by
        bench/faults.py.)"""
        position = self.eef_position()
        if self._hold_position is None:
            self._hold_position = position
        delta = np.clip((self._hold_position - position) / OSC_POSITION_RANGE_M, -1.0, 1.0)
        self._step(np.array([*delta, 0, 0, 0, self.gripper]))

    def eef_position(self) -> np.ndarray:
        return self.observe().proprio[:3].astype(np.float64)

    def render(self, camera: str = "agentview", height: int = 256, width: int = 256) -> np.ndarray:
        return self.env.render(camera, height, width)

    def close(self) -> None:
        self.env.close()
