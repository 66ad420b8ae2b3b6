"""How far an episode got: each task's stages, read from the simulator's privileged state after every tick.

A success rate says how often a policy fails; the stages say where (square: the nut never grasped, grasped but not
squared to the peg, or squared but never brought over it). `dm1 eval` records the stages each episode reached and
counts them over the episodes.

    tracker = StageTracker("square")
    tracker.reset(env)      # after env.reset(): the objects' resting heights
    tracker.update(env)     # after every step
    tracker.reached         # e.g. ["grasped", "lifted"]: in the task's order, each reached at least once

Grasped is robosuite's own test (both finger pads touch the object); lifted, squared and over the peg or bin are
read while it is grasped.
"""
from __future__ import annotations

import math

import numpy as np

from dm1_ros.sim.experts import object_yaw, wrap

LIFTED_M = 0.1  # the square nut clears its peg, the can the wall between the bins
SQUARED_RAD = 0.05  # nut yaw within 3 degrees of a multiple of 90: it fits the square peg (the expert places at 0.04)
OVER_PEG_M = 0.01  # the nut's centre over the peg's axis
OVER_BIN_M = 0.05  # the can over its target slot

OBJECT_KEYS = {"lift": "cube_pos", "can": "Can_pos", "square": "SquareNut_pos"}
STAGES = {"lift": ("grasped",), "can": ("grasped", "lifted", "over_bin"),
          "square": ("grasped", "lifted", "squared", "over_peg")}


class StageTracker:
    def __init__(self, task: str):
        if task not in STAGES:
            raise ValueError(f"no stages for task {task!r}; available: {sorted(STAGES)}")
        self.task = task
        self.rest_z = 0.0
        self._reached: set[str] = set()

    def reset(self, env) -> None:
        self.rest_z = float(env.raw_observation()[OBJECT_KEYS[self.task]][2])
        self._reached = set()

    @property
    def reached(self) -> list[str]:
        return [s for s in STAGES[self.task] if s in self._reached]

    def update(self, env) -> None:
        self._reached |= self.stages_now(env)

    def task_object(self, e):
        """The robosuite model of the task's object in env `e` (its contact geoms are what a grasp touches)."""
        if self.task == "lift":
            return e.cube
        return e.objects[e.object_id] if self.task == "can" else e.nuts[e.nut_id]

    def stages_now(self, env) -> set[str]:
        e, o = env.env, env.raw_observation()
        if not e._check_grasp(gripper=e.robots[0].gripper, object_geoms=self.task_object(e)):
            return set()
        position = np.asarray(o[OBJECT_KEYS[self.task]])
        now = {"grasped"}
        if position[2] - self.rest_z > LIFTED_M:
            now.add("lifted")
        if self.task == "square":
            squared = abs(wrap(object_yaw(o["SquareNut_quat"]), math.pi / 2)) < SQUARED_RAD
            if squared and "lifted" in now:
                now.add("squared")
            peg = np.array(e.sim.data.body_xpos[e.peg1_body_id])
            if squared and np.linalg.norm(position[:2] - peg[:2]) < OVER_PEG_M:
                now.add("over_peg")
        elif self.task == "can":
            if np.linalg.norm(position[:2] - e.target_bin_placements[e.object_id][:2]) < OVER_BIN_M:
                now.add("over_bin")
        return now
