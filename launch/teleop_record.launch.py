"""Record demonstrations by teleoperation (keyboard or SpaceMouse) for `dm1 train`.

    ros2 launch dm1_ros teleop_record.launch.py use_sim:=true output:=data/teleop_lift.hdf5
    ros2 launch dm1_ros teleop_record.launch.py robot_ip:=172.16.0.2 device:=spacemouse bag_path:=data/bag1

Then: ros2 service call /dm1/teleop/start std_srvs/srv/Trigger (or press enter), move, /dm1/teleop/stop (enter),
/dm1/teleop/discard (backspace) to drop a bad one, /dm1/robot/reset between episodes. Episodes are written in the
background; the dataset file is assembled when the teleop node shuts down (Ctrl-C).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("dm1_ros")

    def params_file(name):
        return PathJoinSubstitution([share, "config", "ros", name])

    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("use_sim", default_value="false", description="true: robosuite instead of the robot"),
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.2", description="Franka control (FCI) address"),
        DeclareLaunchArgument("serial_no", default_value="", description="RealSense serial number"),
        DeclareLaunchArgument("control_rate", default_value="20.0", description="robot bridge control rate, Hz"),
        DeclareLaunchArgument("robot_config", default_value=PathJoinSubstitution([share, "config", "robot",
                                                                                   "franka.yaml"]),
                              description="FrankaConfig YAML"),
        DeclareLaunchArgument("task", default_value="lift", description="simulated task (use_sim:=true)"),
        DeclareLaunchArgument("device", default_value="keyboard", description="keyboard | spacemouse",
                              choices=["keyboard", "spacemouse"]),
        DeclareLaunchArgument("output", default_value="data/teleop.hdf5", description="robomimic HDF5 to write"),
        DeclareLaunchArgument("bag_path", default_value="", description="also record raw topics here (MCAP)"),
    ]
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
                           {"task": ParameterValue(arg("task"), value_type=str), "control_rate": rate,
                            "auto_reset": False}],
               condition=IfCondition(use_sim))
    teleop = Node(package="dm1_ros", executable="teleop_node", name="teleop", output="screen", emulate_tty=True,
                  parameters=[params_file("teleop.yaml"),
                              {"device": ParameterValue(arg("device"), value_type=str),
                               "output": ParameterValue(arg("output"), value_type=str),
                               "bag_path": ParameterValue(arg("bag_path"), value_type=str)}])
    return LaunchDescription([*args, camera, franka, sim, teleop])
