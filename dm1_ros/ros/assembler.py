"""ObservationAssembler: the latest image(s) and robot state -> one Observation, or the reason there is none.

Callbacks only store messages (cheap); conversion happens when an observation is built. The observation is
stamped with its oldest image's header stamp (the policy acts on what the cameras saw then); whether that is fresh
enough is the consumer's call (the Planner's watchdog). The robot state must be fresh at `now` (a Watchdog over its
stamps: too old, from the future, going back or not finite), else the observation is refused. Imports no rclpy:
messages are read by field name.
"""
from __future__ import annotations

import numpy as np

from dm1_ros.ros.conversions import image_to_array, proprio_from_state, to_sec
from dm1_ros.ros.topics import FINGER_JOINTS
from dm1_ros.runtime.contract import Observation
from dm1_ros.runtime.images import resize_image
from dm1_ros.runtime.safety import Watchdog


class ObservationAssembler:
    def __init__(self, image_keys: list[str], image_shapes: dict[str, tuple[int, int]] | None = None,
                 max_state_age_s: float = 0.25, finger_names=FINGER_JOINTS, resize: bool = True):
        """image_shapes: key -> (height, width) the consumer wants (resized when `resize`, else refused)."""
        self.image_keys = list(image_keys)
        self.image_shapes = dict(image_shapes or {})
        self.state_watchdog = Watchdog(max_state_age_s, "state")
        self.finger_names = tuple(finger_names)
        self.resize = resize
        self.images: dict[str, object] = {}
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

    def set_pose(self, msg) -> None:
        self.pose = msg

    def set_joints(self, msg) -> None:
        self.joints = msg

    def clear(self) -> None:
        self.images.clear()
        self.pose = self.joints = None
        self.state_watchdog.clear()

    def image_stamp(self) -> float | None:
        """The oldest of the latest images' stamps; None until every camera has sent one."""
        if any(k not in self.images for k in self.image_keys):
            return None
        return min(to_sec(self.images[k].header.stamp) for k in self.image_keys) if self.image_keys else None

    def state_stamp(self) -> float | None:
        if self.pose is None or self.joints is None:
            return None
        return min(to_sec(self.pose.header.stamp), to_sec(self.joints.header.stamp))

    def build(self, now: float) -> tuple[Observation | None, str | None]:
        """-> (observation, None) or (None, reason) with reason in no_image, no_state, stale_state, bad_image,
        bad_state."""
        stamp = self.image_stamp()
        if stamp is None and self.image_keys:
            return None, "no_image"
        state_stamp = self.state_stamp()
        if state_stamp is None:
            return None, "no_state"
        self.state_watchdog.feed(state_stamp)
        if self.state_watchdog.check(now):
            return None, "stale_state"
        if stamp is None:
            stamp = state_stamp
        images = {}
        for key in self.image_keys:
            try:
                img = image_to_array(self.images[key])
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
        return Observation(images=images, proprio=proprio, stamp=stamp), None
