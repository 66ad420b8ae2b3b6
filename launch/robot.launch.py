"""The robot side of every dm1_ros stack: the camera and the Franka bridge, or robosuite in their place.

    ros2 launch dm1_ros robot.launch.py robot_ip:=172.16.0.2 serial_no:=_123456789012
    ros2 launch dm1_ros robot.launch.py use_sim:=true task:=can
    ros2 launch dm1_ros robot.launch.py camera_namespaces:=wrist,front serial_no:=_123456789012,_234567890123 \
        camera_keys:=robot0_eye_in_hand_image,agentview_image

panda_policy.launch.py and teleop_record.launch.py include this file and add the policy or the teleop node; it
is the one place the camera_node, franka_bridge_node and sim_bridge_node are declared. Node parameters come from
config/ros/*.yaml; the arguments below override them. serial_no follows realsense-ros: a leading underscore keeps a
digits-only serial a string (`serial_no:=_123456789012`); a plain `serial_no:=123456789012` works in these launch
files too. Several cameras: one camera_node per namespace in camera_namespaces (node <namespace>_camera, topics
/<namespace>/camera/...), serial_no and replay_path one per camera; in simulation the bridge renders the robosuite
camera of each camera_keys entry onto the same topics.
"""
from launch import LaunchDescription
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from dm1_ros.ros.launch_arguments import camera_rig, declare

def generate_launch_description():
    return LaunchDescription([*declare(), OpaqueFunction(function=robot_side)])


def robot_side(context):
    share = FindPackageShare("dm1_ros")
    arg = LaunchConfiguration

    def params_file(name):
        return PathJoinSubstitution([share, "config", "ros", name])

    def value(name, kind):
        return ParameterValue(arg(name), value_type=kind)

    rig = camera_rig(context)
    common = {"autostart": value("autostart", bool)}
    if arg("use_sim").perform(context) == "true":
        cameras = [c.key[: -len("_image")] if c.key.endswith("_image") else c.key for c in rig]
        return [Node(package="dm1_ros", executable="sim_bridge_node", name="sim_bridge", output="screen",
                     parameters=[params_file("sim_bridge.yaml"),
                                 {**common, "task": value("task", str), "control_rate": value("control_rate", float),
                                  "seed": value("seed", int), "auto_reset": value("auto_reset", bool),
                                  "cameras": cameras, "image_topics": [c.image_topic for c in rig]}])]
    cameras = [Node(package="dm1_ros", executable="camera_node", name=c.node_name, output="screen",
                    parameters=[params_file("camera.yaml"),
                                {**common, "camera": value("camera", str), "serial_no": c.serial_no,
                                 "color_profile": value("color_profile", str), "replay_path": c.replay_path,
                                 "camera_namespace": c.namespace}])
               for c in rig]
    franka = Node(package="dm1_ros", executable="franka_bridge_node", name="franka_bridge", output="screen",
                  parameters=[params_file("franka_bridge.yaml"),
                              {**common, "robot_ip": value("robot_ip", str), "robot_config": value("robot_config", str),
                               "realtime": value("realtime", str), "control_rate": value("control_rate", float),
                               "policy_rate": value("policy_rate", float)}])
    return [*cameras, franka]
