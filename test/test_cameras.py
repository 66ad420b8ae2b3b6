"""Cameras: the latest-frame thread, staleness, reconnects, and RealSense/replay through a pyrealsense2 software
device (so the real librealsense pipeline, recorder and playback run without hardware)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from dm1_ros.hardware.cameras import (
    Camera,
    CameraNotFoundError,
    OpenCVCamera,
    RealSenseCamera,
    ReplayCamera,
    SoftwareCamera,
    make_camera,
    normalize_serial,
    parse_profile,
)

from realsense_support import H, W, SoftwareRealSense, _rs, depth_pattern, index_of, pattern, record_db3

def wait_until(predicate, timeout_s=5.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# -- profile ---------------------------------------------------------------------------------------------------

def test_parse_profile_good():
    assert parse_profile("640x480x30") == (640, 480, 30)
    assert parse_profile(" 1280X720x15 ") == (1280, 720, 15)


@pytest.mark.parametrize("bad", ["640x480", "640x480x", "axbxc", "0x480x30", "640x480x30x2", "", 640])
def test_parse_profile_bad_names_string_and_form(bad):
    with pytest.raises(ValueError) as e:
        parse_profile(bad)
    assert repr(bad) in str(e.value) and "WIDTHxHEIGHTxFPS" in str(e.value)


# -- the thread (pushed frames) ---------------------------------------------------------------------------------

def test_thread_keeps_latest_frame_and_detects_stale():
    cam = SoftwareCamera(name="wrist", max_age_s=0.1)
    assert cam.latest() is None and cam.is_stale()  # no frame yet: stale
    with cam:
        for i in range(5):
            cam.push(pattern(i), device_stamp=i / 30)
        wait_until(lambda: cam.frames_received == 5, what="5 frames")
        frame = cam.latest()
        assert index_of(frame.image) == 4 and frame.index == 4 and frame.device_stamp == pytest.approx(4 / 30)
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, pattern(4))
        assert abs(frame.stamp - time.monotonic()) < 1.0  # host monotonic clock
        # staleness on an explicit clock: deterministic
        assert not cam.is_stale(now=frame.stamp + 0.05)
        assert cam.is_stale(now=frame.stamp + 0.15)
        assert not cam.is_stale(now=frame.stamp + 0.15, max_age_s=0.2)
        # and on the real one: frames stop -> stale after max_age
        cam.push(pattern(5))
        fresh = cam.wait_for_frame(timeout_s=2.0, after=4)
        assert index_of(fresh.image) == 5
        assert not cam.is_stale(max_age_s=1.0)
        time.sleep(0.15)
        assert cam.is_stale()
    assert not cam.running


def test_pushed_buffer_is_copied_and_fps_measured():
    cam = SoftwareCamera()
    with cam:
        buf = pattern(1)
        for _ in range(10):
            cam.push(buf)
            time.sleep(0.02)
        buf[:] = 0  # the caller reuses its buffer
        wait_until(lambda: cam.frames_received == 10, what="10 frames")
        assert index_of(cam.latest().image) == 1
        assert 5 < cam.fps <= 60  # 50 Hz pushes; sleeps only ever lengthen the intervals


def test_wait_for_frame_timeout_and_not_started():
    cam = SoftwareCamera(name="front")
    with pytest.raises(RuntimeError, match="not running"):
        cam.wait_for_frame(timeout_s=0.01)
    with cam:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=r"camera 'front': no new frame within 0\.1 s"):
            cam.wait_for_frame(timeout_s=0.1)
        assert 0.09 < time.monotonic() - t0 < 1.0


def test_resize_for_the_policy():
    cam = SoftwareCamera(resize=(96, 80))
    with cam:
        cam.push(pattern(3))
        frame = cam.wait_for_frame(timeout_s=2.0, after=-1)
    assert frame.image.shape == (80, 96, 3) and frame.image.dtype == np.uint8
    assert abs(int(frame.image[0, 0, 0]) - 3) <= 1


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8)])
def test_push_rejects_non_rgb_uint8(bad):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        SoftwareCamera().push(bad)


class FlakyCamera(SoftwareCamera):
    """Counts opens; the first `refuse` reopen attempts fail, like a camera still unplugged."""

    def __init__(self, refuse=0):
        super().__init__(name="flaky")
        self.opens = 0
        self.refuse = refuse

    def _open(self):
        self.opens += 1
        if self.opens > 1 and self.refuse > 0:
            self.refuse -= 1
            raise CameraNotFoundError("still unplugged")


@pytest.mark.parametrize("refuse", [0, 2])
def test_read_error_triggers_reconnect_and_frames_resume(refuse):
    cam = FlakyCamera(refuse=refuse)
    with cam:
        cam.push(pattern(1))
        first = cam.wait_for_frame(timeout_s=2.0, after=-1)
        cam.fail(RuntimeError("USB unplugged"))
        wait_until(lambda: cam.reconnects == 1, what="reconnect")
        assert cam.opens == 2 + refuse
        assert cam.errors == 1 + refuse
        assert "USB unplugged" in cam.last_error or "still unplugged" in cam.last_error
        assert cam.running  # the thread survived
        cam.push(pattern(2))
        after = cam.wait_for_frame(timeout_s=2.0, after=first.index)
        assert index_of(after.image) == 2 and after.index == first.index + 1


def test_make_camera_kinds():
    assert isinstance(make_camera("software", name="sim"), SoftwareCamera)
    assert isinstance(make_camera("realsense", serial_no="1", color_profile="424x240x15"), RealSenseCamera)
    assert isinstance(make_camera("replay", path="x.db3"), ReplayCamera)
    assert isinstance(make_camera("opencv", device="/dev/video0"), OpenCVCamera)
    with pytest.raises(ValueError, match=r"unknown camera kind 'kinect'.*opencv, realsense, replay"):
        make_camera("kinect")
    with pytest.raises(ValueError, match="WIDTHxHEIGHTxFPS"):
        make_camera("realsense", color_profile="640x480")
    with pytest.raises(ValueError, match=r"\.db3"):
        RealSenseCamera(record_to="out.bag")


def test_module_imports_without_torch_rclpy_or_realsense():
    code = ("import sys, dm1_ros.hardware.cameras; "
            "print(sorted(m for m in ('torch', 'rclpy', 'pyrealsense2', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- OpenCV ------------------------------------------------------------------------------------------------------

def test_opencv_video_file_bgr_to_rgb(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = str(tmp_path / "red.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (W, H))
    assert writer.isOpened()
    red_bgr = np.zeros((H, W, 3), np.uint8)
    red_bgr[..., 2] = 255
    for _ in range(5):
        writer.write(red_bgr)
    writer.release()
    got = []
    cam = OpenCVCamera(path, on_frame=got.append)
    with cam:
        wait_until(lambda: cam.finished, what="end of the video file")
    assert len(got) == 5 and [f.index for f in got] == list(range(5))
    image = got[0].image
    assert image.shape == (H, W, 3)
    assert image[..., 0].mean() > 200 and image[..., 2].mean() < 50  # red lands in channel 0: RGB
    assert got[0].device_stamp == pytest.approx(0.0) and got[-1].device_stamp > got[0].device_stamp
    with pytest.raises(EOFError, match="ended"):
        cam.wait_for_frame(timeout_s=0.1)


def test_opencv_open_failures_are_clear(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(CameraNotFoundError, match="/dev/video97"):
        OpenCVCamera("/dev/video97").start()
    missing = str(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        OpenCVCamera(missing).start()


# -- RealSense through a pyrealsense2 software device ------------------------------------------------------------

@pytest.fixture
def software_realsense():
    fake = SoftwareRealSense()
    assert fake.serial in [d.get_info(fake.rs.camera_info.serial_number) for d in fake.context.query_devices()]
    yield fake
    fake.stop_pump()


def test_realsense_serial_not_connected_names_it():
    _rs()
    with pytest.raises(CameraNotFoundError, match=r"serial '9999000099990' is not connected; connected serials"):
        RealSenseCamera("9999000099990").start()


@pytest.mark.parametrize("given", ["123456789012", "_123456789012", "'123456789012'", '"123456789012"', " _123456789012 "])
def test_serial_numbers_are_taken_as_realsense_ros_writes_them(given):
    """realsense-ros's leading underscore (keeps digits a string through ROS parameter parsing) and the quotes a
    launch file passes through unchanged are removed; leading zeros stay."""
    assert normalize_serial(given) == "123456789012"
    assert normalize_serial("_012345678901") == "012345678901" and normalize_serial("") is None
    assert normalize_serial(None) is None and normalize_serial("''") is None


def test_realsense_wrong_serial_lists_connected_ones(software_realsense):
    with pytest.raises(CameraNotFoundError) as e:
        RealSenseCamera("123", context=software_realsense.context).start()
    assert "'123'" in str(e.value) and software_realsense.serial in str(e.value)


def test_realsense_streams_software_device_with_warmup_and_records(software_realsense, tmp_path):
    got = []
    record = tmp_path / "session.db3"
    cam = RealSenseCamera(software_realsense.serial, color_profile=f"{W}x{H}x30", warmup_frames=3,
                          context=software_realsense.context, record_to=record, frame_timeout_s=0.5,
                          on_frame=got.append)
    software_realsense.start_pump()
    with cam:
        wait_until(lambda: len(got) >= 8, what="8 frames")
        resized = cam.latest()
    indices = [index_of(f.image) for f in got]
    assert indices[0] == 3  # frames 0..2 were the warm-up
    assert indices == sorted(set(indices))  # in order, no repeats
    assert [f.index for f in got] == list(range(len(got)))
    for f in got:
        np.testing.assert_array_equal(f.image, pattern(index_of(f.image)))  # upright RGB, untouched
        assert f.device_stamp == pytest.approx((1000.0 + index_of(f.image) * 33.0) / 1000.0)
    assert resized.image.shape == (H, W, 3)
    assert cam.recorded_files == [str(record)] and record.stat().st_size > 0

    # the recording holds the warm-up frames too, in order, lossless
    replayed = []
    replay = ReplayCamera(record, loop=False, realtime=False, on_frame=replayed.append)
    with replay:
        wait_until(lambda: replay.finished, what="end of the replay")
    replayed_indices = [index_of(f.image) for f in replayed]
    assert replayed_indices[:4] == [0, 1, 2, 3]
    assert replayed_indices == list(range(len(replayed_indices)))
    assert set(indices) <= set(replayed_indices)


def test_realsense_restarts_when_frames_stop_and_keeps_recordings(software_realsense, tmp_path):
    record = tmp_path / "rec.db3"
    cam = RealSenseCamera(software_realsense.serial, color_profile=f"{W}x{H}x30", warmup_frames=1, resize=(96, 96),
                          context=software_realsense.context, record_to=record, frame_timeout_s=0.15)
    software_realsense.start_pump()
    with cam:
        before = cam.wait_for_frame(timeout_s=3.0)
        assert before.image.shape == (96, 96, 3)
        software_realsense.paused.set()  # the device goes quiet, as when unplugged
        wait_until(lambda: cam.errors >= 1, what="the read error")
        time.sleep(0.3)
        assert cam.is_stale(max_age_s=0.25)
        software_realsense.paused.clear()
        wait_until(lambda: cam.reconnects >= 1, what="the reconnect")
        after = cam.wait_for_frame(timeout_s=3.0)
        assert after.index > before.index and not cam.is_stale(max_age_s=0.25)
        assert cam.running
        after_index = index_of(after.image)
    assert "didn't arrive" in cam.last_error
    # the restart records to a new file; failed attempts (warm-up timed out) leave none behind
    assert cam.recorded_files == [str(record), str(tmp_path / "rec-1.db3")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-1.db3", "rec.db3"]
    # together the two files hold one unbroken run of frames: nothing recorded was overwritten
    replayed = []
    for path in cam.recorded_files:
        replay = ReplayCamera(path, loop=False, realtime=False, on_frame=replayed.append)
        with replay:
            wait_until(lambda: replay.finished, what=f"end of {path}")
    indices = [index_of(f.image) for f in replayed]
    assert indices == list(range(len(indices))) and indices[-1] >= after_index


@pytest.fixture
def recorded_db3(software_realsense, tmp_path):
    """12 known frames written to a .db3 by rs.recorder wrapped around the software device."""
    return record_db3(software_realsense, tmp_path / "known.db3")


def test_replay_plays_recorded_frames_in_order(recorded_db3):
    got = []
    cam = ReplayCamera(recorded_db3, loop=False, realtime=False, on_frame=got.append)
    with cam:
        wait_until(lambda: cam.finished, what="end of the replay")
    assert [index_of(f.image) for f in got] == list(range(12))
    assert [f.index for f in got] == list(range(12))
    for i, f in enumerate(got):
        np.testing.assert_array_equal(f.image, pattern(i))
        assert f.device_stamp == pytest.approx((1000.0 + i * 33.0) / 1000.0)
    assert cam.frames_received == 12


def test_replay_loops_and_resizes(recorded_db3):
    got = []
    cam = ReplayCamera(recorded_db3, loop=True, realtime=False, resize=(96, 96), on_frame=got.append)
    with cam:
        wait_until(lambda: len(got) >= 20, what="20 frames")
        assert not cam.finished
    assert all(f.image.shape == (96, 96, 3) for f in got)
    indices = [index_of(f.image) for f in got]
    assert indices[:12] == list(range(12)) and indices[12] == 0  # wrapped to the start


def test_intrinsics_come_from_the_driver_scaled_to_the_delivered_size(software_realsense, recorded_db3):
    cam = RealSenseCamera(software_realsense.serial, color_profile=f"{W}x{H}x30", warmup_frames=0,
                          context=software_realsense.context, resize=(2 * W, 2 * H))
    software_realsense.start_pump()
    with cam:
        intr = cam.intrinsics()
    assert (intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy) == (2 * W, 2 * H, 100.0, 100.0, W, H)
    assert intr.k == [100.0, 0.0, W, 0.0, 100.0, H, 0.0, 0.0, 1.0] and len(intr.coeffs) == 5
    replay = ReplayCamera(recorded_db3, loop=True, realtime=False)
    with replay:
        assert replay.intrinsics().fx == 50.0 and replay.intrinsics().width == W  # the recording keeps them
    assert SoftwareCamera().intrinsics() is None  # pushed frames: uncalibrated unless the pusher says


def test_replay_missing_file_names_it(tmp_path):
    missing = tmp_path / "no_such_recording.db3"
    with pytest.raises(FileNotFoundError, match="no_such_recording.db3"):
        ReplayCamera(missing).start()


def test_camera_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Camera().start()


@pytest.fixture
def depth_realsense():
    fake = SoftwareRealSense(serial="000000000043", depth=True)
    yield fake
    fake.stop_pump()


def check_depth(frame):
    """The frame's depth is an injected depth_pattern(j) in metres, for j this frame's colour index or the one before
    (librealsense's syncer may pair a colour frame with the depth frame just before it); rs.align leaves a few holes
    (0: no reading) and moves a few pixels by one where projection rounds onto a neighbour."""
    i = index_of(frame.image)
    d = frame.depth
    assert d.shape == frame.image.shape[:2] and d.dtype == np.float32
    valid = d > 0
    assert valid.mean() > 0.9
    columns = np.broadcast_to(np.arange(W)[None, :], d.shape)
    j = int(round(float(np.median(d[valid] * 1000 - 600 - 3 * columns[valid]))))
    assert j in (i - 1, i), (i, j)
    error = np.abs(d[valid] - depth_pattern(j)[valid] * 0.001)
    assert (error < 1e-4).mean() > 0.97 and error.max() < 0.0031  # the same pixel, a few rounded onto a neighbour


def test_realsense_depth_is_aligned_to_colour_in_metres_live_and_replayed(depth_realsense, tmp_path):
    """A depth stream through librealsense's own rs.align and the device's depth scale (600 + 3 * column + i
    millimetres injected): metres, at colour's pixels and size, resized with nearest neighbours, and the same from
    a .db3 recording of both streams."""
    got = []
    cam = RealSenseCamera(depth_realsense.serial, color_profile=f"{W}x{H}x30", warmup_frames=2, depth=True,
                          context=depth_realsense.context, frame_timeout_s=0.5, on_frame=got.append)
    depth_realsense.start_pump()
    with cam:
        wait_until(lambda: len(got) >= 5, what="5 colour + depth frames")
    assert cam.depth_scale == pytest.approx(0.001)
    for f in got:
        check_depth(f)
    small = []
    cam = RealSenseCamera(depth_realsense.serial, color_profile=f"{W}x{H}x30", warmup_frames=0, depth=True,
                          context=depth_realsense.context, resize=(W // 2, H // 2), on_frame=small.append)
    with cam:
        wait_until(lambda: len(small) >= 2, what="resized frames")
    assert small[-1].depth.shape == (H // 2, W // 2)
    injected = {float(v) for j in range(depth_realsense.injected + 1) for v in np.unique(depth_pattern(j) * np.float32(0.001))}
    assert {float(v) for v in np.unique(small[-1].depth)} <= injected | {0.0}  # nearest: no invented depths
    depth_realsense.stop_pump()

    path = record_db3(depth_realsense, tmp_path / "depth.db3", frames=6)
    replayed = []
    replay = ReplayCamera(path, loop=False, realtime=False, depth=True, on_frame=replayed.append)
    with replay:
        wait_until(lambda: replay.finished, what="end of the depth replay")
    assert len(replayed) >= 4 and replay.depth_scale == pytest.approx(0.001)
    for f in replayed:
        check_depth(f)
    with ReplayCamera(path, loop=True, realtime=False) as colour_only:  # depth is opt-in
        assert colour_only.wait_for_frame(timeout_s=2.0).depth is None
