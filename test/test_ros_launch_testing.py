"""launch_testing: sim_policy.launch.py brings up sim_bridge_node + policy_node and commands flow.

Runs on a ROS 2 machine with this package built (colcon) and the pip extras installed (`colcon test`, or
`launch_test test/test_ros_launch_testing.py`); skipped elsewhere: launch_testing and rclpy come with ROS 2 and
cannot be installed from PyPI.
"""
import time
import unittest

import pytest

launch_testing = pytest.importorskip(
    "launch_testing", reason="launch_testing needs a ROS 2 installation (rclpy is not installable here); "
    "on ROS 2: colcon build --packages-select dm1_ros && colcon test --packages-select dm1_ros")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch.substitutions import PathJoinSubstitution  # noqa: E402
from launch_ros.substitutions import FindPackageShare  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from trajectory_msgs.msg import MultiDOFJointTrajectory  # noqa: E402

from dm1_ros.ros.node_base import LATEST_QOS  # noqa: E402
from dm1_ros.ros.topics import ACTION_TRAJECTORY, CAMERA_IMAGE  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    sim = IncludeLaunchDescription(PythonLaunchDescriptionSource(
        PathJoinSubstitution([FindPackageShare("dm1_ros"), "launch", "sim_policy.launch.py"])))
    return launch.LaunchDescription([sim, launch_testing.actions.ReadyToTest()])


class TestSimPolicyStack(unittest.TestCase):
    def test_camera_images_and_policy_commands_flow(self, proc_output):
        rclpy.init()
        try:
            node = rclpy.create_node("dm1_launch_probe")
            images, commands = [], []
            node.create_subscription(Image, CAMERA_IMAGE, images.append, LATEST_QOS)
            node.create_subscription(MultiDOFJointTrajectory, ACTION_TRAJECTORY, commands.append, 10)
            deadline = time.monotonic() + 120.0  # robosuite start-up and model warm-up
            while time.monotonic() < deadline and len(commands) < 10:
                rclpy.spin_once(node, timeout_sec=0.5)
            self.assertGreater(len(images), 0, "sim_bridge_node published no image")
            self.assertGreaterEqual(len(commands), 10, "policy_node published fewer than 10 commands")
            self.assertEqual(list(commands[-1].joint_names), ["eef", "gripper"])
            node.destroy_node()
        finally:
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
