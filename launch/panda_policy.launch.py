"""The policy controls the Franka (or, with use_sim:=true, robosuite behind the same topics).

    ros2 launch dm1_ros panda_policy.launch.py robot_ip:=172.16.0.2 serial_no:="'123456789012'"
    ros2 launch dm1_ros panda_policy.launch.py use_sim:=true model_path:=/path/to/bundle

Real robot: camera_node (RealSense) + franka_bridge_node + policy_node. Simulation: sim_bridge_node + policy_node.
Node parameters come from config/ros/*.yaml; the arguments below override them.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = {
    "robot_ip": ("172.16.0.2", "Franka control (FCI) address"),
    "model_path": (None, "model bundle directory (model.onnx + manifest.yaml); default: the shipped lift model"),
    "serial_no": ("", "RealSense serial number ('' = the only one connected); quote digits: \"'0123'\""),
    "control_rate": ("20.0", "robot bridge control rate, Hz"),
    "use_sim": ("false", "true: robosuite (sim_bridge_node) instead of the camera and the Franka"),
    "task": ("lift", "simulated task when use_sim is true: lift | can | square"),
    "blending": ("model", "model (the bundle's manifest execution) | latest | ensemble | chunk"),
    "robot_config": (None, "FrankaConfig YAML (default: config/robot/franka.yaml of this package)"),
}


def generate_launch_description():
    share = FindPackageShare("dm1_ros")

    def params_file(name):
        return PathJoinSubstitution([share, "config", "ros", name])

    defaults = {"model_path": PathJoinSubstitution([share, "models", "lift_image"]),
                "robot_config": PathJoinSubstitution([share, "config", "robot", "franka.yaml"])}
    args = [DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=text,
                                  **({"choices": ["model", "latest", "ensemble", "chunk"]} if name == "blending" else {}))
            for name, (default, text) in ARGUMENTS.items()]
    arg = LaunchConfiguration
    use_sim = arg("use_sim")
    rate = ParameterValue(arg("control_rate"), value_type=float)

    camera = Node(package="dm1_ros", executable="camera_node", name="camera", output="screen",
                  parameters=[params_file("camera.yaml"), {"serial_no": ParameterValue(arg("serial_no"), value_type=str)}],
                  condition=UnlessCondition(use_sim))
    franka = Node(package="dm1_ros", executable="franka_bridge_node", name="franka_bridge", output="screen",
                  parameters=[params_file("franka_bridge.yaml"),
                              {"robot_ip": ParameterValue(arg("robot_ip"), value_type=str),
                               "robot_config": ParameterValue(arg("robot_config"), value_type=str),
                               "control_rate": rate}],
                  condition=UnlessCondition(use_sim))
    sim = Node(package="dm1_ros", executable="sim_bridge_node", name="sim_bridge", output="screen",
               parameters=[params_file("sim_bridge.yaml"),
                           {"task": ParameterValue(arg("task"), value_type=str), "control_rate": rate}],
               condition=IfCondition(use_sim))
    policy = Node(package="dm1_ros", executable="policy_node", name="policy", output="screen",
                  parameters=[params_file("policy.yaml"),
                              {"model_path": ParameterValue(arg("model_path"), value_type=str),
                               "blending": ParameterValue(arg("blending"), value_type=str)}])
    return LaunchDescription([*args, camera, franka, sim, policy])
