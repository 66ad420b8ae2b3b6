"""Depth image -> point cloud observation (DP3 / MP1): one pipeline for the simulator, the robot and recordings.

    cloud = PointCloudConfig(num_points=512, crop_min=[-0.5, -0.5, 0.75], crop_max=[0.5, 0.5, 1.3])
    camera = CameraModel.from_matrices(K, T_base_camera)        # pinhole intrinsics, camera -> robot base frame
    points = depth_to_points(depth_m, camera, cloud)           # (512, 3) float32, metres, robot base frame

Steps, each its own function: back-project the valid depth pixels (0 < d <= max_depth) with the intrinsics, on a
pixel grid of `stride` (automatic: about 8 x `candidates` pixels); transform into the base frame with the extrinsics (hand-eye for a wrist camera); keep the
points inside the crop box; farthest point sampling down to `num_points`, deterministic: it starts from the point
nearest the crop box's centre, so the same depth gives the same cloud on every machine. Farthest point sampling
runs on at most `candidates` points, picked on a fixed regular subsequence first: its cost grows with candidates x
num_points. Camera frame: OpenCV's (x right, y down, z forward), what RealSense reports and robosuite's
`get_camera_extrinsic_matrix` returns. No torch, no rclpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dm1_ros.errors import Dm1Error
from dm1_ros.runtime.rotations import quat_to_matrix


class PointCloudError(Dm1Error, ValueError):
    """A depth frame or camera model the pipeline cannot use (the message names it), or a crop that keeps nothing."""


@dataclass
class PointCloudConfig:
    """How a cloud is made: which depth cameras, in which frame, cropped and sampled how. A model's manifest keeps
    it (runtime/bundle.py PointCloudSpec), so the robot builds the cloud the model was trained on."""

    cameras: list[str] = field(default_factory=lambda: ["agentview"])  # depth cameras merged into one cloud
    frame: str = "world"  # the points' frame: robosuite's world in simulation, the robot base (panda_link0) on a Franka
    num_points: int = 512
    crop_min: list[float] = field(default_factory=lambda: [-1.0, -1.0, -1.0])  # metres, robot base frame
    crop_max: list[float] = field(default_factory=lambda: [1.0, 1.0, 2.0])
    max_depth: float = 2.0  # metres; farther pixels are dropped (RealSense noise grows with distance)
    stride: int = 0  # back-project every stride-th pixel each way; 0: automatic, about 8 x candidates pixels
    candidates: int = 0  # most points farthest point sampling looks at; 0: 4 x num_points

    def __post_init__(self):
        if not self.cameras:
            raise PointCloudError("a point cloud needs at least one depth camera")
        if not 1 <= self.num_points <= 65536:
            raise PointCloudError(f"num_points must lie in 1 .. 65536, got {self.num_points}")
        if len(self.crop_min) != 3 or len(self.crop_max) != 3:
            raise PointCloudError("crop_min and crop_max are [x, y, z] in metres")
        if not all(math.isfinite(v) for v in (*self.crop_min, *self.crop_max)) or any(
                lo >= hi for lo, hi in zip(self.crop_min, self.crop_max)):
            raise PointCloudError(f"crop box {self.crop_min} .. {self.crop_max} is empty or not finite")
        if not (self.max_depth > 0 and math.isfinite(self.max_depth)):
            raise PointCloudError(f"max_depth must be a positive number of metres, got {self.max_depth}")
        if self.stride < 0 or (self.candidates and self.candidates < self.num_points):
            raise PointCloudError(f"stride must be >= 0 (0: automatic) and candidates 0 (automatic) or >= "
                                  f"num_points, got {self.stride} and {self.candidates}")
        self.candidates = self.candidates or 4 * self.num_points

    def stride_for(self, height: int, width: int) -> int:
        if self.stride:
            return self.stride
        return max(1, int(math.sqrt(height * width / (8 * self.candidates))))


@dataclass
class CameraModel:
    """Pinhole intrinsics (pixels) and the camera's pose in the robot base frame (4 x 4, camera -> base)."""

    fx: float
    fy: float
    cx: float
    cy: float
    base_from_camera: np.ndarray = field(default_factory=lambda: np.eye(4))

    @classmethod
    def from_matrices(cls, K, base_from_camera=None) -> "CameraModel":
        K = np.asarray(K, np.float64)
        if K.shape != (3, 3):
            raise PointCloudError(f"intrinsic matrix must be 3 x 3, got {K.shape}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]),
                   np.eye(4) if base_from_camera is None else np.asarray(base_from_camera, np.float64))

    def __post_init__(self):
        # Python floats: a numpy float64 scalar would promote the float32 pixel arithmetic to float64 (NumPy 2)
        self.fx, self.fy, self.cx, self.cy = (float(v) for v in (self.fx, self.fy, self.cx, self.cy))
        T = np.asarray(self.base_from_camera, np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise PointCloudError("base_from_camera must be a finite 4 x 4 homogeneous transform")
        if not (self.fx > 0 and self.fy > 0 and all(math.isfinite(v) for v in (self.fx, self.fy, self.cx, self.cy))):
            raise PointCloudError(f"intrinsics must be finite with fx, fy > 0, got fx={self.fx} fy={self.fy}")
        self.base_from_camera = T


def depth_cameras_of(point_clouds) -> list[str]:
    """Every depth camera the clouds (PointCloudSpec) are made from, each once, in order."""
    return list(dict.fromkeys(c for cloud in point_clouds for c in cloud.cameras))


@dataclass
class DepthMount:
    """Where a depth camera is: `fixed` (transform = base_from_camera) or on the `hand` (transform =
    eef_from_camera, the hand-eye calibration), 4 x 4, camera axes as OpenCV's (x right, y down, z forward)."""

    mount: str = "fixed"
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self):
        if self.mount not in ("fixed", "hand"):
            raise PointCloudError(f"camera mount {self.mount!r}: choose fixed or hand")
        self.transform = np.asarray(self.transform, np.float64).reshape(4, 4)

    def base_from_camera(self, proprio: np.ndarray) -> np.ndarray:
        """The camera's pose in the base frame at an observation whose proprio starts with the end effector's
        position (3) and quaternion x y z w (4), as the observation contract orders them."""
        if self.mount == "fixed":
            return self.transform
        base_from_eef = np.eye(4)
        base_from_eef[:3, :3] = quat_to_matrix(np.asarray(proprio[3:7], np.float64))
        base_from_eef[:3, 3] = proprio[:3]
        return base_from_eef @ self.transform


def backproject(depth: np.ndarray, camera: CameraModel, max_depth: float = np.inf, stride: int = 1) -> np.ndarray:
    """depth (H, W) in metres -> (N, 3) points in the camera frame, one per valid pixel (0 < d <= max_depth)."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise PointCloudError(f"depth must be an (H, W) image in metres, got shape {depth.shape}")
    d = depth[::stride, ::stride].astype(np.float32, copy=False)
    v, u = np.nonzero((d > 0) & (d <= max_depth))  # NaN compares False: dropped too
    z = d[v, u]
    u = u.astype(np.float32) * stride
    v = v.astype(np.float32) * stride
    return np.stack([(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z], axis=1).astype(np.float32,
                                                                                                        copy=False)


def transform(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(N, 3) points -> T applied (4 x 4 homogeneous), float32. Written out elementwise: a threaded BLAS product
    may round differently from run to run, and the sampling downstream must see the same cloud every time."""
    T = np.asarray(T, np.float32)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    return np.stack([T[r, 0] * x + T[r, 1] * y + T[r, 2] * z + T[r, 3] for r in range(3)], axis=1)


def crop(points: np.ndarray, lo, hi) -> np.ndarray:
    keep = np.all((points >= np.asarray(lo, np.float32)) & (points <= np.asarray(hi, np.float32)), axis=1)
    return points[keep]


def transform_crop(points: np.ndarray, T: np.ndarray, lo, hi) -> np.ndarray:
    """crop(transform(points, T), lo, hi) in one pass where numba is installed (the same float32 arithmetic in the
    same order, so the same points), else those two functions."""
    compiled = _compiled("transform_crop")
    if compiled is None:
        return crop(transform(points, T), lo, hi)
    return compiled(np.ascontiguousarray(points, np.float32), np.asarray(T, np.float32), np.asarray(lo, np.float32),
                    np.asarray(hi, np.float32))


def _transform_crop_loop(points, T, lo, hi):
    out = np.empty_like(points)
    kept = 0
    for j in range(points.shape[0]):
        x, y, z = points[j, 0], points[j, 1], points[j, 2]
        inside = True
        for r in range(3):
            v = T[r, 0] * x + T[r, 1] * y + T[r, 2] * z + T[r, 3]
            out[kept, r] = v
            inside = inside and lo[r] <= v <= hi[r]
        if inside:
            kept += 1
    return out[:kept].copy()


def farthest_point_sampling(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Indices of n points of `points` (N, 3), each the farthest from those already chosen, from index `start`.
    Fewer than n points: all of them, then repeated from the first (a fixed-size input for the network).
    Compiled with numba where it is installed (robosuite brings it; the `robot` extra pins it), else numpy: the
    two pick the same indices (the same float32 arithmetic in the same order, ties to the lowest index)."""
    count = points.shape[0]
    if count == 0:
        raise PointCloudError("no points to sample from")
    if not np.isfinite(points).all():
        raise PointCloudError("points to sample from must be finite (a NaN or infinite coordinate)")
    if count <= n:
        return np.resize(np.arange(count), n)
    # elementwise arithmetic, no BLAS: a threaded matrix-vector product may round differently from run to run,
    # and one flipped near-tie changes every later pick
    x, y, z = (np.ascontiguousarray(points[:, k], np.float32) for k in range(3))
    compiled = _compiled("farthest_point_sampling")
    if compiled is not None:
        return compiled(x, y, z, int(n), int(start))
    return _sample_numpy(x, y, z, n, start)


def _sample_numpy(x: np.ndarray, y: np.ndarray, z: np.ndarray, n: int, start: int) -> np.ndarray:
    count = x.shape[0]
    nearest = np.full(count, np.inf, np.float32)
    d = np.empty(count, np.float32)
    tmp = np.empty(count, np.float32)
    chosen = np.empty(n, np.int64)
    i = start
    for k in range(n):
        chosen[k] = i
        np.subtract(x, x[i], out=d)
        np.multiply(d, d, out=d)
        np.subtract(y, y[i], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.add(d, tmp, out=d)
        np.subtract(z, z[i], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.add(d, tmp, out=d)
        np.minimum(nearest, d, out=nearest)
        i = int(nearest.argmax())
    return chosen


def _sample_loop(x, y, z, n, start):
    """_sample_numpy as loops for numba: squared distances summed x, y, z in float32, argmax's first index. Three
    passes per pick, each a loop LLVM turns into 8-wide vector code (one fused loop with a running argmax does not
    vectorize: 3.8x slower). The max runs on the distances' bit patterns as int32: for non-negative floats they
    order the same, and an integer max reduction vectorizes where a float one needs fast-math."""
    count = x.shape[0]
    nearest = np.full(count, np.inf, np.float32)
    bits = nearest.view(np.int32)
    chosen = np.empty(n, np.int64)
    i = start
    for k in range(n):
        chosen[k] = i
        xi, yi, zi = x[i], y[i], z[i]
        for j in range(count):
            dx = x[j] - xi
            dy = y[j] - yi
            dz = z[j] - zi
            d = (dx * dx + dy * dy) + dz * dz
            m = nearest[j]
            nearest[j] = d if d < m else m
        best = np.int32(-1)
        for j in range(count):
            b = bits[j]
            best = b if b > best else best
        for j in range(count):
            if bits[j] == best:
                i = j
                break
    return chosen


# contiguous arrays ([::1]) in the signatures: with a run-time stride LLVM does not vectorize the loops
_KERNELS = {"farthest_point_sampling": (_sample_loop, "int64[:](float32[::1], float32[::1], float32[::1], int64, int64)"),
            "transform_crop": (_transform_crop_loop, "float32[:, :](float32[:, :], float32[:, :], float32[:], float32[:])")}
_COMPILED: dict = {}


def compile_kernels() -> None:
    """Compiles the numba kernels now (a no-op without numba, or once they are compiled): called where live depth
    will be turned into clouds, so the robot's first observation does not wait for the compiler."""
    for name in _KERNELS:
        _compiled(name)


def _compiled(name: str):
    """numba's compilation of a kernel above (under a second, once per process), or None without numba."""
    if name not in _COMPILED:
        try:
            import numba
        except ImportError:
            _COMPILED[name] = None
        else:  # no fastmath: IEEE float32 in the written order, no fused multiply-add
            function, signature = _KERNELS[name]
            _COMPILED[name] = numba.njit(signature, cache=False)(function)
    return _COMPILED[name]


def sample_points(points: np.ndarray, config: PointCloudConfig) -> np.ndarray:
    """Cropped base-frame points -> (num_points, 3) float32 by farthest point sampling (see the module doc)."""
    if points.shape[0] == 0:
        raise PointCloudError(f"no depth point inside the crop box {config.crop_min} .. {config.crop_max}")
    if points.shape[0] > config.candidates:
        step = points.shape[0] / config.candidates
        points = points[(np.arange(config.candidates) * step).astype(np.int64)]
    centre = (np.asarray(config.crop_min, np.float32) + np.asarray(config.crop_max, np.float32)) / 2
    start = int(np.square(points - centre).sum(1).argmin())
    return np.ascontiguousarray(points[farthest_point_sampling(points, config.num_points, start)], np.float32)


def depth_to_points(depth: np.ndarray, camera: CameraModel, config: PointCloudConfig) -> np.ndarray:
    """The whole pipeline: depth (H, W) metres -> (num_points, 3) float32 in the robot base frame."""
    return merged_cloud([(depth, camera)], config)


def merged_cloud(views: list[tuple[np.ndarray, CameraModel]], config: PointCloudConfig) -> np.ndarray:
    """Several depth cameras (depth in metres, camera model) -> one (num_points, 3) cloud in the common frame."""
    parts = []
    for depth, camera in views:
        depth = np.asarray(depth)
        cam = backproject(depth, camera, config.max_depth, config.stride_for(depth.shape[0], depth.shape[1]))
        parts.append(transform_crop(cam, camera.base_from_camera, config.crop_min, config.crop_max))
    return sample_points(np.concatenate(parts) if len(parts) > 1 else parts[0], config)
