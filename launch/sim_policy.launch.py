"""The policy controls the simulated Panda in robosuite: panda_policy.launch.py with use_sim:=true.

    ros2 launch dm1_ros sim_policy.launch.py model_path:=/path/to/bundle task:=lift

The stack is the one the real robot runs (policy_node, same topics and services); sim_bridge_node replaces the
camera and the Franka bridge.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("dm1_ros")
    args = [
        DeclareLaunchArgument("model_path", default_value=PathJoinSubstitution([share, "models", "lift_image"]),
                              description="model bundle directory (model.onnx + manifest.yaml)"),
        DeclareLaunchArgument("task", default_value="lift", description="lift | can | square",
                              choices=["lift", "can", "square"]),
        DeclareLaunchArgument("control_rate", default_value="20.0", description="simulation control rate, Hz"),
        DeclareLaunchArgument("blending", default_value="model",
                              description="model (the bundle's manifest execution) | latest | ensemble | chunk",
                              choices=["model", "latest", "ensemble", "chunk"]),
    ]
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "panda_policy.launch.py"])),
        launch_arguments={"use_sim": "true", "model_path": LaunchConfiguration("model_path"),
                          "task": LaunchConfiguration("task"), "control_rate": LaunchConfiguration("control_rate"),
                          "blending": LaunchConfiguration("blending")}.items())
    return LaunchDescription([*args, include])
