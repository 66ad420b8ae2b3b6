"""The control pipeline's parts, without ROS: the Planner (blending, plan once per observation, holds, hot swap),
the CommandExecutor (watchdog -> scheduler -> robot, faults), the background demonstration recorder, rotations and
image helpers, and the rule that these floors import neither rclpy nor torch."""
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from dm1_ros.data.recorder import DemoRecorder
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.executor import CommandExecutor
from dm1_ros.runtime.images import parse_size, resize_image
from dm1_ros.runtime.planner import ChunkBlender, Planner
from dm1_ros.runtime.rotations import matrix_to_quat, quat_to_matrix, quat_to_rotvec, rotvec_to_matrix, rotvec_to_quat
from dm1_ros.runtime.safety import SafetyFilter
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig

from test_loop import PointRobot, ScriptedPolicy

ROOT = Path(__file__).resolve().parents[1]
KEY = "robot0_eye_in_hand_image"


# --- rotations and images ----------------------------------------------------------------------------------------
def test_rotation_round_trips():
    rng = np.random.default_rng(0)
    for r in [np.zeros(3), np.array([1e-9, 0, 0]), *rng.uniform(-1.2, 1.2, (20, 3))]:
        q = rotvec_to_quat(r)
        assert math.isclose(np.linalg.norm(q), 1.0, rel_tol=1e-9)
        np.testing.assert_allclose(quat_to_rotvec(q), r, atol=1e-9)
        np.testing.assert_allclose(quat_to_rotvec(-q), r, atol=1e-9)  # same rotation, other sign
        np.testing.assert_allclose(quat_to_matrix(q), rotvec_to_matrix(r), atol=1e-9)
        np.testing.assert_allclose(matrix_to_quat(rotvec_to_matrix(r)), q if q[3] >= 0 else -q, atol=1e-9)
    np.testing.assert_allclose(rotvec_to_matrix([0, 0, math.pi / 2]) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    for bad in ([0, 0, 0, 0], [np.nan, 0, 0, 1]):
        with pytest.raises(ValueError, match="not a rotation"):
            quat_to_rotvec(bad)


def test_image_sizes():
    assert parse_size("96x64") == (96, 64) and parse_size("") is None
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("96")
    assert resize_image(np.zeros((48, 64, 3), np.uint8), 24, 32).shape == (24, 32, 3)


# --- the planner ---------------------------------------------------------------------------------------------------
def chunk(stamp, value, n=4):
    return ActionChunk(np.full((n, 7), value, np.float32), stamp, "m")


def test_blending_latest_ensemble_chunk():
    latest = ChunkBlender("latest", rate_hz=10)
    np.testing.assert_allclose(latest.add(chunk(0.0, 1.0)).actions, 1.0)
    np.testing.assert_allclose(latest.add(chunk(0.1, 2.0)).actions, 2.0)

    ens = ChunkBlender("ensemble", rate_hz=10, decay=0.5)
    ens.add(chunk(0.0, 1.0))
    out = ens.add(chunk(0.1, 2.0)).actions
    w_old = math.exp(-0.5)  # one control step older
    expected_first = (w_old * 1.0 + 2.0) / (w_old + 1)
    assert out[0, 0] == pytest.approx(expected_first) and out[2, 0] == pytest.approx(expected_first)
    assert out[3, 0] == pytest.approx(2.0)  # the old chunk has no action for stamp 0.1 + 0.3
    ens.add(chunk(0.5, 3.0))
    assert len(ens.chunks) == 1  # chunks with nothing left for the newest instant are dropped

    ck = ChunkBlender("chunk", rate_hz=10)
    assert ck.needs_plan(0.0)
    ck.add(chunk(0.0, 1.0))
    assert not ck.needs_plan(0.1) and not ck.needs_plan(0.3) and ck.needs_plan(0.35)
    with pytest.raises(ValueError, match="latest, ensemble, chunk"):
        ChunkBlender("smooth")


def test_lookahead_restamps_commands_in_every_blending():
    """A chunk planned at t is sent as meant for t - lookahead: at t the robot runs its action for t + lookahead."""
    ramp = ActionChunk(np.arange(4, dtype=np.float32)[:, None].repeat(7, 1), 1.0, "m")
    for mode in ("latest", "chunk"):
        out = ChunkBlender(mode, rate_hz=10, lookahead_s=0.1).add(ramp)
        assert out.stamp == pytest.approx(0.9) and out.actions[1, 0] == 1.0  # actions bit for bit, stamp moved
    ens = ChunkBlender("ensemble", rate_hz=10, lookahead_s=0.1)
    ens.add(ramp)
    later = ens.add(ActionChunk(ramp.actions + 10, 1.1, "m"))  # one step later: overlaps the first by 3 actions
    assert later.stamp == pytest.approx(1.0) and later.actions.shape == (4, 7)
    w = math.exp(-0.5)
    assert later.actions[0, 0] == pytest.approx((w * 1.0 + 10.0) / (w + 1))  # both meant for instant 1.0
    ck = ChunkBlender("chunk", rate_hz=10, lookahead_s=0.1)
    ck.add(ramp)  # runs actions 1..3 from t = 1.0: the next plan is due at 1.3
    assert not ck.needs_plan(1.2) and ck.needs_plan(1.25)


def test_latency_counts_toward_the_lookahead_when_the_model_says_so():
    """lookahead_includes_latency: an observation `age` old at planning is shifted by max(0, lookahead - age), so the
    action that runs first is the one planned lookahead after the observation while the latency is below it, and the
    one planned for the present beyond it (never an action already in the past)."""
    ramp = ActionChunk(np.arange(4, dtype=np.float32)[:, None].repeat(7, 1), 1.0, "m")  # action k is meant for 1.0 + k/10
    for age, runs_first in ((0.0, 2), (0.05, 2), (0.15, 2), (0.2, 2), (0.25, 2.5), (0.3, 3)):
        blender = ChunkBlender("latest", rate_hz=10, lookahead_s=0.2, lookahead_includes_latency=True)
        out = blender.add(ramp, now=1.0 + age)
        assert (1.0 + age - out.stamp) * 10 == pytest.approx(runs_first), age  # the action meant for the present
        np.testing.assert_array_equal(out.actions, ramp.actions)  # the model's actions bit for bit
    assert ChunkBlender("latest", rate_hz=10, lookahead_s=0.2).add(ramp, now=1.15).stamp == pytest.approx(0.8)  # off
    assert ChunkBlender("latest", rate_hz=10, lookahead_s=0.2, lookahead_includes_latency=True).add(ramp).stamp == \
        pytest.approx(0.8)  # no planning instant: age 0


def obs_at(t, size=32):
    return Observation({KEY: np.zeros((size, size, 3), np.uint8)}, np.zeros(9, np.float32), t)


def test_planner_runs_the_model_once_per_observation_and_says_why_not():
    policy = ScriptedPolicy(np.full((4, 7), 0.5))
    planner = Planner(policy, "latest", max_observation_age_s=0.2)
    plan = planner.step(obs_at(1.0), now=1.0)
    assert plan.planned and plan.command.stamp == 1.0 and not plan.hold
    again = planner.step(obs_at(1.0), now=1.01)
    assert again.command is None and again.reason == "same_observation" and not again.hold and policy.calls == 1
    stale = planner.step(obs_at(1.0), now=1.3)
    assert stale.hold and stale.reason == "stale_observation" and "old" in stale.message
    future = planner.step(obs_at(9.0), now=1.31)  # one frame stamped in the future does not pass as fresh
    assert future.hold and "future" in future.message
    policy.actions[:] = np.nan
    bad = planner.step(obs_at(9.05), now=9.05)
    assert bad.hold and bad.reason == "nonfinite_policy_output"


def test_planner_swap_takes_effect_between_ticks_and_a_refused_one_changes_nothing(tmp_path):
    old = ScriptedPolicy(np.zeros((4, 7)), model_id="old", execution="ensemble")
    new = ScriptedPolicy(np.ones((4, 7)), model_id="new", execution="chunk")
    for name in ("good", "broken"):
        (tmp_path / name).mkdir()
        new.manifest.save(tmp_path / name)

    def loader(path, **kwargs):  # OnnxPolicy's part: the broken bundle's graph does not load
        if Path(path).name == "broken":
            raise RuntimeError(f"{path}: model.onnx could not be loaded")
        return new

    planner = Planner(old, "model", loader=loader)
    planner.step(obs_at(0.0))
    assert planner.mode == "ensemble" and len(planner.blender.chunks) == 1
    planner.request_swap(tmp_path / "missing").join()
    planner.request_swap(tmp_path / "broken").join()
    events = planner.poll_swap()
    assert [e.ok for e in events] == [False, False] and "could not be loaded" in planner.last_swap_error
    assert "not a directory" in events[0].message
    assert planner.model_id == "old" and planner.failed_swaps == 2
    planner.stage(planner.load(tmp_path / "good"), "good")  # what policy_node does inside `ros2 param set`
    assert planner.model_id == "old"  # nothing changes before the next tick...
    assert [e.message for e in planner.poll_swap()] == ["old -> new"]
    assert planner.model_id == "new" and planner.mode == "chunk" and not planner.blender.chunks  # ...the old queue is gone
    plan = planner.step(obs_at(0.05))
    np.testing.assert_allclose(plan.command.actions, 1.0)  # the new model's own actions, unblended


def test_planner_refuses_a_model_the_robot_cannot_feed(tiny_policy, tmp_path):
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.runtime.bundle import BundleError

    export_bundle(tiny_policy, tmp_path / "k2", steps=2)
    policy = ScriptedPolicy(np.zeros((4, 7)))
    planner = Planner(policy, sampling_steps=1, warmup=0)
    with pytest.raises(BundleError, match="samples in 2 step"):
        planner.load(tmp_path / "k2")
    planner = Planner(policy, warmup=0)
    assert planner.load(tmp_path / "k2").manifest.sampling_steps == 2


# --- the executor --------------------------------------------------------------------------------------------------
def make_executor(robot, timeout=0.3):
    return CommandExecutor(robot, ActionScheduler(SchedulerConfig(rate_hz=20.0)), command_timeout_s=timeout)


def command(ex, values, stamp, now=None, **kw):
    return ex.command(ActionChunk(np.asarray(values, np.float32), stamp, "cmd"), stamp if now is None else now, **kw)


def test_executor_applies_the_action_meant_for_now_and_holds_on_doubt():
    robot = PointRobot()
    ex = make_executor(robot)
    assert ex.tick(10.0).reason == "stale_command" and robot.holds == 1  # nothing commanded yet
    actions = np.zeros((4, 7), np.float32)
    actions[:, 0] = [0.1, 0.2, 0.3, 0.4]
    assert command(ex, actions, 10.0)
    t = ex.tick(10.05)
    assert not t.held and t.action[0] == pytest.approx(0.2)  # action 1 is meant for stamp + 1/20
    assert ex.tick(10.075).action[0] == pytest.approx(0.25)  # interpolated between ticks
    assert ex.tick(10.25).reason == "no_valid_action"  # every action is late: hold
    command(ex, actions, 10.3)
    assert ex.tick(10.65).reason == "stale_command"  # a silent command link holds even with actions left
    assert ex.watchdog.trips["stale_command"] == 2
    command(ex, actions, 11.0)
    ex.hold_now("policy_error", now=11.01)  # the sender says: do not run what I sent
    assert ex.tick(11.02).reason == "policy_error" and ex.tick(11.03).reason == "policy_error"
    command(ex, actions, 11.05)
    assert not ex.tick(11.05).held  # the next command ends the hold


def test_executor_passes_actions_to_the_robot_which_filters_them():
    robot = PointRobot()
    robot.safety = SafetyFilter()
    ex = make_executor(robot)
    command(ex, np.full((4, 7), np.nan, np.float32), 11.0)
    assert not ex.tick(11.0).held
    assert np.all(np.isnan(robot.applied[-1][:6]))  # the executor does not filter...
    assert robot.safety.interventions["nonfinite"] == 1 and ex.figures()["safety_nonfinite"] == 1  # ...the robot does


def test_executor_stop_fault_and_recovery():
    robot = PointRobot()
    ex = make_executor(robot)
    ex.stop()
    assert not command(ex, np.zeros((4, 7)), 1.0) and ex.tick(1.0).reason == "stopped"
    ex.resume()
    robot.fail = "reflex: cartesian_reflex"
    command(ex, np.zeros((4, 7)), 2.0)
    assert ex.tick(2.0).reason == "fault" and "reflex" in ex.fault
    robot.fail = None
    assert ex.tick(2.05).reason == "fault"  # holds until resumed (recover)
    assert not command(ex, np.zeros((4, 7)), 2.1)
    ex.resume()
    command(ex, np.zeros((4, 7)), 3.0)
    assert not ex.tick(3.0).held
    assert ex.figures()["hold_fault"] == 2 and ex.figures()["commands_rejected"] == 2


def test_executor_notices_a_fault_the_robot_collected_while_holding():
    """FrankaBridge.hold() never raises; a reflex it collects while holding must still stop the executor."""
    robot = PointRobot()
    ex = make_executor(robot)
    assert ex.tick(1.0).reason == "stale_command"
    robot.fault = RuntimeError("robot aborted the motion (cartesian_reflex)")
    assert ex.tick(1.05).reason == "fault" and "cartesian_reflex" in ex.fault
    assert not command(ex, np.zeros((4, 7)), 1.1)


def test_frozen_world_schedule_time():
    """The simulator stands still between ticks: actions are picked for the last observation's instant."""
    robot = PointRobot()
    ex = make_executor(robot)
    actions = np.zeros((2, 7), np.float32)
    actions[:, 0] = [0.2, -0.2]
    assert command(ex, actions, 1.0, now=1.4, schedule_time=1.0)  # long after, but the world waited
    assert ex.tick(1.4, schedule_time=1.0).action[0] == pytest.approx(0.2)


def test_executor_refuses_a_blending_scheduler():
    with pytest.raises(ValueError, match="newest command"):
        CommandExecutor(PointRobot(), ActionScheduler(SchedulerConfig(mode="ensemble")))


# --- background recorder -----------------------------------------------------------------------------------------
def rec_obs(t, size=16):
    return Observation({KEY: np.full((size, size, 3), int(t * 10) % 256, np.uint8)}, np.arange(9, dtype=np.float32), t)


def test_recorder_writes_episodes_atomically_and_resumes(tmp_path):
    out = tmp_path / "demo.hdf5"
    rec = DemoRecorder(out, image_size=(8, 8), valid_fraction=0.0)
    rec.start(device="test")
    start = time.perf_counter()
    for i in range(30):
        assert rec.add(rec_obs(i / 20), np.full(7, i / 30, np.float32))
    assert time.perf_counter() - start < 0.05  # the loop only queues
    assert rec.stop(success=True) == "teleop_00000"
    rec.start()
    rec.add(rec_obs(0.0), np.zeros(7))
    rec.discard()
    rec.start()
    rec.add(rec_obs(0.0), np.zeros(7))  # still recording at close: discarded, not half-saved
    assert rec.close() == out and rec.errors == [] and rec.discarded == 2
    with h5py.File(out) as f:
        demo = f["data/demo_0"]
        assert demo["obs"][KEY].shape == (30, 8, 8, 3) and demo["actions"].shape == (30, 7)
        assert demo["dones"][-1] == 1 and demo["dones"][0] == 0 and demo.attrs["success"]
        np.testing.assert_allclose(demo["timestamps"][:3], [0, 0.05, 0.1])
        assert demo.attrs["recorded_hz"] == pytest.approx(20.0) and f["data"].attrs["total"] == 30
    # a second session extends the dataset (shards are kept), numbering on
    rec = DemoRecorder(out, image_size=(8, 8), valid_fraction=0.0)
    rec.start()
    rec.add(rec_obs(0.0), np.zeros(7))
    assert rec.stop() == "teleop_00001"
    rec.close()
    with h5py.File(out) as f:
        assert sorted(f["data"].keys()) == ["demo_0", "demo_1"]


class PausedRecorder(DemoRecorder):
    """The disk is stuck until `gate` opens."""

    def __init__(self, *args, **kwargs):
        self.gate = threading.Event()
        super().__init__(*args, **kwargs)

    def _run(self):
        self.gate.wait()
        super()._run()


def test_recorder_refuses_an_episode_with_a_dropped_step(tmp_path):
    rec = PausedRecorder(tmp_path / "d.hdf5", max_queue=3)
    rec.start()
    results = [rec.add(rec_obs(i), np.zeros(7)) for i in range(5)]  # never blocks, even with the disk stuck
    assert results.count(False) >= 2 and rec.dropped >= 2
    rec.stop()
    assert "refused" in rec.errors[-1]
    rec.gate.set()
    assert rec.close() is None and rec.saved == []


# --- floors --------------------------------------------------------------------------------------------------------
def test_the_pipeline_and_data_floors_import_neither_rclpy_nor_torch():
    code = ("import sys; import dm1_ros.runtime.planner, dm1_ros.runtime.executor, dm1_ros.runtime.loop, "
            "dm1_ros.runtime.rotations, dm1_ros.runtime.images, dm1_ros.data.recorder, dm1_ros.data.rosbag, "
            "dm1_ros.paths, dm1_ros.hardware.cameras, dm1_ros.hardware.franka, dm1_ros.hardware.teleop; "
            "bad = [m for m in ('rclpy', 'torch', 'sensor_msgs') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_ros_layer_holds_no_control_logic_of_its_own():
    """One pipeline: planning and the command tick live in runtime/; ros/ only wires them to topics."""
    import ast

    for path in (ROOT / "dm1_ros" / "ros").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(tree)
                 if isinstance(n, (ast.Name, ast.Attribute))}
        assert "ActionScheduler" not in names or path.stem == "robot_bridge", path.name  # the executor's, built there
        assert "SafetyFilter" not in names, f"{path.name}: the robot owns the safety filter"
        assert not {"predict", "OnnxPolicy"} & names or path.stem == "policy_node", path.name
