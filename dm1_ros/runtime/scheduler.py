"""ActionScheduler: which action to send now, given chunks stamped with the time of their observation.

Timing model (diffusion_policy's timestamped execution): the observation was captured at
`stamp - camera_latency`; action k of its chunk is meant for `capture + k / rate`; a command sent now takes effect
at `now + actuation_latency`. The action for that instant is picked (or interpolated); actions whose instant has
passed are dropped, and a chunk whose every action is late yields nothing, so the robot holds.

Modes: `latest` (default; a one-step policy re-plans every tick and only the newest chunk counts), `ensemble`
(temporal ensemble over every chunk that covers the instant, newer chunks weighted exp(-decay * age in control
steps) relative to older ones), `chunk` (the papers' open loop: a chunk runs to its end before the next is taken).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dm1_ros.runtime.contract import ActionChunk

MODES = ("latest", "ensemble", "chunk")
# Fraction of a control step by which an action may be past its instant and still count: stamps are float seconds
# since 1970 (resolution about 0.2 us), so a chunk's exact last instant must not read as late after rounding.
LATE_TOLERANCE = 1e-3


@dataclass
class SchedulerConfig:
    mode: Literal["latest", "ensemble", "chunk"] = "latest"
    rate_hz: float = 20.0  # spacing of the actions inside a chunk (the policy's control rate)
    camera_latency_s: float = 0.0  # capture -> stamp
    actuation_latency_s: float = 0.0  # command -> motion
    ensemble_decay: float = 0.5  # per control step of age; larger trusts new chunks more
    interpolate: bool = True  # linear interpolation between a chunk's actions (commands faster than rate_hz)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown blending mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.rate_hz <= 0:
            raise ValueError("rate_hz must be positive")


class ActionScheduler:
    def __init__(self, config: SchedulerConfig | None = None):
        self.config = config or SchedulerConfig()
        self.chunks: deque[ActionChunk] = deque(maxlen=32)
        self.dropped_late = 0  # chunks that arrived with every action already late
        self.model_id: str | None = None

    def clear(self) -> None:
        """Forget queued actions (model swap, reset, stop)."""
        self.chunks.clear()

    def _position_at(self, chunk: ActionChunk, instant: float) -> float:
        """Fractional index of `chunk`'s action meant for the instant `instant` (when the robot acts)."""
        capture = chunk.stamp - self.config.camera_latency_s
        return (instant - capture) * self.config.rate_hz

    def _position(self, chunk: ActionChunk, now: float) -> float:
        """Fractional index of the action meant for the instant a command sent at `now` takes effect."""
        return self._position_at(chunk, now + self.config.actuation_latency_s)

    def _action(self, chunk: ActionChunk, pos: float) -> np.ndarray | None:
        n = chunk.actions.shape[0]
        if pos > n - 1 + LATE_TOLERANCE:
            return None  # late
        pos = min(max(pos, 0.0), n - 1)
        if not self.config.interpolate:
            return chunk.actions[int(round(pos))]
        i = int(np.floor(pos))
        frac = pos - i
        if i + 1 >= n or frac < 1e-9:
            return chunk.actions[i]
        return (1 - frac) * chunk.actions[i] + frac * chunk.actions[i + 1]

    def _blend(self, instant: float) -> np.ndarray | None:
        """The action meant for `instant` from the queued chunks, without changing the queue."""
        if not self.chunks:
            return None
        if self.config.mode != "ensemble":
            return self._action(self.chunks[-1], self._position_at(self.chunks[-1], instant))
        newest = self.chunks[-1].stamp
        total, weight = None, 0.0
        for chunk in self.chunks:
            a = self._action(chunk, self._position_at(chunk, instant))
            if a is None:
                continue
            w = float(np.exp(-self.config.ensemble_decay * (newest - chunk.stamp) * self.config.rate_hz))
            total = a * w if total is None else total + a * w
            weight += w
        return None if total is None else total / weight

    def prune(self, instant: float) -> None:
        """Drop chunks with no action left for `instant`: time only moves forward, they never count again."""
        for chunk in list(self.chunks):
            if self._position_at(chunk, instant) > chunk.actions.shape[0] - 1 + LATE_TOLERANCE:
                self.chunks.remove(chunk)

    def add(self, chunk: ActionChunk, now: float) -> bool:
        """Queue a chunk; False if it is already entirely late (dropped) or, in chunk mode, one is still running."""
        if self.model_id is not None and chunk.model_id != self.model_id:
            self.clear()  # a swapped model's queued actions never mix with the new one's
        self.model_id = chunk.model_id
        if self._position(chunk, now) > chunk.actions.shape[0] - 1 + LATE_TOLERANCE:
            self.dropped_late += 1
            return False
        if self.config.mode == "chunk" and self.chunks and self._action(self.chunks[-1], self._position(self.chunks[-1], now)) is not None:
            return False
        if self.config.mode != "ensemble":
            self.chunks.clear()
        self.chunks.append(chunk)
        return True

    def needs_plan(self, now: float) -> bool:
        """True when the policy should run for the next tick (always, except while a chunk-mode chunk runs)."""
        if self.config.mode != "chunk" or not self.chunks:
            return True
        return self._action(self.chunks[-1], self._position(self.chunks[-1], now)) is None

    def action(self, now: float) -> np.ndarray | None:
        """The action to send at `now`, or None (nothing valid: hold)."""
        instant = now + self.config.actuation_latency_s
        if self.config.mode == "ensemble":
            self.prune(instant)
        return self._blend(instant)

    def actions_at(self, instants) -> np.ndarray | None:
        """The actions meant for each of `instants` (robot time, latencies already applied), shape (len, Da), or None
        when some instant has no action. Read-only: the queue is left as it is."""
        rows = [self._blend(float(t)) for t in instants]
        if any(r is None for r in rows):
            return None
        return np.stack([np.asarray(r, np.float64) for r in rows])
