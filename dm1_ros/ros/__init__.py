"""dm1_ros.ros: ROS 2 nodes (thin shells over runtime/, hardware/ and sim/) and their ROS-free helpers.

Only the *_node.py modules and node_base.py import rclpy; conversions.py imports message packages only;
topics, arrays, assembler, policy_runner, executor, recorder and bag import neither. See docs/ros.md.
"""

# console_scripts name -> target (setup.py entry_points); `ros2 run dm1_ros <name>`.
CONSOLE_SCRIPTS = {
    "camera_node": "dm1_ros.ros.camera_node:main",
    "policy_node": "dm1_ros.ros.policy_node:main",
    "franka_bridge_node": "dm1_ros.ros.franka_bridge_node:main",
    "sim_bridge_node": "dm1_ros.ros.sim_bridge_node:main",
    "teleop_node": "dm1_ros.ros.teleop_node:main",
}
