"""camera_node: RealSense / OpenCV / .db3 replay -> sensor_msgs/Image (rgb8) + CameraInfo on realsense-ros topics.

configure opens the camera (a missing device fails the transition with the connected serials in the message),
activate publishes. serial_no follows realsense-ros: `serial_no:=_123456789012` (a leading underscore keeps the
digits a string; quotes are stripped too). CameraInfo carries the driver's intrinsics (RealSense and its
recordings), zeros (uncalibrated) otherwise. With `depth:=true` (RealSense and .db3 replay) the depth aligned to
colour goes out as realsense-ros does it (16UC1 millimetres on aligned_depth_to_color/image_raw, with the colour
intrinsics on its camera_info), and with `pointcloud:=true` also as a PointCloud2 in the colour optical frame
(every valid pixel back-projected, runtime/pointcloud.py). Frames are published from the camera's own thread the moment they arrive, stamped with the
ROS time of their arrival. Diagnostics: achieved vs declared fps, frames, errors, reconnects, staleness.
"""
from __future__ import annotations

import time

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from dm1_ros.runtime.images import parse_size
from dm1_ros.ros.conversions import array_to_image, camera_info, depth_to_image, points_to_cloud
from dm1_ros.ros.node_base import SENSOR_QOS, Dm1Node, Param, run
from dm1_ros.ros.topics import camera_topics

KINDS = ("realsense", "opencv", "replay")


class CameraNode(Dm1Node):
    PARAMETERS = (
        Param("camera", "realsense", "camera kind: realsense | opencv | replay", configure_only=True),
        Param("serial_no", "", "RealSense serial number ('' = the only one connected); _123456789012 keeps digits "
              "a string (realsense-ros convention)", configure_only=True),
        Param("color_profile", "640x480x30", "WIDTHxHEIGHTxFPS as realsense-ros spells it", configure_only=True),
        Param("device", "0", "OpenCV device index, /dev/videoN or a video file", configure_only=True),
        Param("replay_path", "", "librealsense recording (.db3/.bag) for camera:=replay", configure_only=True),
        Param("replay_loop", True, "replay: start over at the end", configure_only=True),
        Param("resize", "", "WIDTHxHEIGHT to publish instead of the native size ('' = native)", configure_only=True),
        Param("frame_id", "camera_color_optical_frame", "header.frame_id of images and camera_info"),
        Param("camera_namespace", "camera", "topics go to /<camera_namespace>/<camera_name>/... as realsense-ros "
              "names them (one namespace per camera of a rig)", read_only=True),
        Param("camera_name", "camera", "see camera_namespace", read_only=True),
        Param("max_age_s", 0.25, "a frame older than this makes the camera stale (diagnostics ERROR)"),
        Param("warmup_frames", 5, "RealSense frames dropped after every start (auto exposure)", configure_only=True),
        Param("depth", False, "also stream depth aligned to colour (realsense, replay) and publish it on "
              "aligned_depth_to_color/image_raw (default camera: /camera/camera/...)", configure_only=True),
        Param("pointcloud", False, "publish the depth as sensor_msgs/PointCloud2 on depth/color/points (needs depth)",
              configure_only=True),
    )

    def __init__(self, *, camera_factory=None, name: str = "camera", **kwargs):
        """camera_factory(**kwargs) -> a dm1_ros.hardware.cameras.Camera (tests inject a SoftwareCamera). name: the
        node's (a rig's launch names each camera node <namespace>_camera)."""
        super().__init__(name, **kwargs)
        self.camera_factory = camera_factory
        self.camera = None
        self.intrinsics = None
        self.published = 0
        self.topics = camera_topics(self.p("camera_namespace"), self.p("camera_name"))
        self.image_pub = self.create_publisher(Image, self.topics["image"], SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, self.topics["info"], SENSOR_QOS)
        self.depth_pub = self.create_publisher(Image, self.topics["depth"], SENSOR_QOS)
        self.depth_info_pub = self.create_publisher(CameraInfo, self.topics["depth_info"], SENSOR_QOS)
        self.points_pub = self.create_publisher(PointCloud2, self.topics["points"], SENSOR_QOS)
        self._camera_model = None

    def validate(self, name, value):
        from dm1_ros.hardware.cameras import parse_profile

        try:
            if name == "camera" and value not in KINDS:
                return f"{value!r} is not one of {', '.join(KINDS)}"
            if name == "color_profile":
                parse_profile(value)
            if name == "resize":
                parse_size(value)
            if name in ("max_age_s",) and value <= 0:
                return "must be positive"
        except ValueError as exc:
            return str(exc)
        return None

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def configure(self) -> None:
        from dm1_ros.hardware.cameras import make_camera

        kind = self.p("camera")
        size = parse_size(self.p("resize"))
        if self.p("pointcloud") and not self.p("depth"):
            raise ValueError("pointcloud:=true needs depth:=true (the cloud is made from the aligned depth)")
        if self.p("depth") and kind == "opencv":
            raise ValueError("depth:=true needs a depth camera: camera:=realsense or camera:=replay")
        common = dict(resize=size, max_age_s=self.p("max_age_s"), on_frame=self._on_frame)
        if self.p("depth"):
            common["depth"] = True
        if kind == "realsense":
            kwargs = dict(serial_no=self.p("serial_no"), color_profile=self.p("color_profile"),
                          warmup_frames=self.p("warmup_frames"), **common)
        elif kind == "opencv":
            kwargs = dict(device=self.p("device"), profile=self.p("color_profile"), **common)
        else:
            if not self.p("replay_path"):
                raise ValueError("camera:=replay needs replay_path (a .db3 or .bag recording)")
            kwargs = dict(path=self.p("replay_path"), loop=self.p("replay_loop"), **common)
        factory = self.camera_factory or (lambda **kw: make_camera(kind, **kw))
        self.camera = factory(**kwargs)
        self.camera.start()  # opens the device here: a missing camera fails configure, loudly
        self.intrinsics = self.camera.intrinsics()  # the driver's (RealSense, recordings); None: uncalibrated
        if self.p("pointcloud"):
            if self.intrinsics is None:
                raise ValueError(f"camera {self.camera.name} reports no intrinsics: no point cloud can be made")
            from dm1_ros.runtime.pointcloud import CameraModel

            i = self.intrinsics
            self._camera_model = CameraModel(i.fx, i.fy, i.cx, i.cy)
        self.get_logger().info(f"camera {self.camera.name} started ({self.p('color_profile')})")

    def cleanup(self) -> None:
        camera, self.camera = self.camera, None
        if camera is not None:
            camera.stop()

    # --- frames (camera thread) --------------------------------------------------------------------------------
    def _on_frame(self, frame) -> None:
        if self.state != "active":
            return
        stamp = self.now() - max(0.0, time.monotonic() - frame.stamp)  # arrival time on the ROS clock
        frame_id = self.p("frame_id")
        msg = array_to_image(frame.image, stamp, frame_id)
        h, w = frame.image.shape[:2]
        self.image_pub.publish(msg)
        intr = self.intrinsics
        k, d = (None, None) if intr is None else (intr.k, list(intr.coeffs))
        info = camera_info(w, h, stamp, frame_id, k, d)
        self.info_pub.publish(info)
        if frame.depth is not None:
            self.depth_pub.publish(depth_to_image(frame.depth, stamp, frame_id))
            self.depth_info_pub.publish(info)
            if self._camera_model is not None:
                from dm1_ros.runtime.pointcloud import backproject

                self.points_pub.publish(points_to_cloud(backproject(frame.depth, self._camera_model), stamp, frame_id))
        self.published += 1

    # --- diagnostics -------------------------------------------------------------------------------------------
    def diagnostics(self):
        if self.camera is None:
            return super().diagnostics()
        declared = None
        try:
            from dm1_ros.hardware.cameras import parse_profile

            declared = float(parse_profile(self.p("color_profile"))[2])
        except ValueError:
            pass
        fps = float(self.camera.fps)
        stale = self.camera.is_stale(max_age_s=self.p("max_age_s"))
        values = {"camera": self.camera.name, "state": self.state, "fps": fps, "declared_fps": declared or 0.0,
                  "frames": self.camera.frames_received, "published": self.published, "errors": self.camera.errors,
                  "reconnects": self.camera.reconnects, "stale": stale, "last_error": self.camera.last_error or ""}
        if stale:
            level, message = "ERROR", f"no frame for more than {self.p('max_age_s')} s"
        elif declared and self.camera.frames_received > 10 and fps < 0.9 * declared:
            level, message = "WARN", f"{fps:.1f} fps, below the declared {declared:.0f}"
        else:
            level, message = ("OK" if self.state == "active" else "WARN"), f"{fps:.1f} fps ({self.state})"
        return [("camera", level, message, values)]


def main(args=None) -> int:
    return run(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
