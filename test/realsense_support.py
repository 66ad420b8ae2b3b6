"""pyrealsense2's software device for the tests: the real librealsense pipeline, recorder and playback run
without hardware. A SoftwareRealSense registers in a private rs.context under a serial like a USB camera, and
record_db3() writes known frames to a .db3 the way a RealSense session is recorded."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

W, H = 64, 48


def pattern(i: int) -> np.ndarray:
    """Frame i: R = i (which frame), G = 5*row, B = 4*column (orientation and channel order)."""
    img = np.empty((H, W, 3), np.uint8)
    img[..., 0] = i % 256
    img[..., 1] = (np.arange(H) * 5)[:, None]
    img[..., 2] = (np.arange(W) * 4)[None, :]
    return img


def index_of(image: np.ndarray) -> int:
    return int(image[0, 0, 0])


def depth_pattern(i: int) -> np.ndarray:
    """Depth of frame i in millimetres (z16): 600 + 3 * column + i, so value, orientation and frame show."""
    return (600 + 3 * np.arange(W)[None, :] + i + np.zeros((H, 1))).astype(np.uint16)


def _rs():
    return pytest.importorskip("pyrealsense2")


class SoftwareRealSense:
    """A pyrealsense2 software device with one 64x48 rgb8 color stream (and with depth=True a z16 depth stream in
    millimetres from a depth sensor, same intrinsics, identity extrinsics to colour), registered in a private
    rs.context so that rs.pipeline (and so RealSenseCamera) finds it by serial like a USB camera."""

    def __init__(self, serial="000000000042", fps=30, depth=False):
        rs = _rs()
        self.rs, self.serial = rs, serial
        self.device = rs.software_device()
        self.sensor = self.device.add_sensor("RGB Camera")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 50.0, 50.0, W / 2, H / 2
        intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
        stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = W, H, fps, 3, rs.format.rgb8
        stream.intrinsics = intr
        self.profile = self.sensor.add_video_stream(stream).as_video_stream_profile()
        self.depth_sensor = self.depth_profile = None
        if depth:
            self.depth_sensor = self.device.add_sensor("Stereo Module")
            ds = rs.video_stream()
            ds.type, ds.index, ds.uid = rs.stream.depth, 0, 1
            ds.width, ds.height, ds.fps, ds.bpp, ds.fmt = W, H, fps, 2, rs.format.z16
            ds.intrinsics = intr
            self.depth_profile = self.depth_sensor.add_video_stream(ds).as_video_stream_profile()
            self.depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
            identity = rs.extrinsics()
            identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
            self.depth_profile.register_extrinsics_to(self.profile, identity)
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "Software RealSense")
        self.context = rs.context()
        # librealsense 2.59 keeps only a weak reference to a software device's info in the context (it vanishes
        # from query_devices at once); the device list handed to the devices-changed callback holds a strong one.
        self._added = []
        self.context.set_devices_changed_callback(lambda event: self._added.append(event.get_new_devices()))
        self.device.add_to(self.context)
        self._keep = []  # pixel buffers stay alive while librealsense may read them
        self._pump = None
        self._pump_stop = threading.Event()
        self.paused = threading.Event()
        self.injected = 0

    def inject(self, i, sensor=None, depth_sensor=None):
        rs = self.rs
        streams = [(pattern(i), 3, self.profile, sensor or self.sensor)]
        if self.depth_sensor is not None:
            streams.append((depth_pattern(i), 2, self.depth_profile, depth_sensor or self.depth_sensor))
        for pixels, bpp, profile, target in streams:
            frame = rs.software_video_frame()
            self._keep.append(pixels)
            frame.pixels, frame.bpp, frame.stride = pixels, bpp, W * bpp
            frame.timestamp = 1000.0 + i * 33.0  # device clock, ms
            frame.domain = rs.timestamp_domain.hardware_clock
            frame.frame_number = i
            frame.profile = profile
            target.on_video_frame(frame)

    def streaming(self):
        return bool(self.sensor.get_active_streams())

    def start_pump(self, rate_hz=100.0):
        """Inject frames 0, 1, 2, ... while the sensor streams and the pump is not paused."""

        def pump():
            while not self._pump_stop.is_set():
                if self.streaming() and not self.paused.is_set():
                    self.inject(self.injected)
                    self.injected += 1
                time.sleep(1.0 / rate_hz)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()

    def stop_pump(self):
        self._pump_stop.set()
        if self._pump is not None:
            self._pump.join()




def record_db3(device: SoftwareRealSense, path, frames: int = 12, fps: float = 30.0) -> str:
    """`frames` known frames (pattern(0), pattern(1), ...) written to `path` by rs.recorder around the device, at
    `fps` (the recorder stamps frames with its own clock: injected back to back, a real-time replay would play
    them thousands of times a second)."""
    rs = device.rs
    path = str(path)
    recorder = rs.recorder(path, device.device)
    sensors = recorder.query_sensors()
    queues = [rs.frame_queue(16) for _ in sensors]
    for sensor, queue in zip(sensors, queues):
        sensor.open(sensor.get_stream_profiles()[0])
        sensor.start(queue)
    start = time.monotonic()
    for i in range(frames):
        time.sleep(max(0.0, start + i / fps - time.monotonic()))
        device.inject(i)
        for queue in queues:
            queue.wait_for_frame(1000)
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    del sensor, sensors, recorder  # the recorder closes its file when destroyed
    return path
