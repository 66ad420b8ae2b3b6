"""The ROS layer's plain-Python parts: conversions, blending, the bridges' executor, observation assembly, the
background demonstration recorder and the rosbag2 writer. Message classes come from rclpy's world (the stand-in
here, the real packages on a ROS 2 machine)."""
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ros_standin import STANDIN, STANDIN_DIR

from builtin_interfaces.msg import Time  # noqa: E402  (after ros_standin)
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

from dm1_ros.ros import conversions as cv  # noqa: E402
from dm1_ros.ros.arrays import axis_angle_to_quat, parse_size, quat_to_axis_angle, resize_image  # noqa: E402
from dm1_ros.ros.assembler import ObservationAssembler  # noqa: E402
from dm1_ros.ros.executor import CommandExecutor  # noqa: E402
from dm1_ros.ros.policy_runner import ChunkBlender  # noqa: E402
from dm1_ros.ros.recorder import DemoRecorder  # noqa: E402
from dm1_ros.runtime.contract import ActionChunk, Observation  # noqa: E402
from dm1_ros.runtime.safety import SafetyFilter, Watchdog  # noqa: E402
from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "robot0_eye_in_hand_image"


class PointRobot:
    """A kinematic stand-in for the robot contract (the one test_loop uses, plus stop/recover)."""

    rate_hz = 20.0

    def __init__(self):
        self.pos = np.array([0.5, 0.0, 0.3])
        self.applied, self.holds, self.fail = [], 0, None

    def observe(self):
        proprio = np.concatenate([self.pos, [1, 0, 0, 0], [0.04, -0.04]]).astype(np.float32)
        return Observation({KEY: np.zeros((8, 8, 3), np.uint8)}, proprio, 0.0)

    def apply(self, action):
        if self.fail:
            raise RuntimeError(self.fail)
        self.applied.append(np.asarray(action))
        self.pos = self.pos + np.asarray(action[:3]) * 0.05

    def hold(self):
        self.holds += 1


# --- numeric helpers and messages ----------------------------------------------------------------------------
def test_rotation_round_trip_and_sizes():
    rng = np.random.default_rng(0)
    for r in [np.zeros(3), np.array([1e-9, 0, 0]), *rng.uniform(-1.2, 1.2, (20, 3))]:
        q = axis_angle_to_quat(r)
        assert math.isclose(np.linalg.norm(q), 1.0, rel_tol=1e-9)
        np.testing.assert_allclose(quat_to_axis_angle(q), r, atol=1e-9)
        np.testing.assert_allclose(quat_to_axis_angle(-q), r, atol=1e-9)  # same rotation, other sign
    with pytest.raises(ValueError, match="not a rotation"):
        quat_to_axis_angle([0, 0, 0, 0])
    assert parse_size("96x64") == (96, 64) and parse_size("") is None
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("96")
    assert resize_image(np.zeros((48, 64, 3), np.uint8), 24, 32).shape == (24, 32, 3)


def test_image_encodings_and_padding():
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = cv.array_to_image(rgb, 12.25, "cam")
    assert msg.encoding == "rgb8" and msg.step == 21 and cv.to_sec(msg.header.stamp) == 12.25
    np.testing.assert_array_equal(cv.image_to_array(msg), rgb)
    # bgr8 with 3 bytes of row padding
    padded = np.zeros((5, 24), np.uint8)
    padded[:, :21] = rgb[..., ::-1].reshape(5, 21)
    bgr = Image(height=5, width=7, encoding="bgr8", step=24, data=padded.tobytes())
    np.testing.assert_array_equal(cv.image_to_array(bgr), rgb)
    rgba = Image(height=5, width=7, encoding="rgba8", step=28,
                 data=np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], 2).tobytes())
    np.testing.assert_array_equal(cv.image_to_array(rgba), rgb)
    with pytest.raises(ValueError, match="16UC1"):
        cv.image_to_array(Image(height=1, width=1, encoding="16UC1", step=2, data=b"\0\0"))
    with pytest.raises(ValueError, match="bytes"):
        cv.image_to_array(Image(height=5, width=7, encoding="rgb8", step=21, data=b"\0" * 10))


def test_message_fields_are_checked_like_rclpy():
    """What rosidl's setters refuse, the messages refuse (here the stand-in's, on ROS 2 the real ones)."""
    with pytest.raises(AssertionError):
        JointState().position = np.zeros(3)  # a numpy array is not a sequence to rosidl
    with pytest.raises(AssertionError):
        PoseStamped().pose.position.x = 1  # an int in a float64 field
    with pytest.raises(AssertionError):
        Time(sec=1.5)


def test_trajectory_round_trip_and_layout():
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, (4, 7))
    msg = cv.actions_to_trajectory(actions, 100.5, 20.0, 0.05, 0.5, "panda_link0")
    assert list(msg.joint_names) == ["eef", "gripper"] and msg.header.frame_id == "panda_link0"
    assert [cv.to_sec(p.time_from_start) for p in msg.points] == pytest.approx([0, 0.05, 0.1, 0.15])
    t0 = msg.points[0].transforms[0]
    assert t0.translation.x == pytest.approx(actions[0, 0] * 0.05)  # metres
    np.testing.assert_allclose(quat_to_axis_angle([t0.rotation.x, t0.rotation.y, t0.rotation.z, t0.rotation.w]),
                               actions[0, 3:6] * 0.5, atol=1e-9)  # radians
    assert msg.points[0].transforms[1].translation.x == pytest.approx(actions[0, 6])
    back, stamp, spacing = cv.trajectory_to_actions(msg, 0.05, 0.5)
    np.testing.assert_allclose(back, actions, atol=1e-6)
    assert stamp == pytest.approx(100.5) and spacing == pytest.approx(0.05)
    raw = cv.chunk_to_array_msg(actions)
    assert [(d.label, d.size) for d in raw.layout.dim] == [("action", 4), ("dim", 7)]
    np.testing.assert_allclose(cv.array_msg_to_chunk(raw), actions)
    msg.joint_names = ["eef"]
    with pytest.raises(ValueError, match="gripper"):
        cv.trajectory_to_actions(msg, 0.05, 0.5)


def test_state_messages_and_proprio():
    proprio = np.array([0.1, 0.2, 0.9, 1, 0, 0, 0, 0.03, -0.03], np.float32)
    joints, pose, gripper = cv.state_messages(proprio, 5.0, "base", arm_joints=np.arange(7.0), gripper_command=1.0)
    assert list(joints.name)[-2:] == ["panda_finger_joint1", "panda_finger_joint2"] and len(joints.name) == 9
    assert list(gripper.data) == pytest.approx([0.06, 1.0])
    np.testing.assert_allclose(cv.proprio_from_state(pose, joints), proprio, atol=1e-7)
    joints.name = ["a", "b"]
    joints.position = [0.0, 0.0]
    with pytest.raises(ValueError, match="finger_joints"):
        cv.proprio_from_state(pose, joints)


# --- blending ------------------------------------------------------------------------------------------------
def chunk(stamp, value, n=4):
    return ActionChunk(np.full((n, 7), value, np.float32), stamp, "m")


def test_blending_latest_ensemble_chunk():
    latest = ChunkBlender("latest", rate_hz=10)
    np.testing.assert_allclose(latest.add(chunk(0.0, 1.0)), 1.0)
    np.testing.assert_allclose(latest.add(chunk(0.1, 2.0)), 2.0)

    ens = ChunkBlender("ensemble", rate_hz=10, decay=0.5)
    ens.add(chunk(0.0, 1.0))
    out = ens.add(chunk(0.1, 2.0))
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


# --- the bridges' executor -------------------------------------------------------------------------------------
def make_executor(robot, timeout=0.3):
    return CommandExecutor(robot, ActionScheduler(SchedulerConfig(rate_hz=20.0)), SafetyFilter(),
                           Watchdog(command_timeout_s=timeout))


def test_executor_applies_the_action_meant_for_now_and_holds_on_doubt():
    robot = PointRobot()
    ex = make_executor(robot)
    assert ex.tick(10.0).reason == "no_valid_action" and robot.holds == 1  # nothing commanded yet
    actions = np.zeros((4, 7), np.float32)
    actions[:, 0] = [0.1, 0.2, 0.3, 0.4]
    assert ex.command(actions, stamp=10.0, now=10.0)
    t = ex.tick(10.05)
    assert not t.held and t.action[0] == pytest.approx(0.2)  # action 1 is meant for stamp + 1/20
    assert ex.tick(10.075).action[0] == pytest.approx(0.25)  # interpolated between ticks
    assert ex.tick(10.25).reason == "no_valid_action"  # every action is late: hold
    # stale command link: the watchdog holds even with actions left
    ex.command(actions, stamp=10.3, now=10.3)
    assert ex.tick(10.65).reason == "stale_command"
    assert ex.watchdog.trips["stale_command"] == 1
    # NaN never reaches the robot
    ex.command(np.full((4, 7), np.nan, np.float32), stamp=11.0, now=11.0)
    n = len(robot.applied)
    ex.tick(11.0)
    assert len(robot.applied) == n + 1 and np.all(robot.applied[-1][:6] == 0)  # the safety filter's hold action


def test_executor_stop_fault_and_recovery():
    robot = PointRobot()
    ex = make_executor(robot)
    ex.stop()
    assert not ex.command(np.zeros((4, 7)), 1.0, 1.0) and ex.tick(1.0).reason == "stopped"
    ex.resume()
    robot.fail = "reflex: cartesian_reflex"
    ex.command(np.zeros((4, 7)), 2.0, 2.0)
    assert ex.tick(2.0).reason == "fault" and "reflex" in ex.fault
    robot.fail = None
    assert ex.tick(2.05).reason == "fault"  # holds until resumed (recover)
    ex.resume()
    ex.command(np.zeros((4, 7)), 3.0, 3.0)
    assert not ex.tick(3.0).held
    assert ex.figures()["hold_fault"] == 2


def test_frozen_world_schedule_time():
    """The simulator stands still between ticks: actions are picked for the last observation's instant."""
    robot = PointRobot()
    ex = make_executor(robot)
    actions = np.zeros((2, 7), np.float32)
    actions[:, 0] = [0.2, -0.2]
    assert ex.command(actions, stamp=1.0, now=1.4, schedule_time=1.0)  # long after, but the world waited
    assert ex.tick(1.4, schedule_time=1.0).action[0] == pytest.approx(0.2)


# --- observation assembly ------------------------------------------------------------------------------------
def test_assembler_stamps_from_the_image_and_refuses_stale_inputs():
    asm = ObservationAssembler([KEY], {KEY: (8, 8)}, max_age_s=0.2)
    assert asm.build(1.0) == (None, "no_image")
    asm.set_image(KEY, cv.array_to_image(np.full((16, 16, 3), 7, np.uint8), 1.0, "cam"))
    assert asm.build(1.0)[1] == "no_state"
    joints, pose, _ = cv.state_messages(np.array([0.1, 0, 0.2, 1, 0, 0, 0, 0.02, -0.02]), 1.05, "base")
    asm.set_joints(joints)
    asm.set_pose(pose)
    obs, why = asm.build(1.1)
    assert why is None and obs.stamp == pytest.approx(1.0) and obs.images[KEY].shape == (8, 8, 3)
    assert obs.proprio.dtype == np.float32 and obs.proprio[7] == pytest.approx(0.02)
    assert asm.build(1.3)[1] == "stale_image"


# --- background recorder ---------------------------------------------------------------------------------------
def obs_at(t, size=16):
    return Observation({KEY: np.full((size, size, 3), int(t * 10) % 256, np.uint8)},
                       np.arange(9, dtype=np.float32), t)


def test_recorder_writes_episodes_atomically_and_resumes(tmp_path):
    out = tmp_path / "demo.hdf5"
    rec = DemoRecorder(out, image_size=(8, 8), valid_fraction=0.0)
    rec.start(device="test")
    start = time.perf_counter()
    for i in range(30):
        assert rec.add(obs_at(i / 20), np.full(7, i / 30, np.float32))
    assert time.perf_counter() - start < 0.05  # the loop only queues
    assert rec.stop(success=True) == "teleop_00000"
    rec.start()
    rec.add(obs_at(0.0), np.zeros(7))
    rec.discard()
    rec.start()
    rec.add(obs_at(0.0), np.zeros(7))  # still recording at close: discarded, not half-saved
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
    rec.add(obs_at(0.0), np.zeros(7))
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
    results = [rec.add(obs_at(i), np.zeros(7)) for i in range(5)]  # never blocks, even with the disk stuck
    assert results.count(False) >= 2 and rec.dropped >= 2
    rec.stop()
    assert "refused" in rec.errors[-1]
    rec.gate.set()
    assert rec.close() is None and rec.saved == []


# --- rosbag2 ---------------------------------------------------------------------------------------------------
def test_bag_recorder_writes_mcap_that_rosbags_reads(tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from dm1_ros.ros.bag import BagRecorder

    bag = BagRecorder(tmp_path / "bag", storage="mcap")
    img = cv.array_to_image(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), 3.0, "cam")
    joints, pose, _ = cv.state_messages(np.array([0.1, 0, 0.2, 1, 0, 0, 0, 0.02, -0.02]), 3.0, "base")
    traj = cv.actions_to_trajectory(np.zeros((2, 7)), 3.0, 20.0, 0.05, 0.5, "base")
    for topic, msg in [("/img", img), ("/joints", joints), ("/pose", pose), ("/cmd", traj)]:
        assert bag.write(topic, msg, 3_000_000_000)
    bag.close()
    assert bag.errors == [] and bag.written == 4
    assert list((tmp_path / "bag").glob("*.mcap"))
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(tmp_path / "bag") as reader:
        got = {c.topic: store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages()}
    np.testing.assert_array_equal(got["/img"].data, np.arange(48, dtype=np.uint8))
    assert got["/img"].encoding == "rgb8" and list(got["/joints"].name)[-1] == "panda_finger_joint2"
    assert got["/cmd"].joint_names == ["eef", "gripper"] and len(got["/cmd"].points) == 2


# --- import hygiene ---------------------------------------------------------------------------------------------
def test_ros_free_modules_import_neither_rclpy_nor_torch():
    code = ("import sys; import dm1_ros.ros.topics, dm1_ros.ros.arrays, dm1_ros.ros.policy_runner, "
            "dm1_ros.ros.executor, dm1_ros.ros.recorder, dm1_ros.ros.bag; "
            "bad = [m for m in ('rclpy', 'torch', 'sensor_msgs') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_nodes_never_import_torch():
    """A robot PC runs the nodes with onnxruntime alone: build and configure the policy node, no torch."""
    path = "" if not STANDIN else f"sys.path.insert(0, {str(STANDIN_DIR)!r}); "
    code = (f"import sys; {path}import rclpy; rclpy.init(); "
            "import dm1_ros.ros.camera_node, dm1_ros.ros.franka_bridge_node, dm1_ros.ros.sim_bridge_node, "
            "dm1_ros.ros.teleop_node; from dm1_ros.ros.policy_node import PolicyNode; "
            "from rclpy.parameter import Parameter; "
            "from rclpy.lifecycle import TransitionCallbackReturn as R; "
            "n = PolicyNode(parameter_overrides=[Parameter('warmup', value=1)]); "
            "assert n.trigger_configure() == R.SUCCESS, n.last_error; "
            "assert 'torch' not in sys.modules; n.close(); n.destroy_node(); rclpy.shutdown()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
