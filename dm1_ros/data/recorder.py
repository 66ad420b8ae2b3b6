"""DemoRecorder: teleoperated episodes -> the robomimic HDF5 that `dm1 train` reads, written on a background thread.

    rec = DemoRecorder("data/teleop.hdf5", env_args={...}, image_size=(96, 96))
    rec.start(device="keyboard")          # the loop only queues; it never waits for the disk
    rec.step(observation, action)         # once per control tick (or rec.add(observation, action, reward))
    rec.set_success(True)                 # the task's success flag as it is seen
    rec.stop()                            # the thread writes the episode shard atomically (data/episodes.py)
    rec.close()                           # finishes and assembles data/teleop.hdf5 (shards are kept: resumable)

Each finished episode is one shard in `<out>.parts/` (temporary file, then rename); the dataset file is assembled
from the shards on close() (or after every episode with assemble_every_episode). A step that cannot be queued
(the disk fell far behind) makes its episode incomplete, and an incomplete episode is refused rather than saved
with a hole in it. No ROS, no torch.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np

from dm1_ros.data.episodes import EpisodeRecorder, EpisodeStore
from dm1_ros.runtime.images import resize_image
from dm1_ros.runtime.contract import Observation

log = logging.getLogger("dm1_ros.data.recorder")
PREFIX = "teleop_"


class DemoRecorder:
    def __init__(self, out_path: str | Path, env_args: dict | None = None, image_size: tuple[int, int] | None = None,
                 valid_fraction: float = 0.1, assemble_every_episode: bool = False, max_queue: int = 20000):
        """image_size: (height, width) images are stored at (None: as received)."""
        self.store = EpisodeStore(out_path)
        self.env_args = dict(env_args or {"env_name": "dm1_ros_teleop", "type": 0, "env_kwargs": {}})
        self.image_size = tuple(image_size) if image_size else None
        self.valid_fraction = valid_fraction
        self.assemble_every_episode = assemble_every_episode
        if self.store.out.is_file() and not self.store.parts.is_dir():
            n = self.store.explode_existing()  # extend an assembled dataset: its episodes become shards again
            log.info("%s: %d existing episodes kept", self.store.out, n)
        names = [n for n in self.store.shard_names() if n.startswith(PREFIX) and n[len(PREFIX):].isdigit()]
        self._next = 1 + max((int(n[len(PREFIX):]) for n in names), default=-1)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self.recording: str | None = None  # name of the episode being recorded
        self.steps = 0  # steps queued in the current episode
        self.saved: list[str] = []
        self.discarded = 0
        self.errors: list[str] = []
        self.dropped = 0
        self._incomplete = False
        self.success = False  # the task's success flag as last seen (set_success)
        self._pending = None  # (obs, action) of step(): its reward is the success seen with the next observation
        self._thread = threading.Thread(target=self._run, name="demo-recorder", daemon=True)
        self._thread.start()

    # --- the loop's side: never blocks ----------------------------------------------------------------------
    def _put(self, item) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            self._incomplete = True
            return False

    def start(self, **attrs) -> str:
        if self.recording:
            raise RuntimeError(f"already recording {self.recording}; stop or discard it first")
        name = f"{PREFIX}{self._next:05d}"
        self._next += 1
        self.recording, self.steps, self._incomplete = name, 0, False
        self.success, self._pending = False, None
        self._put(("start", name, {"started_wall": time.time(), **attrs}))
        return name

    def set_success(self, success: bool) -> None:
        self.success = bool(success)

    def step(self, obs: Observation, action: np.ndarray) -> None:
        """One control tick while recording. robomimic's reward of step t is what acting brought: the success flag
        seen with observation t+1; so a step is queued when the next one (or stop) comes."""
        if not self.recording:
            return
        self._flush_pending()
        self._pending = (obs, np.asarray(action, np.float32).copy())

    def _flush_pending(self) -> None:
        if self._pending is not None:
            obs, action = self._pending
            self._pending = None
            self.add(obs, action, reward=1.0 if self.success else 0.0)

    def add(self, obs: Observation, action: np.ndarray, reward: float = 0.0) -> bool:
        if not self.recording:
            return False
        ok = self._put(("step", obs, np.asarray(action, np.float32).copy(), float(reward)))
        self.steps += int(ok)
        return ok

    def stop(self, **attrs) -> str:
        """End the episode (attrs: success defaults to the flag last seen); it is written in the background. Returns
        its name; `steps` keeps its length until the next start."""
        if not self.recording:
            raise RuntimeError("not recording")
        self._flush_pending()
        attrs.setdefault("success", self.success)
        name, self.recording = self.recording, None
        if self._incomplete:
            self._put(("discard", name, {}))
            self.errors.append(f"{name}: {self.dropped} step(s) could not be queued; episode refused")
        elif not self._put(("stop", name, attrs)):
            self.errors.append(f"{name}: could not be queued for writing")
        return name

    def discard(self) -> str:
        if not self.recording:
            raise RuntimeError("not recording")
        name, self.recording, self._pending = self.recording, None, None
        self._put(("discard", name, {}))
        return name

    # --- the writer's side ------------------------------------------------------------------------------------
    def _run(self) -> None:
        steps: list = []
        meta: dict = {}
        while True:
            item = self._queue.get()
            try:
                kind = item[0]
                if kind == "start":
                    steps, meta = [], dict(item[2])
                elif kind == "step":
                    steps.append(item[1:])
                elif kind == "discard":
                    steps = []
                    self.discarded += 1
                elif kind == "stop":
                    self._write(item[1], steps, {**meta, **item[2]})
                    steps = []
                elif kind == "assemble":
                    self._assemble()
                elif kind == "close":
                    return
            except Exception as exc:  # a failed write loses that episode only; report it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                log.error("recorder: %s", self.errors[-1])
            finally:
                self._queue.task_done()

    def _write(self, name: str, steps: list, attrs: dict) -> None:
        if not steps:
            self.errors.append(f"{name}: no steps recorded; nothing written")
            return
        rec = EpisodeRecorder()
        for i, (obs, action, reward) in enumerate(steps):
            if self.image_size is not None:
                obs = Observation({k: resize_image(v, *self.image_size) for k, v in obs.images.items()}, obs.proprio,
                                  obs.stamp)
            rec.add(obs, action, reward=reward, done=i == len(steps) - 1)
        stamps = np.asarray([s[0].stamp for s in steps])
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0
        attrs = {k: v for k, v in attrs.items() if isinstance(v, (str, int, float, bool, np.number))}
        self.store.add(name, rec.episode(steps=len(steps), recorded_hz=float(rate), **attrs))
        self.saved.append(name)
        log.info("recorder: %s saved (%d steps, %.1f Hz)", name, len(steps), rate)
        if self.assemble_every_episode:
            self._assemble()

    def _assemble(self) -> None:
        if self.store.shard_names():
            self.store.assemble(self.env_args, valid_fraction=self.valid_fraction, keep_shards=True)

    # --- lifecycle --------------------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written (not for the loop: tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, assemble: bool = True, timeout: float = 60.0) -> Path | None:
        """Discard an unfinished episode, write what is queued, assemble the dataset; returns its path."""
        if not self._thread.is_alive():
            return self.store.out if self.store.out.is_file() else None
        if self.recording:
            log.warning("recorder: episode %s was still recording at close; discarded", self.recording)
            self.discard()
        if assemble:
            self._queue.put(("assemble",))
        self._queue.put(("close",))
        self._thread.join(timeout)
        return self.store.out if self.store.out.is_file() else None
