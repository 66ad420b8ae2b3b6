"""Packaging for ROS 2: package.xml declares what the nodes import, launch files declare the documented arguments
and start the right nodes with parameter files the nodes accept, console_scripts exist, docs cover parameters."""
import ast
import importlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ros_standin import STANDIN, params, ros  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
ROS_DIR = ROOT / "dm1_ros" / "ros"
LAUNCH = ROOT / "launch"
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


def package_xml():
    try:
        from catkin_pkg.package import parse_package

        pkg = parse_package(str(ROOT / "package.xml"))
        assert pkg.package_format == 3
        return pkg.name, {d.name for d in pkg.exec_depends + pkg.build_export_depends + pkg.run_depends}
    except ImportError:
        root = ET.parse(ROOT / "package.xml").getroot()
        assert root.tag == "package" and root.get("format") == "3"
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
    for stem in ("topics", "arrays", "conversions", "assembler", "policy_runner", "executor", "recorder", "bag"):
        assert "rclpy" not in imported_top_levels([ROS_DIR / f"{stem}.py"]), stem
    for path in [*(ROOT / "dm1_ros").rglob("*.py")]:
        if ROS_DIR not in path.parents:
            assert "rclpy" not in imported_top_levels([path]), f"{path} imports rclpy outside dm1_ros/ros"


def test_console_scripts_resolve_to_main():
    from dm1_ros.ros import CONSOLE_SCRIPTS

    assert set(CONSOLE_SCRIPTS) == set(NODE_CLASSES)
    for name, target in CONSOLE_SCRIPTS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_setup_py_installs_the_node_console_scripts():
    from dm1_ros.ros import CONSOLE_SCRIPTS

    text = (ROOT / "setup.py").read_text()
    missing = [n for n in CONSOLE_SCRIPTS if f"{n} = {CONSOLE_SCRIPTS[n]}" not in text]
    assert not missing, f"setup.py entry_points do not list {missing}"


# --- launch files ------------------------------------------------------------------------------------------------
def load_launch(name):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


@pytest.mark.parametrize("name, required", [
    ("panda_policy.launch.py", {"robot_ip", "model_path", "serial_no", "control_rate", "use_sim"}),
    ("sim_policy.launch.py", {"model_path", "task", "control_rate"}),
    ("teleop_record.launch.py", {"use_sim", "robot_ip", "serial_no", "control_rate", "device", "output", "bag_path"}),
])
def test_launch_files_load_and_declare_their_arguments(name, required):
    ld = load_launch(name)
    declared = {a.name for a in ld.get_launch_arguments()}
    assert required <= declared, required - declared
    assert all(a.description and a.description != "no description given" for a in ld.get_launch_arguments())


def evaluate(name, **arguments):
    import launch

    if not getattr(launch, "STANDIN", False):
        pytest.skip("evaluating launch files without launching needs the stand-in's evaluator")
    return launch._standin_evaluate(load_launch(name), arguments)[1]


def test_panda_policy_starts_camera_franka_and_policy_or_the_simulator():
    real = {n.executable: n for n in evaluate("panda_policy.launch.py", robot_ip="10.0.0.2", serial_no="0123",
                                              control_rate="50")}
    assert set(real) == {"camera_node", "franka_bridge_node", "policy_node"}
    assert real["franka_bridge_node"].parameters["robot_ip"] == "10.0.0.2"
    assert real["franka_bridge_node"].parameters["control_rate"] == 50.0  # a float, as the node declares it
    assert real["franka_bridge_node"].parameters["robot_config"].endswith("config/robot/franka.yaml")
    assert real["camera_node"].parameters["serial_no"] == "0123"  # a string, leading zero kept
    assert real["policy_node"].parameters["model_path"].endswith("models/lift_image")
    sim = {n.executable: n for n in evaluate("sim_policy.launch.py", task="can")}
    assert set(sim) == {"sim_bridge_node", "policy_node"} and sim["sim_bridge_node"].parameters["task"] == "can"
    teleop = {n.executable: n for n in evaluate("teleop_record.launch.py", use_sim="true", device="spacemouse")}
    assert set(teleop) == {"sim_bridge_node", "teleop_node"}
    assert teleop["sim_bridge_node"].parameters["auto_reset"] is False
    assert teleop["teleop_node"].parameters["device"] == "spacemouse"


def test_every_launched_parameter_is_one_the_node_declares(ros):
    """ROS ignores an undeclared parameter silently; a typo in a YAML file would go unnoticed, so check here."""
    from rclpy.parameter import Parameter

    for launch_file, args in [("panda_policy.launch.py", {}), ("sim_policy.launch.py", {}),
                              ("teleop_record.launch.py", {"use_sim": "true"}), ("teleop_record.launch.py", {})]:
        for node in evaluate(launch_file, **args):
            module, cls, name = NODE_CLASSES[node.executable]
            assert node.name == name
            for path in node.parameter_files:
                assert list(yaml.safe_load(Path(path).read_text())) == [name], path
            node_class = getattr(importlib.import_module(module), cls)
            declared = {p.name for p in (*node_class.COMMON, *node_class.PARAMETERS)}
            unknown = set(node.parameters) - declared
            assert not unknown, f"{launch_file} -> {node.executable}: undeclared {sorted(unknown)}"
            instance = node_class(parameter_overrides=[Parameter(k, value=v) for k, v in node.parameters.items()])
            for k, v in node.parameters.items():  # every value passes the node's own validation
                assert instance.get_parameter(k).value == v
            instance.destroy_node()


def test_docs_list_every_parameter_topic_and_service():
    from dm1_ros.ros import topics

    text = (ROOT / "docs" / "ros.md").read_text()
    for module, cls, _ in NODE_CLASSES.values():
        for p in getattr(importlib.import_module(module), cls).PARAMETERS:
            assert re.search(rf"`{p.name}`", text), f"docs/ros.md does not document {cls}.{p.name}"
    for name, value in vars(topics).items():
        if name.isupper() and isinstance(value, str) and value.startswith("/"):
            assert value in text, f"docs/ros.md does not mention {value}"
