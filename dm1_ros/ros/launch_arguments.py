"""The launch arguments of the robot side (robot.launch.py), shared by the launch files that include it: declared
once here, so panda_policy.launch.py and teleop_record.launch.py show and pass the same ones."""
from dataclasses import dataclass

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from dm1_ros.ros.topics import camera_topics

# name: (default, description, choices); None defaults are filled in from the package share below
ROBOT_ARGUMENTS = {
    "use_sim": ("false", "true: robosuite (sim_bridge_node) instead of the camera and the Franka", ["true", "false"]),
    "autostart": ("true", "configure and activate the nodes at start (false: drive them with `ros2 lifecycle set`)",
                  ["true", "false"]),
    "control_rate": ("20.0", "robot bridge ticks per second (the Franka may command faster than the policy)", None),
    "policy_rate": ("20.0", "Franka: control rate of the model whose actions arrive, Hz", None),
    "robot_ip": ("172.16.0.2", "Franka control (FCI) address", None),
    "robot_config": (None, "FrankaConfig YAML (default: config/robot/franka.yaml of this package)", None),
    "realtime": ("", "Franka: enforce | ignore ('' = the robot config's; ignore only without an RT kernel)", None),
    "camera": ("realsense", "camera kind: realsense | opencv | replay", ["realsense", "opencv", "replay"]),
    "camera_namespaces": ("camera", "one namespace per camera, comma-separated, in the model's camera order: "
                          "topics /<namespace>/camera/color/image_raw as realsense-ros names them", None),
    "camera_keys": ("robot0_eye_in_hand_image", "the model's / dataset's name of each camera, comma-separated, one "
                    "per namespace (in simulation the robosuite camera is the name without _image)", None),
    "serial_no": ("", "RealSense serial ('' = the only one connected), comma-separated with several cameras; "
                  "_123456789012 keeps digits a string", None),
    "color_profile": ("640x480x30", "RealSense WIDTHxHEIGHTxFPS", None),
    "replay_path": ("", "camera:=replay: a librealsense recording (.db3 / .bag), comma-separated with several "
                    "cameras", None),
    "task": ("lift", "simulated task when use_sim is true: lift | can | square", ["lift", "can", "square"]),
    "seed": ("400000", "simulation: seed of the first episode (reset uses seed + episode index)", None),
    "auto_reset": ("true", "simulation: start the next episode when one is done", ["true", "false"]),
}


def declare(names=None):
    """DeclareLaunchArgument actions for `names` (default: all)."""
    names = None if names is None else set(names)
    share = FindPackageShare("dm1_ros")
    defaults = {"robot_config": PathJoinSubstitution([share, "config", "robot", "franka.yaml"])}
    out = []
    for name, (default, text, choices) in ROBOT_ARGUMENTS.items():
        if names is None or name in names:
            extra = {"choices": choices} if choices else {}
            out.append(DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=text, **extra))
    return out


@dataclass
class RigCamera:
    namespace: str
    key: str  # the model's / dataset's name of the camera, e.g. robot0_eye_in_hand_image
    serial_no: str
    replay_path: str

    @property
    def node_name(self) -> str:
        """camera (the default namespace) or <namespace>_camera: lifecycle and diagnostics names stay distinct."""
        return "camera" if self.namespace == "camera" else f"{self.namespace}_camera"

    @property
    def image_topic(self) -> str:
        return camera_topics(self.namespace)["image"]


def _split(text: str) -> list[str]:
    return [part.strip() for part in str(text).split(",")] if str(text).strip() else []


def camera_rig(context) -> list[RigCamera]:
    """The cameras of camera_namespaces / camera_keys / serial_no / replay_path (resolved in an OpaqueFunction),
    one per namespace; a list that does not pair up one to one is an error naming both."""
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    namespaces, keys = _split(value("camera_namespaces")), _split(value("camera_keys"))
    if not namespaces:
        raise ValueError("camera_namespaces is empty: name one namespace per camera")
    if len(set(namespaces)) != len(namespaces):
        raise ValueError(f"camera_namespaces {namespaces} repeats a namespace")
    columns = {"camera_keys": keys, "serial_no": _split(value("serial_no")), "replay_path": _split(value("replay_path"))}
    for name, column in columns.items():
        if name != "camera_keys" and not column:
            columns[name] = [""] * len(namespaces)
        elif len(columns[name]) != len(namespaces):
            raise ValueError(f"{name} lists {len(column)} value(s) ({column}) for {len(namespaces)} camera "
                             f"namespace(s) {namespaces}: give one per camera")
    return [RigCamera(ns, key, serial, replay) for ns, key, serial, replay
            in zip(namespaces, columns["camera_keys"], columns["serial_no"], columns["replay_path"])]
