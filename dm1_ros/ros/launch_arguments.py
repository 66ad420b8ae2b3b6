"""The launch arguments of the robot side (robot.launch.py), shared by the launch files that include it: declared
once here, so panda_policy.launch.py and teleop_record.launch.py show and pass the same ones."""
from launch.actions import DeclareLaunchArgument
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

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
    "serial_no": ("", "RealSense serial ('' = the only one connected); _123456789012 keeps digits a string", None),
    "color_profile": ("640x480x30", "RealSense WIDTHxHEIGHTxFPS", None),
    "replay_path": ("", "camera:=replay: a librealsense recording (.db3 / .bag)", None),
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
