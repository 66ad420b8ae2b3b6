"""Every node driven through its topics, parameters and services: messages in -> expected messages out.

Runs against real rclpy on a ROS 2 machine and against test/rclpy_standin elsewhere (see ros_standin.py).
Timers are fired by hand, so ticks are deterministic in both worlds.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from ros_standin import STANDIN, Harness, params, ros  # noqa: F401  (ros: fixture)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from dm1_ros.ros import conversions as cv  # noqa: E402
from dm1_ros.ros import topics as T  # noqa: E402
from dm1_ros.runtime.bundle import ImageSpec, ObservationSpec  # noqa: E402
from dm1_ros.runtime.contract import Observation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "lift_image"
KEY = "robot0_eye_in_hand_image"
OK = TransitionCallbackReturn.SUCCESS


def statuses(msgs, name):
    return [s for m in msgs for s in m.status if name in s.name]


def publish_observation(h: Harness, stamp: float, size=96, proprio=None, value=90):
    proprio = np.array([-0.1, 0.0, 1.0, 1, 0, 0, 0, 0.02, -0.02]) if proprio is None else proprio
    joints, pose, _ = cv.state_messages(proprio, stamp, "panda_link0")
    h.publish(joints, T.JOINT_STATES)
    h.publish(pose, T.EEF_POSE)
    h.publish(cv.array_to_image(np.full((size, size, 3), value, np.uint8), stamp, "cam"), T.CAMERA_IMAGE)
    h.spin()


def copy_bundle(tmp_path, name, **manifest_changes):
    out = tmp_path / name
    shutil.copytree(MODEL, out)
    data = yaml.safe_load((out / "manifest.yaml").read_text())
    data.update(manifest_changes)
    (out / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# --- policy_node -------------------------------------------------------------------------------------------------
@pytest.fixture
def policy(ros):
    from dm1_ros.ros.policy_node import PolicyNode

    node = ros.add(PolicyNode(parameter_overrides=params(model_path=str(MODEL), warmup=1, noise_seed=0)))
    assert ros.configure(node) == OK, node.last_error
    return node


def test_policy_plans_once_per_image_and_stamps_from_the_observation(ros, policy):
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    raw = ros.capture(Float64MultiArray, T.ACTION_CHUNK)
    stamp = ros.now()
    publish_observation(ros, stamp)
    ros.fire(policy.timer)
    ros.fire(policy.timer)  # same image: no second plan
    ros.spin(lambda: traj and raw)
    assert len(traj) == 1 and len(raw) == 1
    assert cv.to_sec(traj[0].header.stamp) == pytest.approx(stamp, abs=1e-6)
    chunk = cv.array_msg_to_chunk(raw[0])
    assert chunk.shape == (4, 7) and np.all(np.isfinite(chunk))
    actions, _, spacing = cv.trajectory_to_actions(traj[0], 0.05, 0.5)
    np.testing.assert_allclose(actions, chunk, atol=1e-5)  # latest blending: the raw chunk itself
    assert spacing == pytest.approx(1 / 20)
    # a 640x480 camera is resized to the model's 96x96
    ros.advance(0.05)
    publish_observation(ros, ros.now(), size=64)
    ros.fire(policy.timer)
    ros.spin(lambda: len(traj) >= 2)
    assert len(traj) == 2


def test_policy_skips_stale_inputs_and_reports_them(ros, policy):
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    diags = ros.capture(DiagnosticArray, T.DIAGNOSTICS)
    publish_observation(ros, ros.now() - 1.0)  # a frozen camera
    ros.fire(policy.timer)
    ros.fire(policy.diagnostics_timer)
    ros.spin(lambda: diags)
    assert traj == []
    values = cv.diagnostic_values(statuses(diags, "policy")[0])
    assert values["skipped_stale_image"] == "1" and values["model_id"].startswith("lift_image")


def test_bad_model_path_is_refused_with_the_reason_and_the_old_model_runs_on(ros, policy, tmp_path):
    old = policy.runner.model_id
    result = policy.set_parameters([Parameter("model_path", value=str(tmp_path / "nope"))])[0]
    assert not result.successful and "not a directory" in result.reason and old in result.reason
    assert policy.p("model_path") == str(MODEL)
    other_camera = copy_bundle(tmp_path, "cam", observation={
        **yaml.safe_load((MODEL / "manifest.yaml").read_text())["observation"],
        "images": [{"name": "agentview_image", "height": 96, "width": 96, "channels": 3}]})
    result = policy.set_parameters([Parameter("model_path", value=str(other_camera))])[0]
    assert not result.successful and "agentview_image" in result.reason
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    publish_observation(ros, ros.now())
    ros.fire(policy.timer)
    ros.spin(lambda: traj)
    assert traj and policy.runner.model_id == old


def test_hot_swap_between_ticks(ros, policy, tmp_path):
    new = copy_bundle(tmp_path, "v2", model_id="lift_image-v2")
    result = policy.set_parameters([Parameter("model_path", value=str(new))])[0]
    assert result.successful
    assert policy.runner.model_id != "lift_image-v2"  # loading happens on a worker thread
    policy.runner._worker.join(30)
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    publish_observation(ros, ros.now())
    ros.fire(policy.timer)  # the swap takes effect between ticks, then this tick plans with the new model
    ros.spin(lambda: traj)
    assert policy.runner.model_id == "lift_image-v2" and policy.runner.swaps == 1 and traj


def test_default_blending_follows_each_models_manifest_across_swaps(ros, policy, tmp_path):
    assert policy.p("blending") == "model" and policy.runner.blender.mode == "chunk"  # the shipped lift model's
    new = copy_bundle(tmp_path, "replanning", model_id="lift_image-latest", execution="latest")
    assert policy.set_parameters([Parameter("model_path", value=str(new))])[0].successful
    policy.runner._worker.join(30)
    publish_observation(ros, ros.now())
    ros.fire(policy.timer)
    assert policy.runner.model_id == "lift_image-latest" and policy.runner.blender.mode == "latest"
    assert policy.set_parameters([Parameter("blending", value="ensemble")])[0].successful  # an explicit choice wins
    assert policy.runner.blender.mode == "ensemble"


def test_swap_that_fails_to_load_keeps_the_old_model_and_restores_the_parameter(ros, policy, tmp_path):
    broken = copy_bundle(tmp_path, "broken")
    (broken / "model.onnx").write_bytes(b"not an onnx file")  # the manifest is fine, the graph is not
    assert policy.set_parameters([Parameter("model_path", value=str(broken))])[0].successful
    policy.runner._worker.join(30)
    ros.fire(policy.timer)
    assert policy.runner.model_id.startswith("lift_image") and policy.runner.failed_swaps == 1
    assert policy.p("model_path") == str(MODEL)  # back to the model that runs
    assert "sha256" in policy.runner.last_swap_error


def test_sampling_steps_are_read_only_and_a_mismatch_is_refused(ros, tmp_path):
    from dm1_ros.ros.policy_node import PolicyNode

    node = ros.add(PolicyNode(parameter_overrides=params(model_path=str(MODEL), sampling_steps=5, warmup=0)))
    assert node.trigger_configure() != OK
    assert "samples in 1 step" in node.last_error and "--steps 5" in node.last_error
    assert not node.set_parameters([Parameter("sampling_steps", value=1)])[0].successful
    node.set_parameters([Parameter("model_path", value=str(copy_bundle(tmp_path, "k5", sampling_steps=5)))])
    assert ros.configure(node) == OK and node.runner.manifest.sampling_steps == 5


def test_parameters_are_validated_and_configure_time_ones_locked(ros, policy):
    assert not policy.set_parameters([Parameter("blending", value="smooth")])[0].successful
    assert policy.set_parameters([Parameter("blending", value="ensemble")])[0].successful
    assert policy.runner.blender.mode == "ensemble"
    result = policy.set_parameters([Parameter("rate", value=50.0)])[0]
    assert not result.successful and "takes effect at configure" in result.reason
    assert policy.set_parameters([Parameter("max_observation_age_s", value=1)])[0].successful  # int for a float
    assert not policy.set_parameters([Parameter("max_observation_age_s", value="soon")])[0].successful


def test_policy_services_start_stop_reset(ros, policy):
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    assert ros.call(Trigger, T.POLICY_STOP).success
    publish_observation(ros, ros.now())
    ros.fire(policy.timer)
    ros.spin()
    assert traj == []
    response = ros.call(Trigger, T.POLICY_START)
    assert response.success and "lift_image" in response.message
    ros.fire(policy.timer)
    ros.spin(lambda: traj)
    assert len(traj) == 1
    assert ros.call(Trigger, T.POLICY_RESET).success and policy.runner.blender.current is None


def test_policy_chunk_blending_republishes_the_running_chunk(ros, tmp_path):
    from dm1_ros.ros.policy_node import PolicyNode

    node = ros.add(PolicyNode(parameter_overrides=params(model_path=str(MODEL), warmup=0, blending="chunk")))
    assert ros.configure(node) == OK
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    raw = ros.capture(Float64MultiArray, T.ACTION_CHUNK)
    t0 = ros.now()
    for k in range(5):  # 4 actions per chunk at 20 Hz: plans at k = 0 and k = 4
        publish_observation(ros, t0 + k / 20)
        ros.fire(node.timer)
        ros.spin()
    assert len(traj) == 5 and len(raw) == 2
    assert [cv.to_sec(m.header.stamp) - t0 for m in traj] == pytest.approx([0, 0, 0, 0, 0.2], abs=1e-6)


# --- robot bridges -----------------------------------------------------------------------------------------------
class FakeFranka:
    """The Robot interface of FrankaBridge (observe/apply/hold/reset/close + stop/recover), kinematic."""

    def __init__(self, config):
        from dm1_ros.runtime.gripper import GripperLatch

        self.config = config
        self.rate_hz = config.rate_hz
        self.pos = np.array([0.5, 0.0, 0.3])
        self.applied, self.holds, self.calls, self.fail = [], 0, [], None
        self.gripper_latch = GripperLatch()
        self.fault = None
        self.stats = {"targets": 0}

    def observe(self):
        return Observation({}, np.concatenate([self.pos, [1, 0, 0, 0], [0.04, -0.04]]).astype(np.float32), 0.0)

    def apply(self, action):
        if self.fail:
            raise RuntimeError(self.fail)
        self.applied.append(np.asarray(action))
        self.gripper_latch(float(action[6]))
        self.pos = self.pos + np.asarray(action[:3]) * 0.05

    def hold(self):
        self.holds += 1

    def reset(self, seed=None):
        self.calls.append("reset")
        return self.observe()

    def stop(self):
        self.calls.append("stop")

    def recover(self):
        self.calls.append("recover")
        self.fail = None

    def close(self):
        self.calls.append("close")


@pytest.fixture
def franka(ros):
    from dm1_ros.ros.franka_bridge_node import FrankaBridgeNode

    robots = []

    def factory(config):
        robots.append(FakeFranka(config))
        return robots[-1]

    node = ros.add(FrankaBridgeNode(robot_factory=factory,
                                    parameter_overrides=params(robot_ip="10.0.0.7", control_rate=50)))
    assert ros.configure(node) == OK, node.last_error
    node.fake = robots[0]
    return node


def command(ros, actions, stamp):
    ros.publish(cv.actions_to_trajectory(np.asarray(actions, float), stamp, 20.0, 0.05, 0.5, "panda_link0"),
                T.ACTION_TRAJECTORY)
    ros.spin()


def test_franka_bridge_executes_commands_and_publishes_state(ros, franka):
    fake = franka.fake
    assert fake.config.robot_ip == "10.0.0.7" and fake.config.rate_hz == 50.0  # parameters over franka.yaml
    assert fake.config.safety.workspace_max == [0.8, 0.45, 0.7]  # the packaged config/robot/franka.yaml
    joints = ros.capture(JointState, T.JOINT_STATES)
    poses = ros.capture(PoseStamped, T.EEF_POSE)
    grip = ros.capture(Float64MultiArray, T.GRIPPER_STATE)
    actions = np.zeros((4, 7))
    actions[:, 0] = [0.1, 0.2, 0.3, 0.4]
    actions[:, 6] = 1.0
    command(ros, actions, ros.now())
    ros.advance(0.05)
    ros.fire(franka.timer)
    ros.spin(lambda: poses and joints and grip)
    assert len(fake.applied) == 1 and fake.applied[0][0] == pytest.approx(0.2, abs=0.02)
    assert fake.applied[0][6] == pytest.approx(1.0)
    assert list(joints[0].name)[-2:] == list(T.FINGER_JOINTS) and poses[0].pose.position.x == pytest.approx(0.5)
    assert list(grip[0].data) == pytest.approx([0.08, 1.0])


def test_watchdog_holds_on_a_stale_command_link(ros, franka):
    command(ros, np.zeros((40, 7)), ros.now())  # actions left for two seconds...
    ros.fire(franka.timer)
    assert len(franka.fake.applied) == 1
    ros.advance(0.35)  # ...but nothing new for longer than command_timeout_s
    ros.fire(franka.timer)
    assert franka.fake.holds == 1 and franka.control.holds["stale_command"] == 1
    assert ros.call(Trigger, T.ROBOT_RESET).success  # forgets queued commands
    command(ros, np.zeros((4, 7)), ros.now() - 1.0)  # a command whose every action is already late
    ros.fire(franka.timer)
    assert franka.control.holds["no_valid_action"] == 1 and franka.control.scheduler.dropped_late == 1


def test_franka_stop_fault_recover_services(ros, franka):
    fake = franka.fake
    diags = ros.capture(DiagnosticArray, T.DIAGNOSTICS)
    assert ros.call(Trigger, T.ROBOT_STOP).success and fake.calls[-1] == "stop"
    command(ros, np.zeros((4, 7)), ros.now())
    ros.fire(franka.timer)
    assert fake.applied == [] and franka.control.holds["stopped"] == 1
    assert ros.call(Trigger, T.ROBOT_RECOVER).success
    fake.fail = "robot aborted the motion (cartesian_reflex)"
    command(ros, np.zeros((4, 7)), ros.now())
    ros.fire(franka.timer)
    ros.fire(franka.diagnostics_timer)
    ros.spin(lambda: diags)
    robot = statuses(diags, "robot")[0]
    assert robot.level == cv.LEVELS["ERROR"] and "cartesian_reflex" in robot.message
    response = ros.call(Trigger, T.ROBOT_RECOVER)
    assert response.success and fake.calls[-1] == "recover"
    command(ros, np.zeros((4, 7)), ros.now())
    ros.fire(franka.timer)
    assert len(fake.applied) == 1
    assert ros.call(Trigger, T.ROBOT_RESET).success and "reset" in fake.calls


def test_bridge_refuses_malformed_commands(ros, franka):
    msg = cv.actions_to_trajectory(np.zeros((2, 7)), ros.now(), 20.0, 0.05, 0.5, "base")
    msg.joint_names = ["eef"]
    ros.publish(msg, T.ACTION_TRAJECTORY)
    ros.spin()
    assert franka.bad_commands == 1 and "gripper" in franka.last_command_error


def test_franka_configure_failure_is_reported(ros):
    from dm1_ros.ros.franka_bridge_node import FrankaBridgeNode

    def refuse(config):
        raise RuntimeError(f"cannot connect to the Franka at {config.robot_ip}: timeout")

    node = ros.add(FrankaBridgeNode(robot_factory=refuse))
    assert node.trigger_configure() != OK and "172.16.0.2: timeout" in node.last_error
    assert not node.set_parameters([Parameter("realtime", value="sometimes")])[0].successful


class FakeSim:
    """SimRobot's interface with a 16x16 camera; one apply() = one step."""

    def __init__(self, config):
        self.rate_hz = config.control_rate_hz
        self.config = config
        self.pos = np.zeros(3)
        self.steps, self.applied, self.done, self.success = 0, [], False, False
        from dm1_ros.runtime.gripper import GripperLatch

        self.gripper_latch = GripperLatch()

    @property
    def observation_spec(self):
        return ObservationSpec([ImageSpec(KEY, 16, 16)], ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"],
                               [3, 4, 2])

    def observe(self):
        return Observation({KEY: np.full((16, 16, 3), self.steps % 256, np.uint8)},
                           np.concatenate([self.pos, [1, 0, 0, 0], [0.04, -0.04]]).astype(np.float32), self.steps / 20)

    def apply(self, action):
        self.applied.append(np.asarray(action))
        self.pos = self.pos + np.asarray(action[:3]) * 0.05
        self.steps += 1
        self.success = self.done = self.steps >= 3

    def hold(self):
        self.apply(np.array([0, 0, 0, 0, 0, 0, -1.0]))

    def reset(self, seed=None):
        self.seed, self.steps, self.done, self.success = seed, 0, False, False
        return self.observe()

    def close(self):
        pass


def test_sim_bridge_publishes_camera_and_state_and_steps_in_lockstep(ros):
    from dm1_ros.ros.sim_bridge_node import SimBridgeNode

    node = ros.add(SimBridgeNode(robot_factory=FakeSim, parameter_overrides=params(image_size=[16, 16], seed=7)))
    images = ros.capture(Image, T.CAMERA_IMAGE)
    infos = ros.capture(CameraInfo, T.CAMERA_INFO)
    success = ros.capture(Bool, T.SIM_SUCCESS)
    assert ros.configure(node) == OK, node.last_error
    ros.spin(lambda: images and infos and success)
    assert images[0].encoding == "rgb8" and (images[0].height, images[0].width) == (16, 16)
    assert infos[0].width == 16 and node.robot.seed == 7
    ros.fire(node.timer)
    assert node.robot.steps == 0 and node.lockstep_waits == 1  # lockstep: no command for this observation yet
    stamp = cv.to_sec(images[-1].header.stamp)
    command(ros, [[0.2, 0, 0, 0, 0, 0, 1]] * 4, stamp)
    ros.advance(0.3)  # however long the policy took, the simulated world waited
    ros.fire(node.timer)
    assert node.robot.steps == 1 and node.robot.applied[0][0] == pytest.approx(0.2)  # action 0, not a late one
    ros.spin(lambda: len(images) == 2)
    assert cv.to_sec(images[-1].header.stamp) == pytest.approx(ros.now(), abs=1e-6)
    ros.advance(1.1)  # no command for lockstep_timeout_s: step anyway, holding
    ros.fire(node.timer)
    assert node.robot.steps == 2 and node.lockstep_timeouts == 1
    assert ros.call(Trigger, T.ROBOT_RESET).success and node.robot.seed == 8
    ros.spin()
    assert success and success[-1].data is False


# --- camera_node ---------------------------------------------------------------------------------------------------
def test_camera_node_publishes_rgb8_and_camera_info_on_realsense_topics(ros):
    from dm1_ros.hardware.cameras import SoftwareCamera
    from dm1_ros.ros.camera_node import CameraNode

    made = []

    def factory(**kwargs):
        made.append(SoftwareCamera(name="test", resize=kwargs["resize"], on_frame=kwargs["on_frame"]))
        return made[-1]

    node = ros.add(CameraNode(camera_factory=factory, parameter_overrides=params(resize="32x24", frame_id="cam")))
    images = ros.capture(Image, T.CAMERA_IMAGE)
    infos = ros.capture(CameraInfo, T.CAMERA_INFO)
    diags = ros.capture(DiagnosticArray, T.DIAGNOSTICS)
    assert ros.configure(node) == OK, node.last_error
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for _ in range(3):
        made[0].push(frame)
    assert ros.spin(lambda: len(images) >= 3 and len(infos) >= 3, timeout=5)
    img = images[0]
    assert (img.encoding, img.height, img.width, img.header.frame_id) == ("rgb8", 24, 32, "cam")
    assert cv.to_sec(img.header.stamp) == pytest.approx(ros.now(), abs=0.5)
    assert (infos[0].width, infos[0].height) == (32, 24)
    ros.fire(node.diagnostics_timer)
    ros.spin(lambda: diags)
    values = cv.diagnostic_values(statuses(diags, "camera")[0])
    assert values["frames"] == "3" and values["declared_fps"] == "30" and "fps" in values
    node.trigger_deactivate()
    made[0].push(frame)
    ros.spin()
    assert len(images) == 3  # inactive: frames are not published


def test_camera_node_parameters_and_configure_errors(ros):
    from dm1_ros.ros.camera_node import CameraNode

    node = ros.add(CameraNode(parameter_overrides=params(camera="replay")))
    assert not node.set_parameters([Parameter("color_profile", value="640x480")])[0].successful
    assert not node.set_parameters([Parameter("camera", value="kinect")])[0].successful
    assert node.trigger_configure() != OK and "replay_path" in node.last_error
    with pytest.raises(Exception):
        CameraNode(parameter_overrides=params(camera="kinect"))


# --- teleop_node ---------------------------------------------------------------------------------------------------
def test_teleop_commands_records_and_saves_episodes(ros, tmp_path):
    from dm1_ros.hardware.teleop import ScriptedTeleop
    from dm1_ros.ros.teleop_node import TeleopNode

    device = ScriptedTeleop(lambda t: np.array([0.5, 0, 0, 0, 0, 0, 1.0 if t > 1 else -1.0]))
    out = tmp_path / "teleop.hdf5"
    node = ros.add(TeleopNode(device=device, parameter_overrides=params(
        output=str(out), record_image_size=[8, 8], valid_fraction=0.0, bag_path=str(tmp_path / "bag"))))
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY)
    assert ros.configure(node) == OK, node.last_error
    assert ros.call(Trigger, T.TELEOP_START).message == "recording teleop_00000"
    t0 = ros.now()
    for k in range(4):
        publish_observation(ros, t0 + k / 20, size=16, value=k)
        ros.fire(node.timer)
        ros.fire(node.timer)  # one command and one step per observation
        ros.spin()
    assert len(traj) == 4 and node.recorder.steps == 3  # the newest step waits for its reward
    actions, stamp, spacing = cv.trajectory_to_actions(traj[-1], 0.05, 0.5)
    assert actions.shape == (3, 7) and stamp == pytest.approx(t0 + 3 / 20) and spacing == pytest.approx(1 / 20)
    np.testing.assert_allclose(actions[0], [0.5, 0, 0, 0, 0, 0, 1.0], atol=1e-6)
    ros.publish(Bool(data=True), T.SIM_SUCCESS, qos=10)
    ros.spin()
    response = ros.call(Trigger, T.TELEOP_STOP)
    assert response.success and "4 steps, success=True" in response.message
    device.emit("toggle_episode")  # the device's own button starts the next one
    ros.fire(node.timer)
    assert node.recorder.recording == "teleop_00001"
    assert ros.call(Trigger, T.TELEOP_DISCARD).success
    node.trigger_deactivate()
    node.trigger_cleanup()  # assembles the dataset
    import h5py

    with h5py.File(out) as f:
        demo = f["data/demo_0"]
        assert demo["obs"][KEY].shape == (4, 8, 8, 3) and demo["actions"].shape == (4, 7)
        np.testing.assert_allclose(demo["timestamps"][()], t0 + np.arange(4) / 20, atol=1e-6)
        assert demo["obs/robot0_gripper_qpos"][0] == pytest.approx([0.02, -0.02])
        # reward of step t = success seen with observation t + 1: here only after the last action
        assert demo.attrs["success"] and list(demo["rewards"][()]) == [0, 0, 0, 1]
        assert list(f["data"].keys()) == ["demo_0"]
    assert list((tmp_path / "bag").glob("*.mcap"))


def test_teleop_keys_topic_drives_the_keyboard(ros, tmp_path):
    from dm1_ros.hardware.teleop import KeyboardTeleop
    from dm1_ros.ros.teleop_node import TeleopNode

    kb = KeyboardTeleop()
    node = ros.add(TeleopNode(device=kb, parameter_overrides=params(output=str(tmp_path / "k.hdf5"),
                                                                    keyboard_backend="topic")))
    assert ros.configure(node) == OK
    ros.publish(String(data="w"), T.TELEOP_KEYS)
    ros.publish(String(data="space"), T.TELEOP_KEYS)
    ros.spin()
    assert kb.action()[0] > 0 and kb.action()[6] == 1.0


# --- console_scripts entry ----------------------------------------------------------------------------------------
@pytest.mark.skipif(not STANDIN, reason="with real rclpy main() spins until Ctrl-C")
def test_main_autostarts_spins_and_releases(monkeypatch):
    import rclpy

    from dm1_ros.ros import policy_node
    from dm1_ros.runtime.bundle import load_bundle

    shipped, _ = load_bundle(Path(__file__).resolve().parents[1] / "models" / "lift_image")
    seen = []
    monkeypatch.setattr(rclpy, "spin", lambda node, executor=None: seen.append((node.state, node.runner.model_id)))
    assert policy_node.main([]) == 0
    assert seen == [("active", shipped.model_id)] and not rclpy.ok()  # the default model_path is the shipped bundle
