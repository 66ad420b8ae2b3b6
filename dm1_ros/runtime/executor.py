"""CommandExecutor: the command side of the control pipeline, one implementation for every transport: the
in-process ControlLoop (`dm1 run`, `dm1 eval`, `dm1 demo`) and the ROS robot bridges (Franka, robosuite).

    executor = CommandExecutor(robot, ActionScheduler(SchedulerConfig(rate_hz=20.0)))
    executor.command(chunk, now)            # a command: actions for chunk.stamp + k / rate (the newest one wins)
    executor.hold_now("policy_error")       # forget what was sent and hold until the next command
    tick = executor.tick(now)               # watchdog -> scheduler -> robot.apply (or robot.hold)

Every tick: a fault, a stop, a stale command link (Watchdog over command arrivals), a hold asked for, or no action
meant for now (ActionScheduler, latest mode: late actions are dropped, the instants between a command's points
interpolated) hold the robot; otherwise the scheduled action goes to robot.apply(). The safety filter is the
robot's (FrankaBridge, SimRobot: `robot.safety`), applied at the actuator in the robot's own coordinates, so there
is one workspace box. Errors the robot raises (`errors`) are faults: the robot holds and commands are refused
until resume() (after the robot's own recovery). No torch, no rclpy.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from dm1_ros.runtime.cadence import CadenceMonitor
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.safety import Watchdog
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig

log = logging.getLogger("dm1_ros.executor")


@dataclass
class Tick:
    action: np.ndarray | None  # what went to robot.apply() (before the robot's safety filter); None when held
    held: bool
    reason: str | None = None
    observation: Observation | None = None


class CommandExecutor:
    def __init__(self, robot, scheduler: ActionScheduler | None = None, command_timeout_s: float = 0.3,
                 cadence: CadenceMonitor | None = None, errors: tuple[type[BaseException], ...] = (RuntimeError,)):
        """scheduler: must blend in 'latest' mode (blending happens in the Planner, before the command is sent).
        command_timeout_s: hold when no command arrived for this long. errors: exception types of the robot that
        mean 'fault: hold and report' rather than a crash."""
        self.robot = robot
        self.scheduler = scheduler or ActionScheduler(SchedulerConfig(rate_hz=robot.rate_hz))
        if self.scheduler.config.mode != "latest":
            raise ValueError("the executor runs the newest command (blending happens in the Planner); scheduler "
                             f"mode must be 'latest', got {self.scheduler.config.mode!r}")
        self.watchdog = Watchdog(command_timeout_s, "command", future_tolerance_s=float("inf"))
        self.cadence = cadence or CadenceMonitor(robot.rate_hz)
        self.errors = errors
        self.holds: Counter[str] = Counter()
        self.commands = 0
        self.rejected = 0
        self.stopped = False
        self.fault: str | None = None
        self.hold_reason: str | None = None  # held until the next command
        self.last_action: np.ndarray | None = None

    # --- commands ---------------------------------------------------------------------------------------------
    def command(self, chunk: ActionChunk, now: float, spacing_s: float | None = None,
                schedule_time: float | None = None) -> bool:
        """Queue a command (it replaces the queued one). spacing_s: seconds between its actions when it differs
        from the scheduler's rate. schedule_time: the instant lateness is judged at (default now). False when
        refused: stopped, faulted, or every action already late."""
        if self.stopped or self.fault:
            self.rejected += 1
            return False
        if spacing_s is not None and abs(spacing_s * self.scheduler.config.rate_hz - 1.0) > 1e-6:
            log.info("command spacing %.4g s: scheduling at %.4g Hz", spacing_s, 1.0 / spacing_s)
            self.scheduler.config.rate_hz = 1.0 / spacing_s
            self.scheduler.clear()
        self.watchdog.feed(now)
        self.commands += 1
        self.hold_reason = None
        ok = self.scheduler.add(chunk, now if schedule_time is None else schedule_time)
        if not ok:
            self.rejected += 1
        return ok

    def hold_now(self, reason: str, now: float | None = None) -> None:
        """Forget queued actions and hold until the next command (the sender says its actions must not run:
        stale input, a failed model). Counts as a sign of life of the command link."""
        self.scheduler.clear()
        self.hold_reason = reason
        if now is not None:
            self.watchdog.feed(now)

    def newest_command_stamp(self) -> float | None:
        return self.scheduler.chunks[-1].stamp if self.scheduler.chunks else None

    # --- control ----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Hold from now on and refuse commands, until resume()."""
        self.stopped = True
        self.scheduler.clear()

    def resume(self) -> None:
        """After a stop or a fault the robot has recovered from: accept commands again (queued ones are gone)."""
        self.stopped = False
        self.fault = None
        self.reset()

    def reset(self) -> None:
        """A new episode: forget queued commands and the command link's history (a simulated clock restarts)."""
        self.scheduler.clear()
        self.watchdog.clear()
        self.hold_reason = None

    def observe(self) -> Observation | None:
        """robot.observe(); a robot error becomes a fault (None returned)."""
        try:
            return self.robot.observe()
        except self.errors as exc:
            self._fault(exc, "observe")
            return None

    def _fault(self, exc: BaseException, what: str) -> None:
        if self.fault is None:
            self.fault = f"{type(exc).__name__}: {exc}"
            log.error("robot %s failed: %s", what, self.fault)

    def _robot_fault(self) -> None:
        """A fault the robot noticed on its own (FrankaBridge collects reflexes while holding, and hold() never
        raises) is a fault here too."""
        fault = getattr(self.robot, "fault", None)
        if fault is not None and self.fault is None:
            self.fault = f"{type(fault).__name__}: {fault}" if isinstance(fault, BaseException) else str(fault)
            log.error("robot fault: %s", self.fault)

    def hold(self, reason: str, obs: Observation | None = None) -> Tick:
        """Hold the robot this tick for `reason` (counted)."""
        self.holds[reason] += 1
        with self.cadence.stage("send"):
            try:
                self.robot.hold()
            except self.errors as exc:  # a faulted robot may refuse even to hold; it has stopped itself
                self._fault(exc, "hold")
        self._robot_fault()
        return Tick(None, True, reason, obs)

    def tick(self, now: float, observation: Observation | None = None, schedule_time: float | None = None,
             hold_reason: str | None = None) -> Tick:
        """One control tick at `now` (seconds, the clock of command arrivals). observation: the robot's, when the
        caller has read it already this tick (else it is read here). schedule_time: the instant whose action is
        wanted (default now; a simulator frozen between ticks passes its observation's stamp). hold_reason: hold
        this tick for a reason the caller found."""
        obs = observation
        if obs is None:
            with self.cadence.stage("observe"):
                obs = self.observe()
            if obs is None:
                return self.hold("fault", None)
        self._robot_fault()
        if self.fault:
            return self.hold("fault", obs)
        if self.stopped:
            return self.hold("stopped", obs)
        reason = hold_reason or self.hold_reason or self.watchdog.check(now)
        if reason:
            return self.hold(reason, obs)
        with self.cadence.stage("schedule"):
            action = self.scheduler.action(now if schedule_time is None else schedule_time)
        if action is None:
            return self.hold("no_valid_action", obs)
        with self.cadence.stage("send"):
            try:
                self.robot.apply(action)
            except self.errors as exc:
                self._fault(exc, "apply")
                return self.hold("fault", obs)
        self.last_action = np.asarray(action, np.float32)
        return Tick(self.last_action, False, None, obs)

    # --- figures ----------------------------------------------------------------------------------------------
    def figures(self) -> dict:
        """Diagnostics: cadence, holds by reason, commands, the robot's safety interventions, watchdog trips."""
        s = self.cadence.summary()
        out = {"target_hz": s["target_hz"], "achieved_hz": s["achieved_hz"], "ticks": s["ticks"],
               "overruns": s["overruns"], "commands": self.commands, "commands_rejected": self.rejected,
               "late_commands": self.scheduler.dropped_late, "stopped": self.stopped, "fault": self.fault or ""}
        out.update({f"hold_{k}": v for k, v in sorted(self.holds.items())})
        out.update({f"watchdog_{k}": v for k, v in sorted(self.watchdog.trips.items())})
        safety = getattr(self.robot, "safety", None)
        if safety is not None:
            out.update({f"safety_{k}": v for k, v in sorted(safety.interventions.items())})
        for name, st in s["stages"].items():
            out[f"{name}_p50_ms"] = st["p50_ms"]
            out[f"{name}_p99_ms"] = st["p99_ms"]
        return out
