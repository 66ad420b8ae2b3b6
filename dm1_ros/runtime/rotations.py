"""Rotations, in one place: axis-angle vectors, quaternions and rotation matrices (transforms3d underneath).

Quaternions are (x, y, z, w), the order of ROS messages, franky and robosuite's robot0_eef_quat; transforms3d's
own order is (w, x, y, z), converted here and nowhere else. An axis-angle vector is axis * angle in radians (the
OSC_POSE action convention).
"""
from __future__ import annotations

import math

import numpy as np
from transforms3d import axangles, quaternions

_SMALL = 1e-12


def _wxyz(q_xyzw) -> np.ndarray:
    x, y, z, w = np.asarray(q_xyzw, np.float64)
    return np.array([w, x, y, z])


def _unit(q_xyzw) -> np.ndarray:
    q = np.asarray(q_xyzw, np.float64).reshape(4)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < _SMALL:
        raise ValueError(f"not a rotation quaternion: {q.tolist()}")
    return q / norm


def rotvec_to_quat(rotvec) -> np.ndarray:
    """Axis-angle vector -> unit quaternion (x, y, z, w)."""
    r = np.asarray(rotvec, np.float64).reshape(3)
    angle = float(np.linalg.norm(r))
    if angle < _SMALL:
        return np.array([0.0, 0.0, 0.0, 1.0])
    w, x, y, z = quaternions.axangle2quat(r / angle, angle, is_normalized=True)
    return np.array([x, y, z, w])


def quat_to_rotvec(q_xyzw) -> np.ndarray:
    """Quaternion (x, y, z, w) -> axis-angle vector with the angle in [0, pi] (q and -q give the same result).
    Raises ValueError for a zero or non-finite quaternion."""
    q = _unit(q_xyzw)
    if q[3] < 0:
        q = -q
    axis, angle = quaternions.quat2axangle(_wxyz(q))
    return np.asarray(axis, np.float64) * float(angle)


def rotvec_to_matrix(rotvec) -> np.ndarray:
    """Axis-angle vector -> 3x3 rotation matrix."""
    r = np.asarray(rotvec, np.float64).reshape(3)
    angle = float(np.linalg.norm(r))
    if angle < _SMALL:
        return np.eye(3)
    return axangles.axangle2mat(r / angle, angle, is_normalized=True)


def quat_to_matrix(q_xyzw) -> np.ndarray:
    """Quaternion (x, y, z, w), normalized first -> 3x3 rotation matrix."""
    return quaternions.quat2mat(_wxyz(_unit(q_xyzw)))


def matrix_to_quat(matrix) -> np.ndarray:
    """3x3 rotation matrix -> unit quaternion (x, y, z, w) with w >= 0."""
    w, x, y, z = quaternions.mat2quat(np.asarray(matrix, np.float64))
    q = np.array([x, y, z, w])
    return -q if q[3] < 0 else q


def orthonormalize(matrix) -> np.ndarray:
    """The rotation matrix nearest to `matrix` (removes the drift of repeated products)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, np.float64))
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, -1] *= -1
        out = u @ vt
    return out


def canonical_quat(q_xyzw, reference_xyzw) -> np.ndarray:
    """Unit quaternion in the hemisphere of `reference` (q and -q are the same rotation)."""
    q = _unit(q_xyzw)
    return -q if float(np.dot(q, reference_xyzw)) < 0 else q


def rotation_angle_between(Ra, Rb) -> float:
    """Angle (rad) of the rotation that takes Ra to Rb."""
    c = (np.trace(np.asarray(Ra).T @ np.asarray(Rb)) - 1.0) / 2.0
    return float(math.acos(max(-1.0, min(1.0, c))))
