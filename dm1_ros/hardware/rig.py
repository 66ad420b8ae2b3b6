"""A real robot rig for the in-process loop: Franka bridge + cameras named as the policy's manifest expects.

    robot = franka_rig(manifest, "config/robot/franka.yaml", camera="realsense", serial_no="123", rate_hz=200)

No torch, no rclpy: `dm1 run --robot franka` and bench/loop.py build the same rig.
"""
from __future__ import annotations

from dm1_ros.configuration import load_yaml
from dm1_ros.hardware.cameras import make_camera
from dm1_ros.hardware.franka import FrankaBridge, FrankaConfig
from dm1_ros.runtime.bundle import Manifest


def open_cameras(manifest: Manifest, camera: str, **camera_kwargs) -> dict:
    """One started camera per image in the manifest, resized to what the policy was trained on. Several cameras
    of one kind take per-camera keyword lists (serial_no=["A", "B"])."""
    cameras = {}
    images = manifest.observation.images
    for i, spec in enumerate(images):
        kwargs = {k: (v[i] if isinstance(v, (list, tuple)) and len(images) > 1 else v) for k, v in camera_kwargs.items()}
        cam = make_camera(camera, name=spec.name, resize=(spec.width, spec.height), **kwargs)
        cameras[spec.name] = cam.start()
    return cameras


def franka_rig(manifest: Manifest, config_path: str, camera: str, rate_hz: float | None = None,
               overrides: list[str] | None = None, **camera_kwargs) -> FrankaBridge:
    """Connects the arm and starts the cameras; the bridge's policy rate is the manifest's control rate and its
    command rate `rate_hz` (default: the same)."""
    config = load_yaml(FrankaConfig, config_path, overrides=list(overrides or []) + [f"rate_hz={manifest.control_rate_hz}"])
    if rate_hz:
        config.command_rate_hz = rate_hz
    cameras = open_cameras(manifest, camera, **camera_kwargs)
    try:
        return FrankaBridge(config, cameras=cameras)
    except Exception:
        for cam in cameras.values():
            cam.stop()
        raise
