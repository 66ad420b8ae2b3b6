"""Planner: the policy side of the control pipeline, observation -> command. One implementation behind every door:
`dm1 run`, `dm1 eval` and `dm1 demo` (through ControlLoop) and the ROS policy_node.

    planner = Planner(OnnxPolicy("models/lift_image"), blending="model")
    plan = planner.step(observation, now)    # Plan: a command to send, or the reason there is none
    policy = planner.load("models/other")    # validated, loaded, warmed up and checked; raises BundleError
    planner.stage(policy)                    # ... and it takes over at the next poll_swap()
    planner.request_swap("models/other")     # load() + stage() on a worker thread
    events = planner.poll_swap()             # between two ticks: the staged model takes over

A command is an ActionChunk of actions meant for the instants stamp + k / rate, stamped with the time of the
observation they come from; whoever executes it (CommandExecutor) runs the newest command and needs to know
nothing of blending, which happens here:
  latest    each new chunk as it is (a one-step policy re-plans at every observation)
  ensemble  the temporal ensemble of every chunk still covering each instant, an older chunk weighted
            exp(-decay * age in control steps) (ActionScheduler's blending)
  chunk     open loop: the running chunk is sent again until its last instant is reached, then the next is planned
  model     the bundle's own choice (manifest `execution`), followed across swaps
With a lookahead (manifest `lookahead_s`, or the planner's own setting) each chunk is taken as meant for that much
earlier, so at its observation's instant the robot runs the action the chunk planned for lookahead_s later. With
`lookahead_includes_latency` (manifest) the observation's age when its chunk is planned counts toward the lookahead:
the chunk is shifted by max(0, lookahead_s - age), so the action that runs first is the one planned lookahead_s after
the observation whatever the latency up to lookahead_s, and past it the one planned for the present.

A plan that must not be executed (stale observation, a model that failed or returned NaN) comes back with
`hold=True`: the executor forgets what it was sent before and holds. No torch, no rclpy.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dm1_ros.runtime.bundle import BundleError, Manifest, ObservationSpec, read_manifest
from dm1_ros.runtime.consistency import PlanConsistency
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.safety import Watchdog
from dm1_ros.runtime.scheduler import MODES, ActionScheduler, SchedulerConfig

log = logging.getLogger("dm1_ros.planner")

MODEL_BLENDING = "model"
BLENDING = (MODEL_BLENDING, *MODES)
# sampling noise across re-plans: fresh draws each plan, or "shifted": each future control instant keeps the noise
# it was first given (the previous plan's noise advanced by the ticks elapsed, fresh noise for the new instants)
NOISE_MODES = ("fresh", "shifted")
# Reasons a plan carries when there is no new command.
SAME_OBSERVATION = "same_observation"  # planned on this observation already: nothing new to send
STALE_OBSERVATION = "stale_observation"
POLICY_ERROR = "policy_error"
NONFINITE_OUTPUT = "nonfinite_policy_output"


class ChunkBlender:
    """New chunks -> the command to send, per blending mode (see the module doc); the weights are
    ActionScheduler's, read for a whole chunk of instants at once. lookahead_s: a chunk's actions are taken as meant
    for `lookahead_s` earlier than planned, so at its observation's instant the robot runs the action the chunk
    planned for lookahead_s later (the command is stamped stamp - lookahead_s)."""

    def __init__(self, mode: str = "latest", rate_hz: float = 20.0, decay: float = 0.5, plan_ahead_s: float = 0.0,
                 lookahead_s: float = 0.0, lookahead_includes_latency: bool = False):
        self.scheduler = ActionScheduler(SchedulerConfig(mode=mode, rate_hz=rate_hz, ensemble_decay=decay))
        self.mode = mode
        self.rate_hz = float(rate_hz)
        self.plan_ahead_s = float(plan_ahead_s)
        self.lookahead_s = float(lookahead_s)
        self.lookahead_includes_latency = bool(lookahead_includes_latency)
        self.current: ActionChunk | None = None  # the last command

    @property
    def chunks(self):
        return self.scheduler.chunks

    def clear(self) -> None:
        self.scheduler.clear()
        self.current = None

    def needs_plan(self, t: float) -> bool:
        """False only while an open-loop chunk still has an action for `t` (+ plan_ahead_s)."""
        return self.current is None or self.scheduler.needs_plan(t + self.plan_ahead_s)

    def add(self, chunk: ActionChunk, now: float | None = None) -> ActionChunk:
        """`now`: the planning instant on the stamps' clock (the observation's age counts toward the lookahead when
        lookahead_includes_latency; None: age 0)."""
        shift = self.lookahead_s
        if self.lookahead_includes_latency and now is not None:
            shift = max(0.0, shift - max(0.0, now - chunk.stamp))
        if shift:
            chunk = ActionChunk(chunk.actions, chunk.stamp - shift, chunk.model_id, chunk.latency_ms)
        if self.mode == "chunk":
            self.scheduler.clear()  # asked for because the running chunk has ended (needs_plan)
        self.scheduler.add(chunk, now=chunk.stamp)
        actions = chunk.actions
        if self.mode == "ensemble":
            self.scheduler.prune(chunk.stamp)
            instants = chunk.stamp + np.arange(chunk.actions.shape[0]) / self.rate_hz
            actions = self.scheduler.actions_at(instants).astype(np.float32)
        # latest and chunk send the model's actions bit for bit
        self.current = ActionChunk(actions, chunk.stamp, chunk.model_id, chunk.latency_ms)
        return self.current


@dataclass
class Plan:
    command: ActionChunk | None = None  # what to execute: actions for command.stamp + k / rate
    raw: ActionChunk | None = None  # the model's own output, when the model ran for this plan
    reason: str | None = None  # why there is no new plan (SAME_OBSERVATION, STALE_OBSERVATION, ...)
    hold: bool = False  # stop executing earlier commands and hold
    message: str = ""

    @property
    def planned(self) -> bool:
        return self.raw is not None


@dataclass
class SwapEvent:
    ok: bool
    path: str
    model_id: str | None
    message: str


class Planner:
    def __init__(self, policy, blending: str = MODEL_BLENDING, *, observation_spec: ObservationSpec | None = None,
                 max_observation_age_s: float | None = None, ensemble_decay: float = 0.5, plan_ahead_s: float = 0.0,
                 sampling_steps: int = 0, loader=None, noise: str = "fresh", lookahead_s: float | None = None,
                 **policy_kwargs):
        """policy: a loaded OnnxPolicy (or anything with predict/manifest/model_id).
        observation_spec: what the robot provides (default: what `policy` takes); a swapped-in model must take it.
        max_observation_age_s: hold when the observation is older than this at `now` (None: no check, as in
        simulated time). sampling_steps: 0 takes any bundle; n > 0 refuses one that does not sample in n steps.
        loader(path, **policy_kwargs): how load() builds a policy (default OnnxPolicy).
        lookahead_s: run, at each observation, the action its chunk planned this long after it (None: the
        manifest's lookahead_s, followed across swaps)."""
        if blending not in BLENDING:
            raise ValueError(f"unknown blending {blending!r}; choose one of {', '.join(BLENDING)}")
        if noise not in NOISE_MODES:
            raise ValueError(f"unknown noise {noise!r}; choose one of {', '.join(NOISE_MODES)}")
        if lookahead_s is not None and not (lookahead_s >= 0 and np.isfinite(lookahead_s)):
            raise ValueError(f"lookahead_s must be a non-negative number of seconds, got {lookahead_s}")
        self.noise = noise
        self.lookahead = lookahead_s
        self._noise: tuple[float, np.ndarray] | None = None  # (stamp, noise) of the last plan
        self.policy = policy
        self.blending = blending
        self.observation_spec = observation_spec or policy.manifest.observation
        self.watchdog = None if max_observation_age_s is None else Watchdog(max_observation_age_s, "observation")
        self.ensemble_decay = float(ensemble_decay)
        self.plan_ahead_s = float(plan_ahead_s)
        self.expected_steps = int(sampling_steps)
        self.loader = loader
        self.policy_kwargs = policy_kwargs
        self.check_manifest(policy.manifest, getattr(policy, "bundle_dir", "the initial model"))
        self.blender = self._new_blender()
        self.consistency = PlanConsistency(self.manifest.control_rate_hz)  # how much re-plans change their minds
        self.bundle_dir = str(getattr(policy, "bundle_dir", ""))
        self.plans = 0
        self.swaps = 0
        self.failed_swaps = 0
        self.last_swap_error = ""
        self.last_error = ""
        self._last_stamp: float | None = None
        self._staged: tuple[str, object] | None = None
        self._events: list[SwapEvent] = []
        self._lock = threading.Lock()  # staging and blending changes may come from other threads
        self._worker: threading.Thread | None = None

    # --- nouns -------------------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self.policy.manifest

    @property
    def model_id(self) -> str:
        return self.policy.model_id

    @property
    def mode(self) -> str:
        """The blending in force (the manifest's execution when blending is 'model')."""
        return self.manifest.execution if self.blending == MODEL_BLENDING else self.blending

    @property
    def lookahead_s(self) -> float:
        """The lookahead in force (the manifest's when none was given)."""
        return self.manifest.lookahead_s if self.lookahead is None else self.lookahead

    @property
    def swapping(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def _new_blender(self) -> ChunkBlender:
        return ChunkBlender(self.mode, self.manifest.control_rate_hz, self.ensemble_decay, self.plan_ahead_s,
                            self.lookahead_s, self.manifest.lookahead_includes_latency)

    # --- models ------------------------------------------------------------------------------------------------
    def check_manifest(self, manifest: Manifest, path) -> None:
        """Refuses (BundleError naming the problem) a model the robot cannot feed or that the settings exclude."""
        if self.expected_steps and manifest.sampling_steps != self.expected_steps:
            raise BundleError(
                f"{path}: model {manifest.model_id} samples in {manifest.sampling_steps} step(s) (baked into its ONNX "
                f"graph), but sampling_steps is {self.expected_steps}; export a bundle with `dm1 export CKPT --steps "
                f"{self.expected_steps}` or set sampling_steps to 0 (take the bundle's)")
        manifest.check_observation_spec(self.observation_spec)
        running = getattr(self, "policy", None)
        if running is not None and manifest.action.dim != running.manifest.action.dim:
            raise BundleError(f"{path}: model {manifest.model_id} outputs {manifest.action.dim}-d actions, the robot "
                              f"takes {running.manifest.action.dim}-d")

    def load(self, path: str | Path):
        """A model ready to take over: manifest checked against the robot, ONNX file hashed and loaded, warmed up.
        Raises BundleError (or the loader's error) naming the problem; the running model is not touched."""
        manifest = read_manifest(path)
        try:
            self.check_manifest(manifest, path)
        except BundleError as exc:
            raise BundleError(f"{exc} (the running model {self.model_id} is fed that)") from None
        loader = self.loader
        if loader is None:
            from dm1_ros.runtime.onnx_policy import OnnxPolicy

            loader = OnnxPolicy
        policy = loader(path, **self.policy_kwargs)
        self.check_manifest(policy.manifest, path)
        return policy

    def stage(self, policy, path: str | Path | None = None) -> None:
        """`policy` takes over at the next poll_swap() (between two ticks)."""
        with self._lock:
            self._staged = (str(path or getattr(policy, "bundle_dir", "")), policy)

    def request_swap(self, path: str | Path) -> threading.Thread:
        """load() + stage() on a worker thread; a failure is reported by poll_swap() and the old model runs on."""
        path = str(path)

        def work():
            try:
                self.stage(self.load(path), path)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the running model
                with self._lock:
                    self._events.append(SwapEvent(False, path, None, f"{type(exc).__name__}: {exc}"))

        self._worker = threading.Thread(target=work, name="model-swap", daemon=True)
        self._worker.start()
        return self._worker

    def poll_swap(self) -> list[SwapEvent]:
        """Between ticks: a staged model takes over (the old model's chunks are dropped); returns what happened
        since the last call."""
        with self._lock:
            staged, self._staged = self._staged, None
            events, self._events = self._events, []
            for e in events:
                self.failed_swaps += 1
                self.last_swap_error = f"{e.path}: {e.message}"
                log.error("model swap refused, keeping %s: %s", self.model_id, self.last_swap_error)
            if staged is not None:
                path, new = staged
                old = self.model_id
                self.policy, self.bundle_dir = new, path
                self.blender = self._new_blender()
                self.consistency = PlanConsistency(self.manifest.control_rate_hz)
                self._last_stamp = None
                self.swaps += 1
                events.append(SwapEvent(True, path, self.model_id, f"{old} -> {self.model_id}"))
                log.info("model swap: %s -> %s", old, self.model_id)
        return events

    # --- settings ----------------------------------------------------------------------------------------------
    def set_blending(self, blending: str) -> None:
        if blending not in BLENDING:
            raise ValueError(f"unknown blending {blending!r}; choose one of {', '.join(BLENDING)}")
        with self._lock:
            self.blending = blending
            self.blender = self._new_blender()

    def _plan_noise(self, stamp: float) -> np.ndarray:
        """The noise for a plan at `stamp` in "shifted" mode: action i of this chunk is meant for the same instant as
        action i + k of the plan k ticks ago, and gets the noise that one got; instants new to this plan get fresh
        noise. One network evaluation as always: only the noise input differs."""
        fresh = self.policy.sample_noise()[0]
        if self._noise is not None:
            last_stamp, last = self._noise
            k = int(round((stamp - last_stamp) * self.manifest.control_rate_hz))
            if 0 <= k < len(last):
                fresh[: len(last) - k] = last[k:]
        self._noise = (stamp, fresh)
        return fresh

    def reset(self) -> None:
        """Forget the blending history and the last observation (a new episode, after a stop)."""
        with self._lock:
            self.blender.clear()
            self.consistency.reset()
            self._last_stamp = None
            self._noise = None
            if self.watchdog is not None:
                self.watchdog.clear()

    # --- planning ----------------------------------------------------------------------------------------------
    def step(self, obs: Observation, now: float | None = None) -> Plan:
        """One planning step at `now` (seconds on the observation stamps' clock; None: the observation's stamp,
        simulated time). Runs the model at most once per observation."""
        now = obs.stamp if now is None else now
        with self._lock:
            if self.watchdog is not None:
                self.watchdog.feed(obs.stamp)
                if self.watchdog.check(now):
                    return Plan(reason=STALE_OBSERVATION, hold=True, message=self.watchdog.problem(now) or "")
            if obs.stamp == self._last_stamp:
                return Plan(reason=SAME_OBSERVATION)
            if not self.blender.needs_plan(obs.stamp):
                self._last_stamp = obs.stamp
                return Plan(command=self.blender.current)  # open loop: the running chunk again
            try:
                noise = self._plan_noise(obs.stamp) if self.noise == "shifted" else None
                raw = self.policy.predict(obs) if noise is None else self.policy.predict(obs, noise)
            except Exception as exc:  # noqa: BLE001 - bad input or a failing model: hold and report
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("policy %s failed: %s", self.model_id, self.last_error)
                return Plan(reason=POLICY_ERROR, hold=True, message=self.last_error)
            if not np.all(np.isfinite(raw.actions)):
                self.last_error = f"model {self.model_id} returned NaN or Inf"
                return Plan(reason=NONFINITE_OUTPUT, hold=True, message=self.last_error)
            self._last_stamp = obs.stamp
            self.plans += 1
            self.consistency.add(raw)
            return Plan(command=self.blender.add(raw, now), raw=raw)
