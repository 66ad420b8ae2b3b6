"""CommandExecutor: what the robot bridges (Franka, sim) run every control tick; no ROS, no torch.

Commands arrive as action sequences stamped with the time of the observation they came from (one trajectory
message = one ActionChunk). Every tick: observe the robot; hold on a stale command link (Watchdog), a stop, a
fault or when no action is meant for now (ActionScheduler, latest mode: the newest command wins; late actions are
dropped, short gaps interpolated); otherwise filter the action (SafetyFilter, unless the robot filters itself,
as FrankaBridge does) and apply it.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from dm1_ros.runtime.cadence import CadenceMonitor
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.safety import SafetyFilter, Watchdog
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig

log = logging.getLogger("dm1_ros.ros.executor")


@dataclass
class Tick:
    action: np.ndarray | None
    held: bool
    reason: str | None = None
    observation: Observation | None = None


class CommandExecutor:
    def __init__(self, robot, scheduler: ActionScheduler | None = None, safety: SafetyFilter | None = None,
                 watchdog: Watchdog | None = None, cadence: CadenceMonitor | None = None,
                 errors: tuple[type[BaseException], ...] = (RuntimeError,)):
        """safety: None when the robot filters every action itself (FrankaBridge.apply does).
        errors: exception types from the robot that mean 'fault: hold and report' rather than a crash."""
        self.robot = robot
        self.scheduler = scheduler or ActionScheduler(SchedulerConfig(rate_hz=robot.rate_hz))
        if self.scheduler.config.mode != "latest":
            raise ValueError("the bridge executes the newest command (blending happens in policy_node); "
                             f"scheduler mode must be 'latest', got {self.scheduler.config.mode!r}")
        self.safety = safety
        self.watchdog = watchdog or Watchdog()
        self.cadence = cadence or CadenceMonitor(robot.rate_hz)
        self.errors = errors
        self.holds: Counter[str] = Counter()
        self.commands = 0
        self.rejected = 0
        self.stopped = False
        self.fault: str | None = None
        self.last_action: np.ndarray | None = None

    # --- commands ---------------------------------------------------------------------------------------------
    def command(self, actions: np.ndarray, stamp: float, now: float, spacing_s: float | None = None,
                schedule_time: float | None = None) -> bool:
        """Queue one command (actions (N, 7) for stamp + k * spacing). False when refused (stopped, all late).
        schedule_time: as in tick(); lateness is judged at that instant."""
        if self.stopped or self.fault:
            self.rejected += 1
            return False
        if spacing_s is not None and abs(spacing_s * self.scheduler.config.rate_hz - 1.0) > 1e-6:
            log.info("command spacing %.4g s: scheduling at %.4g Hz", spacing_s, 1.0 / spacing_s)
            self.scheduler.config.rate_hz = 1.0 / spacing_s
            self.scheduler.clear()
        self.watchdog.command(now)
        self.commands += 1
        ok = self.scheduler.add(ActionChunk(np.asarray(actions, np.float32), stamp, "command"),
                                now if schedule_time is None else schedule_time)
        if not ok:
            self.rejected += 1
        return ok

    def newest_command_stamp(self) -> float | None:
        return self.scheduler.chunks[-1].stamp if self.scheduler.chunks else None

    # --- control ----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Hold from now on and forget queued commands, until resume()."""
        self.stopped = True
        self.scheduler.clear()

    def resume(self) -> None:
        self.stopped = False
        self.fault = None
        self.scheduler.clear()
        self.watchdog.last_command = None

    def reset(self) -> None:
        """A new episode: forget queued commands and the command link's history."""
        self.scheduler.clear()
        self.watchdog.last_command = None
        if self.safety is not None:
            self.safety.last_gripper = -1.0

    def _hold(self, reason: str, obs: Observation | None) -> Tick:
        self.holds[reason] += 1
        with self.cadence.stage("send"):
            try:
                self.robot.hold()
            except self.errors as exc:  # a faulted robot may refuse even to hold; it is stopped already
                self.fault = self.fault or f"{type(exc).__name__}: {exc}"
        return Tick(None, True, reason, obs)

    def tick(self, now: float, schedule_time: float | None = None, hold_reason: str | None = None) -> Tick:
        """One control tick at `now` (seconds, the command stamps' clock). schedule_time: the instant whose
        action is wanted (default now; a simulator frozen between ticks passes its last observation's stamp).
        hold_reason: hold this tick for a reason the caller found (the simulator's lockstep timeout)."""
        with self.cadence.tick():
            with self.cadence.stage("observe"):
                try:
                    obs = self.robot.observe()
                except self.errors as exc:
                    self.fault = f"{type(exc).__name__}: {exc}"
                    return self._hold("observe_error", None)
            self.watchdog.observation(now)
            if self.fault:
                return self._hold("fault", obs)
            if self.stopped:
                return self._hold("stopped", obs)
            if hold_reason:
                return self._hold(hold_reason, obs)
            reason = self.watchdog.check(now)
            if reason:
                return self._hold(reason, obs)
            with self.cadence.stage("schedule"):
                action = self.scheduler.action(now if schedule_time is None else schedule_time)
            if action is None:
                return self._hold("no_valid_action", obs)
            if self.safety is not None:
                action = self.safety.filter(action, obs.proprio[:3], 1.0 / self.robot.rate_hz)
            with self.cadence.stage("send"):
                try:
                    self.robot.apply(action)
                except self.errors as exc:
                    self.fault = f"{type(exc).__name__}: {exc}"
                    log.error("robot refused the action: %s", self.fault)
                    return self._hold("fault", obs)
            self.last_action = np.asarray(action, np.float32)
            return Tick(self.last_action, False, None, obs)

    def figures(self) -> dict:
        """Diagnostics: cadence, holds by reason, commands, safety interventions, watchdog trips."""
        s = self.cadence.summary()
        out = {"target_hz": s["target_hz"], "achieved_hz": s["achieved_hz"], "ticks": s["ticks"],
               "overruns": s["overruns"], "commands": self.commands, "commands_rejected": self.rejected,
               "late_commands": self.scheduler.dropped_late, "stopped": self.stopped, "fault": self.fault or ""}
        out.update({f"hold_{k}": v for k, v in sorted(self.holds.items())})
        out.update({f"watchdog_{k}": v for k, v in sorted(self.watchdog.trips.items())})
        if self.safety is not None:
            out.update({f"safety_{k}": v for k, v in sorted(self.safety.interventions.items())})
        for name, st in s["stages"].items():
            out[f"{name}_p50_ms"] = st["p50_ms"]
            out[f"{name}_p99_ms"] = st["p99_ms"]
        return out
