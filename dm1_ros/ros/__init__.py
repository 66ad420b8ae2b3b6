"""dm1_ros.ros: ROS 2 nodes, thin shells over the pipeline in runtime/ (Planner, CommandExecutor) and over
hardware/ and sim/: parameters, topics, services, lifecycle, message conversions, nothing else.

Only the *_node.py modules, node_base.py and robot_bridge.py import rclpy; conversions.py and assembler.py import
message packages only (messages are read by field name); launch_arguments.py imports launch; topics.py imports
neither. See docs/ros.md.
"""

# console_scripts name -> target (setup.py entry_points); `ros2 run dm1_ros <name>`.
CONSOLE_SCRIPTS = {
    "camera_node": "dm1_ros.ros.camera_node:main",
    "policy_node": "dm1_ros.ros.policy_node:main",
    "franka_bridge_node": "dm1_ros.ros.franka_bridge_node:main",
    "sim_bridge_node": "dm1_ros.ros.sim_bridge_node:main",
    "teleop_node": "dm1_ros.ros.teleop_node:main",
}
