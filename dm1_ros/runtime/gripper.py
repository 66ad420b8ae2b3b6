"""GripperLatch: a binary gripper command with hysteresis, shared by the simulated and the real robot.

Why: the demonstrations' gripper channel is binary (-1 open, +1 closed), but a sampled action's gripper value
wobbles around zero for a tick or two while the fingers reach the object. robosuite's Panda gripper integrates
the sign of the command, and the Franka gripper starts a new grasp or move per change, so each wobble partly
re-opens the hand. The latch changes state only past a threshold and otherwise keeps it.
"""
from __future__ import annotations


class GripperLatch:
    def __init__(self, close_above: float = 0.3, open_below: float = -0.3, closed: bool = False):
        if not open_below < close_above:
            raise ValueError(f"gripper hysteresis: open_below ({open_below}) must be below close_above ({close_above})")
        self.close_above = close_above
        self.open_below = open_below
        self.closed = closed

    def __call__(self, command: float) -> float:
        """command in [-1, 1] -> +1.0 (closed) or -1.0 (open)."""
        if command > self.close_above:
            self.closed = True
        elif command < self.open_below:
            self.closed = False
        return 1.0 if self.closed else -1.0

    def reset(self, closed: bool = False) -> None:
        self.closed = closed
