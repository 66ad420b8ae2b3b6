"""Cameras: one small interface over RealSense, OpenCV/V4L2, .db3 replay and pushed (sim/test) frames.

Every camera runs one background thread that keeps only the *latest* frame: the control loop wants the
newest image, never a backlog, and must be able to tell when images stop coming (`is_stale`) so it can hold.

    cam = RealSenseCamera("123456789012", color_profile="640x480x30", resize=(96, 96))
    with cam:
        frame = cam.wait_for_frame(timeout_s=2.0)   # Frame(image HxWx3 uint8 RGB, stamp, device_stamp, index)
    depth_cam = RealSenseCamera(depth=True)          # + frame.depth: metres, aligned to the colour image
        if cam.is_stale(max_age_s=0.2): ...          # hold the robot

No torch, no rclpy here (a robot PC deploys without them); pyrealsense2 and cv2 are imported lazily so this
module imports without either.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import queue
import re
import sys
import threading
import time
from typing import Callable

import numpy as np

from dm1_ros.errors import Dm1Error

log = logging.getLogger(__name__)

__all__ = [
    "Frame",
    "Camera",
    "CameraNotFoundError",
    "EndOfStream",
    "RealSenseCamera",
    "ReplayCamera",
    "OpenCVCamera",
    "SoftwareCamera",
    "make_camera",
    "parse_profile",
]


@dataclasses.dataclass
class Frame:
    """One color image as the policy sees it.

    `stamp` is host `time.monotonic()` at arrival: the clock the control loop's watchdog uses, so staleness is
    judged on one time base whatever the camera. `device_stamp` (seconds, camera clock) is kept for
    synchronisation and recordings; it is None when the source has none. `index` counts delivered frames.
    """

    image: np.ndarray
    stamp: float
    device_stamp: float | None
    index: int
    depth: np.ndarray | None = None  # (H, W) float32 metres aligned to `image` (0: no reading); depth cameras only


@dataclasses.dataclass
class Intrinsics:
    """Pinhole intrinsics of the images a camera delivers (after its resize), in pixels; the distortion model and
    coefficients as the driver reports them (librealsense: 'brown_conrady' / 'inverse_brown_conrady', 5 values)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "plumb_bob"
    coeffs: tuple = (0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def k(self) -> list[float]:
        """Row-major 3x3 camera matrix, as sensor_msgs/CameraInfo.k."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def scaled(self, width: int, height: int) -> "Intrinsics":
        sx, sy = width / self.width, height / self.height
        return dataclasses.replace(self, width=int(width), height=int(height), fx=self.fx * sx, fy=self.fy * sy,
                                   cx=self.cx * sx, cy=self.cy * sy)


def _stream_intrinsics(pipe, resize) -> Intrinsics | None:
    """The color stream intrinsics of a started librealsense pipeline (device or recording), scaled to `resize`."""
    rs = _rs()
    intr = pipe.get_active_profile().get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
    model = str(intr.model).rsplit(".", 1)[-1]
    out = Intrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, model, tuple(intr.coeffs))
    return out.scaled(*resize) if resize is not None else out


class CameraNotFoundError(Dm1Error, RuntimeError):
    """The requested camera is not connected (or cannot be opened)."""


class EndOfStream(Exception):
    """Raised by `_read` when a finite source (replay without loop, video file) has no more frames."""


_PROFILE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def normalize_serial(serial: str | int | None) -> str | None:
    """A RealSense serial as users pass it -> the serial string ('' or None: any camera).

    realsense-ros's convention is followed: a leading underscore keeps a digits-only serial a string through ROS
    parameter parsing (`serial_no:=_123456789012`) and is removed here; surrounding quotes (`"'123456789012'"`,
    which a launch file passes through unchanged) are removed too."""
    if serial is None:
        return None
    text = str(serial).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    text = text.removeprefix("_")
    return text or None


def parse_profile(profile: str) -> tuple[int, int, int]:
    """'640x480x30' -> (640, 480, 30): width, height, fps, as realsense-ros spells a profile."""
    match = _PROFILE.match(profile) if isinstance(profile, str) else None
    if match is None or 0 in (values := tuple(int(g) for g in match.groups())):
        raise ValueError(f"bad camera profile {profile!r}: expected 'WIDTHxHEIGHTxFPS' with positive integers, "
                         f"e.g. '640x480x30'")
    return values


def _check_resize(resize) -> tuple[int, int] | None:
    if resize is None:
        return None
    try:
        w, h = (int(v) for v in resize)
    except (TypeError, ValueError):
        raise ValueError(f"bad resize {resize!r}: expected (width, height), e.g. (96, 96)") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"bad resize {resize!r}: width and height must be positive")
    return w, h


def _cv2():
    import cv2  # lazy: only resizing and OpenCVCamera need it

    return cv2


def _rs():
    try:
        import pyrealsense2 as rs  # lazy: robots without RealSense never need it
    except ImportError as e:
        raise ImportError("RealSense cameras need pyrealsense2 (pip install pyrealsense2; apt-get install "
                          "libusb-1.0-0)") from e
    return rs


class Camera:
    """Base class: subclasses implement `_open`, `_close` and a blocking `_read`; the thread lives here.

    `_read()` returns `(image HxWx3 uint8 RGB upright, device_stamp seconds | None[, depth HxW metres])`, or None
    when nothing came
    within its own short timeout (so `stop()` is never stuck behind it). An exception from `_read` is counted and
    answered with `_reconnect()` under exponential backoff instead of killing the thread: a camera unplugged for
    a second must come back without restarting the robot program.
    """

    #: first and largest wait between reconnection attempts (seconds)
    reconnect_backoff_s: tuple[float, float] = (0.05, 2.0)
    #: how many recent arrivals the achieved-fps estimate looks at
    fps_window: int = 30

    def __init__(self, name: str = "camera", resize: tuple[int, int] | None = None, max_age_s: float = 0.25,
                 on_frame: Callable[[Frame], None] | None = None):
        self.name = name
        self.resize = _check_resize(resize)
        self.max_age_s = float(max_age_s)
        self.on_frame = on_frame  # called on the camera thread for every frame (publishers, recorders)
        self.errors = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._count = 0
        self._arrivals: collections.deque[float] = collections.deque(maxlen=self.fps_window)
        self._finished = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what subclasses provide -------------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _read(self) -> tuple[np.ndarray, float | None] | None:
        raise NotImplementedError

    def _reconnect(self) -> None:
        """Close and reopen; raising means 'not back yet' and is retried after a longer wait."""
        self._close()
        self._open()

    @property
    def depth_scale(self) -> float | None:
        """Metres per unit of the raw depth stream, for a camera streaming depth (else None)."""
        aligned = getattr(self, "_depth", None)
        return None if aligned is None else aligned.scale

    def intrinsics(self) -> Intrinsics | None:
        """Intrinsics of the delivered images when the driver knows them (RealSense, its recordings), else None
        (uncalibrated)."""
        return None

    # -- verbs -------------------------------------------------------------------------------------------------
    def start(self) -> Camera:
        """Open the device on the caller's thread (so a missing camera fails here, loudly), then stream."""
        if self.running:
            return self
        if self._thread is not None:  # a finished stream: close it before opening again
            self.stop()
        self._stopping.clear()
        self._finished = False
        self._open()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then close the device (never while `_read` may still be using it)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10.0)
            if thread.is_alive():
                log.warning("camera %s: reader thread did not stop within 10 s", self.name)
        try:
            self._close()
        finally:
            with self._cond:
                self._cond.notify_all()

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one."""
        with self._cond:
            return self._latest

    def wait_for_frame(self, timeout_s: float = 1.0, after: int | None = None) -> Frame:
        """Block until a frame newer than `after` (an index; default: the newest one now) arrives, return it.

        Pass `after=-1` to accept a frame that is already there.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if after is None:
                after = self._latest.index if self._latest is not None else -1
            while self._latest is None or self._latest.index <= after:
                if self._finished:
                    raise EOFError(f"camera {self.name!r}: the stream has ended ({self._count} frames delivered)")
                if self._thread is None:
                    raise RuntimeError(f"camera {self.name!r} is not running: call start() first")
                left = deadline - time.monotonic()
                if left <= 0:
                    detail = f"; last error: {self.last_error}" if self.last_error else ""
                    raise TimeoutError(f"camera {self.name!r}: no new frame within {timeout_s:.3g} s "
                                       f"({self._count} received so far, {self.errors} errors{detail})")
                self._cond.wait(left)
            return self._latest

    def is_stale(self, now: float | None = None, max_age_s: float | None = None) -> bool:
        """True when no frame is younger than `max_age_s` (host monotonic clock): the robot should hold."""
        frame = self.latest()
        if frame is None:
            return True
        now = time.monotonic() if now is None else now
        return now - frame.stamp > (self.max_age_s if max_age_s is None else max_age_s)

    # -- nouns -------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        """A finite source (replay without loop, video file) has delivered its last frame."""
        return self._finished

    @property
    def frames_received(self) -> int:
        return self._count

    @property
    def fps(self) -> float:
        """Achieved rate over the last `fps_window` arrivals (0.0 with fewer than two)."""
        with self._cond:
            if len(self._arrivals) < 2:
                return 0.0
            span = self._arrivals[-1] - self._arrivals[0]
            return (len(self._arrivals) - 1) / span if span > 0 else 0.0

    def __enter__(self) -> Camera:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, frames={self._count}, errors={self.errors})"

    # -- the thread --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._read()
            except EndOfStream:
                with self._cond:
                    self._finished = True
                    self._cond.notify_all()
                return
            except Exception as e:  # noqa: BLE001 - any device error means: recover, don't die
                self._note_error(e)
                self._recover()
                continue
            if item is not None:
                self._deliver(*item)

    def _recover(self) -> None:
        delay, longest = self.reconnect_backoff_s
        while not self._stopping.wait(delay):
            try:
                self._reconnect()
            except Exception as e:  # noqa: BLE001 - still gone: wait longer
                self._note_error(e)
                delay = min(delay * 2, longest)
            else:
                self.reconnects += 1
                log.info("camera %s: reconnected (%d errors so far)", self.name, self.errors)
                return

    def _note_error(self, e: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(e).__name__}: {e}"
        log.warning("camera %s: %s", self.name, self.last_error)

    def _deliver(self, image: np.ndarray, device_stamp: float | None, depth: np.ndarray | None = None) -> None:
        stamp = time.monotonic()
        if self.resize is not None and (image.shape[1], image.shape[0]) != self.resize:
            cv2 = _cv2()
            image = cv2.resize(image, self.resize, interpolation=cv2.INTER_AREA)
            if depth is not None:  # nearest: averaging would invent depths between an edge's two sides
                depth = cv2.resize(depth, self.resize, interpolation=cv2.INTER_NEAREST)
        with self._cond:
            frame = Frame(image=image, stamp=stamp, device_stamp=device_stamp, index=self._count, depth=depth)
            self._count += 1
            self._latest = frame
            self._arrivals.append(stamp)
            self._cond.notify_all()
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception:  # noqa: BLE001 - a bad subscriber must not stop the camera
                log.exception("camera %s: on_frame callback failed", self.name)


class SoftwareCamera(Camera):
    """Frames pushed by code (simulator renders, tests): the same thread, staleness and resize as a device.

    Push upright RGB images (robosuite renders upside down: flip before pushing).
    """

    def __init__(self, name: str = "software", resize: tuple[int, int] | None = None, max_age_s: float = 0.25,
                 on_frame: Callable[[Frame], None] | None = None, poll_s: float = 0.05,
                 intrinsics: Intrinsics | None = None):
        """intrinsics: of the pushed images (scaled to `resize` when it is set), if the pusher knows them."""
        super().__init__(name=name, resize=resize, max_age_s=max_age_s, on_frame=on_frame)
        self.poll_s = poll_s
        self._intrinsics = intrinsics
        self._queue: queue.Queue = queue.Queue(maxsize=8)

    def intrinsics(self) -> Intrinsics | None:
        if self._intrinsics is None or self.resize is None:
            return self._intrinsics
        return self._intrinsics.scaled(*self.resize)

    def push(self, image: np.ndarray, device_stamp: float | None = None) -> None:
        """Hand over one HxWx3 uint8 RGB image (copied, so the caller may reuse its buffer)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"camera {self.name!r}: expected an HxWx3 uint8 RGB image, got shape {image.shape} "
                             f"dtype {image.dtype}")
        self._put((image.copy(), device_stamp))

    def fail(self, error: BaseException | None = None) -> None:
        """Make the next read raise `error`: fault injection for tests and simulated unplugs."""
        self._put(error if error is not None else RuntimeError("simulated camera failure"))

    def _put(self, item) -> None:
        while True:  # keep the newest: drop the oldest when the reader is behind
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _read(self):
        try:
            item = self._queue.get(timeout=self.poll_s)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item


class _AlignedDepth:
    """Depth aligned to colour for a started librealsense pipeline (device or recording): rs.align to the colour
    stream, the device's depth scale (D4xx: 0.001 m per unit)."""

    def __init__(self, rs, pipe):
        self.scale = float(pipe.get_active_profile().get_device().first_depth_sensor().get_depth_scale())
        self.align = rs.align(rs.stream.color)


def _read_frameset(rs, frames, depth: _AlignedDepth | None):
    """A frameset -> Camera._read's item: (rgb, device stamp s) or, with depth, (rgb, stamp, depth in metres); None
    when a stream is missing (a depth policy must not see colour without its depth)."""
    if depth is not None:
        frames = depth.align.process(frames)
    color = frames.get_color_frame()
    if not color:
        return None
    item = (_color_to_rgb(rs, color), color.get_timestamp() / 1000.0)
    if depth is None:
        return item
    d = frames.get_depth_frame()
    if not d:
        return None
    return (*item, np.asanyarray(d.get_data()).astype(np.float32) * np.float32(depth.scale))


def _color_to_rgb(rs, color_frame) -> np.ndarray:
    """Copy a librealsense color frame out of its pool as RGB (replays may hold other formats)."""
    data = np.asanyarray(color_frame.get_data())
    fmt = color_frame.get_profile().format()
    if fmt == rs.format.rgb8:
        return data.copy()
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(data[..., ::-1])
    if fmt == rs.format.rgba8:
        return np.ascontiguousarray(data[..., :3])
    if fmt == rs.format.bgra8:
        return np.ascontiguousarray(data[..., 2::-1])
    if fmt == rs.format.yuyv:
        cv2 = _cv2()
        return cv2.cvtColor(data.reshape(color_frame.get_height(), color_frame.get_width(), 2),
                            cv2.COLOR_YUV2RGB_YUYV)
    raise ValueError(f"unsupported RealSense color format {fmt}: expected rgb8, bgr8, rgba8, bgra8 or yuyv")


class RealSenseCamera(Camera):
    """Color stream of an Intel RealSense through rs.pipeline; with `depth=True` also the depth stream (z16, same
    size and rate), aligned to the colour image with rs.align and scaled to metres with the device's depth scale,
    in `Frame.depth` (the colour intrinsics then describe both).

    The first `warmup_frames` after every (re)start are dropped: auto-exposure settles over them. On an unplug
    `wait_for_frames` raises (no frame within `frame_timeout_s` is treated the same way: a silent camera is a
    broken one); the pipeline is then restarted, waiting (with backoff) until the serial shows up again. `record_to` writes what the device streams to a .db3 (librealsense's recorder); after a reconnect
    the recording continues in `<stem>-1.db3`, `<stem>-2.db3`, ... so nothing recorded is overwritten.
    `context` is the rs.context devices are looked up in (tests register a software device there).
    """

    def __init__(self, serial_no: str | None = None, color_profile: str = "640x480x30", warmup_frames: int = 5,
                 resize: tuple[int, int] | None = None, record_to: str | os.PathLike | None = None,
                 frame_timeout_s: float = 1.0, name: str | None = None, max_age_s: float = 0.25,
                 on_frame: Callable[[Frame], None] | None = None, context=None, depth: bool = False):
        super().__init__(name=name or f"realsense:{serial_no or 'any'}", resize=resize, max_age_s=max_age_s,
                         on_frame=on_frame)
        self.depth = bool(depth)
        self._depth: _AlignedDepth | None = None
        self.serial_no = normalize_serial(serial_no)
        self.width, self.height, self.rate = parse_profile(color_profile)
        self.color_profile = color_profile
        self.warmup_frames = int(warmup_frames)
        self.frame_timeout_s = float(frame_timeout_s)
        if record_to is not None and not os.fspath(record_to).endswith(".db3"):
            raise ValueError(f"record_to {os.fspath(record_to)!r}: librealsense records only to .db3 files")
        self.record_to = None if record_to is None else os.fspath(record_to)
        self.recorded_files: list[str] = []
        self.context = context
        self._pipe = None

    def connected_serials(self) -> list[str]:
        rs = _rs()
        ctx = self.context if self.context is not None else rs.context()
        return [d.get_info(rs.camera_info.serial_number) for d in ctx.query_devices()
                if d.supports(rs.camera_info.serial_number)]

    def _next_record_path(self) -> str:
        if not self.recorded_files:
            return self.record_to
        stem, ext = os.path.splitext(self.record_to)
        return f"{stem}-{len(self.recorded_files)}{ext}"

    def _open(self) -> None:
        rs = _rs()
        serials = self.connected_serials()
        if self.serial_no is None and not serials:
            raise CameraNotFoundError("no RealSense camera is connected (check the USB cable and that libusb can "
                                      "access it)")
        if self.serial_no is not None and self.serial_no not in serials:
            raise CameraNotFoundError(f"RealSense camera with serial {self.serial_no!r} is not connected; "
                                      f"connected serials: {', '.join(serials) if serials else 'none'}")
        pipe = rs.pipeline(self.context) if self.context is not None else rs.pipeline()
        config = rs.config()
        if self.serial_no is not None:
            config.enable_device(self.serial_no)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.rate)
        if self.depth:
            config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.rate)
        record_path = self._next_record_path() if self.record_to else None
        if record_path:
            config.enable_record_to_file(record_path)
        try:
            pipe.start(config)
        except RuntimeError as e:
            streams = "color rgb8" + (" + depth z16" if self.depth else "")
            raise RuntimeError(f"camera {self.name!r}: cannot start {streams} at {self.color_profile}: {e}") from e
        self._depth = _AlignedDepth(rs, pipe) if self.depth else None
        try:
            for _ in range(self.warmup_frames):
                pipe.wait_for_frames(self._timeout_ms())
        except RuntimeError:
            pipe.stop()
            del pipe  # releases the recorder
            if record_path:  # holds warm-up frames at most: don't litter one file per failed attempt
                for junk in (record_path, record_path + "-journal"):
                    if os.path.exists(junk):
                        os.remove(junk)
            raise
        if record_path:
            self.recorded_files.append(record_path)
        self._pipe = pipe

    def _timeout_ms(self) -> int:
        return max(1, int(self.frame_timeout_s * 1000))

    def intrinsics(self) -> Intrinsics | None:
        pipe = self._pipe
        return None if pipe is None else _stream_intrinsics(pipe, self.resize)

    def _close(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError as e:  # already gone with the device
                log.debug("camera %s: pipeline stop: %s", self.name, e)

    def _read(self):
        frames = self._pipe.wait_for_frames(self._timeout_ms())  # RuntimeError on timeout/unplug -> reconnect
        return _read_frameset(_rs(), frames, self._depth)


class ReplayCamera(Camera):
    """Plays the color stream of a librealsense recording (.db3, or a legacy .bag).

    `realtime=False` delivers every recorded frame in order as fast as it is consumed (tests, offline
    evaluation); `realtime=True` keeps the recorded pace and may drop. Without `loop`, the camera `finished`
    after the last frame.
    """

    def __init__(self, path: str | os.PathLike, loop: bool = True, realtime: bool = True,
                 resize: tuple[int, int] | None = None, name: str | None = None, max_age_s: float = 0.25,
                 on_frame: Callable[[Frame], None] | None = None, poll_s: float = 0.1, depth: bool = False):
        self.path = os.fspath(path)
        super().__init__(name=name or f"replay:{os.path.basename(self.path)}", resize=resize,
                         max_age_s=max_age_s, on_frame=on_frame)
        self.loop = bool(loop)
        self.realtime = bool(realtime)
        self.poll_s = poll_s
        self.depth = bool(depth)  # also the recorded depth stream, aligned to colour, in metres (Frame.depth)
        self._depth: _AlignedDepth | None = None
        self._pipe = None
        self._playback = None

    def _open(self) -> None:
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"camera replay file not found: {self.path}")
        rs = _rs()
        pipe = rs.pipeline()
        config = rs.config()
        try:
            config.enable_device_from_file(self.path, repeat_playback=self.loop)
            config.enable_stream(rs.stream.color)
            if self.depth:
                config.enable_stream(rs.stream.depth)
            # resolve first so real-time mode is set before the first frame plays (else early frames may drop)
            profile = config.resolve(pipe)
            playback = profile.get_device().as_playback()
            playback.set_real_time(self.realtime)
            pipe.start(config)
        except RuntimeError as e:
            streams = "color and depth streams" if self.depth else "color stream"
            raise RuntimeError(f"cannot replay the {streams} of {self.path}: {e}") from e
        self._depth = _AlignedDepth(rs, pipe) if self.depth else None
        self._pipe, self._playback = pipe, playback

    def intrinsics(self) -> Intrinsics | None:
        pipe = self._pipe
        return None if pipe is None else _stream_intrinsics(pipe, self.resize)

    def _close(self) -> None:
        pipe, self._pipe, self._playback = self._pipe, None, None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError as e:
                log.debug("camera %s: pipeline stop: %s", self.name, e)

    def _read(self):
        rs = _rs()
        ok, frames = self._pipe.try_wait_for_frames(max(1, int(self.poll_s * 1000)))
        if not ok:
            if not self.loop and self._playback.current_status() == rs.playback_status.stopped:
                raise EndOfStream(self.path)
            return None
        return _read_frameset(rs, frames, self._depth)


class OpenCVCamera(Camera):
    """A UVC webcam through OpenCV (V4L2 on Linux) or a video file; frames converted from BGR to RGB.

    `device` is an index (0), a device path ('/dev/video0') or a video file path; a file ends the stream.
    """

    def __init__(self, device: int | str = 0, profile: str | None = None, resize: tuple[int, int] | None = None,
                 name: str | None = None, max_age_s: float = 0.25,
                 on_frame: Callable[[Frame], None] | None = None):
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.device = device
        self.profile = profile
        self.size_fps = parse_profile(profile) if profile is not None else None
        super().__init__(name=name or f"opencv:{device}", resize=resize, max_age_s=max_age_s, on_frame=on_frame)
        self._cap = None

    @property
    def is_file(self) -> bool:
        return isinstance(self.device, str) and not self.device.startswith("/dev/")

    def _open(self) -> None:
        cv2 = _cv2()
        if self.is_file and not os.path.isfile(self.device):
            raise FileNotFoundError(f"video file not found: {self.device}")
        api = cv2.CAP_V4L2 if not self.is_file and sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.device, api)
        if not cap.isOpened():
            cap.release()
            raise CameraNotFoundError(f"OpenCV cannot open camera {self.device!r}: expected a device index, a "
                                      f"/dev/videoN path or a video file; check that it exists and that no other "
                                      f"process holds it")
        if self.size_fps is not None:
            w, h, fps = self.size_fps
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
            cap.set(cv2.CAP_PROP_FPS, fps)
            got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
            if got != (w, h):
                log.warning("camera %s: asked for %dx%d, the device gives %dx%d", self.name, w, h, *got)
        self._cap = cap

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _read(self):
        cv2 = _cv2()
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self.is_file:
                raise EndOfStream(self.device)
            raise RuntimeError(f"camera {self.device!r}: read failed (unplugged?)")
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        device_stamp = msec / 1000.0 if (self.is_file or msec > 0) else None
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB), device_stamp
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), device_stamp


_KINDS = {
    "realsense": RealSenseCamera,
    "opencv": OpenCVCamera,
    "replay": ReplayCamera,
    "software": SoftwareCamera,
}


def make_camera(kind: str, **kwargs) -> Camera:
    """Build a camera from configuration: `make_camera("realsense", serial_no="...", resize=(96, 96))`."""
    try:
        cls = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown camera kind {kind!r}: expected one of {', '.join(sorted(_KINDS))}") from None
    return cls(**kwargs)
