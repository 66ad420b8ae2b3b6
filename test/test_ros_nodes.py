"""Every node on real ROS 2 (rclpy, Cyclone DDS on loopback, a ROS domain per test), driven through its topics,
parameters, services and lifecycle: messages in -> expected messages out. The robots behind the bridges are the real
parts: franky-sim's libfranka server for the Franka bridge, robosuite for the simulator, pyrealsense2's software
device and recordings for the camera. Timers are fired by hand, so ticks are deterministic; messages travel over DDS.
"""
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from ros2_support import HOW, ROS2

if not ROS2:
    pytest.skip(HOW, allow_module_level=True)

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from lifecycle_msgs.srv import GetState  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from dm1_ros.ros import conversions as cv  # noqa: E402
from dm1_ros.ros import topics as T  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "lift_image"
KEY = "robot0_eye_in_hand_image"
OK = TransitionCallbackReturn.SUCCESS


def params(**values) -> list:
    return [Parameter(k, value=v) for k, v in values.items()]


def statuses(msgs, name):
    return [s for m in msgs for s in m.status if name in s.name]


def diagnostics_of(ros, node, name):
    """Fire the node's diagnostics timer and return the values of its `name` status."""
    diags = ros.capture(DiagnosticArray, T.DIAGNOSTICS, reliable=True)
    ros.spin(lambda: node.diagnostics_pub.get_subscription_count() > 0)
    ros.fire(node.diagnostics_timer)
    assert ros.spin(lambda: statuses(diags, name)), f"no {name} diagnostics"
    status = statuses(diags, name)[-1]
    return status, cv.diagnostic_values(status)


def publish_observation(ros, node, stamp: float, size=96, proprio=None, value=90, state_stamp=None):
    """Robot state first (the node must hold it when the image arrives and triggers a plan), then the image."""
    proprio = np.array([-0.1, 0.0, 1.0, 1, 0, 0, 0, 0.02, -0.02]) if proprio is None else proprio
    state_stamp = stamp if state_stamp is None else state_stamp
    joints, pose, _ = cv.state_messages(proprio, state_stamp, "panda_link0")
    ros.publish(joints, T.JOINT_STATES)
    ros.publish(pose, T.EEF_POSE)
    asm = node.assembler
    assert ros.spin(lambda: asm.state_stamp() is not None and abs(asm.state_stamp() - state_stamp) < 1e-6)
    ros.publish(cv.array_to_image(np.full((size, size, 3), value, np.uint8), stamp, "cam"), T.CAMERA_IMAGE)


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

    node = ros.add(PolicyNode, parameter_overrides=params(model_path=str(MODEL), warmup=1, noise_seed=0))
    assert ros.configure(node) == OK, node.last_error
    return node


def capture_commands(ros, node):
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY, reliable=True)
    raw = ros.capture(Float64MultiArray, T.ACTION_CHUNK, reliable=True)
    ros.spin(lambda: node.trajectory_pub.get_subscription_count() > 0 and node.chunk_pub.get_subscription_count() > 0)
    return traj, raw


def test_policy_plans_on_each_image_and_stamps_from_the_observation(ros, policy):
    traj, raw = capture_commands(ros, policy)
    stamp = ros.now()
    publish_observation(ros, policy, stamp)
    assert ros.spin(lambda: traj and raw)
    # stamped up to one lookahead (the shipped manifest's 50 ms) before the observation, less the observation's age
    # when it was planned (the manifest counts latency toward the lookahead): the bridge first runs the action planned
    # 50 ms after the image, or, when the image is older than that, the one planned for the present
    assert policy.planner.lookahead_s == 0.05 and policy.planner.manifest.lookahead_includes_latency
    assert stamp - 0.05 - 1e-6 <= cv.to_sec(traj[0].header.stamp) <= stamp + 1e-6
    chunk = cv.array_msg_to_chunk(raw[0])
    assert chunk.shape == (4, 7) and np.all(np.isfinite(chunk))
    actions, _, spacing = cv.trajectory_to_actions(traj[0], 0.05, 0.5)
    np.testing.assert_allclose(actions, chunk, atol=1e-5)  # latest blending sends the chunk as it is
    assert spacing == pytest.approx(1 / 20)
    # a 64x64 camera is resized to the model's 96x96; the next image is the next plan
    publish_observation(ros, policy, ros.now(), size=64)
    assert ros.spin(lambda: len(traj) >= 2)
    assert policy.commands == 2 and policy.skipped == {}


def pointcloud_bundle(tmp_path, cameras=("agentview",)):
    """A tiny DP3-encoder bundle whose cloud (64 points, base frame) comes from `cameras`' depth."""
    import torch

    from dm1_ros.policy.config import HeadConfig, PointNetConfig, PolicyConfig
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.policy.model import GenerativePolicy
    from dm1_ros.runtime.bundle import PointCloudSpec

    cloud = PointCloudSpec(cameras=list(cameras), frame="panda_link0", num_points=64, crop_min=[-0.3, -0.3, 0.79],
                           crop_max=[0.3, 0.3, 1.0])
    torch.manual_seed(0)
    policy = GenerativePolicy(PolicyConfig(image_keys=[], encoder="pointnet", point_clouds=[cloud],
                                           pointnet=PointNetConfig(hidden=[16, 32], out_dim=16), head=HeadConfig(hidden=32)))
    policy.action_normalizer.fit(np.array([[-0.5] * 7, [0.5] * 7]))
    policy.proprio_normalizer.fit(np.array([[-1.0] * 9, [1.0] * 9]))
    export_bundle(policy.eval(), tmp_path / "pc")
    return tmp_path / "pc", cloud


def test_policy_builds_the_manifests_point_cloud_from_depth_and_plans_on_it(ros, tmp_path):
    """A point-cloud model on ROS: aligned depth + camera_info + robot state -> the cloud the manifest describes
    (the same pipeline as in simulation), planned on each depth frame; a hand-mounted camera is placed with this
    observation's pose; missing extrinsics fail configure naming them."""
    from test_pointcloud import K, look_down_from, render_depth

    from dm1_ros.ros.policy_node import PolicyNode
    from dm1_ros.runtime.pointcloud import CameraModel, depth_to_points
    from dm1_ros.runtime.rotations import quat_to_matrix

    bundle, cloud = pointcloud_bundle(tmp_path)
    T_fixed = look_down_from(0.05, -0.1, 1.5, yaw=0.4)
    node = ros.add(PolicyNode, parameter_overrides=params(model_path=str(bundle), warmup=1, noise_seed=0,
                                                          camera_mounts=["fixed"], camera_poses=T_fixed.ravel().tolist(),
                                                          max_observation_age_s=2.0))  # generous on a loaded machine
    assert ros.configure(node) == OK, node.last_error
    traj, raw = capture_commands(ros, node)
    depth = render_depth(T_fixed)
    stamp = ros.now()
    proprio = np.array([0.0, 0.0, 1.1, 1, 0, 0, 0, 0.02, -0.02])
    joints, pose, _ = cv.state_messages(proprio, stamp, "panda_link0")
    ros.publish(joints, T.JOINT_STATES)
    ros.publish(pose, T.EEF_POSE)
    ros.publish(cv.camera_info(320, 240, stamp, "cam", K.ravel().tolist()), T.CAMERA_DEPTH_INFO)
    assert ros.spin(lambda: node.assembler.state_stamp() is not None and "agentview" in node.assembler.depth_infos)
    ros.publish(cv.depth_to_image(depth, stamp, "cam"), T.CAMERA_DEPTH)
    assert ros.spin(lambda: traj and raw), node.skipped
    assert cv.to_sec(traj[0].header.stamp) == pytest.approx(stamp, abs=1e-6) and node.skipped == {}
    obs, reason = node.assembler.build(stamp)
    expected = depth_to_points(cv.image_to_depth(cv.depth_to_image(depth, 0, "")), CameraModel.from_matrices(K, T_fixed),
                               cloud)
    assert reason is None and obs.images == {}
    np.testing.assert_array_equal(obs.points["point_cloud"], expected)

    # on the hand: eef_from_camera composed with the pose of the observation
    eef_from_camera = np.linalg.inv(np.block([[quat_to_matrix(proprio[3:7]), proprio[:3, None]], [np.zeros((1, 3)), 1]])) @ T_fixed
    hand = ros.add(PolicyNode, parameter_overrides=params(model_path=str(bundle), warmup=1, camera_mounts=["hand"],
                                                          camera_poses=eef_from_camera.ravel().tolist()))
    assert ros.configure(hand) == OK, hand.last_error
    hand.assembler.set_pose(pose), hand.assembler.set_joints(joints)
    hand.assembler.set_depth_info("agentview", cv.camera_info(320, 240, stamp, "cam", K.ravel().tolist()))
    hand.assembler.set_depth("agentview", cv.depth_to_image(depth, stamp, "cam"))
    obs, reason = hand.assembler.build(stamp)
    assert reason is None
    np.testing.assert_allclose(obs.points["point_cloud"], expected, atol=1e-5)  # the same camera pose, reached via the hand

    missing = ros.add(PolicyNode, parameter_overrides=params(model_path=str(bundle), warmup=0))
    assert ros.configure(missing) != OK and "set camera_mounts" in missing.last_error


def test_policy_holds_on_a_stale_image_and_reports_it(ros, policy):
    traj, _ = capture_commands(ros, policy)
    publish_observation(ros, policy, ros.now() - 1.0, state_stamp=ros.now())  # a frozen camera, a live robot
    assert ros.spin(lambda: traj)
    actions, _, _ = cv.trajectory_to_actions(traj[0], 0.05, 0.5)
    assert actions.shape == (0, 7)  # a hold: the robot drops what it was sent
    status, values = diagnostics_of(ros, policy, "policy")
    assert values["hold_stale_observation"] == "1" and values["model_id"].startswith("lift_image")
    assert status.level == cv.LEVELS["WARN"]


def test_model_path_is_loaded_and_checked_inside_the_set_parameters_call(ros, policy, tmp_path):
    """A bad bundle is refused with the reason in the answer, the parameter keeps naming the model that runs, and
    that model keeps driving; a good one is accepted and takes over before the next plan."""
    old = policy.planner.model_id
    other_camera = copy_bundle(tmp_path, "cam", observation={
        **yaml.safe_load((MODEL / "manifest.yaml").read_text())["observation"],
        "images": [{"name": "agentview_image", "height": 96, "width": 96, "channels": 3}]})
    corrupt = copy_bundle(tmp_path, "corrupt")
    (corrupt / "model.onnx").write_bytes(b"not an onnx file")  # the manifest is fine, the graph is not
    for path, why in [(tmp_path / "nope", "not a directory"), (other_camera, "agentview_image"), (corrupt, "sha256")]:
        result = policy.set_parameters([Parameter("model_path", value=str(path))])[0]
        assert not result.successful and why in result.reason and f"keeping {old}" in result.reason
        assert policy.p("model_path") == str(MODEL)
    traj, raw = capture_commands(ros, policy)
    publish_observation(ros, policy, ros.now())
    assert ros.spin(lambda: traj) and policy.planner.model_id == old and policy.planner.failed_swaps == 0

    new = copy_bundle(tmp_path, "v2", model_id="lift_image-v2", execution="ensemble")
    assert policy.set_parameters([Parameter("model_path", value=str(new))])[0].successful
    assert policy.p("model_path") == str(new) and policy.planner.model_id == old  # loaded; runs from the next plan
    publish_observation(ros, policy, ros.now())
    assert ros.spin(lambda: len(traj) >= 2 and len(raw) >= 2)
    assert policy.planner.model_id == "lift_image-v2" and policy.planner.swaps == 1
    actions, _, _ = cv.trajectory_to_actions(traj[-1], 0.05, 0.5)  # ensemble of one chunk: the old model's are gone
    np.testing.assert_allclose(actions, cv.array_msg_to_chunk(raw[-1]), atol=1e-5)
    _, values = diagnostics_of(ros, policy, "policy")
    assert values["model_id"] == "lift_image-v2" and values["model_path"] == str(new)


def test_default_blending_follows_each_models_manifest_across_swaps(ros, policy, tmp_path):
    # the shipped lift model's: re-plan every tick, run the action planned 50 ms after each image
    assert policy.p("blending") == "model" and policy.planner.mode == "latest" and policy.planner.lookahead_s == 0.05
    new = copy_bundle(tmp_path, "open_loop", model_id="lift_image-chunk", execution="chunk", lookahead_s=0.0)
    assert policy.set_parameters([Parameter("model_path", value=str(new))])[0].successful
    publish_observation(ros, policy, ros.now())
    assert ros.spin(lambda: policy.planner.model_id == "lift_image-chunk")
    assert policy.planner.mode == "chunk" and policy.planner.lookahead_s == 0.0
    _, values = diagnostics_of(ros, policy, "policy")
    assert values["blending"] == "chunk" and float(values["lookahead_s"]) == 0.0
    assert policy.set_parameters([Parameter("blending", value="ensemble")])[0].successful  # an explicit choice wins
    assert policy.planner.mode == "ensemble"


def test_sampling_steps_are_read_only_and_a_mismatch_is_refused(ros, tmp_path):
    from dm1_ros.ros.policy_node import PolicyNode

    node = ros.add(PolicyNode, parameter_overrides=params(model_path=str(MODEL), sampling_steps=5, warmup=0))
    assert node.trigger_configure() != OK
    assert "samples in 1 step" in node.last_error and "--steps 5" in node.last_error
    assert not node.set_parameters([Parameter("sampling_steps", value=1)])[0].successful
    node.set_parameters([Parameter("model_path", value=str(copy_bundle(tmp_path, "k5", sampling_steps=5)))])
    assert ros.configure(node) == OK and node.planner.manifest.sampling_steps == 5


def test_parameters_are_validated_and_configure_time_ones_locked(ros, policy):
    assert not policy.set_parameters([Parameter("blending", value="smooth")])[0].successful
    assert policy.set_parameters([Parameter("blending", value="ensemble")])[0].successful
    assert policy.planner.mode == "ensemble"
    result = policy.set_parameters([Parameter("rate", value=50.0)])[0]
    assert not result.successful and "takes effect at configure" in result.reason
    assert policy.set_parameters([Parameter("max_observation_age_s", value=1)])[0].successful  # int for a float
    assert policy.planner.watchdog.timeout_s == 1.0
    assert not policy.set_parameters([Parameter("max_observation_age_s", value="soon")])[0].successful


def test_policy_services_start_stop_reset(ros, policy):
    traj, _ = capture_commands(ros, policy)
    response = ros.call(Trigger, T.POLICY_STOP)
    assert response.success and ros.spin(lambda: traj)
    assert len(cv.trajectory_to_actions(traj[0], 0.05, 0.5)[0]) == 0  # stopping publishes a hold
    publish_observation(ros, policy, ros.now())
    ros.spin(timeout=0.2)
    assert len(traj) == 1  # stopped: no plan
    response = ros.call(Trigger, T.POLICY_START)
    assert response.success and "lift_image" in response.message
    publish_observation(ros, policy, ros.now())
    assert ros.spin(lambda: len(traj) == 2)
    assert ros.call(Trigger, T.POLICY_RESET).success and policy.planner.blender.current is None


def test_policy_chunk_blending_republishes_the_running_chunk(ros):
    from dm1_ros.ros.policy_node import PolicyNode

    node = ros.add(PolicyNode, parameter_overrides=params(model_path=str(MODEL), warmup=0, blending="chunk",
                                                          max_observation_age_s=5.0, lookahead_s=0.0))
    assert ros.configure(node) == OK
    traj, raw = capture_commands(ros, node)
    t0 = ros.now() - 1.0  # stamps k / 20 apart, all in the past
    for k in range(5):  # 4 actions per chunk at 20 Hz: plans at k = 0 and k = 4
        publish_observation(ros, node, t0 + k / 20)
        assert ros.spin(lambda: len(traj) == k + 1)
    ros.spin(lambda: len(raw) == 2, timeout=0.5)
    assert len(raw) == 2
    assert [cv.to_sec(m.header.stamp) - t0 for m in traj] == pytest.approx([0, 0, 0, 0, 0.2], abs=1e-6)


# --- franka_bridge_node against franky-sim ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def franky_server():
    from franky_sim_support import franky_sim_server

    with franky_sim_server() as handle:
        yield handle


@pytest.fixture
def franka(ros, franky_server, tmp_path):
    from dm1_ros.ros.franka_bridge_node import FrankaBridgeNode
    from franky_sim_support import SIM_START_Q

    franky_server.faults.reflex, franky_server.faults.force = False, None
    config = yaml.safe_load((ROOT / "config" / "robot" / "franka.yaml").read_text())
    config.update(realtime="ignore", home_q=SIM_START_Q, relative_dynamics_factor=0.2, state_timeout_s=0.5)
    (tmp_path / "franky_sim.yaml").write_text(yaml.safe_dump(config))
    node = ros.add(FrankaBridgeNode, parameter_overrides=params(
        robot_ip=franky_server.hostname, robot_config=str(tmp_path / "franky_sim.yaml"), control_rate=50.0))
    assert ros.configure(node) == OK, node.last_error
    node.robot.reset()
    yield node
    if node.robot is not None and (node.robot.fault is not None or node.robot.stopped):
        franky_server.faults.reflex = False
        node.robot.recover()


def command(ros, actions, stamp, rate=20.0):
    ros.publish(cv.actions_to_trajectory(np.asarray(actions, float), stamp, rate, 0.05, 0.5, "panda_link0"),
                T.ACTION_TRAJECTORY)
    ros.spin(timeout=0.02)


def drive(ros, node, seconds):
    """Fire the bridge's timer at its rate for `seconds` of wall-clock time (franky-sim runs in real time)."""
    period = 1.0 / node.p("control_rate")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ros.fire(node.timer)
        ros.spin(timeout=period)


def drive_until(ros, node, condition, timeout=10.0) -> bool:
    """drive() until `condition()` holds: waits on what happens, not on how fast this machine is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        drive(ros, node, 0.05)
    return condition()


def eef_x(node):
    return float(node.robot.observe().proprio[0])


def test_franka_bridge_executes_commands_and_publishes_state(ros, franka):
    robot = franka.robot
    assert robot.config.robot_ip == franka.p("robot_ip") and robot.config.rate_hz == 20.0
    assert robot.rate_hz == 50.0 and robot.config.safety.workspace_max == [0.8, 0.45, 0.7]  # franka.yaml's box
    joints = ros.capture(JointState, T.JOINT_STATES, reliable=True)
    poses = ros.capture(PoseStamped, T.EEF_POSE, reliable=True)
    grip = ros.capture(Float64MultiArray, T.GRIPPER_STATE, reliable=True)
    ros.spin(lambda: franka.pose_pub.get_subscription_count() > 0)
    x0 = eef_x(franka)
    actions = np.zeros((30, 7))
    actions[:, 0] = 0.4  # 2 cm per policy period along +x
    actions[:, 6] = 1.0
    command(ros, actions, ros.now())
    assert drive_until(ros, franka, lambda: eef_x(franka) - x0 > 0.05)  # the arm moves along the commanded direction
    assert ros.spin(lambda: poses and joints and grip)
    assert franka.control.commands == 1 and not franka.control.holds.get("fault")
    assert list(joints[-1].name) == [f"panda_joint{i}" for i in range(1, 8)] + list(T.FINGER_JOINTS)
    assert poses[-1].header.frame_id == "panda_link0" and list(grip[-1].data)[1] == 1.0  # gripper latched closed


def test_franka_bridge_holds_on_a_silent_command_link_and_refuses_bad_commands(ros, franka):
    command(ros, np.zeros((4, 7)), ros.now())  # 0.15 s of actions, then nothing for longer than the timeout
    drive(ros, franka, 0.5)
    holds = franka.control.holds
    assert holds["no_valid_action"] >= 3 and holds["stale_command"] >= 5  # actions ran out, then the link went quiet
    command(ros, np.zeros((4, 7)), ros.now() - 1.0)  # a command whose every action is already late
    assert franka.control.scheduler.dropped_late == 1
    msg = cv.actions_to_trajectory(np.zeros((2, 7)), ros.now(), 20.0, 0.05, 0.5, "base")
    msg.joint_names = ["eef"]
    ros.publish(msg, T.ACTION_TRAJECTORY)
    ros.spin(lambda: franka.bad_commands == 1)
    assert franka.bad_commands == 1 and "gripper" in franka.last_command_error
    command(ros, np.zeros((4, 7)), ros.now(), rate=10.0)  # a 10 Hz model's actions on a 20 Hz bridge
    ros.spin(lambda: franka.bad_commands == 2)
    assert "10 Hz" in franka.last_command_error and "20 Hz" in franka.last_command_error


def test_franka_stop_recover_reset_services(ros, franka):
    assert ros.call(Trigger, T.ROBOT_STOP).success and franka.robot.stopped
    command(ros, np.tile([0.4, 0, 0, 0, 0, 0, -1], (20, 1)), ros.now())
    x0, targets = eef_x(franka), franka.robot.stats["targets"]
    drive(ros, franka, 0.3)
    assert franka.control.holds["stopped"] >= 5 and franka.robot.stats["targets"] == targets  # nothing commanded
    assert abs(eef_x(franka) - x0) < 0.005
    response = ros.call(Trigger, T.ROBOT_RECOVER)
    assert response.success and not franka.robot.stopped
    command(ros, np.tile([0.4, 0, 0, 0, 0, 0, -1], (40, 1)), ros.now())
    assert drive_until(ros, franka, lambda: eef_x(franka) - x0 > 0.03)
    response = ros.call(Trigger, T.ROBOT_RESET, timeout=30.0)
    assert response.success and "start configuration" in response.message
    from franky_sim_support import SIM_START_Q

    assert np.allclose(franka.robot.robot.state.q, SIM_START_Q, atol=0.02)


def test_a_reflex_takes_the_bridge_out_of_active_and_recover_brings_it_back(ros, franka, franky_server):
    """The franka_ros2 failure users complain about is a controller that dies on a reflex and hangs on
    reactivation; here the node leaves active with the reason on /diagnostics and recover restores it in place."""
    command(ros, np.tile([-0.2, 0, 0, 0, 0, 0, -1], (40, 1)), ros.now())
    drive(ros, franka, 0.2)
    franky_server.faults.trigger_reflex()
    deadline = time.monotonic() + 5.0
    while franka.state == "active" and time.monotonic() < deadline:
        drive(ros, franka, 0.05)
    assert franka.state == "inactive" and "reflex" in franka.control.fault
    state = ros.call(GetState, "/franka_bridge/get_state")
    assert state.current_state.label == "inactive"
    status, values = diagnostics_of(ros, franka, "robot")
    assert status.level == cv.LEVELS["ERROR"] and "cartesian_reflex" in status.message
    response = ros.call(Trigger, T.ROBOT_RECOVER, timeout=20.0)
    assert response.success and franka.state == "active" and franka.control.fault is None
    x0 = eef_x(franka)
    command(ros, np.tile([0.4, 0, 0, 0, 0, 0, -1], (40, 1)), ros.now())
    assert drive_until(ros, franka, lambda: eef_x(franka) - x0 > 0.03)  # moving again, same process, same node


def test_franka_configure_failure_is_reported(ros):
    from dm1_ros.ros.franka_bridge_node import FrankaBridgeNode

    pytest.importorskip("franky")
    node = ros.add(FrankaBridgeNode, parameter_overrides=params(robot_ip="127.0.0.250", realtime="ignore"))
    assert node.trigger_configure() != OK and "cannot connect to the Franka at 127.0.0.250" in node.last_error
    assert not node.set_parameters([Parameter("realtime", value="sometimes")])[0].successful
    assert not node.set_parameters([Parameter("policy_rate", value=0.0)])[0].successful


# --- sim_bridge_node (robosuite) -----------------------------------------------------------------------------------
def test_sim_bridge_publishes_camera_and_state_and_steps_in_lockstep(ros):
    pytest.importorskip("robosuite")
    from dm1_ros.ros.sim_bridge_node import SimBridgeNode

    node = ros.add(SimBridgeNode, parameter_overrides=params(image_size=[32, 32], seed=7, auto_reset=False))
    images = ros.capture(Image, T.CAMERA_IMAGE)
    infos = ros.capture(CameraInfo, T.CAMERA_INFO)
    success = ros.capture(Bool, T.SIM_SUCCESS, reliable=True)
    assert ros.configure(node) == OK, node.last_error
    assert ros.spin(lambda: images and infos and success, timeout=5.0)
    assert images[0].encoding == "rgb8" and (images[0].height, images[0].width) == (32, 32)
    assert infos[0].width == 32 and node.episode == 0
    start = node.robot.observe().proprio[:3].copy()
    ros.fire(node.timer)
    assert node.robot.env.steps == 0 and node.lockstep_waits == 1  # lockstep: no command for this observation yet
    stamp = cv.to_sec(images[-1].header.stamp)
    command(ros, [[0.0, 0, 1.0, 0, 0, 0, -1]] * 4, stamp)
    time.sleep(0.3)  # however long the policy took, the simulated world waited
    ros.fire(node.timer)
    assert node.robot.env.steps == 1 and node.control.holds == {}  # action 0 ran, not a late one
    assert node.robot.observe().proprio[2] > start[2]
    assert ros.spin(lambda: len(images) == 2)
    assert cv.to_sec(images[-1].header.stamp) > stamp
    time.sleep(1.1)  # no command for lockstep_timeout_s: step anyway, holding
    ros.fire(node.timer)
    assert node.robot.env.steps == 2 and node.lockstep_timeouts == 1
    assert ros.call(Trigger, T.ROBOT_RESET).success and node.episode == 1 and node.robot.env.steps == 0
    assert ros.spin(lambda: success and success[-1].data is False)


# --- camera_node ---------------------------------------------------------------------------------------------------
def test_camera_node_publishes_rgb8_and_camera_info_on_realsense_topics(ros):
    from dm1_ros.hardware.cameras import Intrinsics, SoftwareCamera
    from dm1_ros.ros.camera_node import CameraNode

    made = []

    def factory(**kwargs):
        made.append(SoftwareCamera(name="test", resize=kwargs["resize"], on_frame=kwargs["on_frame"],
                                   intrinsics=Intrinsics(64, 48, 60.0, 60.0, 32.0, 24.0)))
        return made[-1]

    node = ros.add(CameraNode, camera_factory=factory, parameter_overrides=params(resize="32x24", frame_id="cam"))
    images = ros.capture(Image, T.CAMERA_IMAGE)
    infos = ros.capture(CameraInfo, T.CAMERA_INFO)
    assert ros.configure(node) == OK, node.last_error
    ros.spin(lambda: node.image_pub.get_subscription_count() > 0 and node.info_pub.get_subscription_count() > 0)
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for _ in range(3):
        made[0].push(frame)
        time.sleep(0.02)
    assert ros.spin(lambda: len(images) >= 3 and len(infos) >= 3, timeout=5)
    img = images[0]
    assert (img.encoding, img.height, img.width, img.header.frame_id) == ("rgb8", 24, 32, "cam")
    assert cv.to_sec(img.header.stamp) == pytest.approx(ros.now(), abs=1.0)
    assert (infos[0].width, infos[0].height) == (32, 24)
    assert list(infos[0].k) == pytest.approx([30.0, 0, 16.0, 0, 30.0, 12.0, 0, 0, 1])  # the driver's, scaled
    _, values = diagnostics_of(ros, node, "camera")
    assert values["frames"] == "3" and values["declared_fps"] == "30" and "fps" in values
    node.trigger_deactivate()
    made[0].push(frame)
    ros.spin(timeout=0.3)
    assert len(images) == 3  # inactive: frames are not published


def test_camera_node_replays_a_recording_with_its_intrinsics(ros, tmp_path):
    from realsense_support import H, W, SoftwareRealSense, record_db3

    from dm1_ros.ros.camera_node import CameraNode

    recording = record_db3(SoftwareRealSense(), tmp_path / "session.db3")
    node = ros.add(CameraNode, parameter_overrides=params(camera="replay", replay_path=recording))
    images = ros.capture(Image, T.CAMERA_IMAGE)
    infos = ros.capture(CameraInfo, T.CAMERA_INFO)
    assert ros.configure(node) == OK, node.last_error
    assert ros.spin(lambda: len(images) >= 5 and infos, timeout=10)
    assert (images[0].height, images[0].width) == (H, W) and infos[-1].k[0] == pytest.approx(50.0)


def test_camera_nodes_of_a_rig_publish_under_their_own_namespaces(ros, tmp_path):
    """Two cameras, camera_namespace wrist and front: realsense-ros topics /<namespace>/camera/..., nothing on the
    default camera's topics."""
    from realsense_support import SoftwareRealSense, record_db3

    from dm1_ros.ros.camera_node import CameraNode

    recording = record_db3(SoftwareRealSense(), tmp_path / "session.db3")
    got = {ns: ros.capture(Image, T.camera_topics(ns)["image"]) for ns in ("wrist", "front", "camera")}
    infos = ros.capture(CameraInfo, "/front/camera/color/camera_info")
    nodes = [ros.add(CameraNode, name=f"{ns}_camera", parameter_overrides=params(
        camera="replay", replay_path=recording, camera_namespace=ns)) for ns in ("wrist", "front")]
    for node in nodes:
        assert ros.configure(node) == OK, node.last_error
    assert ros.spin(lambda: len(got["wrist"]) >= 3 and len(got["front"]) >= 3 and infos, timeout=10)
    assert got["camera"] == [] and nodes[1].topics["image"] == "/front/camera/color/image_raw"


def test_camera_node_publishes_aligned_depth_and_a_point_cloud_as_realsense_ros(ros, tmp_path):
    """A .db3 of colour + depth (600 + 3 * column + i mm) replayed: 16UC1 millimetres on the aligned-depth topic with
    the colour intrinsics, and the back-projected cloud (z = depth, x from the column) on the points topic."""
    from realsense_support import H, W, SoftwareRealSense, record_db3
    from sensor_msgs.msg import PointCloud2

    from dm1_ros.ros.camera_node import CameraNode

    recording = record_db3(SoftwareRealSense(serial="000000000044", depth=True), tmp_path / "depth.db3")
    node = ros.add(CameraNode, parameter_overrides=params(camera="replay", replay_path=recording, depth=True,
                                                          pointcloud=True, frame_id="cam"))
    depths = ros.capture(Image, T.CAMERA_DEPTH)
    infos = ros.capture(CameraInfo, T.CAMERA_DEPTH_INFO)
    clouds = ros.capture(PointCloud2, T.CAMERA_POINTS)
    assert ros.configure(node) == OK, node.last_error
    assert ros.spin(lambda: len(depths) >= 3 and len(clouds) >= 3 and infos, timeout=10)
    msg = depths[-1]
    assert (msg.encoding, msg.height, msg.width, msg.header.frame_id) == ("16UC1", H, W, "cam")
    depth = cv.image_to_depth(msg)
    valid = depth > 0
    columns = np.broadcast_to(np.arange(W), depth.shape)
    offset = depth[valid] * 1000 - 600 - 3 * columns[valid]  # the frame index i, the same at every pixel
    assert valid.mean() > 0.9 and np.median(np.abs(offset - np.median(offset))) == 0
    assert infos[-1].k[0] == pytest.approx(50.0) and infos[-1].header.frame_id == "cam"
    points = cv.cloud_to_points(clouds[-1])
    assert 0.9 * H * W < len(points) <= H * W and clouds[-1].header.frame_id == "cam"
    assert np.all((points[:, 2] > 0.59) & (points[:, 2] < 0.8))
    same_frame = [d for d in depths if d.header.stamp == clouds[-1].header.stamp]
    assert same_frame  # published together, one stamp
    cloud_depth = cv.image_to_depth(same_frame[-1])  # every point is its pixel's depth back-projected (fx = 50)
    v, u = np.nonzero(cloud_depth > 0)
    z = cloud_depth[v, u]
    np.testing.assert_allclose(points, np.stack([(u - W / 2) * z / 50, (v - H / 2) * z / 50, z], 1), atol=1e-6)
    bad = ros.add(CameraNode, parameter_overrides=params(camera="opencv", depth=True))
    assert ros.configure(bad) != OK and "depth:=true needs a depth camera" in bad.last_error


@pytest.mark.parametrize("given", ["_123456789012", "123456789012", "'123456789012'"])
def test_camera_serial_follows_realsense_ros(ros, given):
    pytest.importorskip("pyrealsense2")
    from dm1_ros.ros.camera_node import CameraNode

    node = ros.add(CameraNode, parameter_overrides=params(serial_no=given))
    assert node.trigger_configure() != OK
    assert "serial '123456789012' is not connected" in node.last_error  # the serial itself, as librealsense lists it


def test_camera_node_parameters_and_configure_errors(ros):
    from dm1_ros.ros.camera_node import CameraNode

    node = ros.add(CameraNode, parameter_overrides=params(camera="replay"))
    assert not node.set_parameters([Parameter("color_profile", value="640x480")])[0].successful
    assert not node.set_parameters([Parameter("camera", value="kinect")])[0].successful
    assert node.trigger_configure() != OK and "replay_path" in node.last_error
    with pytest.raises(Exception, match="kinect"):
        ros.add(CameraNode, parameter_overrides=params(camera="kinect"))


# --- teleop_node ---------------------------------------------------------------------------------------------------
def test_teleop_commands_records_and_saves_episodes(ros, tmp_path):
    import h5py

    from dm1_ros.hardware.teleop import ScriptedTeleop
    from dm1_ros.ros.teleop_node import TeleopNode

    device = ScriptedTeleop(lambda t: np.array([0.5, 0, 0, 0, 0, 0, 1.0 if t > 1 else -1.0]))
    out = tmp_path / "teleop.hdf5"
    node = ros.add(TeleopNode, device=device, parameter_overrides=params(
        output=str(out), record_image_size=[8, 8], valid_fraction=0.0, bag_path=str(tmp_path / "bag"),
        max_observation_age_s=5.0))
    traj = ros.capture(MultiDOFJointTrajectory, T.ACTION_TRAJECTORY, reliable=True)
    assert ros.configure(node) == OK, node.last_error
    ros.spin(lambda: node.command_pub.get_subscription_count() > 0)
    assert ros.call(Trigger, T.TELEOP_START).message == "recording teleop_00000"
    t0 = ros.now() - 1.0  # stamps k / 20 apart, all in the past
    for k in range(4):
        publish_observation(ros, node, t0 + k / 20, size=16, value=k)
        assert ros.spin(lambda: node.assembler.image_stamp() == pytest.approx(t0 + k / 20))
        ros.fire(node.timer)
        ros.fire(node.timer)  # one command and one step per observation
        assert ros.spin(lambda: len(traj) == k + 1)
    assert node.recorder.steps == 3  # the newest step waits for its reward
    actions, stamp, spacing = cv.trajectory_to_actions(traj[-1], 0.05, 0.5)
    assert actions.shape == (3, 7) and stamp == pytest.approx(t0 + 3 / 20) and spacing == pytest.approx(1 / 20)
    np.testing.assert_allclose(actions[0], [0.5, 0, 0, 0, 0, 0, 1.0], atol=1e-6)
    ros.publish(Bool(data=True), T.SIM_SUCCESS)
    ros.spin(lambda: node.recorder.success)
    response = ros.call(Trigger, T.TELEOP_STOP)
    assert response.success and "4 steps, success=True" in response.message
    device.emit("toggle_episode")  # the device's own button starts the next one
    ros.fire(node.timer)
    assert node.recorder.recording == "teleop_00001"
    assert ros.call(Trigger, T.TELEOP_DISCARD).success
    # a refused call answers with the reason and leaves the node working (one log call per severity)
    assert not ros.call(Trigger, T.TELEOP_STOP).success and not ros.call(Trigger, T.TELEOP_DISCARD).success
    assert ros.call(Trigger, T.TELEOP_START).success and ros.call(Trigger, T.TELEOP_DISCARD).success
    node.trigger_deactivate()
    node.trigger_cleanup()  # assembles the dataset
    with h5py.File(out) as f:
        demo = f["data/demo_0"]
        assert demo["obs"][KEY].shape == (4, 8, 8, 3) and demo["actions"].shape == (4, 7)
        np.testing.assert_allclose(demo["timestamps"][()], t0 + np.arange(4) / 20, atol=1e-6)
        assert demo["obs/robot0_gripper_qpos"][0] == pytest.approx([0.02, -0.02])
        # reward of step t = success seen with observation t + 1: here only after the last action
        assert demo.attrs["success"] and list(demo["rewards"][()]) == [0, 0, 0, 1]
        assert list(f["data"].keys()) == ["demo_0"]
    assert list((tmp_path / "bag").glob("*.mcap"))

    # the bag alone gives the same episode back: replayed through the same assembly and recorder
    from dm1_ros.cli import main

    assert main(["dataset", "import", str(tmp_path / "bag"), "--from-bag", "--image-size", "8", "8", "--out",
                 str(tmp_path / "from_bag.hdf5")]) == 0
    with h5py.File(out) as a, h5py.File(tmp_path / "from_bag.hdf5") as b:
        assert list(b["data"].keys()) == ["demo_0"]  # the two discarded episodes stay discarded
        ga, gb = a["data/demo_0"], b["data/demo_0"]
        for key in ga["obs"]:
            np.testing.assert_array_equal(ga["obs"][key][()], gb["obs"][key][()], err_msg=key)
        np.testing.assert_allclose(ga["actions"][()], gb["actions"][()], atol=1e-6)
        for name in ("rewards", "dones", "timestamps"):
            np.testing.assert_array_equal(ga[name][()], gb[name][()], err_msg=name)
        assert gb.attrs["success"] and gb.attrs["steps"] == 4


def test_teleop_keyboard_without_a_terminal_takes_keys_from_the_topic(ros, tmp_path):
    from dm1_ros.ros.teleop_node import TeleopNode

    node = ros.add(TeleopNode, parameter_overrides=params(output=str(tmp_path / "k.hdf5")))  # keyboard_backend auto
    assert ros.configure(node) == OK, node.last_error  # pytest gives no terminal and no display
    assert node.device.active_backend == "none"
    ros.publish(String(data="w"), T.TELEOP_KEYS)
    ros.publish(String(data="space"), T.TELEOP_KEYS)
    ros.spin(lambda: node.device.action()[6] == 1.0)
    assert node.device.action()[0] > 0 and node.device.action()[6] == 1.0
