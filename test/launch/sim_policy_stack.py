"""launch_testing: sim_policy.launch.py brings up sim_bridge_node + policy_node, images and commands flow, and
every process ends cleanly at shutdown.

    launch_test test/launch/sim_policy_stack.py      # with the package built (colcon) and sourced

test_ros_launch.py runs it this way against its colcon workspace (the name keeps pytest, which would run it in its
own process without the workspace, from collecting it).
"""
import time
import unittest

import launch
import launch_testing.actions
import launch_testing.asserts
import pytest
import rclpy
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare
from sensor_msgs.msg import Image
from trajectory_msgs.msg import MultiDOFJointTrajectory

from dm1_ros.ros.node_base import LATEST_QOS
from dm1_ros.ros.topics import ACTION_TRAJECTORY, CAMERA_IMAGE


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
            proc_output.assertWaitFor("planning on every image", timeout=5, stream="stderr")
            node.destroy_node()
        finally:
            rclpy.shutdown()


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_ends_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0])
