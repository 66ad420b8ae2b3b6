"""A real robot rig for the in-process loop: Franka bridge + cameras named as the policy's manifest expects.

    robot = franka_rig(manifest, "config/robot/franka.yaml", camera="realsense", serial_no="123", rate_hz=200)
    robot = franka_rig(cloud_manifest, ..., camera="realsense", serial_no="123",
                       mounts={"agentview": DepthMount("fixed", base_from_camera)})   # a point-cloud model

No torch, no rclpy: `dm1 run --robot franka` and bench/loop.py build the same rig.
"""
from __future__ import annotations

from dm1_ros.configuration import load_yaml
from dm1_ros.hardware.cameras import make_camera
from dm1_ros.hardware.franka import FrankaBridge, FrankaConfig, ObservationError
from dm1_ros.runtime.bundle import Manifest, PointCloudSpec
from dm1_ros.runtime.pointcloud import CameraModel, DepthMount, compile_kernels, depth_cameras_of, merged_cloud


def _camera_kwargs(i: int, count: int, camera_kwargs: dict) -> dict:
    """The keyword arguments of the i-th of `count` cameras: lists (serial_no=["A", "B"]) give one value each."""
    return {k: (v[i] if isinstance(v, (list, tuple)) and count > 1 else v) for k, v in camera_kwargs.items()}


def open_cameras(manifest: Manifest, camera: str, **camera_kwargs) -> dict:
    """One started camera per image in the manifest, resized to what the policy was trained on. Several cameras
    of one kind take per-camera keyword lists (serial_no=["A", "B"])."""
    cameras = {}
    images = manifest.observation.images
    for i, spec in enumerate(images):
        cam = make_camera(camera, name=spec.name, resize=(spec.width, spec.height),
                          **_camera_kwargs(i, len(images), camera_kwargs))
        cameras[spec.name] = cam.start()
    return cameras


class DepthClouds:
    """The manifest's point clouds from depth cameras on the robot: each camera's newest depth frame (metres,
    aligned to colour, with the colour intrinsics), its pose from its DepthMount at this observation, merged and
    sampled by runtime/pointcloud.py exactly as the simulator and policy_node do."""

    def __init__(self, specs: list[PointCloudSpec], cameras: dict, mounts: dict[str, DepthMount]):
        missing = [c for c in depth_cameras_of(specs) if c not in mounts]
        if missing:
            raise ValueError(f"depth camera(s) {missing} have no mount: say where each is (fixed, with base_from_camera, "
                             "or hand, with eef_from_camera)")
        self.specs, self.cameras, self.mounts = list(specs), dict(cameras), dict(mounts)
        compile_kernels()

    def observe(self, proprio) -> tuple[dict, list[float]]:
        """(cloud name -> (num_points, 3) float32, the depth frames' stamps); ObservationError when a camera has no
        depth frame or no intrinsics yet."""
        points, stamps = {}, []
        for spec in self.specs:
            views = []
            for name in spec.cameras:
                camera = self.cameras[name]
                frame = camera.latest()
                if frame is None or frame.depth is None:
                    raise ObservationError(f"depth camera '{name}' has no depth frame yet")
                intr = camera.intrinsics()
                if intr is None:
                    raise ObservationError(f"depth camera '{name}': the driver gave no intrinsics")
                views.append((frame.depth, CameraModel(intr.fx, intr.fy, intr.cx, intr.cy,
                                                       self.mounts[name].base_from_camera(proprio))))
                stamps.append(float(frame.stamp))
            points[spec.name] = merged_cloud(views, spec)
        return points, stamps

    def stop(self) -> None:
        for camera in self.cameras.values():
            camera.stop()


def open_depth_cameras(manifest: Manifest, camera: str, mounts: dict[str, DepthMount] | None,
                       **camera_kwargs) -> DepthClouds | None:
    """One started depth camera (native resolution, depth aligned to colour) per camera the manifest's point clouds
    name, in that order; None for a model without point clouds. Per-camera keyword lists as open_cameras."""
    specs = manifest.observation.point_clouds
    if not specs:
        return None
    names = depth_cameras_of(specs)
    clouds = DepthClouds(specs, {}, dict(mounts or {}))  # checks the mounts before any camera opens
    for i, name in enumerate(names):
        clouds.cameras[name] = make_camera(camera, name=name, depth=True,
                                           **_camera_kwargs(i, len(names), camera_kwargs)).start()
    return clouds


def franka_rig(manifest: Manifest, config_path: str, camera: str, rate_hz: float | None = None,
               overrides: list[str] | None = None, mounts: dict[str, DepthMount] | None = None,
               **camera_kwargs) -> FrankaBridge:
    """Connects the arm and starts the cameras (colour for the manifest's images, depth for its point clouds, with
    `mounts` saying where each depth camera is); the bridge's policy rate is the manifest's control rate and its
    command rate `rate_hz` (default: the same)."""
    config = load_yaml(FrankaConfig, config_path, overrides=list(overrides or []) + [f"rate_hz={manifest.control_rate_hz}"])
    if rate_hz:
        config.command_rate_hz = rate_hz
    clouds = open_depth_cameras(manifest, camera, mounts, **camera_kwargs)
    try:
        cameras = open_cameras(manifest, camera, **camera_kwargs)
    except Exception:
        if clouds is not None:
            clouds.stop()
        raise
    try:
        return FrankaBridge(config, cameras=cameras, clouds=clouds)
    except Exception:
        for cam in cameras.values():
            cam.stop()
        if clouds is not None:
            clouds.stop()
        raise
