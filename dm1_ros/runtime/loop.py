"""ControlLoop: the control pipeline in one process, observe -> Planner -> CommandExecutor -> robot, a tick at a time.

    loop = control_loop(robot, OnnxPolicy("models/lift_image"))   # blending from the bundle's manifest
    loop.tick()                                                      # or loop.run(n, realtime=True)

`dm1 run`, `dm1 eval` and `dm1 demo` drive the robot (SimRobot in simulated time, FrankaBridge in wall-clock
time) through it; the ROS nodes cut the same two objects apart at the /dm1/action_trajectory topic (policy_node
runs the Planner, the robot bridges the CommandExecutor). Model swaps load on a worker thread and take effect
between ticks; a bundle that fails to load leaves the running model in place.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dm1_ros.runtime.cadence import CadenceMonitor
from dm1_ros.runtime.executor import CommandExecutor
from dm1_ros.runtime.planner import Planner
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig

log = logging.getLogger("dm1_ros.loop")


@dataclass
class TickResult:
    action: np.ndarray | None  # what went to the robot (before its safety filter); None when held
    held: bool
    reason: str | None = None
    planned: bool = False  # the model ran this tick


@dataclass
class LoopStats:
    ticks: int = 0
    holds: dict = field(default_factory=dict)
    swaps: int = 0
    failed_swaps: int = 0


class ControlLoop:
    def __init__(self, robot, planner: Planner, executor: CommandExecutor | None = None,
                 cadence: CadenceMonitor | None = None, clock: Callable[[], float] | None = None):
        """clock: seconds on the time base of observation stamps; None uses each observation's own stamp
        (simulation: time advances one control period per tick)."""
        self.robot = robot
        self.planner = planner
        self.cadence = cadence or CadenceMonitor(robot.rate_hz)
        self.executor = executor or CommandExecutor(
            robot, ActionScheduler(SchedulerConfig(rate_hz=planner.manifest.control_rate_hz)), cadence=self.cadence)
        self.executor.cadence = self.cadence
        self.clock = clock
        self.ticks = 0
        self.swap_events: list = []  # SwapEvents since the caller last emptied the list

    # --- nouns ----------------------------------------------------------------------------------------------
    @property
    def policy(self):
        return self.planner.policy

    @property
    def safety(self):
        """The robot's safety filter (the only one in the pipeline)."""
        return self.robot.safety

    @property
    def stats(self) -> LoopStats:
        return LoopStats(self.ticks, dict(self.executor.holds), self.planner.swaps, self.planner.failed_swaps)

    @property
    def fault(self) -> str | None:
        return self.executor.fault

    # --- verbs ----------------------------------------------------------------------------------------------
    def request_swap(self, bundle_dir: str):
        """Load `bundle_dir` on a worker thread; it replaces the policy between two ticks once loaded."""
        return self.planner.request_swap(bundle_dir)

    def reset(self) -> None:
        """Forget queued actions and the last plan (a new episode, or after a stop)."""
        self.planner.reset()
        self.executor.reset()

    def tick(self) -> TickResult:
        with self.cadence.tick():
            self.swap_events += self.planner.poll_swap()
            self.ticks += 1
            with self.cadence.stage("observe"):
                obs = self.executor.observe()
            if obs is None:  # a robot that cannot be read: a fault, hold
                return TickResult(None, True, self.executor.hold("fault").reason)
            now = self.clock() if self.clock else obs.stamp
            start = time.perf_counter()
            plan = self.planner.step(obs, now)
            if plan.planned:  # "infer" counts the ticks that ran the model
                self.cadence.record("infer", time.perf_counter() - start)
            if plan.hold:
                self.executor.hold_now(plan.reason, now)
            elif plan.command is not None:
                self.executor.command(plan.command, now)
            tick = self.executor.tick(now, obs)
            return TickResult(tick.action, tick.held, tick.reason, plan.planned)

    def run(self, max_ticks: int, realtime: bool = False, stop: Callable[[], bool] | None = None) -> LoopStats:
        """Up to max_ticks ticks (realtime: paced at the robot's rate); ends early on `stop()` or a robot fault."""
        period = 1.0 / self.robot.rate_hz
        next_tick = time.perf_counter()
        for _ in range(max_ticks):
            if (stop is not None and stop()) or self.executor.fault:
                break
            self.tick()
            if realtime:
                next_tick += period
                delay = next_tick - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_tick = time.perf_counter()  # overran: do not try to catch up in a burst
        return self.stats


def control_loop(robot, policy, blending: str = "model", *, interpolate: bool = True, stale_after_s: float | None = None,
                 command_timeout_s: float = 0.3, camera_latency_s: float = 0.0, clock: Callable[[], float] | None = None,
                 cadence: CadenceMonitor | None = None, **planner_kwargs) -> ControlLoop:
    """The usual wiring: a Planner over `policy` checked against the robot's observation spec, and an executor
    whose scheduler places the policy's actions at its control rate (interpolated between them when the robot
    commands faster). stale_after_s: hold when the newest observation is older (wall-clock loops)."""
    planner = Planner(policy, blending, observation_spec=robot.observation_spec, max_observation_age_s=stale_after_s,
                      **planner_kwargs)
    cadence = cadence or CadenceMonitor(robot.rate_hz)
    scheduler = ActionScheduler(SchedulerConfig(rate_hz=planner.manifest.control_rate_hz, interpolate=interpolate,
                                                camera_latency_s=camera_latency_s))
    executor = CommandExecutor(robot, scheduler, command_timeout_s=command_timeout_s, cadence=cadence)
    return ControlLoop(robot, planner, executor, cadence=cadence, clock=clock)
