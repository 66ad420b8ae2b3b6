"""Numeric helpers of the ROS layer that need no ROS: rotations, stamps, image resizing."""
from __future__ import annotations

import math

import numpy as np


def axis_angle_to_quat(rotvec) -> np.ndarray:
    """Axis-angle (axis * angle, rad) -> unit quaternion (x, y, z, w)."""
    r = np.asarray(rotvec, np.float64)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.array([r[0] / 2, r[1] / 2, r[2] / 2, 1.0]) / math.sqrt(1 + angle * angle / 4)
    s = math.sin(angle / 2) / angle
    return np.array([r[0] * s, r[1] * s, r[2] * s, math.cos(angle / 2)])


def quat_to_axis_angle(q) -> np.ndarray:
    """Quaternion (x, y, z, w) -> axis-angle with angle in [0, pi] (q and -q give the same result)."""
    q = np.asarray(q, np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"not a rotation quaternion: {q.tolist()}")
    q = q / norm
    if q[3] < 0:
        q = -q
    v = q[:3]
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        return 2.0 * v  # small-angle limit
    angle = 2.0 * math.atan2(s, q[3])
    return v / s * angle


def split_seconds(seconds: float) -> tuple[int, int]:
    """float seconds -> (sec, nanosec) as builtin_interfaces/Time wants them."""
    ns = int(round(seconds * 1e9))
    return ns // 10**9, ns % 10**9


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 -> height x width x 3 (OpenCV area interpolation when available, else nearest neighbour)."""
    if image.shape[:2] == (height, width):
        return image
    try:
        import cv2

        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    except ImportError:
        rows = (np.arange(height) * image.shape[0] / height).astype(int)
        cols = (np.arange(width) * image.shape[1] / width).astype(int)
        return np.ascontiguousarray(image[rows][:, cols])


def parse_size(text: str) -> tuple[int, int] | None:
    """'96x96' (width x height) -> (96, 96); '' -> None."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 96x96") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"bad size {text!r}: width and height must be positive")
    return w, h
