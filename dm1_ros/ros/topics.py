"""Topic and service names shared by the nodes and launch files (no ROS imports).

Camera topics are realsense-ros's, so the official driver can replace camera_node. Everything else lives under
/dm1; the sim and Franka bridges use the same names, so `use_sim:=true` runs the identical stack.
"""


def camera_topics(namespace: str = "camera", name: str = "camera") -> dict[str, str]:
    """A camera's topics as realsense-ros names them: /<camera_namespace>/<camera_name>/..."""
    base = f"/{namespace.strip('/')}/{name.strip('/')}" if namespace.strip("/") else f"/{name.strip('/')}"
    return {"image": f"{base}/color/image_raw",  # sensor_msgs/Image rgb8, sensor QoS
            "info": f"{base}/color/camera_info",  # sensor_msgs/CameraInfo, sensor QoS
            "depth": f"{base}/aligned_depth_to_color/image_raw",  # sensor_msgs/Image 16UC1, millimetres, 0 = none
            "depth_info": f"{base}/aligned_depth_to_color/camera_info",  # the colour intrinsics (aligned)
            "points": f"{base}/depth/color/points"}  # sensor_msgs/PointCloud2 x y z float32, optical frame


_DEFAULT_CAMERA = camera_topics()
CAMERA_IMAGE = _DEFAULT_CAMERA["image"]
CAMERA_INFO = _DEFAULT_CAMERA["info"]
CAMERA_DEPTH = _DEFAULT_CAMERA["depth"]
CAMERA_DEPTH_INFO = _DEFAULT_CAMERA["depth_info"]
CAMERA_POINTS = _DEFAULT_CAMERA["points"]

JOINT_STATES = "/dm1/joint_states"  # sensor_msgs/JointState: arm joints (when known) + the two finger joints
EEF_POSE = "/dm1/eef_pose"  # geometry_msgs/PoseStamped: end effector in the base frame (quaternion x y z w)
GRIPPER_STATE = "/dm1/gripper_state"  # std_msgs/Float64MultiArray [width m, command -1 open / +1 closed]
ACTION_TRAJECTORY = "/dm1/action_trajectory"  # trajectory_msgs/MultiDOFJointTrajectory: the command stream
ACTION_CHUNK = "/dm1/action_chunk"  # std_msgs/Float64MultiArray (Ta, Da): the policy's raw output
SIM_SUCCESS = "/dm1/sim/success"  # std_msgs/Bool: the simulated task is solved
TELEOP_KEYS = "/dm1/teleop/keys"  # std_msgs/String: key taps for the keyboard device ("w", "space", "enter")
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray

POLICY_START = "/dm1/policy/start"  # std_srvs/Trigger
POLICY_STOP = "/dm1/policy/stop"
POLICY_RESET = "/dm1/policy/reset"
ROBOT_STOP = "/dm1/robot/stop"
ROBOT_RECOVER = "/dm1/robot/recover"
ROBOT_RESET = "/dm1/robot/reset"
TELEOP_EPISODE = "/dm1/teleop/episode"  # std_msgs/String: "start NAME", "stop NAME success=B", "discard NAME"
TELEOP_START = "/dm1/teleop/start"
TELEOP_STOP = "/dm1/teleop/stop"
TELEOP_DISCARD = "/dm1/teleop/discard"

# MultiDOFJointTrajectory layout: joint 0 is the end effector (delta translation in metres, delta rotation as a
# quaternion of the axis-angle action), joint 1 the gripper (command in translation.x, identity rotation).
EEF_JOINT = "eef"
GRIPPER_JOINT = "gripper"
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))


def info_topic(image_topic: str) -> str:
    """realsense-ros pairing: .../image_raw -> .../camera_info."""
    head, _, _ = image_topic.rpartition("/")
    return f"{head}/camera_info" if head else "camera_info"

