"""ROS messages <-> numpy and the observation/action contracts. Imports message packages, never rclpy.

Choices (docs/ros.md has the tables):
- Images are published as rgb8; bgr8, rgba8, bgra8 and mono8 are accepted on input (row padding honoured).
- Depth as realsense-ros publishes it: 16UC1 in millimetres (0: no reading); 32FC1 in metres is accepted on input.
  Point clouds: sensor_msgs/PointCloud2 with float32 x y z, dense, in the header's frame.
- Robot state: sensor_msgs/JointState (arm joints when known + panda_finger_joint1/2, whose positions are
  robot0_gripper_qpos), geometry_msgs/PoseStamped (end effector in the base frame, quaternion x y z w =
  robot0_eef_quat), std_msgs/Float64MultiArray gripper state [width m, command].
- Commands: trajectory_msgs/MultiDOFJointTrajectory stamped with the time of the observation the actions come
  from. joint_names = ["eef", "gripper"]; point k is meant for stamp + time_from_start (k / rate). transforms[0]
  = end-effector delta (translation = [dx dy dz] * pos_scale metres, rotation = quaternion of the axis-angle
  [drx dry drz] * rot_scale rad, in the base frame); transforms[1].translation.x = gripper command (-1 open ..
  +1 closed). A trajectory with no points is a hold: the actions sent before must not run (stale input, a
  failed model), the robot holds until the next command. The raw chunk goes out as Float64MultiArray with dims
  ("action", Ta) x ("dim", Da).
"""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, Transform
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from dm1_ros.ros.topics import EEF_JOINT, FINGER_JOINTS, GRIPPER_JOINT
from dm1_ros.runtime.rotations import quat_to_rotvec, rotvec_to_quat

LEVELS = {"OK": DiagnosticStatus.OK, "WARN": DiagnosticStatus.WARN, "ERROR": DiagnosticStatus.ERROR,
          "STALE": DiagnosticStatus.STALE}


# --- time -----------------------------------------------------------------------------------------------------
def split_seconds(seconds: float) -> tuple[int, int]:
    """float seconds -> (sec, nanosec) as builtin_interfaces/Time wants them."""
    ns = int(round(seconds * 1e9))
    return ns // 10**9, ns % 10**9


def to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_msg(seconds: float) -> Time:
    sec, nsec = split_seconds(seconds)
    return Time(sec=sec, nanosec=nsec)


def duration_msg(seconds: float) -> Duration:
    sec, nsec = split_seconds(seconds)
    return Duration(sec=sec, nanosec=nsec)


def _floats(values) -> array.array:
    return array.array("d", np.asarray(values, np.float64).ravel().tobytes())


# --- images ---------------------------------------------------------------------------------------------------
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def image_to_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB (a copy)."""
    enc = msg.encoding.lower()
    if enc not in _CHANNELS:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; publish rgb8 (or bgr8, rgba8, bgra8, mono8)")
    c = _CHANNELS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if step < w * c:
        raise ValueError(f"image step {step} is smaller than width {w} x {c} channels")
    buf = np.frombuffer(msg.data, np.uint8)
    if buf.size < h * step:
        raise ValueError(f"image data has {buf.size} bytes, {h} rows of {step} need {h * step}")
    rows = buf[: h * step].reshape(h, step)[:, : w * c].reshape(h, w, c)
    if enc == "rgb8":
        return rows.copy()
    if enc == "bgr8":
        return np.ascontiguousarray(rows[..., ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(rows[..., :3])
    if enc == "bgra8":
        return np.ascontiguousarray(rows[..., 2::-1])
    return np.ascontiguousarray(np.repeat(rows, 3, axis=2))


def array_to_image(image: np.ndarray, stamp: float, frame_id: str) -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    h, w, _ = image.shape
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", image.tobytes())
    return msg


def depth_to_image(depth_m: np.ndarray, stamp: float, frame_id: str) -> Image:
    """(H, W) metres -> sensor_msgs/Image 16UC1 millimetres (realsense-ros); beyond 65.535 m or invalid: 0."""
    depth_m = np.asarray(depth_m, np.float32)
    if depth_m.ndim != 2:
        raise ValueError(f"expected an (H, W) depth image in metres, got shape {depth_m.shape}")
    mm = np.where(np.isfinite(depth_m) & (depth_m > 0) & (depth_m < 65.535), np.round(depth_m * 1000), 0)
    h, w = depth_m.shape
    msg = Image(height=h, width=w, encoding="16UC1", is_bigendian=0, step=w * 2)
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", mm.astype("<u2").tobytes())
    return msg


def image_to_depth(msg: Image) -> np.ndarray:
    """sensor_msgs/Image 16UC1 (mm) or 32FC1 (m) -> (H, W) float32 metres, 0 where there is no reading."""
    enc = msg.encoding.upper()
    dtypes = {"16UC1": (">u2" if msg.is_bigendian else "<u2", 1e-3), "32FC1": (">f4" if msg.is_bigendian else "<f4", 1.0)}
    if enc not in dtypes:
        raise ValueError(f"depth encoding {msg.encoding!r} is not supported; publish 16UC1 (mm) or 32FC1 (m)")
    dtype, scale = dtypes[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    size = np.dtype(dtype).itemsize
    if step < w * size or len(msg.data) < h * step:
        raise ValueError(f"depth image data ({len(msg.data)} bytes, step {step}) is too short for {w}x{h} {enc}")
    rows = np.frombuffer(bytes(msg.data[: h * step]), np.uint8).reshape(h, step)[:, : w * size]
    depth = np.ascontiguousarray(rows).view(dtype).reshape(h, w).astype(np.float32) * np.float32(scale)
    return np.where(np.isfinite(depth), depth, 0).astype(np.float32)


def points_to_cloud(points: np.ndarray, stamp: float, frame_id: str) -> PointCloud2:
    """(N, 3) float32 metres -> sensor_msgs/PointCloud2 (x y z float32, dense, unordered)."""
    points = np.ascontiguousarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected (N, 3) points, got shape {points.shape}")
    msg = PointCloud2(height=1, width=points.shape[0], is_bigendian=False, point_step=12,
                      row_step=12 * points.shape[0], is_dense=True)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    msg.data = array.array("B", points.astype("<f4").tobytes())
    return msg


def cloud_to_points(msg: PointCloud2) -> np.ndarray:
    """sensor_msgs/PointCloud2 with float32 x y z fields (any layout, e.g. realsense-ros's xyz + rgb) -> (N, 3)
    float32; points with a non-finite coordinate are dropped."""
    offsets = {f.name: f for f in msg.fields}
    for name in "xyz":
        if name not in offsets or offsets[name].datatype != PointField.FLOAT32:
            raise ValueError(f"point cloud field {name!r} missing or not float32 (fields: {sorted(offsets)})")
    n = int(msg.width) * int(msg.height)
    raw = np.frombuffer(bytes(msg.data), np.uint8)
    if raw.size < n * int(msg.point_step):
        raise ValueError(f"point cloud data has {raw.size} bytes, {n} points of {msg.point_step} need more")
    rows = raw[: n * int(msg.point_step)].reshape(n, int(msg.point_step))
    order = ">f4" if msg.is_bigendian else "<f4"
    pts = np.stack([np.ascontiguousarray(rows[:, offsets[c].offset: offsets[c].offset + 4]).view(order)[:, 0]
                    for c in "xyz"], axis=1).astype(np.float32)
    return pts[np.all(np.isfinite(pts), axis=1)]


def camera_info(width: int, height: int, stamp: float, frame_id: str, k: list[float] | None = None,
                d: list[float] | None = None) -> CameraInfo:
    """CameraInfo with intrinsics k (fx 0 cx 0 fy cy 0 0 1) when known; all zeros means uncalibrated."""
    msg = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob")
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    if k is not None:
        kk = np.asarray(k, np.float64).reshape(9)
        msg.k = kk
        msg.r = np.eye(3).reshape(9)
        p = np.zeros(12)
        p[[0, 1, 2, 4, 5, 6, 10]] = kk[[0, 1, 2, 3, 4, 5, 8]]
        msg.p = p
    msg.d = _floats(d if d is not None else [0.0] * 5)
    return msg


# --- robot state ----------------------------------------------------------------------------------------------
def state_messages(proprio: np.ndarray, stamp: float, frame_id: str, arm_joints: np.ndarray | None = None,
                   gripper_width: float | None = None, gripper_command: float = -1.0,
                   arm_names=None, finger_names=FINGER_JOINTS):
    """proprio [eef pos 3, eef quat xyzw 4, fingers 2] -> (JointState, PoseStamped, gripper Float64MultiArray)."""
    p = np.asarray(proprio, np.float64)
    if p.shape != (9,):
        raise ValueError(f"proprio must have 9 values (pos 3, quat 4, fingers 2), got {p.shape}")
    t = stamp_msg(stamp)
    joints = JointState()
    joints.header.stamp = t
    joints.header.frame_id = frame_id
    names, positions = list(finger_names), list(p[7:9])
    if arm_joints is not None:
        arm = np.asarray(arm_joints, np.float64).ravel()
        arm_names = list(arm_names or [f"panda_joint{i + 1}" for i in range(arm.size)])
        names, positions = arm_names + names, list(arm) + positions
    joints.name = names
    joints.position = _floats(positions)
    pose = PoseStamped()
    pose.header.stamp = t
    pose.header.frame_id = frame_id
    pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = (float(v) for v in p[:3])
    q = pose.pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in p[3:7])
    width = float(p[7] - p[8]) if gripper_width is None else float(gripper_width)
    gripper = Float64MultiArray(data=_floats([width, float(gripper_command)]))
    gripper.layout.dim = [MultiArrayDimension(label="width_m,command", size=2, stride=2)]
    return joints, pose, gripper


def proprio_from_state(pose: PoseStamped, joints: JointState, finger_names=FINGER_JOINTS) -> np.ndarray:
    """PoseStamped + JointState -> proprio float32 (9,) = robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos."""
    names = list(joints.name)
    missing = [n for n in finger_names if n not in names]
    if missing:
        raise ValueError(f"joint_states has no {missing} (has {names}); set finger_joints to the finger joint names")
    if len(joints.position) != len(names):
        raise ValueError(f"joint_states: {len(names)} names but {len(joints.position)} positions")
    fingers = [joints.position[names.index(n)] for n in finger_names]
    p, q = pose.pose.position, pose.pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w, *fingers], np.float32)


# --- actions --------------------------------------------------------------------------------------------------
def actions_to_trajectory(actions: np.ndarray, stamp: float, rate_hz: float, pos_scale: float, rot_scale: float,
                          frame_id: str) -> MultiDOFJointTrajectory:
    """(Ta, 7) policy-unit actions -> MultiDOFJointTrajectory (see the module doc for the layout); (0, 7) is a hold."""
    a = np.asarray(actions, np.float64).reshape(-1, 7) if np.size(actions) == 0 else np.asarray(actions, np.float64)
    if a.ndim != 2 or a.shape[1] != 7:
        raise ValueError(f"actions must have shape (Ta, 7), got {a.shape}")
    msg = MultiDOFJointTrajectory(joint_names=[EEF_JOINT, GRIPPER_JOINT])
    msg.header.stamp = stamp_msg(stamp)
    msg.header.frame_id = frame_id
    points = []
    for k, row in enumerate(a):
        eef = Transform()
        eef.translation.x, eef.translation.y, eef.translation.z = (float(v) for v in row[:3] * pos_scale)
        qx, qy, qz, qw = rotvec_to_quat(row[3:6] * rot_scale)
        eef.rotation.x, eef.rotation.y, eef.rotation.z, eef.rotation.w = float(qx), float(qy), float(qz), float(qw)
        grip = Transform()
        grip.translation.x = float(row[6])
        points.append(MultiDOFJointTrajectoryPoint(transforms=[eef, grip], time_from_start=duration_msg(k / rate_hz)))
    msg.points = points
    return msg


def trajectory_to_actions(msg: MultiDOFJointTrajectory, pos_scale: float, rot_scale: float):
    """-> (actions (N, 7) float32 in policy units, stamp seconds, spacing seconds or None for one point); N = 0 is a
    hold. Raises ValueError naming what is malformed."""
    names = list(msg.joint_names)
    if EEF_JOINT not in names or GRIPPER_JOINT not in names:
        raise ValueError(f"trajectory joint_names {names} must contain '{EEF_JOINT}' and '{GRIPPER_JOINT}'")
    ie, ig = names.index(EEF_JOINT), names.index(GRIPPER_JOINT)
    if not msg.points:  # a hold
        return np.zeros((0, 7), np.float32), to_sec(msg.header.stamp), None
    rows, times = [], []
    for k, pt in enumerate(msg.points):
        if len(pt.transforms) != len(names):
            raise ValueError(f"trajectory point {k} has {len(pt.transforms)} transforms for {len(names)} joints")
        t = pt.transforms[ie]
        rot = quat_to_rotvec([t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w])
        grip = pt.transforms[ig].translation.x
        rows.append([t.translation.x / pos_scale, t.translation.y / pos_scale, t.translation.z / pos_scale,
                     *(rot / rot_scale), grip])
        times.append(to_sec(pt.time_from_start))
    spacing = None
    if len(times) > 1:
        d = np.diff(times)
        if np.any(d <= 0) or np.ptp(d) > 1e-6:
            raise ValueError(f"trajectory points must be evenly spaced in time, got time_from_start {times}")
        spacing = float(d[0])
        if abs(times[0]) > 1e-9:
            raise ValueError(f"the first trajectory point must be at time_from_start 0, got {times[0]}")
    actions = np.asarray(rows, np.float32)
    if not np.all(np.isfinite(actions)):
        raise ValueError(f"trajectory has NaN or Inf values (point {int(np.argwhere(~np.isfinite(actions))[0, 0])})")
    return actions, to_sec(msg.header.stamp), spacing


def chunk_to_array_msg(actions: np.ndarray) -> Float64MultiArray:
    a = np.asarray(actions, np.float64)
    ta, da = a.shape
    msg = Float64MultiArray(data=_floats(a))
    msg.layout.dim = [MultiArrayDimension(label="action", size=ta, stride=ta * da),
                      MultiArrayDimension(label="dim", size=da, stride=da)]
    return msg


def array_msg_to_chunk(msg: Float64MultiArray) -> np.ndarray:
    dims = [d.size for d in msg.layout.dim]
    return np.asarray(msg.data, np.float64).reshape(dims if dims else (-1,))


# --- diagnostics ----------------------------------------------------------------------------------------------
def diagnostic_array(stamp: float, statuses) -> DiagnosticArray:
    """statuses: iterable of (name, level 'OK'|'WARN'|'ERROR'|'STALE', message, hardware_id, {key: value})."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp_msg(stamp)
    out = []
    for name, level, message, hardware_id, values in statuses:
        st = DiagnosticStatus(level=LEVELS[level], name=name, message=message, hardware_id=hardware_id)
        st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
        out.append(st)
    msg.status = out
    return msg


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def diagnostic_values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
