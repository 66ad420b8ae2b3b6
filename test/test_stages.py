"""Where an episode got to (dm1_ros/sim/stages.py): the scripted expert passes every stage of its task in order, a
robot that does nothing passes none, and `dm1 eval` counts them."""
import numpy as np
import pytest

pytest.importorskip("robosuite")

from dm1_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from dm1_ros.sim.experts import finish_episode, make_expert  # noqa: E402
from dm1_ros.sim.stages import STAGES, StageTracker  # noqa: E402
from dm1_ros.train.evaluate import stage_counts  # noqa: E402


@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_the_expert_passes_every_stage_in_order_and_idling_passes_none(task):
    env = SimEnv(SimConfig(task=task, use_images=False))
    try:
        env.reset(seed=0)
        idle = StageTracker(task)
        idle.reset(env)
        for _ in range(10):
            env.step(np.zeros(7))
            idle.update(env)
        assert idle.reached == []

        obs = env.reset(seed=0)
        tracker, first = StageTracker(task), {}
        tracker.reset(env)

        def on_step(*_):
            tracker.update(env)
            for stage in tracker.reached:
                first.setdefault(stage, env.steps)

        expert = make_expert(task, seed=0)
        expert.reset(env)
        success, steps = finish_episode(env, expert, on_step, obs=obs)
        assert success and tracker.reached == list(STAGES[task])
        # measured on seed 0: square grasped at step 45, lifted 62, squared 77, over the peg 114, done at 150
        assert sorted(first.values()) == [first[s] for s in STAGES[task]] and first[STAGES[task][0]] > 10
        assert max(first.values()) < steps
    finally:
        env.close()


def test_stage_counts_follow_the_tasks_order_with_zeros():
    episodes = [{"progress": ["grasped", "over_peg"], "success": False}, {"progress": [], "success": False},
                {"progress": ["grasped", "lifted", "squared", "over_peg"], "success": True}]
    assert list(stage_counts(episodes, "square").items()) == [("grasped", 2), ("lifted", 1), ("squared", 1),
                                                             ("over_peg", 2), ("success", 1)]
    with pytest.raises(ValueError, match="no stages for task 'stack'"):
        StageTracker("stack")
