"""ObservationAssembler: the latest image(s) and robot state -> one Observation, or the reason there is none.

Callbacks only store messages (cheap); conversion happens when an observation is built. The observation is
stamped with its oldest image's header stamp (the policy acts on what the cameras saw then); whether that is fresh
enough is the consumer's call (the Planner's watchdog). The robot state must be fresh at `now` (a Watchdog over its
stamps: too old, from the future, going back or not finite), else the observation is refused.

Point clouds (a model whose manifest lists point_clouds): each of the cloud's cameras sends its depth aligned to
colour (16UC1 mm or 32FC1 m) and a CameraInfo (intrinsics); its pose comes from a DepthMount: fixed (the camera in
the base frame, 4 x 4) or on the hand (the camera in the end-effector frame, composed with the pose of the same
observation, as a hand-eye calibration gives it). The cloud is built by runtime/pointcloud.py as the manifest says
(frame, crop, sampling), and the depth stamps count among the image stamps. Imports no rclpy: messages are read by
field name.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from dm1_ros.ros.conversions import image_to_array, image_to_depth, proprio_from_state, to_sec
from dm1_ros.ros.topics import FINGER_JOINTS
from dm1_ros.runtime.bundle import PointCloudSpec
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.images import resize_image
from dm1_ros.runtime.pointcloud import (CameraModel, DepthMount, PointCloudError, compile_kernels, depth_cameras_of,
                                        merged_cloud)
from dm1_ros.runtime.safety import Watchdog

RECENT_IMAGES = 8  # per camera: enough to pair 30 Hz cameras a few frames apart


class ObservationAssembler:
    def __init__(self, image_keys: list[str], image_shapes: dict[str, tuple[int, int]] | None = None,
                 max_state_age_s: float = 0.25, finger_names=FINGER_JOINTS, resize: bool = True,
                 point_clouds: list[PointCloudSpec] | None = None, mounts: dict[str, DepthMount] | None = None,
                 max_camera_skew_s: float = 0.05):
        """image_shapes: key -> (height, width) the consumer wants (resized when `resize`, else refused).
        point_clouds: the clouds to build; mounts: depth camera name -> DepthMount for each of their cameras.
        max_camera_skew_s: with several cameras, the images of one observation are the ones nearest in time to the
        most lagging camera's newest (approximate time, as message_filters), at most this far apart; farther is
        no observation ("unsynced_images")."""
        self.point_clouds = list(point_clouds or [])
        self.mounts = dict(mounts or {})
        self.depth_cameras = depth_cameras_of(self.point_clouds)
        missing = [c for c in self.depth_cameras if c not in self.mounts]
        if missing:
            raise ValueError(f"depth camera(s) {missing} have no mount (fixed or hand, with its 4 x 4 transform)")
        if self.depth_cameras:
            compile_kernels()
        self.depths: dict[str, object] = {}
        self.depth_infos: dict[str, object] = {}
        self.image_keys = list(image_keys)
        self.image_shapes = dict(image_shapes or {})
        self.state_watchdog = Watchdog(max_state_age_s, "state")
        self.finger_names = tuple(finger_names)
        self.resize = resize
        self.max_camera_skew_s = float(max_camera_skew_s)
        self.images: dict[str, object] = {}  # the newest image of each camera
        self.recent: dict[str, deque] = {k: deque(maxlen=RECENT_IMAGES) for k in self.image_keys}
        self.pose = None
        self.joints = None

    @property
    def max_state_age_s(self) -> float:
        return self.state_watchdog.timeout_s

    @max_state_age_s.setter
    def max_state_age_s(self, value: float) -> None:
        self.state_watchdog.timeout_s = float(value)

    def set_image(self, key: str, msg) -> None:
        self.images[key] = msg
        self.recent.setdefault(key, deque(maxlen=RECENT_IMAGES)).append(msg)

    def synced_images(self, reference: float | None = None) -> tuple[dict[str, object] | None, float]:
        """(key -> the image nearest in time to `reference`, their largest distance from it, s); reference defaults
        to the most lagging camera's newest stamp (approximate time), and with one camera and no reference the
        newest image is taken as it is. (None, inf) until every camera has sent one."""
        if any(k not in self.images for k in self.image_keys):
            return None, float("inf")
        if reference is None:
            if len(self.image_keys) < 2:
                return {k: self.images[k] for k in self.image_keys}, 0.0
            reference = min(to_sec(self.images[k].header.stamp) for k in self.image_keys)
        chosen = {k: min(self.recent[k], key=lambda m: abs(to_sec(m.header.stamp) - reference)) for k in self.image_keys}
        skew = max(abs(to_sec(m.header.stamp) - reference) for m in chosen.values())
        return chosen, skew

    def set_depth(self, camera: str, msg) -> None:
        self.depths[camera] = msg

    def set_depth_info(self, camera: str, msg) -> None:
        self.depth_infos[camera] = msg

    def set_pose(self, msg) -> None:
        self.pose = msg

    def set_joints(self, msg) -> None:
        self.joints = msg

    def clear(self) -> None:
        self.images.clear()
        for history in self.recent.values():
            history.clear()
        self.depths.clear()
        self.pose = self.joints = None
        self.state_watchdog.clear()

    def image_stamp(self) -> float | None:
        """The oldest stamp of the images an observation would take now (synced_images) and the newest depth
        images; None until every camera has sent one."""
        if any(c not in self.depths for c in self.depth_cameras):
            return None
        chosen, _ = self.synced_images()
        return None if chosen is None else self._oldest(chosen)

    def _oldest(self, chosen: dict) -> float | None:
        stamps = [to_sec(m.header.stamp) for m in chosen.values()]
        stamps += [to_sec(self.depths[c].header.stamp) for c in self.depth_cameras]
        return min(stamps) if stamps else None

    def state_stamp(self) -> float | None:
        if self.pose is None or self.joints is None:
            return None
        return min(to_sec(self.pose.header.stamp), to_sec(self.joints.header.stamp))

    def build(self, now: float, reference: float | None = None) -> tuple[Observation | None, str | None]:
        """-> (observation, None) or (None, reason) with reason in no_image, unsynced_images, no_depth, no_state,
        stale_state, bad_image, bad_depth, bad_state. reference: take the images nearest this stamp (a replay that
        knows which observation a command was planned on) instead of the newest ones."""
        chosen, skew = self.synced_images(reference)
        if chosen is None:
            return None, "no_image"
        if any(c not in self.depths for c in self.depth_cameras):
            return None, "no_depth"
        state_stamp = self.state_stamp()
        if state_stamp is None:
            return None, "no_state"
        self.state_watchdog.feed(state_stamp)
        if self.state_watchdog.check(now):
            return None, "stale_state"
        if skew > self.max_camera_skew_s:
            return None, "unsynced_images"
        stamp = self._oldest(chosen)
        if stamp is None:
            stamp = state_stamp
        images = {}
        for key in self.image_keys:
            try:
                img = image_to_array(chosen[key])
            except ValueError:
                return None, "bad_image"
            want = self.image_shapes.get(key)
            if want is not None and img.shape[:2] != tuple(want):
                if not self.resize:
                    return None, "bad_image"
                img = resize_image(img, *want)
            images[key] = img
        try:
            proprio = proprio_from_state(self.pose, self.joints, self.finger_names)
        except ValueError:
            return None, "bad_state"
        if not np.all(np.isfinite(proprio)):
            return None, "bad_state"
        points = {}
        for cloud in self.point_clouds:
            try:
                points[cloud.name] = merged_cloud([self._depth_view(c, proprio) for c in cloud.cameras], cloud)
            except (ValueError, KeyError):  # PointCloudError is a ValueError: bad depth, no intrinsics, empty crop
                return None, "bad_depth"
        return Observation(images=images, proprio=proprio, stamp=stamp, points=points), None

    def _depth_view(self, camera: str, proprio: np.ndarray) -> tuple[np.ndarray, CameraModel]:
        """(depth in metres, camera model in the base frame) of one depth camera for this observation."""
        info = self.depth_infos.get(camera)
        k = np.asarray(info.k if info is not None else np.zeros(9), np.float64)
        if k[0] <= 0 or k[4] <= 0:
            raise PointCloudError(f"depth camera {camera}: no camera_info with intrinsics yet")
        pose = self.mounts[camera].base_from_camera(proprio)  # hand: this observation's eef pose @ eef_from_camera
        return image_to_depth(self.depths[camera]), CameraModel(k[0], k[4], k[2], k[5], pose)
