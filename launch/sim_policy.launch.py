"""The policy controls the simulated Panda in robosuite: panda_policy.launch.py with use_sim:=true.

    ros2 launch dm1_ros sim_policy.launch.py model_path:=/path/to/bundle task:=lift

The stack is the one the real robot runs (policy_node, same topics and services); sim_bridge_node replaces the
camera and the Franka bridge, stepping robosuite in lockstep with the policy's commands.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from dm1_ros.paths import SHIPPED_MODEL

ARGUMENTS = {
    "task": ("lift", "lift | can | square", ["lift", "can", "square"]),
    "control_rate": ("20.0", "simulation control rate, Hz", None),
    "blending": ("model", "model (the bundle's manifest execution) | latest | ensemble | chunk",
                 ["model", "latest", "ensemble", "chunk"]),
    "seed": ("400000", "seed of the first episode (each reset takes the next)", None),
    "autostart": ("true", "configure and activate the nodes at start (false: `ros2 lifecycle set`)", ["true", "false"]),
}


def generate_launch_description():
    share = FindPackageShare("dm1_ros")
    args = [DeclareLaunchArgument("model_path", default_value=PathJoinSubstitution([share, "models", SHIPPED_MODEL]),
                                  description="model bundle directory (model.onnx + manifest.yaml)")]
    args += [DeclareLaunchArgument(name, default_value=default, description=text, **({"choices": c} if c else {}))
             for name, (default, text, c) in ARGUMENTS.items()]
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "panda_policy.launch.py"])),
        launch_arguments={"use_sim": "true", "model_path": LaunchConfiguration("model_path"),
                          **{name: LaunchConfiguration(name) for name in ARGUMENTS}}.items())
    return LaunchDescription([*args, include])
