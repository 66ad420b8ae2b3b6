"""How much each new plan changes what the previous plan meant to do at the same instants.

A policy that re-plans at every tick gets a new chunk of Ta actions for instants stamp + k / rate; the previous
chunk covered Ta - 1 of them already. If the two disagree a lot, the robot dithers between intentions (e.g. two
ways to approach a grasp) instead of carrying one out. This measures that disagreement on the model's own
outputs, in robot units, so runs of different samplers (one step, ten steps) can be compared on it:

    consistency = PlanConsistency(rate_hz=20.0)
    consistency.add(chunk)           # every chunk the model returns (ActionChunk, dm1_ros/runtime/contract.py)
    consistency.summary()            # {"compared": n, "arm_rms": ..., "gripper_flips": ...}
    pool_summaries([...])            # several episodes' summaries as one

arm_rms: RMS over the shared instants and the arm dimensions (all but the last: the gripper) of new - previous;
gripper_flips: the share of shared instants where the gripper command changes sign (open <-> closed). Plans more
than a chunk apart (open-loop chunks) share no instant and are not compared. No torch, no rclpy.
"""
from __future__ import annotations

import numpy as np


class PlanConsistency:
    def __init__(self, rate_hz: float):
        self.rate_hz = float(rate_hz)
        self.reset()

    def reset(self) -> None:
        self._last: tuple[float, np.ndarray] | None = None
        self.compared = 0  # plans compared with the one before them
        self._arm_sq, self._arm_n = 0.0, 0
        self._flips, self._gripper_n = 0, 0

    def add(self, chunk) -> None:
        """chunk: the model's output (actions (Ta, Da) in robot units, stamped with its observation's time)."""
        actions = np.asarray(chunk.actions, dtype=np.float64)
        if self._last is not None:
            last_stamp, last = self._last
            k = int(round((chunk.stamp - last_stamp) * self.rate_hz))
            shared = min(len(last), len(actions) + k) - k  # previous[k:] and new[:shared] mean the same instants
            if 0 < k and shared > 0 and last.shape[1] == actions.shape[1]:
                new, old = actions[:shared], last[k:k + shared]
                self._arm_sq += float(np.sum((new[:, :-1] - old[:, :-1]) ** 2))
                self._arm_n += new[:, :-1].size
                self._flips += int(np.sum(np.sign(new[:, -1]) != np.sign(old[:, -1])))
                self._gripper_n += shared
                self.compared += 1
        self._last = (float(chunk.stamp), actions)

    def summary(self) -> dict:
        """{"compared", "arm_rms", "gripper_flips"}; the two figures are None before two plans shared an instant."""
        return {"compared": self.compared,
                "arm_rms": float(np.sqrt(self._arm_sq / self._arm_n)) if self._arm_n else None,
                "gripper_flips": self._flips / self._gripper_n if self._gripper_n else None}


def pool_summaries(summaries: list[dict]) -> dict:
    """Several PlanConsistency summaries (e.g. one per episode) as one, weighted by the plans each compared (the arm
    figure pooled as an RMS); None figures where no plan was compared (chunks open loop)."""
    compared = [s for s in summaries if s["compared"] and s["arm_rms"] is not None]
    n = sum(s["compared"] for s in compared)
    if not n:
        return {"compared": 0, "arm_rms": None, "gripper_flips": None}
    return {"compared": n,
            "arm_rms": float(np.sqrt(sum(s["compared"] * s["arm_rms"] ** 2 for s in compared) / n)),
            "gripper_flips": sum(s["compared"] * s["gripper_flips"] for s in compared) / n}
