"""The policy controls the Franka (or, with use_sim:=true, robosuite behind the same topics).

    ros2 launch dm1_ros panda_policy.launch.py robot_ip:=172.16.0.2 serial_no:=_123456789012
    ros2 launch dm1_ros panda_policy.launch.py use_sim:=true model_path:=/path/to/bundle

robot.launch.py (camera_node + franka_bridge_node, or sim_bridge_node) + policy_node. Node parameters come from
config/ros/*.yaml; the arguments below override them. `ros2 launch dm1_ros panda_policy.launch.py --show-args`
lists them all. With several cameras (camera_namespaces:=wrist,front, in the model's camera order) the policy
subscribes to each camera's image topic and pairs their images by time (max_camera_skew_s).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from dm1_ros.paths import SHIPPED_MODEL
from dm1_ros.ros.launch_arguments import ROBOT_ARGUMENTS, camera_rig, declare


def generate_launch_description():
    share = FindPackageShare("dm1_ros")
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("model_path", default_value=PathJoinSubstitution([share, "models", SHIPPED_MODEL]),
                              description="model bundle directory (model.onnx + manifest.yaml); default: the shipped "
                              "lift model"),
        DeclareLaunchArgument("blending", default_value="model", choices=["model", "latest", "ensemble", "chunk"],
                              description="model (the bundle's manifest execution) | latest | ensemble | chunk"),
        *declare(),
    ]
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "robot.launch.py"])),
        launch_arguments={name: arg(name) for name in ROBOT_ARGUMENTS}.items())
    return LaunchDescription([*args, include, OpaqueFunction(function=policy_node)])


def policy_node(context):
    share = FindPackageShare("dm1_ros")
    arg = LaunchConfiguration
    return [Node(package="dm1_ros", executable="policy_node", name="policy", output="screen",
                 parameters=[PathJoinSubstitution([share, "config", "ros", "policy.yaml"]),
                             {"model_path": ParameterValue(arg("model_path"), value_type=str),
                              "blending": ParameterValue(arg("blending"), value_type=str),
                              "autostart": ParameterValue(arg("autostart"), value_type=bool),
                              "image_topics": [c.image_topic for c in camera_rig(context)]}])]
