"""Record demonstrations by teleoperation (keyboard or SpaceMouse) for `dm1 train`.

    ros2 launch dm1_ros teleop_record.launch.py use_sim:=true output:=$PWD/data/teleop_lift.hdf5
    ros2 launch dm1_ros teleop_record.launch.py robot_ip:=172.16.0.2 device:=spacemouse bag_path:=$PWD/data/bag1

robot.launch.py (with auto_reset false in simulation) + teleop_node. Under `ros2 launch` a node has no terminal:
the keyboard is read from the desktop (pynput) when there is one, else key taps come on /dm1/teleop/keys
(`ros2 topic pub --once /dm1/teleop/keys std_msgs/msg/String "{data: w}"`). Then:
/dm1/teleop/start (or enter), drive, /dm1/teleop/stop (enter), /dm1/teleop/discard (backspace) to drop a bad one,
/dm1/robot/reset between episodes. Episodes are written in the background; the dataset file is assembled when the
teleop node shuts down (Ctrl-C) or is cleaned up.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from dm1_ros.ros.launch_arguments import ROBOT_ARGUMENTS, camera_rig, declare


def generate_launch_description():
    share = FindPackageShare("dm1_ros")
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("device", default_value="keyboard", choices=["keyboard", "spacemouse"],
                              description="keyboard | spacemouse"),
        DeclareLaunchArgument("keyboard_backend", default_value="auto", choices=["auto", "pynput", "terminal", "topic"],
                              description="auto: the desktop keyboard if there is one, else taps on /dm1/teleop/keys"),
        DeclareLaunchArgument("output", default_value="data/teleop.hdf5",
                              description="robomimic HDF5 to write (relative to the directory ros2 launch runs in)"),
        DeclareLaunchArgument("bag_path", default_value="", description="also record the raw topics here (MCAP)"),
        *declare(name for name in ROBOT_ARGUMENTS if name != "auto_reset"),
    ]
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "robot.launch.py"])),
        launch_arguments={**{name: arg(name) for name in ROBOT_ARGUMENTS if name != "auto_reset"},
                          "auto_reset": "false"}.items())
    return LaunchDescription([*args, include, OpaqueFunction(function=teleop_node)])


def teleop_node(context):
    share = FindPackageShare("dm1_ros")
    arg = LaunchConfiguration
    rig = camera_rig(context)
    return [Node(package="dm1_ros", executable="teleop_node", name="teleop", output="screen", emulate_tty=True,
                 parameters=[PathJoinSubstitution([share, "config", "ros", "teleop.yaml"]),
                             {"device": ParameterValue(arg("device"), value_type=str),
                              "keyboard_backend": ParameterValue(arg("keyboard_backend"), value_type=str),
                              "output": ParameterValue(arg("output"), value_type=str),
                              "bag_path": ParameterValue(arg("bag_path"), value_type=str),
                              "autostart": ParameterValue(arg("autostart"), value_type=bool),
                              "image_topics": [c.image_topic for c in rig], "camera_names": [c.key for c in rig]}])]
