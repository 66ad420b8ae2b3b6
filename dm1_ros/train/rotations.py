"""Orientations as regression targets: xyzw quaternions <-> rotation-matrix columns, and the angle between two
rotations. Used by state prediction (a policy trained to predict an object's pose; dm1_ros/train/dataset.py) and by
bench/state_readout.py."""
from __future__ import annotations

import numpy as np


def rotation_columns(quaternions: np.ndarray) -> np.ndarray:
    """xyzw quaternions (..., 4) -> the first two columns of their rotation matrices (..., 6): continuous, and the
    same for q and -q (one rotation), so a regression target has one value per rotation."""
    q = quaternions / np.linalg.norm(quaternions, axis=-1, keepdims=True)
    x, y, z, w = np.moveaxis(q, -1, 0)
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w),
                     2 * (x * y - z * w), 1 - 2 * (x * x + z * z), 2 * (y * z + x * w)], axis=-1)


def rotation_from_columns(columns: np.ndarray) -> np.ndarray:
    """(..., 6) two (predicted, so not exactly orthonormal) rotation-matrix columns -> (..., 3, 3) the nearest
    rotation by Gram-Schmidt; the inverse of rotation_columns."""
    a = columns[..., :3] / np.linalg.norm(columns[..., :3], axis=-1, keepdims=True)
    b = columns[..., 3:] - (a * columns[..., 3:]).sum(-1, keepdims=True) * a
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) x2 -> (...) the angle of the rotation between them, degrees."""
    cos = (np.einsum("...ij,...ij->...", a, b) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def segments(width: int, quaternions: list[int]) -> list[tuple[bool, int, int]]:
    """A state of `width` cut at its xyzw quaternions: (is a quaternion, start, end) in order, covering it."""
    out, at = [], 0
    for start in sorted(quaternions):
        if start > at:
            out.append((False, at, start))
        out.append((True, start, start + 4))
        at = start + 4
    return out + ([(False, at, width)] if width > at else [])


def with_rotation_columns(state: np.ndarray, quaternions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(N, S) -> (N, S + 2 * len(quaternions)) with each xyzw block starting at an index in `quaternions` replaced by
    its rotation_columns, and (N,) whether the row is a state at all: False where a quaternion is zero (no
    rotation; its row is zeros, to be left out of the loss)."""
    valid = np.ones(len(state), bool)
    for start in quaternions:
        valid &= np.linalg.norm(state[:, start:start + 4], axis=-1) > 1e-6
    identity = np.array([0.0, 0.0, 0.0, 1.0])  # stands in for a zero quaternion, whose row is zeroed below
    pieces = [rotation_columns(np.where(valid[:, None], state[:, a:b], identity)) if is_quaternion else state[:, a:b]
              for is_quaternion, a, b in segments(state.shape[1], quaternions)]
    out = np.concatenate(pieces, axis=1)
    return np.where(valid[:, None], out, 0.0).astype(np.float32), valid
