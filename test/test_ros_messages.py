"""ROS messages <-> the pipeline's contracts (conversions, the command layout and its hold, observation assembly,
the rosbag2 writer), on the real message packages of ROS 2; skipped without one."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ros2_support import HOW, ROS2

if not ROS2:
    pytest.skip(HOW, allow_module_level=True)

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402

from dm1_ros.ros import conversions as cv  # noqa: E402
from dm1_ros.ros.assembler import ObservationAssembler  # noqa: E402
from dm1_ros.runtime.rotations import quat_to_rotvec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "robot0_eye_in_hand_image"


# --- numeric helpers and messages ----------------------------------------------------------------------------
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
    """What rosidl's setters refuse (ROS_PYTHON_CHECK_FIELDS=1 adds more), so conversions must build exact types."""
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
    np.testing.assert_allclose(quat_to_rotvec([t0.rotation.x, t0.rotation.y, t0.rotation.z, t0.rotation.w]),
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
    msg.joint_names = ["eef", "gripper"]
    msg.points[2].transforms[1].translation.x = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf values \\(point 2\\)"):
        cv.trajectory_to_actions(msg, 0.05, 0.5)


def test_a_trajectory_without_points_is_a_hold():
    msg = cv.actions_to_trajectory(np.zeros((0, 7)), 7.5, 20.0, 0.05, 0.5, "base")
    assert len(msg.points) == 0
    actions, stamp, spacing = cv.trajectory_to_actions(msg, 0.05, 0.5)
    assert actions.shape == (0, 7) and stamp == pytest.approx(7.5) and spacing is None


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


# --- observation assembly ------------------------------------------------------------------------------------
def test_assembler_stamps_from_the_image_and_refuses_a_stale_state():
    asm = ObservationAssembler([KEY], {KEY: (8, 8)}, max_state_age_s=0.2)
    assert asm.build(1.0) == (None, "no_image")
    asm.set_image(KEY, cv.array_to_image(np.full((16, 16, 3), 7, np.uint8), 1.0, "cam"))
    assert asm.build(1.0)[1] == "no_state"
    joints, pose, _ = cv.state_messages(np.array([0.1, 0, 0.2, 1, 0, 0, 0, 0.02, -0.02]), 1.05, "base")
    asm.set_joints(joints)
    asm.set_pose(pose)
    obs, why = asm.build(1.1)
    assert why is None and obs.stamp == pytest.approx(1.0) and obs.images[KEY].shape == (8, 8, 3)
    assert obs.proprio.dtype == np.float32 and obs.proprio[7] == pytest.approx(0.02)
    assert asm.build(1.3)[1] == "stale_state"  # the image's age is the Planner's call; the state's is checked here
    asm.set_image(KEY, cv.array_to_image(np.zeros((16, 16), np.uint8)[..., None].repeat(3, 2), 1.3, "cam"))
    joints, pose, _ = cv.state_messages(np.array([np.nan, 0, 0.2, 1, 0, 0, 0, 0.02, -0.02]), 1.3, "base")
    asm.set_joints(joints)
    asm.set_pose(pose)
    assert asm.build(1.3)[1] == "bad_state"


def test_assembler_pairs_several_cameras_by_time_within_the_skew_bound():
    """Wrist at 30 Hz, front camera lagging: the observation takes the wrist image nearest the front's newest
    (approximate time), stamped with the older of the two; beyond max_camera_skew_s there is no observation."""
    wrist, front = "robot0_eye_in_hand_image", "agentview_image"
    asm = ObservationAssembler([front, wrist], {front: (8, 8), wrist: (8, 8)}, max_state_age_s=1.0,
                               max_camera_skew_s=0.02)
    joints, pose, _ = cv.state_messages(np.array([0.1, 0, 0.2, 1, 0, 0, 0, 0.02, -0.02]), 2.0, "base")
    asm.set_joints(joints)
    asm.set_pose(pose)
    for k in range(6):  # wrist frames 1.0, 1.033, ..., 1.167; value k
        asm.set_image(wrist, cv.array_to_image(np.full((8, 8, 3), k, np.uint8), 1.0 + k / 30, "wrist"))
    assert asm.image_stamp() is None and asm.build(2.0) == (None, "no_image")
    asm.set_image(front, cv.array_to_image(np.full((8, 8, 3), 100, np.uint8), 1.07, "front"))
    obs, why = asm.build(2.0)
    assert why is None and obs.images[wrist][0, 0, 0] == 2 and obs.images[front][0, 0, 0] == 100  # 1.067 nearest 1.07
    assert obs.stamp == pytest.approx(1.0 + 2 / 30) and asm.image_stamp() == pytest.approx(1.0 + 2 / 30)
    asm.set_image(front, cv.array_to_image(np.full((8, 8, 3), 101, np.uint8), 0.5, "front"))  # far behind the wrist
    assert asm.build(2.0) == (None, "unsynced_images")
    asm.max_camera_skew_s = 1.0
    obs, why = asm.build(2.0)
    assert why is None and obs.images[wrist][0, 0, 0] == 0 and obs.stamp == pytest.approx(0.5)


# --- rosbag2 ---------------------------------------------------------------------------------------------------
def test_bag_recorder_writes_mcap_that_rosbags_reads(tmp_path):
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    from dm1_ros.data.rosbag import BagRecorder

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
def test_nodes_never_import_torch():
    """A robot PC runs the nodes with onnxruntime alone: build and configure the policy node, no torch."""
    code = ("import sys, rclpy; rclpy.init(); "
            "import dm1_ros.ros.camera_node, dm1_ros.ros.franka_bridge_node, dm1_ros.ros.sim_bridge_node, "
            "dm1_ros.ros.teleop_node; from dm1_ros.ros.policy_node import PolicyNode; "
            "from rclpy.parameter import Parameter; "
            "from rclpy.lifecycle import TransitionCallbackReturn as R; "
            "n = PolicyNode(parameter_overrides=[Parameter('warmup', value=1)]); "
            "assert n.trigger_configure() == R.SUCCESS, n.last_error; "
            "assert 'torch' not in sys.modules; n.close(); n.destroy_node(); rclpy.shutdown()")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_bag_without_episode_events_splits_where_the_commands_pause(tmp_path):
    """A bag from another recorder (no /dm1/teleop/episode): one episode per run of commands; a bag without the
    command topic is refused naming what it has."""
    from dm1_ros.data.rosbag import BagRecorder
    from dm1_ros.ros import topics as T
    from dm1_ros.ros.bag_import import BagImportError, import_bag

    bag = BagRecorder(tmp_path / "bag")
    t = 100.0
    for run, steps in enumerate((5, 3)):
        for k in range(steps):
            joints, pose, _ = cv.state_messages(np.array([0.1 * k, 0, 1, 0, 0, 0, 1, 0.03, -0.03]), t, "base")
            image = cv.array_to_image(np.full((8, 8, 3), 10 * k + run, np.uint8), t, "cam")
            command = cv.actions_to_trajectory(np.array([[0.2 * k, 0, 0, 0, 0, 0, 1.0]] * 2), t, 20.0, 0.05, 0.5, "base")
            for topic, msg, delay in ((T.JOINT_STATES, joints, 0.0), (T.EEF_POSE, pose, 0.001),
                                      (T.CAMERA_IMAGE, image, 0.002), (T.ACTION_TRAJECTORY, command, 0.004)):
                bag.write(topic, msg, int((t + delay) * 1e9))
            t += 0.05
        t += 3.0  # the operator paused
    bag.close()
    summary = import_bag(tmp_path / "bag", tmp_path / "out.hdf5", image_size=(0, 0), valid_fraction=0.0)
    assert (summary["episodes"], summary["steps"], summary["skipped"]) == (2, 8, {})
    import h5py

    with h5py.File(tmp_path / "out.hdf5") as f:
        first, second = f["data/demo_0"], f["data/demo_1"]
        assert first["actions"].shape == (5, 7) and second["actions"].shape == (3, 7)
        np.testing.assert_allclose(first["actions"][:, 0], 0.2 * np.arange(5), atol=1e-6)
        assert second["obs"][KEY][2, 0, 0, 0] == 21 and first["obs/robot0_eef_pos"][4, 0] == pytest.approx(0.4)
    with pytest.raises(BagImportError, match="exists"):
        import_bag(tmp_path / "bag", tmp_path / "out.hdf5")
    with pytest.raises(BagImportError, match=r"has no \['/camera/depth'\]"):
        import_bag(tmp_path / "bag", tmp_path / "other.hdf5", image_topics=["/camera/depth"])
