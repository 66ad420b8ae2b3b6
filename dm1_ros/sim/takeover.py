"""Recovery demonstrations: the states a policy reaches, finished by the scripted expert (`dm1 collect --takeover`).

A policy trained on the expert's demonstrations drifts off their paths, and off them it misreads the scene
(docs/results_notes.md, square with cameras). Here the policy drives a seeded episode for T ticks through the control
loop `dm1 eval` runs (T drawn per episode, from the seed), then the task's scripted expert takes over from wherever
the policy left the scene (`Expert.resume`) and drives to the episode's end. Only the expert's part is recorded: a
demonstration whose first state is one the policy reached. This is DAgger's aggregation with the expert in control
after the hand-over (as HG-DAgger does), so every recorded action is the expert's, on a path it can finish.

    robot, policy = takeover_setup("square", "results/square_dagger/takeover_policy", config)
    success, info = takeover_episode(robot, policy, make_expert("square", seed), seed, ticks=(10, 150), on_step=...)
"""
from __future__ import annotations

import numpy as np


class PolicyTicks:
    """The simulated robot, whose episode ends for the policy after `ticks` control ticks (0: only at the task's
    end); everything else is the robot's."""

    def __init__(self, robot, ticks: int):
        self.robot, self.limit, self.ticks = robot, ticks, 0

    def __getattr__(self, name):
        return getattr(self.robot, name)

    @property
    def done(self) -> bool:
        return self.robot.done or 0 < self.limit <= self.ticks

    def reset(self, seed=None):
        self.ticks = 0
        return self.robot.reset(seed=seed)

    def apply(self, action):
        self.ticks += 1
        self.robot.apply(action)

    def hold(self):
        self.ticks += 1
        self.robot.hold()


def takeover_tick(seed: int, ticks: tuple[int, int]) -> int:
    """The hand-over tick of episode `seed`, uniform in [ticks[0], ticks[1]]: the same seed, the same tick (resume)."""
    lo, hi = ticks
    if not 0 < lo <= hi:
        raise ValueError(f"takeover ticks must be a range 0 < first <= last, got {ticks}")
    return int(np.random.default_rng([seed, 0x7A4E]).integers(lo, hi + 1))


def takeover_setup(task: str, bundle: str, config):
    """-> (SimRobot of `config`, the bundle's OnnxPolicy, 1 thread); refuses a bundle these observations cannot feed."""
    from dm1_ros.runtime.onnx_policy import OnnxPolicy
    from dm1_ros.sim.robot import SimRobot

    policy = OnnxPolicy(bundle, threads=1)
    robot = SimRobot(config)
    try:
        policy.manifest.check_observation_spec(robot.observation_spec)
    except Exception as exc:
        robot.close()
        raise ValueError(f"--takeover {bundle}: the policy cannot read this collection's observations "
                         f"(task {task}, cameras {config.cameras}, {config.image_size[0]} px): {exc}") from None
    return robot, policy


def takeover_episode(robot, policy, expert, seed: int, ticks: tuple[int, int], on_step=None) -> tuple[bool, dict]:
    """The policy drives episode `seed` for takeover_tick(seed, ticks) ticks, then `expert` finishes it; on_step
    (as in run_expert_episode) sees the expert's steps only. -> (the expert finished the task, {takeover_tick,
    policy_success, policy_progress (the task's stages the policy reached, dm1_ros/sim/stages.py), expert_steps}).
    An episode the policy ends (success or time) has no expert part: (False, ...)."""
    from dm1_ros.sim.experts import finish_episode
    from dm1_ros.train.evaluate import run_episode

    tick = takeover_tick(seed, ticks)
    driven = run_episode(PolicyTicks(robot, tick), policy, seed)
    info = {"takeover_tick": tick, "policy_success": bool(driven["success"]), "expert_steps": 0,
            "policy_progress": " ".join(driven["progress"])}
    if robot.done:
        return False, info
    expert.resume(robot.env)
    success, info["expert_steps"] = finish_episode(robot.env, expert, on_step, obs=robot.observe())
    return success, info
