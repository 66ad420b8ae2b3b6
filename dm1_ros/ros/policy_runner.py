"""PolicyRunner: what policy_node wraps. OnnxPolicy + chunk blending + model hot swap; no ROS, no torch.

    runner = PolicyRunner("models/lift_image", blending="latest")
    raw, command = runner.plan(observation)     # raw ActionChunk, blended (Ta, Da) actions stamped like raw
    runner.request_swap("models/other")         # loads on a worker thread
    event = runner.poll_swap()                  # between ticks: swaps in the new model, or reports the failure

Swap semantics are ControlLoop.request_swap's: validate, load on a worker thread, swap between ticks, drop
queued (blended) actions of the old model, keep the old model when loading fails.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dm1_ros.runtime.bundle import BundleError, Manifest, read_manifest
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.scheduler import MODES, ActionScheduler, SchedulerConfig

log = logging.getLogger("dm1_ros.ros.policy_runner")

MODEL_BLENDING = "model"  # the bundle's own choice (manifest execution)
BLENDING = (MODEL_BLENDING, *MODES)


class ChunkBlender:
    """What the policy publishes for each new chunk, as actions for the instants stamp + k / rate:

    latest   the new chunk as it is (a one-step policy re-plans every tick; the default)
    ensemble temporal ensemble of every chunk still covering each instant, a chunk `age` control steps older
             than the newest weighted exp(-decay * age)
    chunk    open loop: a chunk is republished unchanged until its last action's instant is reached
             (`needs_plan`), then the next one is planned

    The blending itself is ActionScheduler's (the robot-side runtime), read for a whole chunk of instants at once.
    """

    def __init__(self, mode: str = "latest", rate_hz: float = 20.0, decay: float = 0.5, plan_ahead_s: float = 0.0):
        self.scheduler = ActionScheduler(SchedulerConfig(mode=mode, rate_hz=rate_hz, ensemble_decay=decay))
        self.mode = mode
        self.rate_hz = float(rate_hz)
        self.plan_ahead_s = float(plan_ahead_s)
        self.current: tuple[np.ndarray, float] | None = None  # last published (actions, stamp)

    @property
    def chunks(self):
        return self.scheduler.chunks

    def clear(self) -> None:
        self.scheduler.clear()
        self.current = None

    def needs_plan(self, t: float) -> bool:
        return self.current is None or self.scheduler.needs_plan(t + self.plan_ahead_s)

    def add(self, chunk: ActionChunk) -> np.ndarray:
        if self.mode == "chunk":
            self.scheduler.clear()  # asked for because the running chunk has ended (needs_plan)
        self.scheduler.add(chunk, now=chunk.stamp)
        if self.mode == "ensemble":
            self.scheduler.prune(chunk.stamp)
        instants = chunk.stamp + np.arange(chunk.actions.shape[0]) / self.rate_hz
        out = self.scheduler.actions_at(instants)
        self.current = (out, chunk.stamp)
        return out


@dataclass
class SwapEvent:
    ok: bool
    path: str
    model_id: str | None
    message: str


class PolicyRunner:
    def __init__(self, bundle_dir: str | Path, providers="auto", threads: int | None = None, blending: str = "model",
                 sampling_steps: int = 0, warmup: int = 5, noise_seed: int | None = None, ensemble_decay: float = 0.5,
                 plan_ahead_s: float = 0.0, policy_factory=None):
        """blending: latest | ensemble | chunk, or model (each bundle's manifest execution).
        sampling_steps: 0 accepts the bundle's; n > 0 refuses a bundle that does not sample in n steps (the
        step count is baked into the ONNX graph at export)."""
        if policy_factory is None:
            from dm1_ros.runtime.onnx_policy import OnnxPolicy

            policy_factory = OnnxPolicy
        if blending not in BLENDING:
            raise ValueError(f"unknown blending {blending!r}; choose one of {', '.join(BLENDING)}")
        self.policy_factory = policy_factory
        self.policy_kwargs = dict(providers=providers, threads=threads, warmup=warmup, noise_seed=noise_seed)
        self.expected_steps = int(sampling_steps)
        self._decay, self._plan_ahead = ensemble_decay, plan_ahead_s
        self.check_steps(read_manifest(bundle_dir), bundle_dir)
        self.policy = policy_factory(bundle_dir, **self.policy_kwargs)
        self.bundle_dir = str(bundle_dir)
        self.blending = blending  # as asked for; "model" follows each bundle's manifest, swaps included
        self.blender = ChunkBlender(self._mode(), self.manifest.control_rate_hz, ensemble_decay, plan_ahead_s)
        self.swaps = 0
        self.failed_swaps = 0
        self.last_swap_error = ""
        self._pending: tuple[str, object] | None = None
        self._events: list[SwapEvent] = []
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    # --- nouns -----------------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self.policy.manifest

    @property
    def model_id(self) -> str:
        return self.policy.model_id

    @property
    def swapping(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    # --- checks ----------------------------------------------------------------------------------------------
    def check_steps(self, manifest: Manifest, path) -> None:
        if self.expected_steps and manifest.sampling_steps != self.expected_steps:
            raise BundleError(
                f"{path}: model {manifest.model_id} samples in {manifest.sampling_steps} step(s) (baked into its ONNX "
                f"graph), but sampling_steps is {self.expected_steps}; export a bundle with `dm1 export CKPT --steps "
                f"{self.expected_steps}` or set sampling_steps to 0 (take the bundle's)")

    def check_bundle(self, path: str | Path) -> Manifest:
        """Quick checks of a candidate bundle against the running stack (manifest only; the worker hashes and
        loads the ONNX file). Raises BundleError naming the problem."""
        manifest = read_manifest(path)
        self.check_steps(manifest, path)
        try:
            manifest.check_observation_spec(self.manifest.observation)
        except BundleError as exc:
            raise BundleError(f"{path}: {exc} (the running model {self.model_id} is fed that)") from None
        if manifest.action.dim != self.manifest.action.dim:
            raise BundleError(f"{path}: model {manifest.model_id} outputs {manifest.action.dim}-d actions, the robot "
                              f"takes {self.manifest.action.dim}-d")
        return manifest

    # --- swap -------------------------------------------------------------------------------------------------
    def request_swap(self, path: str | Path) -> threading.Thread:
        """Load `path` on a worker thread; poll_swap() puts it in place between two ticks."""
        path = str(path)

        def load():
            try:
                self.check_bundle(path)
                new = self.policy_factory(path, **self.policy_kwargs)
                new.manifest.check_observation_spec(self.manifest.observation)
            except Exception as exc:  # the old model keeps running
                with self._lock:
                    self._events.append(SwapEvent(False, path, None, f"{type(exc).__name__}: {exc}"))
                return
            with self._lock:
                self._pending = (path, new)

        self._worker = threading.Thread(target=load, name="policy-swap", daemon=True)
        self._worker.start()
        return self._worker

    def poll_swap(self) -> list[SwapEvent]:
        """Between ticks: put a loaded model in place (dropping blended actions of the old one); return what
        happened since the last call."""
        with self._lock:
            pending, self._pending = self._pending, None
            events, self._events = self._events, []
        for e in events:
            self.failed_swaps += 1
            self.last_swap_error = f"{e.path}: {e.message}"
            log.error("model swap refused, keeping %s: %s", self.model_id, self.last_swap_error)
        if pending is not None:
            path, new = pending
            old = self.model_id
            self.policy, self.bundle_dir = new, path
            self.blender = ChunkBlender(self._mode(), self.manifest.control_rate_hz, self._decay, self._plan_ahead)
            self.swaps += 1
            events.append(SwapEvent(True, path, self.model_id, f"{old} -> {self.model_id}"))
            log.info("model swap: %s -> %s", old, self.model_id)
        return events

    def _mode(self) -> str:
        return self.manifest.execution if self.blending == MODEL_BLENDING else self.blending

    def set_blending(self, mode: str) -> None:
        if mode not in BLENDING:
            raise ValueError(f"unknown blending {mode!r}; choose one of {', '.join(BLENDING)}")
        self.blending = mode
        self.blender = ChunkBlender(self._mode(), self.manifest.control_rate_hz, self._decay, self._plan_ahead)

    def reset(self) -> None:
        self.blender.clear()

    # --- planning ---------------------------------------------------------------------------------------------
    def plan(self, obs: Observation) -> tuple[ActionChunk, np.ndarray]:
        """-> (raw chunk, actions to publish). Raises PolicyInputError / onnxruntime errors, and ValueError when
        the output is not finite (nothing is queued then)."""
        chunk = self.policy.predict(obs)
        if not np.all(np.isfinite(chunk.actions)):
            raise ValueError(f"model {self.model_id} returned NaN or Inf")
        return chunk, self.blender.add(chunk)
