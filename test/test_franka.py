"""FrankaBridge against franky-sim: a real libfranka-protocol server (MuJoCo FR3) started in-process.

The franky tests share one simulation server and one bridge (module scope) and run in file order; the last one
stops the server mid-motion. franky-sim simulates neither reflexes nor contact forces, so the tests inject them
on the server side the way a real robot reports them: a reflex = robot state in Reflex mode with
`cartesian_reflex` set and the running Move command answered with kReflexAborted (cleared by the automatic error
recovery command); a contact = an external force estimate (O_F_ext_hat_K) in the streamed state.
"""
from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dm1_ros.configuration import ConfigError, load_yaml
from dm1_ros.hardware.franka import FrankaBridge, FrankaConfig, FrankaError, GripperConfig, ObservationError
from dm1_ros.runtime.rotations import canonical_quat, quat_to_matrix, rotation_angle_between, rotvec_to_matrix
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter

from franky_sim_support import SIM_START_Q, franky_sim_server, sim_config

ROOT = Path(__file__).resolve().parents[1]


# --- no franky needed ---------------------------------------------------------------------------------------
def test_module_imports_without_franky_torch_rclpy():
    code = ("import sys; import dm1_ros.hardware.franka; "
            "bad = [m for m in ('franky', 'torch', 'rclpy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_rotation_helpers_and_quaternion_hemisphere():
    R = rotvec_to_matrix([0, 0, math.pi / 2])
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(rotvec_to_matrix([0, 0, 0]), np.eye(3))
    q = canonical_quat([-0.999, 0.0, -0.05, 0.0], np.array([1.0, 0, 0, 0]))  # same rotation, other sign
    assert q[0] > 0 and np.isclose(np.linalg.norm(q), 1.0)
    down = quat_to_matrix([1, 0, 0, 0])  # robosuite/Franka home orientation: 180 deg about x
    assert np.allclose(down @ [0, 0, 1], [0, 0, -1])
    assert rotation_angle_between(np.eye(3), rotvec_to_matrix([0.3, 0, 0])) == pytest.approx(0.3)


def test_config_yaml_and_strict_keys(tmp_path):
    cfg = load_yaml(FrankaConfig, ROOT / "config/robot/franka.yaml", overrides=["robot_ip=127.0.0.1"])
    assert cfg.robot_ip == "127.0.0.1" and cfg.realtime == "enforce" and isinstance(cfg.safety, SafetyConfig)
    assert cfg.pos_scale == 0.05 and cfg.rot_scale == 0.5 and cfg.gripper.close_above == 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot_ip: 1.2.3.4\ngripper: {speed: 0.1}\n")
    with pytest.raises(ConfigError, match="gripper.speed"):
        load_yaml(FrankaConfig, bad)
    bad.write_text("realtime: maybe\n")
    with pytest.raises(ConfigError, match="realtime"):
        load_yaml(FrankaConfig, bad)
    with pytest.raises(ValueError, match="relative_dynamics_factor"):
        FrankaConfig(relative_dynamics_factor=1.5)


@pytest.fixture(scope="module")
def sim_server():
    with franky_sim_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def shared_bridge(sim_server):
    bridge = FrankaBridge(sim_config(sim_server.hostname))
    try:
        yield bridge
    finally:
        bridge.close()


@pytest.fixture
def bridge(shared_bridge, sim_server):
    """The shared bridge, recovered and at home, with a fresh default safety filter."""
    if not sim_server.alive:
        pytest.skip("the shared franky-sim server was stopped by an earlier test")
    sim_server.faults.reflex, sim_server.faults.force = False, None
    sim_server.faults.recovery_clears_after_steps = 0
    if shared_bridge.fault is not None or shared_bridge.stopped:
        shared_bridge.recover()
    shared_bridge.config.streaming = "motion"
    shared_bridge.safety = SafetyFilter(shared_bridge.config.safety)
    shared_bridge.stats.clear()  # each test reads the counters of its own motions
    shared_bridge.reset()
    return shared_bridge


def stream(bridge, action, ticks, record=None) -> float:
    """apply() at rate_hz like the control loop; record (time, target-to-measured distance) if asked. Returns how
    fast the robot's clock ran against the wall's meanwhile (1.0: franky-sim kept real time; less: it fell behind,
    which it does on a slow or loaded CPU: 0.35-0.6x seen on 2 AVX2 cores)."""
    period = 1.0 / bridge.rate_hz
    t_next = t0 = time.monotonic()
    robot_t0 = bridge.robot.state.time.to_sec()
    for _ in range(ticks):
        bridge.observe()
        bridge.apply(np.asarray(action, np.float32))
        if record is not None:
            record.append(bridge.tracking_error()[0])
        t_next += period
        time.sleep(max(0.0, t_next - time.monotonic()))
    return (bridge.robot.state.time.to_sec() - robot_t0) / (time.monotonic() - t0)


def settle(bridge, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        bridge.hold()
        time.sleep(1.0 / bridge.rate_hz)


def settle_until_tracked(bridge, timeout, pos_tol=0.002, rot_tol=0.005):
    """hold() until the arm reaches the last target; returns the time it took (fails the test on timeout)."""
    t0 = time.monotonic()
    while True:
        pos_err, rot_err = bridge.tracking_error()
        if pos_err < pos_tol and rot_err < rot_tol:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"target not reached after {timeout} s: {pos_err} m, {rot_err} rad"
        bridge.hold()
        time.sleep(1.0 / bridge.rate_hz)


def assert_path(bridge, moved, commanded, tol=0.012, leashed=None):
    """The arm, settled, covered what was commanded along one axis. Where the lead limit held targets back (`leashed`
    of them; default: the test's count; an arm slower than the commands: franky-sim falling behind real time), the
    last target was at most the lead limit ahead of the arm, so the path is shorter, but never shorter than the lead
    limit itself."""
    if bridge.stats["target_leashed"] if leashed is None else leashed:
        lead = bridge.config.max_target_lead_m
        assert abs(commanded) + tol >= abs(moved) >= lead - 0.005 and np.sign(moved) == np.sign(commanded), moved
    else:
        assert moved == pytest.approx(commanded, abs=tol)


def wait_at_rest(bridge, timeout=10.0, tol_m=1e-4, window_ms=50, windows=3):
    """Block until the hand is still: it moves less than tol_m over `windows` windows of window_ms robot time in a
    row. reset() returns when franky's joint motion ends, and franky-sim's arm may still be settling then; a start
    pose read before it rests is not where the first target starts. (Robot time, because franky-sim's clock can run
    slower than the wall's; position, because franky-sim reports a small steady dq on joint 7 of a still arm.)"""
    t0, still = time.monotonic(), 0
    state = bridge.robot.state
    while still < windows:
        assert time.monotonic() - t0 < timeout, f"hand still moving after {timeout} s"
        time.sleep(0.01)
        now = bridge.robot.state
        if now.time.to_msec() - state.time.to_msec() < window_ms:
            continue
        moved = np.linalg.norm(np.asarray(now.O_T_EE.matrix)[:3, 3] - np.asarray(state.O_T_EE.matrix)[:3, 3])
        still = still + 1 if moved < tol_m else 0
        state = now


def pose(bridge):
    m = np.asarray(bridge.robot.state.O_T_EE.matrix)
    return m[:3, 3].copy(), m[:3, :3].copy()


class FakeCamera:
    def __init__(self, stamp, shape=(8, 10, 3)):
        self.frame = None if stamp is None else SimpleNamespace(image=np.zeros(shape, np.uint8), stamp=stamp)

    def latest(self):
        return self.frame


def test_realtime_config_connect_and_close(sim_server):
    """realtime: enforce on a kernel without PREEMPT_RT is a clear configuration error; ignore connects."""
    try:
        FrankaBridge(sim_config(sim_server.hostname, realtime="enforce")).close()  # an RT kernel: connects
    except FrankaError as exc:
        assert exc.kind == "config" and "PREEMPT_RT" in str(exc) and "realtime: ignore" in str(exc)
    b = FrankaBridge(sim_config(sim_server.hostname, gripper=GripperConfig(enabled=False)))
    assert b.connected and b.observe().proprio[7] == pytest.approx(0.04)  # no hand: width_open / 2
    b.close()
    assert not b.connected
    with pytest.raises(FrankaError, match="not connected"):
        b.apply(np.zeros(7, np.float32))


def test_observe_proprio_in_sim_convention(bridge):
    obs = bridge.observe()
    p = obs.proprio
    assert p.shape == (9,) and p.dtype == np.float32 and np.all(np.isfinite(p))
    assert np.linalg.norm(p[3:7]) == pytest.approx(1.0, abs=1e-5)
    assert p[3] > 0.99  # hand pointing down: ~180 deg about x, in robosuite's hemisphere (x > 0)
    pos, R = pose(bridge)
    assert np.allclose(p[:3], pos, atol=2e-3)
    assert np.allclose(quat_to_matrix(p[3:7]), R, atol=1e-3)
    assert p[7] == pytest.approx(-p[8]) and 0.03 < 2 * p[7] <= 0.081  # fingers +w/2, -w/2 (hand open)
    assert abs(obs.stamp - time.monotonic()) < 0.5
    # cameras: images by name, stamp of the oldest frame; a camera without a frame is a clear error
    now = time.monotonic()
    bridge.cameras = {"agentview_image": FakeCamera(now - 0.03), "robot0_eye_in_hand_image": FakeCamera(now - 0.01)}
    try:
        obs = bridge.observe()
        assert set(obs.images) == {"agentview_image", "robot0_eye_in_hand_image"}
        assert obs.stamp == pytest.approx(now - 0.03)
        assert [s.shape for s in bridge.observation_spec.images] == [(8, 10, 3), (8, 10, 3)]
        bridge.cameras["agentview_image"] = FakeCamera(None)
        with pytest.raises(ObservationError, match="agentview_image"):
            bridge.observe()
    finally:
        bridge.cameras = {}


def test_streamed_targets_move_smoothly_without_errors(bridge):
    wait_at_rest(bridge)
    p0, R0 = pose(bridge)
    errors: list[float] = []
    t0 = time.monotonic()
    clock = stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 30, errors)  # 5 mm per tick = 0.1 m/s for 1.5 s
    elapsed = time.monotonic() - t0
    rate = bridge.command_rate_hz()
    settle_until_tracked(bridge, 10.0)  # a condition, not a time: franky-sim's thread may be starved by the load
    p1, R1 = pose(bridge)
    final_error = bridge.tracking_error()
    print(f"\nstream: {rate:.1f} Hz achieved over {elapsed:.2f} s; target lead while moving: "
          f"mean {1e3 * np.mean(errors[10:]):.1f} mm, max {1e3 * np.max(errors):.1f} mm; "
          f"after settling {1e3 * final_error[0]:.2f} mm / {math.degrees(final_error[1]):.2f} deg; robot clock at "
          f"{clock:.2f}x real time, {bridge.stats.get('target_leashed', 0)} targets held back")
    assert bridge.fault is None and not bridge.robot.has_errors
    assert rate == pytest.approx(20.0, rel=0.25)
    assert_path(bridge, p1[0] - p0[0], -0.15)  # 30 ticks x 5 mm
    assert np.allclose(p1[1:], p0[1:], atol=0.01)
    assert rotation_angle_between(R0, R1) < 0.02
    # the target never runs further ahead of the arm than the lead limit (about 10-20 mm when franky-sim keeps up)
    assert max(errors) <= bridge.config.max_target_lead_m + 1e-3 and final_error[0] < 0.005
    assert bridge.stats["targets"] >= 30
    if clock >= 0.9:  # an arm that keeps real time never lets the target reach the lead limit at 0.1 m/s
        assert bridge.stats.get("target_leashed", 0) == 0
    # rotation: the axis-angle delta is applied in the base frame, on the left (robosuite OSC convention)
    stream(bridge, [0, 0, 0, 0, 0, 0.1, -1], 8)  # 0.05 rad per tick about base z (filter limit: 0.075)
    t_rot = settle_until_tracked(bridge, 10.0)  # franky limits the rotation to ~0.4 rad/s at dynamics factor 0.2
    _, R2 = pose(bridge)
    print(f"rotation 0.4 rad about base z: settled {t_rot:.2f} s after the last tick")
    assert rotation_angle_between(rotvec_to_matrix([0, 0, 0.4]) @ R1, R2) < 0.01


STREAMING_200HZ = "motion"


def test_commands_faster_than_the_policy_move_the_same_distance(bridge):
    """At 200 Hz each command is a tenth of a 20 Hz policy action: 1.5 s of the same action covers the same 0.15 m."""
    wait_at_rest(bridge)
    p0, _ = pose(bridge)
    bridge.config.streaming = STREAMING_200HZ
    bridge.set_command_rate(200.0)
    try:
        stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 300)
        rate = bridge.command_rate_hz(last=200)
        settle_until_tracked(bridge, 10.0)
    finally:
        bridge.set_command_rate(bridge.config.rate_hz)
    p1, _ = pose(bridge)
    print(f"\n200 Hz commands: {rate:.0f} Hz achieved, moved {p1[0] - p0[0]:.3f} m, stats {dict(bridge.stats)}")
    assert bridge.fault is None and not bridge.robot.has_errors
    assert_path(bridge, p1[0] - p0[0], -0.15)
    with pytest.raises(ValueError, match="below the policy rate"):
        bridge.set_command_rate(10.0)


def test_gripper_hysteresis_and_async_commands(bridge):
    obs = bridge.observe()
    assert 2 * obs.proprio[7] > 0.03
    t0 = time.monotonic()
    stream(bridge, [0, 0, 0, 0, 0, 0, 1.0], 1)
    assert time.monotonic() - t0 < 0.2  # the hand command does not block the loop
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and bridge.gripper_width() > 0.005:
        stream(bridge, [0, 0, 0, 0, 0, 0, 1.0], 2)
    assert bridge.gripper_width() < 0.005
    stream(bridge, [0, 0, 0, 0, 0, 0, -0.2], 10)  # inside the hysteresis band: stays closed
    assert bridge.gripper_width() < 0.005 and bridge.gripper_latch.closed
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and bridge.gripper_width() < 0.07:
        stream(bridge, [0, 0, 0, 0, 0, 0, -0.8], 2)
    assert bridge.gripper_width() >= 0.07
    obs = bridge.observe()
    assert obs.proprio[7] == pytest.approx(bridge.gripper_width() / 2, abs=2e-3)


def test_still_target_is_not_replanned(bridge):
    stream(bridge, [0, 0, 0, 0, 0, 0, -1.0], 3)
    p0, _ = pose(bridge)
    before = bridge.stats["targets_unchanged"]
    stream(bridge, [0, 0, 0, 0, 0, 0, -1.0], 10)  # the running motion already holds this target: no new motion
    assert bridge.stats["targets_unchanged"] - before == 10 and bridge.fault is None
    assert np.linalg.norm(pose(bridge)[0] - p0) < 1e-3
    stream(bridge, [0.5, 0, 0, 0, 0, 0, -1.0], 1)  # a new target is sent again
    assert bridge.stats["targets_unchanged"] - before == 10


def test_out_of_box_target_is_clamped(bridge):
    p0, _ = pose(bridge)
    box_max = [p0[0] + 0.03, 0.45, 0.7]
    bridge.safety = SafetyFilter(SafetyConfig(workspace_min=[0.25, -0.45, 0.02], workspace_max=box_max))
    stream(bridge, [1.0, 0, 0, 0, 0, 0, -1], 15)  # asks for 5 cm per tick towards +x, out of the box
    settle_until_tracked(bridge, 10.0)
    p1, _ = pose(bridge)
    assert p1[0] <= box_max[0] + 0.003 and p1[0] > box_max[0] - 0.005
    assert bridge.safety.interventions["workspace_clamped"] > 0
    assert bridge.safety.interventions["translation_clamped"] > 0
    before = pose(bridge)[0]
    stream(bridge, [np.nan, 0, 0, 0, 0, 0, -1], 3)  # NaN: the filter turns it into a hold
    assert bridge.safety.interventions["nonfinite"] == 3
    assert np.allclose(pose(bridge)[0], before, atol=2e-3)


def test_force_reaction_stops_and_refuses_until_recover(bridge, sim_server):
    stream(bridge, [0.1, 0, 0, 0, 0, 0, -1], 4)
    sim_server.faults.force = (0.0, 0.0, -45.0, 0.0, 0.0, 0.0)
    with pytest.raises(FrankaError, match="external force 45.0 N") as info:
        stream(bridge, [0.1, 0, 0, 0, 0, 0, -1], 20)
    assert info.value.kind == "force"
    bridge.hold()  # holding never raises
    with pytest.raises(FrankaError, match="call recover"):
        bridge.apply(np.zeros(7, np.float32))
    sim_server.faults.force = None
    bridge.recover()
    stream(bridge, [0.1, 0, 0, 0, 0, 0, -1], 2)
    assert bridge.fault is None


def test_recover_after_injected_reflex(bridge, sim_server):
    stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 4)
    sim_server.faults.trigger_reflex()
    with pytest.raises(FrankaError) as info:
        stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 20)
    err = info.value
    print(f"\ninjected reflex -> {err}")
    assert err.kind == "reflex" and "reflex" in str(err) and "cartesian_reflex" in str(err)
    bridge.hold()
    with pytest.raises(FrankaError, match="call recover"):
        bridge.apply(np.zeros(7, np.float32))
    with pytest.raises(FrankaError, match="call recover"):
        bridge.reset()
    assert bridge.robot.has_errors
    bridge.recover()
    assert bridge.fault is None and not bridge.robot.has_errors
    p0, _ = pose(bridge)
    leashed_before = bridge.stats["target_leashed"]
    stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 10)  # 10 x 5 mm commanded
    settle_until_tracked(bridge, 10.0)  # the arm reaches what was commanded, however long the load makes it take
    assert_path(bridge, pose(bridge)[0][0] - p0[0], -0.05, tol=0.004,
                leashed=bridge.stats["target_leashed"] - leashed_before)


def test_recover_waits_for_the_robot_state_and_names_a_reflex_that_stays(bridge, sim_server):
    """recover() judges by a robot state sent after the recovery command: one that still shows the reflex a few ms
    after the acknowledgement is not a failure; a reflex that stays (user stop pressed) is, and says what to do."""
    faults = sim_server.faults
    faults.recovery_clears_after_steps = 20  # the state clears 20 ms (robot time) after the reply
    stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 4)
    faults.trigger_reflex()
    with pytest.raises(FrankaError, match="reflex"):
        stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 20)
    bridge.recover()
    assert bridge.fault is None and not bridge.robot.has_errors and bridge.stats["recoveries"] == 1
    stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 2)
    faults.recovery_clears_after_steps = None  # the user stop is pressed: recovery is acknowledged, errors stay
    faults.trigger_reflex()
    with pytest.raises(FrankaError, match="reflex"):
        stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 20)
    t0 = time.monotonic()
    with pytest.raises(FrankaError, match="manual recovery needed") as info:
        bridge.recover()
    assert info.value.kind == "reflex" and "cartesian_reflex" in str(info.value)
    assert time.monotonic() - t0 < 5.0 and bridge.fault is not None
    with pytest.raises(FrankaError, match="call recover"):
        bridge.apply(np.zeros(7, np.float32))
    faults.recovery_clears_after_steps = 0  # released: the next recovery works
    bridge.recover()
    assert bridge.fault is None and not bridge.robot.has_errors


def test_stop_refuses_motion_until_recover_or_reset(bridge):
    stream(bridge, [0, 0.1, 0, 0, 0, 0, -1], 4)
    bridge.stop()
    assert not bridge.robot.is_in_control
    with pytest.raises(FrankaError, match="stopped by stop"):
        bridge.apply(np.zeros(7, np.float32))
    bridge.recover()
    stream(bridge, [0, 0.1, 0, 0, 0, 0, -1], 2)


def test_reset_returns_home(bridge):
    stream(bridge, [0.1, 0.1, -0.1, 0, 0, 0.1, 1], 8)
    obs = bridge.reset()
    q = bridge.robot.current_joint_positions
    assert np.allclose(q, SIM_START_Q, atol=0.02)
    assert 2 * obs.proprio[7] > 0.07 and not bridge.gripper_latch.closed


def test_impedance_streaming_mode(bridge):
    bridge.config.streaming = "impedance"
    try:
        p0, _ = pose(bridge)
        stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 16)  # 8 cm
        deadline = time.monotonic() + 10.0  # until the spring has pulled the arm most of the way (load-proof)
        while pose(bridge)[0][0] - p0[0] > -0.05 and time.monotonic() < deadline:
            settle(bridge, 0.1)
        settle(bridge, 0.3)
        p1, _ = pose(bridge)
        print(f"\nimpedance: moved {1e3 * (p1[0] - p0[0]):.1f} mm of -80 mm, "
              f"tracking error {1e3 * bridge.tracking_error()[0]:.1f} mm")
        assert bridge.fault is None
        assert -0.095 < p1[0] - p0[0] < -0.05
        bridge.stop()
        assert not bridge.robot.is_in_control
    finally:
        bridge.config.streaming = "motion"


def test_observe_builds_the_point_cloud_from_a_depth_camera_on_the_hand(bridge, tmp_path):
    """A point-cloud model on the arm: the recorded depth camera's frames back-projected with its intrinsics, posed
    by its mount - fixed in the base frame, or on the hand (then composed with this observation's eef pose) - and
    cropped and sampled as the manifest says."""
    from realsense_support import SoftwareRealSense, record_db3

    from dm1_ros.hardware.cameras import ReplayCamera
    from dm1_ros.hardware.rig import DepthClouds
    from dm1_ros.runtime.bundle import PointCloudSpec
    from dm1_ros.runtime.pointcloud import DepthMount

    recording = record_db3(SoftwareRealSense(serial="000000000045", depth=True), tmp_path / "depth.db3")
    spec = PointCloudSpec(name="point_cloud", cameras=["wrist"], frame="base", num_points=32,
                          crop_min=[-5.0, -5.0, -5.0], crop_max=[5.0, 5.0, 5.0])
    camera = ReplayCamera(recording, depth=True, name="wrist").start()
    try:
        camera.wait_for_frame(timeout_s=5.0, after=-1)
        with pytest.raises(ValueError, match=r"depth camera\(s\) \['wrist'\] have no mount"):
            DepthClouds([spec], {"wrist": camera}, {})
        for mount in ("fixed", "hand"):
            bridge.clouds = DepthClouds([spec], {"wrist": camera}, {"wrist": DepthMount(mount, np.eye(4))})
            obs = bridge.observe()
            cloud = obs.points["point_cloud"]
            assert cloud.shape == (32, 3) and cloud.dtype == np.float32 and bridge.observation_spec.point_clouds == [spec]
            if mount == "fixed":  # camera frame = base frame: depths 0.6 m and more straight ahead
                assert cloud[:, 2].min() > 0.55
            else:  # the same points seen from the hand: moved by the end effector's pose
                eef = np.eye(4)
                eef[:3, :3], eef[:3, 3] = quat_to_matrix(obs.proprio[3:7]), obs.proprio[:3]
                back = (np.linalg.inv(eef) @ np.c_[cloud, np.ones(len(cloud))].T).T[:, :3]
                assert back[:, 2].min() > 0.55 and np.abs(cloud - back).max() > 0.1
    finally:
        bridge.clouds = None
        camera.stop()


def test_server_stopped_mid_motion_gives_clear_error_and_safe_stop(shared_bridge, sim_server):
    """Runs last: stops the shared simulation server while the bridge streams."""
    bridge = shared_bridge
    if sim_server.alive:
        if bridge.fault is not None or bridge.stopped:
            bridge.recover()
        bridge.config.streaming = "motion"
    stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 6)
    sim_server.server.cleanup()  # the "robot" goes away mid-motion
    sim_server.alive = False
    t0 = time.monotonic()
    with pytest.raises(FrankaError) as info:
        stream(bridge, [-0.1, 0, 0, 0, 0, 0, -1], 60)
    latency = time.monotonic() - t0
    err = info.value
    print(f"\nserver stopped -> detected after {latency:.2f} s: {err}")
    assert err.kind == "connection" and latency < 2.0
    assert "connection" in str(err) and sim_server.hostname in str(err)
    assert not bridge.connected
    bridge.hold()  # safe: does nothing, does not raise
    with pytest.raises(FrankaError, match="refused"):
        bridge.apply(np.zeros(7, np.float32))
    with pytest.raises(FrankaError, match="connection"):
        bridge.observe()
    with pytest.raises(FrankaError, match="recover\\(\\) failed"):
        bridge.recover()  # nothing to reconnect to
    # the robot comes back: recover() reconnects and motion works again
    import franky_sim
    from franky_sim.mujoco_simulator import MujocoSimulator

    sim = MujocoSimulator()
    sim.init()
    sim.add_robot()
    server = franky_sim.SimulationServer(sim, hostname_candidates=[sim_server.hostname])
    server.init()
    server.run_async(realtime=True)
    try:
        bridge.recover()
        assert bridge.connected and bridge.fault is None
        p0, _ = pose(bridge)
        stream(bridge, [0, -0.1, 0, 0, 0, 0, -1], 6)
        settle_until_tracked(bridge, 10.0)
        assert pose(bridge)[0][1] - p0[1] == pytest.approx(-0.03, abs=0.005)
        bridge.close()
    finally:
        server.cleanup()
        sim.cleanup()


def test_dm1_run_franka_refuses_a_sim_camera_and_names_a_missing_recording(tmp_path):
    from dm1_ros.cli import main

    assert main(["run", "--robot", "franka", "--camera", "sim"]) == 2
    missing = tmp_path / "nope.db3"
    assert main(["run", "--robot", "franka", "--camera", "replay", "--replay", str(missing),
                 "--robot-set", "realtime=ignore"]) == 1
