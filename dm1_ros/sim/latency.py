"""Observation latency for evaluation: the policy sees the world as it was `ticks` control periods ago.

    robot = DelayedObservations(SimRobot(...), ticks=2)   # 100 ms at 20 Hz

observe() returns the images and proprio of `ticks` periods ago, which is what a slower computer or a busy robot PC
does to a deployed policy (`dm1 eval --delay-ms`). Two ways to run the chunk planned on it:
- stamped (restamp=False, what dm1_ros's runtime does with true capture stamps): the observation keeps its own
  stamp, the loop's clock is the present, and the scheduler executes each action at the instant it was planned for,
  so the first `ticks` actions of every chunk are already in the past and are skipped;
- naive (restamp=True, a stack that ignores latency): the observation is stamped now and the chunk starts with its
  first action, planned for a world `ticks` periods old.
Everything else is the wrapped robot's.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace


class DelayedObservations:
    def __init__(self, robot, ticks: int, restamp: bool = False):
        if ticks < 0:
            raise ValueError(f"delay must be >= 0 ticks, got {ticks}")
        self.robot = robot
        self.ticks = int(ticks)
        self.restamp = restamp
        self._past: deque = deque(maxlen=self.ticks + 1)

    def __getattr__(self, name):
        return getattr(self.robot, name)

    def reset(self, *args, **kwargs):
        self._past.clear()
        return self.robot.reset(*args, **kwargs)

    def observe(self):
        now = self.robot.observe()
        if not self._past or self._past[-1].stamp != now.stamp:  # one entry per control period
            self._past.append(now)
        oldest = self._past[0]  # (the first frame until `ticks` periods have passed)
        return replace(oldest, stamp=now.stamp) if self.restamp else oldest

    def now(self) -> float:
        """The present on the observation clock (the loop's clock when the stamps are kept)."""
        return self.robot.observe().stamp
