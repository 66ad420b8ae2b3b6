"""Observation latency for evaluation: the policy sees the world as it was `ticks` control periods ago.

    robot = DelayedObservations(SimRobot(...), ticks=2)   # 100 ms at 20 Hz

observe() returns the images and proprio of `ticks` periods ago, stamped now: the actions planned on it start at
once, so the observation the policy sees is that old when its actions start, which is what a slower computer or a
busy robot PC does to a deployed policy (`dm1 eval --delay-ms`). Everything else is the wrapped robot's.
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace


class DelayedObservations:
    def __init__(self, robot, ticks: int):
        if ticks < 0:
            raise ValueError(f"delay must be >= 0 ticks, got {ticks}")
        self.robot = robot
        self.ticks = int(ticks)
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
        return replace(self._past[0], stamp=now.stamp)  # the oldest kept (the first frame until `ticks` have passed)
