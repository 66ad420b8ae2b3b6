"""ControlLoop: observe -> policy -> scheduler -> safety -> robot, one tick at a time; holds on any doubt.

The same object drives robosuite (SimRobot, simulated time) and the Franka (wall-clock time). Model swaps load on
a worker thread and take effect between ticks; queued actions of the old model are dropped; a bundle that fails
to load leaves the running model in place.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from dm1_ros.runtime.cadence import CadenceMonitor
from dm1_ros.runtime.onnx_policy import OnnxPolicy
from dm1_ros.runtime.safety import SafetyFilter, Watchdog
from dm1_ros.runtime.scheduler import ActionScheduler

log = logging.getLogger("dm1_ros.loop")


@dataclass
class TickResult:
    action: np.ndarray
    held: bool
    reason: str | None = None
    planned: bool = False


@dataclass
class LoopStats:
    ticks: int = 0
    holds: dict = field(default_factory=dict)
    swaps: int = 0
    failed_swaps: int = 0


class ControlLoop:
    def __init__(self, robot, policy: OnnxPolicy, scheduler: ActionScheduler, safety: SafetyFilter,
                 watchdog: Watchdog | None = None, cadence: CadenceMonitor | None = None,
                 clock: Callable[[], float] | None = None):
        """clock: seconds on the same time base as observation stamps; None uses the observation's own stamp
        (simulation: time advances one control period per tick)."""
        self.robot = robot
        self.policy = policy
        self.scheduler = scheduler
        self.safety = safety
        self.watchdog = watchdog
        self.cadence = cadence or CadenceMonitor(robot.rate_hz)
        self.clock = clock
        self.stats = LoopStats()
        self._pending: OnnxPolicy | None = None
        self._planned_stamp: float | None = None  # the observation the current plan came from
        self._lock = threading.Lock()
        self.swap_errors: list[str] = []

    # --- model swap -------------------------------------------------------------------------------------------
    def request_swap(self, bundle_dir: str, **policy_kwargs) -> threading.Thread:
        """Load `bundle_dir` on a worker thread; it replaces the policy between two ticks once loaded."""
        def load():
            try:
                new = OnnxPolicy(bundle_dir, **policy_kwargs)
                new.manifest.check_observation_spec(self.robot.observation_spec)
            except Exception as exc:  # the old model keeps running
                self.stats.failed_swaps += 1
                self.swap_errors.append(f"{bundle_dir}: {exc}")
                log.error("model swap refused, keeping %s: %s", self.policy.model_id, exc)
                return
            with self._lock:
                self._pending = new

        thread = threading.Thread(target=load, name="model-swap", daemon=True)
        thread.start()
        return thread

    def _apply_pending_swap(self) -> None:
        with self._lock:
            new, self._pending = self._pending, None
        if new is not None:
            log.info("model swap: %s -> %s", self.policy.model_id, new.model_id)
            self.policy = new
            self.scheduler.clear()
            self._planned_stamp = None
            self.stats.swaps += 1

    def reset(self) -> None:
        """Forget queued actions and the last plan (a new episode, or after a stop)."""
        self.scheduler.clear()
        self._planned_stamp = None

    # --- one tick -----------------------------------------------------------------------------------------------
    def _hold(self, reason: str) -> TickResult:
        self.stats.holds[reason] = self.stats.holds.get(reason, 0) + 1
        with self.cadence.stage("send"):
            self.robot.hold()
        return TickResult(self.safety.hold_action(), held=True, reason=reason)

    def tick(self) -> TickResult:
        with self.cadence.tick():
            self._apply_pending_swap()
            self.stats.ticks += 1
            with self.cadence.stage("observe"):
                obs = self.robot.observe()
            now = self.clock() if self.clock else obs.stamp
            if self.watchdog is not None:
                self.watchdog.observation(obs.stamp)
                reason = self.watchdog.check(now)
                if reason:
                    return self._hold(reason)
            planned = False
            # Plan once per observation: commands may run faster than the camera (200 Hz vs 30 fps), and
            # re-running the policy on the same frame only costs time.
            if self.scheduler.needs_plan(now) and obs.stamp != self._planned_stamp:
                with self.cadence.stage("infer"):
                    try:
                        chunk = self.policy.predict(obs)
                    except Exception as exc:  # bad input or a failing model: hold and report
                        log.error("policy failed: %s", exc)
                        return self._hold("policy_error")
                if not np.all(np.isfinite(chunk.actions)):
                    return self._hold("nonfinite_policy_output")
                self.scheduler.add(chunk, now if self.clock else obs.stamp)
                self._planned_stamp = obs.stamp
                planned = True
            with self.cadence.stage("schedule"):
                action = self.scheduler.action(now)
            if action is None:
                return self._hold("no_valid_action")
            # An action is a delta over one policy period (the chunk's spacing), however often commands go out.
            action = self.safety.filter(action, obs.proprio[:3], 1.0 / self.scheduler.config.rate_hz)
            if self.watchdog is not None:
                self.watchdog.command(now)
            with self.cadence.stage("send"):
                self.robot.apply(action)
            return TickResult(action, held=False, planned=planned)

    def run(self, max_ticks: int, realtime: bool = False, stop: Callable[[], bool] | None = None) -> LoopStats:
        period = 1.0 / self.robot.rate_hz
        next_tick = time.perf_counter()
        for _ in range(max_ticks):
            if stop is not None and stop():
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
