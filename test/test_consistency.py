"""PlanConsistency: how much a re-plan changes what the previous plan meant for the same instants, and the Planner
and `dm1 eval` reporting it."""
import numpy as np
import pytest

from dm1_ros.runtime.consistency import PlanConsistency, pool_summaries
from dm1_ros.runtime.contract import ActionChunk
from dm1_ros.runtime.planner import Planner

from test_loop import ScriptedPolicy
from test_pipeline import obs_at

RATE = 20.0


def plan(stamp, actions):
    return ActionChunk(np.asarray(actions, dtype=np.float32), stamp, "m")


def ramp(start_tick, gripper=1.0):
    """A 4-action chunk from tick start_tick of one fixed trajectory (x = 0.1 per tick), gripper fixed."""
    return [[0.1 * (start_tick + i), 0, 0, 0, 0, 0, gripper] for i in range(4)]


def test_a_plan_that_keeps_the_last_plans_intent_changes_nothing():
    c = PlanConsistency(RATE)
    for tick in range(5):
        c.add(plan(tick / RATE, ramp(tick)))
    assert c.summary() == {"compared": 4, "arm_rms": 0.0, "gripper_flips": 0.0}


def test_arm_change_and_gripper_flips_are_measured_on_shared_instants_only():
    c = PlanConsistency(RATE)
    c.add(plan(0.0, ramp(0)))
    changed = np.array(ramp(1))
    changed[:, 1] += 0.3  # every shared instant moved 0.3 along y
    changed[0, 6] = -1.0  # the gripper opens at the first shared instant only
    changed[3, 6] = -1.0  # ... and at the new instant, which the last plan did not cover
    c.add(plan(1 / RATE, changed))
    s = c.summary()
    # 3 shared instants x 6 arm dims, of which one dim moved by 0.3 at each
    assert s["compared"] == 1 and s["arm_rms"] == pytest.approx(0.3 / np.sqrt(6))
    assert s["gripper_flips"] == pytest.approx(1 / 3)


def test_open_loop_chunks_share_no_instant_and_reset_forgets():
    c = PlanConsistency(RATE)
    c.add(plan(0.0, ramp(0)))
    c.add(plan(4 / RATE, ramp(4, gripper=-1.0)))  # the next chunk of an open-loop run
    assert c.summary() == {"compared": 0, "arm_rms": None, "gripper_flips": None}
    c.add(plan(6 / RATE, ramp(6)))
    assert c.summary()["compared"] == 1 and c.summary()["gripper_flips"] == 1.0
    c.reset()
    c.add(plan(7 / RATE, ramp(7)))
    assert c.summary()["compared"] == 0


def test_the_planner_measures_its_model_outputs_and_forgets_them_on_reset():
    policy = ScriptedPolicy(np.full((4, 7), 0.5))
    planner = Planner(policy, "latest", lookahead_s=0.05)  # the lookahead shifts commands, not what is measured
    for tick in range(3):
        planner.step(obs_at(1.0 + tick / RATE))
    assert planner.consistency.summary() == {"compared": 2, "arm_rms": 0.0, "gripper_flips": 0.0}
    planner.reset()
    assert planner.consistency.summary()["compared"] == 0


def test_episodes_pool_by_the_plans_they_compared():
    pooled = pool_summaries([{"compared": 3, "arm_rms": 1.0, "gripper_flips": 0.0},
                                   {"compared": 1, "arm_rms": 3.0, "gripper_flips": 1.0},
                                   {"compared": 0, "arm_rms": None, "gripper_flips": None}])
    assert pooled["compared"] == 4 and pooled["arm_rms"] == pytest.approx(np.sqrt((3 + 9) / 4))
    assert pooled["gripper_flips"] == pytest.approx(0.25)
    assert pool_summaries([{"compared": 0, "arm_rms": None, "gripper_flips": None}])["arm_rms"] is None
