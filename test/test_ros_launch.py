"""The package on real ROS 2, as a user runs it: built with colcon into a temporary workspace, started with
`ros2 launch dm1_ros ...`, driven with `ros2 lifecycle set`, `ros2 param set` and service calls, over DDS.

Stacks: sim_policy.launch.py (robosuite + policy, closed loop, hot swaps), panda_policy.launch.py against franky-sim
with a recorded RealSense session as the camera (lifecycle by hand, camera loss, stop/recover/reset, an injected
reflex), and teleop_record.launch.py exactly as the docs show it (keys on the topic, episodes read by `dm1 train`,
the MCAP bag read by rosbags). Each test has its own ROS domain; what it starts, it stops.
"""
import ast
import importlib
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

from ros2_support import HOW, ROS2, Launched, ros2_cli

from dm1_ros.paths import SHIPPED_MODEL

ROOT = Path(__file__).resolve().parents[1]
ROS_DIR = ROOT / "dm1_ros" / "ros"
LAUNCH = ROOT / "launch"
MODEL = ROOT / "models" / "lift_image"
NODE_CLASSES = {
    "camera_node": ("dm1_ros.ros.camera_node", "CameraNode", "camera"),
    "policy_node": ("dm1_ros.ros.policy_node", "PolicyNode", "policy"),
    "franka_bridge_node": ("dm1_ros.ros.franka_bridge_node", "FrankaBridgeNode", "franka_bridge"),
    "sim_bridge_node": ("dm1_ros.ros.sim_bridge_node", "SimBridgeNode", "sim_bridge"),
    "teleop_node": ("dm1_ros.ros.teleop_node", "TeleopNode", "teleop"),
}
# import name -> rosdep key, for packages that come from ROS (the rest are Python's or pip's)
ROS_PACKAGES = {"rclpy", "rcl_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs",
                "diagnostic_msgs", "std_srvs", "builtin_interfaces", "launch", "launch_ros", "lifecycle_msgs",
                "ament_index_python"}
DOCUMENTED_ARGUMENTS = {
    "robot.launch.py": {"use_sim", "autostart", "control_rate", "policy_rate", "robot_ip", "robot_config", "realtime",
                        "camera", "serial_no", "color_profile", "replay_path", "task", "seed", "auto_reset"},
    "panda_policy.launch.py": {"model_path", "blending", "use_sim", "autostart", "robot_ip", "serial_no",
                               "control_rate", "camera", "replay_path", "robot_config", "realtime"},
    "sim_policy.launch.py": {"model_path", "task", "control_rate", "blending", "seed", "autostart"},
    "teleop_record.launch.py": {"use_sim", "device", "keyboard_backend", "output", "bag_path", "robot_ip",
                                "serial_no", "control_rate", "autostart"},
}


# --- packaging (no ROS needed) -----------------------------------------------------------------------------------
def package_xml():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for tag in ("depend", "exec_depend", "run_depend") for e in root.findall(tag)}
    return root.findtext("name"), deps


def imported_top_levels(paths):
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_package_xml_declares_every_ros_package_the_code_imports():
    name, deps = package_xml()
    assert name == "dm1_ros"
    used = imported_top_levels([*ROS_DIR.glob("*.py"), *LAUNCH.glob("*.launch.py")]) & ROS_PACKAGES
    assert {"rclpy", "sensor_msgs", "trajectory_msgs", "launch_ros"} <= used
    arrive_anyway = {"builtin_interfaces", "rcl_interfaces"}  # with rclpy / launch_ros
    missing = sorted(used - deps - arrive_anyway)
    assert not missing, f"package.xml lacks <exec_depend> for {missing}"


def test_only_node_modules_import_rclpy():
    for path in ROS_DIR.glob("*.py"):
        if "rclpy" in imported_top_levels([path]):
            assert path.stem.endswith("_node") or path.stem in ("node_base", "robot_bridge"), path.name
    for stem in ("topics", "conversions", "assembler"):
        assert "rclpy" not in imported_top_levels([ROS_DIR / f"{stem}.py"]), stem
    for path in (ROOT / "dm1_ros").rglob("*.py"):
        if ROS_DIR not in path.parents:
            assert not {"rclpy"} & imported_top_levels([path]), f"{path} imports rclpy outside dm1_ros/ros"


def test_console_scripts_resolve_to_main_and_setup_installs_them():
    from dm1_ros.ros import CONSOLE_SCRIPTS

    assert set(CONSOLE_SCRIPTS) == set(NODE_CLASSES)
    text = (ROOT / "setup.py").read_text()
    for name, target in CONSOLE_SCRIPTS.items():
        assert f"{name} = {target}" in text, f"setup.py entry_points do not list {name}"
        module, func = target.split(":")
        if ROS2:
            assert callable(getattr(importlib.import_module(module), func)), name


def test_docs_list_every_parameter_topic_service_and_launch_argument():
    from dm1_ros.ros import topics

    text = (ROOT / "docs" / "ros.md").read_text()
    for module, cls, _ in NODE_CLASSES.values():
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
        for name in re.findall(r'Param\("(\w+)"', source):
            assert f"`{name}`" in text, f"docs/ros.md does not document {cls}.{name}"
    for name, value in vars(topics).items():
        if name.isupper() and isinstance(value, str) and value.startswith("/"):
            assert value in text, f"docs/ros.md does not mention {value}"
    for launch_file, args in DOCUMENTED_ARGUMENTS.items():
        assert launch_file in text
        for arg in args:
            assert f"`{arg}`" in text, f"docs/ros.md does not document the launch argument {arg}"


# --- parameters -----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not ROS2, reason=HOW)
@pytest.mark.parametrize("executable", sorted(NODE_CLASSES))
def test_parameter_files_name_only_parameters_the_node_declares(ros, executable):
    """ROS ignores an undeclared parameter silently: a typo in config/ros/*.yaml would go unnoticed."""
    from rclpy.parameter import Parameter

    module, cls, name = NODE_CLASSES[executable]
    path = ROOT / "config" / "ros" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    root = "/**" if name == "camera" else name  # one camera_node per namespace of a rig reads the camera file
    assert list(data) == [root] and list(data[root]) == ["ros__parameters"], path
    values = data[root]["ros__parameters"]
    node_class = getattr(importlib.import_module(module), cls)
    declared = {p.name for p in (*node_class.COMMON, *node_class.PARAMETERS)}
    assert not set(values) - declared, f"{path.name}: undeclared {sorted(set(values) - declared)}"
    node = ros.add(node_class, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    for k, v in values.items():  # every value passes the node's own validation
        assert node.get_parameter(k).value == v


# --- colcon + ros2 launch ------------------------------------------------------------------------------------------
@pytest.mark.skipif(not ROS2, reason=HOW)
def test_colcon_installs_the_package_and_every_launch_file_answers_show_args(ros_ws, ros_domain):
    share = ros_ws["path"] / "install" / "dm1_ros" / "share" / "dm1_ros"
    for sub in ("launch/panda_policy.launch.py", "config/ros/policy.yaml", f"models/{SHIPPED_MODEL}/model.onnx",
                "package.xml"):
        assert (share / sub).is_file(), sub
    assert (ros_ws["path"] / "install" / "dm1_ros" / "lib" / "dm1_ros" / "policy_node").is_file()
    for launch_file, documented in DOCUMENTED_ARGUMENTS.items():
        done = ros2_cli(ros_ws, ros_domain, "launch", "dm1_ros", launch_file, "--show-args")
        assert done.returncode == 0, done.stderr
        shown = set(re.findall(r"^\s+'(\w+)':", done.stdout, re.M))
        assert documented <= shown, f"{launch_file}: missing {documented - shown}"


@pytest.mark.skipif(not ROS2, reason=HOW)
@pytest.mark.parametrize("given", ["_123456789012", "'123456789012'"])  # the second is what the shell leaves of
def test_serial_no_reaches_the_camera_as_realsense_ros_users_write_it(ros_ws, ros_domain, tmp_path, given):  # "'..'"
    """The serial the camera looks for is the digits, however the documented forms are typed on the command line."""
    pytest.importorskip("pyrealsense2")
    stack = Launched(ros_ws, ros_domain, "robot.launch.py", f"serial_no:={given}", "robot_ip:=127.0.0.250",
                     "realtime:=ignore", log=tmp_path / "launch.log")
    try:
        assert stack.wait_for("serial '123456789012' is not connected", 60), stack.text()[-3000:]
    finally:
        stack.stop()


def diagnostics_values(probe_msgs, node_name):
    """The newest values of a node's diagnostics status, as a dict (empty until one arrived)."""
    from dm1_ros.ros.conversions import diagnostic_values

    for msg in reversed(list(probe_msgs)):
        for status in msg.status:
            if status.name.startswith(f"{node_name}:"):
                return {**diagnostic_values(status), "_level": status.level, "_message": status.message}
    return {}


@pytest.mark.skipif(not ROS2, reason=HOW)
def test_sim_policy_launch_closes_the_loop_and_hot_swaps(ros_ws, ros_domain, probe, tmp_path):
    """sim_bridge + policy over DDS lift the cube on seeds 100001-100003 with the default bundle (its committed
    100-episode evaluation, results/demos/lift_image_fast_500_first_lookahead100_100ep.json, lifts all three), then
    `ros2 param set /policy model_path` refuses a corrupt bundle with the reason and takes a good one."""
    pytest.importorskip("robosuite")
    from diagnostic_msgs.msg import DiagnosticArray

    diags = probe.capture(DiagnosticArray, "/diagnostics", qos=50)
    stack = Launched(ros_ws, ros_domain, "sim_policy.launch.py", "seed:=100001", log=tmp_path / "launch.log")
    try:
        done = probe.wait(lambda: int(diagnostics_values(diags, "sim_bridge").get("episodes_done", 0)) >= 3, 150)
        sim = diagnostics_values(diags, "sim_bridge")
        assert done, f"3 episodes did not finish: {sim}\n{stack.text()[-3000:]}"
        assert int(sim["successes"]) >= 2, sim  # through ROS, with the policy's own noise draws
        policy = diagnostics_values(diags, "policy")
        assert policy["model_id"].startswith(SHIPPED_MODEL + "-") and int(policy["plans"]) > 20
        # the shipped model re-plans every tick, so its diagnostics say how much each plan changed the last one
        assert int(policy["replan_compared"]) > 10 and 0 < float(policy["replan_arm_rms"]) < 1, policy

        corrupt = tmp_path / "corrupt"
        shutil.copytree(MODEL, corrupt)
        (corrupt / "model.onnx").write_bytes(b"not an onnx file")
        answer = ros2_cli(ros_ws, ros_domain, "param", "set", "--no-daemon", "/policy", "model_path", str(corrupt))
        said = answer.stdout + answer.stderr  # ros2 param prints a refusal on stderr
        assert "Setting parameter failed" in said and "sha256" in said and f"keeping {SHIPPED_MODEL}-" in said, said
        got = ros2_cli(ros_ws, ros_domain, "param", "get", "--no-daemon", "/policy", "model_path")
        assert str(corrupt) not in got.stdout and SHIPPED_MODEL in got.stdout

        good = tmp_path / "v2"
        shutil.copytree(MODEL, good)
        manifest = yaml.safe_load((good / "manifest.yaml").read_text())
        manifest["model_id"] = "lift_image-v2"
        (good / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        answer = ros2_cli(ros_ws, ros_domain, "param", "set", "--no-daemon", "/policy", "model_path", str(good))
        assert "Set parameter successful" in answer.stdout, answer.stdout + answer.stderr
        swapped = probe.wait(lambda: diagnostics_values(diags, "policy").get("model_id") == "lift_image-v2", 60)
        plans = int(diagnostics_values(diags, "policy")["plans"])
        assert swapped and probe.wait(lambda: int(diagnostics_values(diags, "policy")["plans"]) > plans + 10, 60)
        assert diagnostics_values(diags, "policy")["swaps"] == "1"
    finally:
        assert stack.stop() in (0, -2), (getattr(stack, 'stop_seconds', None), stack.text()[-2000:])


@pytest.mark.skipif(not ROS2, reason=HOW)
def test_two_cameras_one_namespace_each_reach_a_two_camera_policy(ros_ws, ros_domain, probe, tmp_path):
    """camera_namespaces:=wrist,front: robosuite renders both cameras onto /wrist/camera/... and /front/camera/...,
    the policy pairs them by time and plans; camera lists that do not pair up stop the launch with the reason."""
    pytest.importorskip("robosuite")
    torch = pytest.importorskip("torch")
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig
    from dm1_ros.policy.export import export_bundle
    from dm1_ros.policy.model import GenerativePolicy

    torch.manual_seed(0)
    keys = ["robot0_eye_in_hand_image", "agentview_image"]
    policy = GenerativePolicy(PolicyConfig(image_keys=keys, vision=VisionConfig(channels=8, heads=2, pool_dim=8),
                                           head=HeadConfig(hidden=32)))
    policy.action_normalizer.fit(np.array([[-0.3] * 6 + [-1.0], [0.3] * 6 + [1.0]]))
    policy.proprio_normalizer.fit(np.random.default_rng(0).uniform(-1, 1, (32, 9)))
    export_bundle(policy.eval(), tmp_path / "two_cameras")

    wrist = probe.capture(Image, "/wrist/camera/color/image_raw")
    front = probe.capture(Image, "/front/camera/color/image_raw")
    diags = probe.capture(DiagnosticArray, "/diagnostics", qos=50)
    stack = Launched(ros_ws, ros_domain, "panda_policy.launch.py", "use_sim:=true", "camera_namespaces:=wrist,front",
                     f"camera_keys:={','.join(keys)}", f"model_path:={tmp_path / 'two_cameras'}",
                     log=tmp_path / "launch.log")
    try:
        planned = probe.wait(lambda: int(diagnostics_values(diags, "policy").get("plans", 0)) > 10, 120)
        assert planned, f"{diagnostics_values(diags, 'policy')}\n{stack.text()[-3000:]}"
        assert wrist and front and wrist[-1].height == front[-1].height == 96
        assert np.mean(np.frombuffer(wrist[-1].data, np.uint8)) != np.mean(np.frombuffer(front[-1].data, np.uint8))
    finally:
        assert stack.stop() in (0, -2), (getattr(stack, 'stop_seconds', None), stack.text()[-2000:])
    bad = Launched(ros_ws, ros_domain, "panda_policy.launch.py", "camera_namespaces:=wrist,front",
                   f"camera_keys:={','.join(keys)}", "serial_no:=_123456789012", log=tmp_path / "bad.log")
    assert bad.wait_for("serial_no lists 1 value(s)", 60), bad.text()[-2000:]
    bad.stop()


@pytest.fixture
def franky_server():
    from franky_sim_support import franky_sim_process

    with franky_sim_process() as handle:
        yield handle


@pytest.mark.skipif(not ROS2, reason=HOW)
def test_panda_policy_launch_on_franky_sim_with_a_recorded_camera(ros_ws, ros_domain, probe, franky_server, tmp_path):
    """The real-robot stack against franky-sim's libfranka server and a RealSense recording: nodes brought up by
    hand with `ros2 lifecycle set`, the arm moves under the policy, a camera that stops makes the bridge hold, the
    robot services work, and a reflex takes the bridge out of active until recover brings it back."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from lifecycle_msgs.srv import ChangeState, GetState
    from std_srvs.srv import Trigger

    from franky_sim_support import SIM_START_Q
    from realsense_support import SoftwareRealSense, record_db3

    recording = record_db3(SoftwareRealSense(), tmp_path / "session.db3", frames=30)
    config = yaml.safe_load((ROOT / "config" / "robot" / "franka.yaml").read_text())
    # impedance streaming: the lift policy, shown these synthetic frames, asks for large rotations that franky's
    # motion planner may refuse under load (ruckig -110/-111 when re-planned mid-motion; docs/results.md)
    config.update(home_q=SIM_START_Q, relative_dynamics_factor=0.2, state_timeout_s=2.0, streaming="impedance")
    (tmp_path / "franky_sim.yaml").write_text(yaml.safe_dump(config))
    diags = probe.capture(DiagnosticArray, "/diagnostics", qos=50)
    probe.prepare(Trigger, "/dm1/robot/stop", "/dm1/robot/recover", "/dm1/robot/reset")
    probe.prepare(GetState, "/camera/get_state", "/policy/get_state", "/franka_bridge/get_state")
    probe.prepare(ChangeState, "/camera/change_state", "/policy/change_state", "/franka_bridge/change_state")
    poses = probe.capture(PoseStamped, "/dm1/eef_pose", qos=10)
    stack = Launched(ros_ws, ros_domain, "panda_policy.launch.py", f"robot_ip:={franky_server.hostname}",
                     "realtime:=ignore", "camera:=replay", f"replay_path:={recording}", "control_rate:=50",
                     f"robot_config:={tmp_path / 'franky_sim.yaml'}", "autostart:=false", log=tmp_path / "launch.log")

    def lifecycle_cli(node, transition):
        """As a user types it (each call starts a ROS process: seconds on a loaded 2-core machine)."""
        done = ros2_cli(ros_ws, ros_domain, "lifecycle", "set", "--no-daemon", f"/{node}", transition, timeout=60)
        assert "Transitioning successful" in done.stdout, f"{node} {transition}: {done.stdout}{done.stderr}"

    def lifecycle(node, transition):
        """The same service the CLI calls (lifecycle_msgs/ChangeState), from the probe."""
        request = ChangeState.Request()
        request.transition.label = transition
        assert probe.call(ChangeState, f"/{node}/change_state", request, timeout=60).success, f"{node} {transition}"

    def state_of(node):
        try:
            return probe.call(GetState, f"/{node}/get_state", resend_after=5.0).current_state.label
        except AssertionError as exc:
            raise AssertionError(f"{exc}; diagnostics: {diagnostics_values(diags, node)}; "
                                 f"cli: {ros2_cli(ros_ws, ros_domain, 'lifecycle', 'get', '--no-daemon', '/' + node)}")

    def robot():
        return diagnostics_values(diags, "franka_bridge")

    try:
        assert probe.wait(lambda: all(diagnostics_values(diags, n) for n in ("camera", "policy", "franka_bridge")),
                          60), stack.text()[-3000:]
        assert state_of("franka_bridge") == "unconfigured"  # autostart:=false: nothing moves by itself
        for node in ("camera", "franka_bridge", "policy"):
            lifecycle_cli(node, "configure")
        for node in ("franka_bridge", "policy", "camera"):
            lifecycle_cli(node, "activate")
            assert state_of(node) == "active"
        keys = ("commands", "franka_targets", "fault", "plans", "last_error")

        def seen():
            return {k: v for n in ("franka_bridge", "policy") for k, v in diagnostics_values(diags, n).items()
                    if k in keys or k.startswith(("hold_", "skipped_", "safety_"))}

        # condition waits, generous: on a loaded 2-core machine the first plan can take many seconds
        assert probe.wait(lambda: int(robot().get("commands", 0)) > 5, 90), seen()  # the policy commands the arm
        assert probe.wait(lambda: len(poses) > 0, 60)
        start = poses[-1].pose.position

        def travelled():
            q = poses[-1].pose.position
            return float(np.linalg.norm([q.x - start.x, q.y - start.y, q.z - start.z]))

        assert probe.wait(lambda: travelled() > 0.005, 60), (travelled(), seen())  # ... and the arm moves
        held_before = int(robot().get("hold_stale_command", 0))
        lifecycle("camera", "deactivate")  # the camera stops
        assert probe.wait(lambda: int(robot().get("hold_stale_command", 0)) > held_before + 25, 60), str(
            (held_before, robot(), diagnostics_values(diags, "policy"), diagnostics_values(diags, "camera")))
        targets = robot()["franka_targets"]
        holding = int(robot()["hold_stale_command"])
        assert probe.wait(lambda: int(robot()["hold_stale_command"]) > holding + 25, 60)
        assert robot()["franka_targets"] == targets  # held: no new target streamed to the arm

        assert probe.call(Trigger, "/dm1/robot/stop").success
        assert probe.wait(lambda: robot().get("stopped") == "True", 30)
        assert probe.call(Trigger, "/dm1/robot/recover").success
        response = probe.call(Trigger, "/dm1/robot/reset", timeout=60)
        assert response.success, response.message
        lifecycle("camera", "activate")
        commands = int(robot()["commands"])
        assert probe.wait(lambda: int(robot()["commands"]) > commands + 10, 60)  # planning again

        franky_server.trigger_reflex()
        assert probe.wait(lambda: state_of("franka_bridge") == "inactive", 90)
        assert probe.wait(lambda: "cartesian_reflex" in robot().get("_message", ""), 30), robot()
        from dm1_ros.ros.conversions import LEVELS

        assert robot()["_level"] == LEVELS["ERROR"]  # with the reason on /diagnostics
        response = probe.call(Trigger, "/dm1/robot/recover", timeout=90)
        assert response.success, response.message
        assert state_of("franka_bridge") == "active"  # back without restarting anything
        commands = int(robot()["commands"])
        assert probe.wait(lambda: int(robot()["commands"]) > commands + 10, 60)

        for node in ("franka_bridge", "policy", "camera"):  # the arm first: it holds while the others go down
            lifecycle(node, "deactivate")
            lifecycle(node, "cleanup")
            assert state_of(node) == "unconfigured"
    finally:
        assert stack.stop() in (0, -2), (getattr(stack, 'stop_seconds', None), stack.text()[-2000:])


@pytest.mark.skipif(not ROS2, reason=HOW)
def test_teleop_record_launch_as_the_docs_show_it(ros_ws, ros_domain, probe, tmp_path):
    """`ros2 launch dm1_ros teleop_record.launch.py use_sim:=true output:=... bag_path:=...`, keys on the topic:
    start, drive, stop, discard; the dataset is assembled at shutdown, `dm1 train`'s reader takes it as it is and
    the MCAP bag opens with rosbags."""
    pytest.importorskip("robosuite")
    from diagnostic_msgs.msg import DiagnosticArray
    from rosbags.rosbag2 import Reader
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from dm1_ros.train.dataset import RobomimicDataset

    out, bag = tmp_path / "teleop_lift.hdf5", tmp_path / "bag"
    stack = Launched(ros_ws, ros_domain, "teleop_record.launch.py", "use_sim:=true", f"output:={out}",
                     f"bag_path:={bag}", log=tmp_path / "launch.log", cwd=tmp_path)
    from sensor_msgs.msg import Image

    images = probe.capture(Image, "/camera/camera/color/image_raw")
    diags = probe.capture(DiagnosticArray, "/diagnostics", qos=50)
    probe.prepare(Trigger, "/dm1/teleop/start", "/dm1/teleop/stop", "/dm1/teleop/discard", "/dm1/robot/reset")
    try:
        assert stack.wait_for("keys: only from /dm1/teleop/keys", 60), stack.text()[-3000:]
        assert probe.wait(lambda: images, 60), stack.text()[-3000:]  # robosuite is up
        assert probe.call(Trigger, "/dm1/teleop/start").message == "recording teleop_00000"
        probe.publish(String(data="space"), "/dm1/teleop/keys")  # close the gripper
        taps, deadline = 0, time.monotonic() + 60
        # go down until 25 steps are recorded (a loaded machine simulates slower than real time)
        while (taps < 20 or int(diagnostics_values(diags, "teleop").get("episode_steps", 0)) < 25) \
                and time.monotonic() < deadline:
            probe.publish(String(data="f"), "/dm1/teleop/keys")
            taps += 1
            time.sleep(0.1)
        probe.publish(String(data="space"), "/dm1/teleop/keys")  # open it
        time.sleep(0.1)
        response = probe.call(Trigger, "/dm1/teleop/stop")
        assert response.success and "steps" in response.message, response.message
        steps = int(re.search(r"(\d+) steps", response.message).group(1))
        assert steps > 20
        assert probe.call(Trigger, "/dm1/robot/reset").success
        assert probe.call(Trigger, "/dm1/teleop/start").message == "recording teleop_00001"
        time.sleep(0.5)
        assert probe.call(Trigger, "/dm1/teleop/discard").success
    finally:
        assert stack.stop() in (0, -2), (getattr(stack, 'stop_seconds', None), stack.text()[-2000:])
    ds = RobomimicDataset(out, image_keys=["robot0_eye_in_hand_image"], chunk=4, split=None)
    assert ds.demos == ["demo_0"] and len(ds) == steps
    assert ds.images["robot0_eye_in_hand_image"].shape[1:] == (96, 96, 3)
    z_actions = ds.actions[:, 2]
    assert (z_actions < 0).sum() > 10  # the "f" taps went down as dz < 0
    with Reader(bag) as reader:
        topics = {c.topic for c in reader.connections}
        assert reader.message_count > 50
    assert {"/camera/camera/color/image_raw", "/dm1/action_trajectory", "/dm1/eef_pose", "/dm1/teleop/episode"} <= topics
    from dm1_ros.ros.bag_import import import_bag

    summary = import_bag(bag, tmp_path / "from_bag.hdf5")  # the MCAP alone: the same one episode, the discard dropped
    assert summary["episodes"] == 1 and summary["discarded"] == 1
    assert len(RobomimicDataset(tmp_path / "from_bag.hdf5", ["robot0_eye_in_hand_image"], chunk=4, split=None)) == steps


@pytest.mark.skipif(not ROS2, reason=HOW)
def test_launch_testing_runs_the_sim_stack(ros_ws, ros_domain, tmp_path):
    """launch_testing's own runner on test/launch/sim_policy_stack.py: the stack comes up, messages flow, every
    process exits with 0 at shutdown."""
    import subprocess

    pytest.importorskip("robosuite")
    env = {**ros_ws["env"], "ROS_DOMAIN_ID": str(ros_domain)}
    done = subprocess.run(["launch_test", str(ROOT / "test" / "launch" / "sim_policy_stack.py"),
                           "--junit-xml", str(tmp_path / "junit.xml")], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    report = (tmp_path / "junit.xml").read_text() if (tmp_path / "junit.xml").is_file() else ""
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert 'failures="0"' in report and 'errors="0"' in report and "test_every_process_ends_cleanly" in report
