"""trajectory_msgs/msg (stand-in)."""
from rosidl_standin import message

MultiDOFJointTrajectoryPoint = message(
    "MultiDOFJointTrajectoryPoint",
    {"transforms": "sequence<geometry_msgs/Transform>", "velocities": "sequence<geometry_msgs/Twist>",
     "accelerations": "sequence<geometry_msgs/Twist>", "time_from_start": "builtin_interfaces/Duration"}, __name__)
MultiDOFJointTrajectory = message(
    "MultiDOFJointTrajectory",
    {"header": "std_msgs/Header", "joint_names": "sequence<string>",
     "points": "sequence<trajectory_msgs/MultiDOFJointTrajectoryPoint>"}, __name__)
JointTrajectoryPoint = message(
    "JointTrajectoryPoint",
    {"positions": "sequence<double>", "velocities": "sequence<double>", "accelerations": "sequence<double>",
     "effort": "sequence<double>", "time_from_start": "builtin_interfaces/Duration"}, __name__)
JointTrajectory = message(
    "JointTrajectory",
    {"header": "std_msgs/Header", "joint_names": "sequence<string>",
     "points": "sequence<trajectory_msgs/JointTrajectoryPoint>"}, __name__)
