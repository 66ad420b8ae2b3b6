"""FrankaBridge: a Franka arm and hand (through franky-control 2.0) behind the same interface as SimRobot.

    bridge = FrankaBridge(FrankaConfig(robot_ip="172.16.0.2"), cameras={"agentview_image": cam})
    obs = bridge.reset()                 # home joint configuration, gripper open
    bridge.apply(action)                 # 7-d OSC delta, once per control tick (rate_hz)
    bridge.hold(); bridge.stop(); bridge.recover(); bridge.close()

Frames. Every pose franky reports or takes is the end effector (EE, the TCP set in Desk; about 0.1034 m below
the flange with the Franka Hand) in the robot BASE frame: x forward, y left, z up, origin at the base. The
workspace box of the safety filter is in that frame. Actions follow robosuite's OSC_POSE delta convention in the
same frame: target position = base position + [dx dy dz] * pos_scale; target rotation = R(axis-angle
[drx dry drz] * rot_scale) @ base rotation (the rotation is applied in the base frame, on the left). The
observation's eef position may be shifted by `observation_offset_m` into the frame the policy was trained in
(robosuite's world frame has the Panda base at [-0.56, 0, 0.912]); the quaternion (x, y, z, w) is kept in
the hemisphere of `quat_reference_xyzw` (default [1, 0, 0, 0], the hand pointing down), which matches
robosuite's robot0_eef_quat; the fingers are [+width/2, -width/2] like robot0_gripper_qpos.

Streaming. In the default mode ("motion") each apply() sends the new absolute target as an asynchronous franky
CartesianMotion(return_when_finished=False) that preempts the running one: franky's Ruckig planner takes over
from the current position, velocity and acceleration, so the commanded trajectory stays jerk-limited (scaled by
`relative_dynamics_factor`) and the arm never stops between ticks; between two ticks the last motion keeps
holding its target. Mode "impedance" instead keeps one franky CartesianImpedanceTrackingMotion (a client-side
torque controller) alive and moves its reference; it is compliant, tracks less tightly, and wants a realtime
kernel on a real robot.

Safety. Every action goes through the SafetyFilter (`self.safety`), whatever called apply(). The delta is
applied to the last commanded target (target_base="target", a streamed target integrates the deltas) or to
the measured pose ("measured", robosuite's definition); the filter sees that base position, so the target never
leaves the workspace box, and the target is kept within `max_target_lead_m` of the measured position so it
cannot wind up when the arm is blocked. The robot's own collision thresholds (set_collision_behavior) and an
optional client-side force reaction (|F_ext| above `force_reaction_n` replaces the motion with a stop) stop the
arm on contact.

Errors. A libfranka ControlException (reflex, aborted motion), a lost connection (NetworkException, or a robot
state that stops advancing for `state_timeout_s`), a planner failure, a force reaction or a gripper failure
become a FrankaError whose message says what happened; the bridge then refuses motion (apply() and reset()
raise, hold() does nothing) until recover() succeeds. The robot itself stops on a reflex or a communication
loss; on other faults the bridge stops the motion. franky is imported lazily: this module imports without it.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from dm1_ros.errors import Dm1Error
from dm1_ros.runtime.bundle import ImageSpec, ObservationSpec
from dm1_ros.runtime.contract import PROPRIO_DIMS, PROPRIO_KEYS, Observation
from dm1_ros.runtime.gripper import GripperLatch
from dm1_ros.runtime.rotations import canonical_quat, orthonormalize, rotation_angle_between, rotvec_to_matrix
from dm1_ros.runtime.safety import SafetyConfig, SafetyFilter

log = logging.getLogger("dm1_ros.franka")

# robosuite's Panda start configuration (init_qpos): the arm posture the policies saw at the start of every episode.
ROBOSUITE_PANDA_HOME = [0.0, math.pi / 16, 0.0, -math.pi / 2 - math.pi / 3, 0.0, math.pi - 0.2, math.pi / 4]
# Franka's "ready" pose, for reference.
FRANKA_READY = [0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4]
# How long recover() waits for a robot state without errors after the recovery command is acknowledged (the state
# read at once may predate it); a robot that still reports errors then needs a person (user stop, Desk).
RECOVERY_STATE_WAIT_S = 0.5


class FrankaError(Dm1Error, RuntimeError):
    """A fault of the Franka arm or hand, or of the connection to them; the message says what happened.

    kind: "connection", "reflex" (libfranka ControlException), "planner", "force", "gripper", "refused",
    "config" or "other".
    """

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind


@dataclass
class GripperConfig:
    enabled: bool = True
    speed_mps: float = 0.05  # finger speed for open and close
    force_n: float = 40.0  # grasp force
    width_open_m: float = 0.08
    width_closed_m: float = 0.0  # grasp target: close until the fingers meet an object or each other
    epsilon_inner_m: float = 0.005
    epsilon_outer_m: float = 0.08  # a grasp counts as done at any width up to width_closed + epsilon_outer
    close_above: float = 0.3  # hysteresis: close when the command rises above this
    open_below: float = -0.3  # ... and open when it falls below this
    poll_period_s: float = 0.02  # how often the worker thread reads the width
    reset_timeout_s: float = 3.0  # reset() waits this long for the hand to open


@dataclass
class CollisionConfig:
    """libfranka set_collision_behavior: contact/collision thresholds; above the upper ones the robot reflexes."""

    lower_torque_nm: list[float] = field(default_factory=lambda: [20.0, 20.0, 18.0, 18.0, 16.0, 14.0, 12.0])
    upper_torque_nm: list[float] = field(default_factory=lambda: [20.0, 20.0, 18.0, 18.0, 16.0, 14.0, 12.0])
    lower_force_n: list[float] = field(default_factory=lambda: [20.0, 20.0, 20.0, 25.0, 25.0, 25.0])
    upper_force_n: list[float] = field(default_factory=lambda: [20.0, 20.0, 20.0, 25.0, 25.0, 25.0])

    def __post_init__(self):
        for name, n in (("lower_torque_nm", 7), ("upper_torque_nm", 7), ("lower_force_n", 6), ("upper_force_n", 6)):
            value = getattr(self, name)
            if len(value) != n or any(v <= 0 for v in value):
                raise ValueError(f"collision.{name}: expected {n} positive values, got {value}")


@dataclass
class FrankaConfig:
    robot_ip: str = "172.16.0.2"
    realtime: Literal["enforce", "ignore"] = "enforce"  # "ignore" only without an RT kernel (simulation, tests)
    rate_hz: float = 20.0  # policy action rate: one action moves the hand by action x scale over 1 / rate_hz
    command_rate_hz: float | None = None  # how often apply() is called (None: rate_hz); faster commands move less each
    max_retarget_hz: float = 50.0  # streaming="motion": at most this many new motions per second; commands between
    # them only move the pending target (each new motion restarts franky's planner, which costs smoothness)
    relative_dynamics_factor: float = 0.15  # scales franky's velocity/acceleration/jerk limits, (0, 1]
    streaming: Literal["motion", "impedance"] = "motion"
    target_base: Literal["target", "measured"] = "target"
    max_target_lead_m: float = 0.05  # the target stays within this distance of the measured EE position
    home_q: list[float] = field(default_factory=lambda: list(ROBOSUITE_PANDA_HOME))
    state_timeout_s: float = 0.25  # a robot state older than this during motion means the connection is gone
    force_reaction_n: float | None = 30.0  # |external force| that stops the motion (None: robot reflexes only)
    impedance_translational_stiffness: float = 1000.0  # N/m, streaming="impedance" only
    impedance_rotational_stiffness: float = 60.0  # Nm/rad
    observation_offset_m: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # added to the eef position
    quat_reference_xyzw: list[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])
    collision: CollisionConfig = field(default_factory=CollisionConfig)
    gripper: GripperConfig = field(default_factory=GripperConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)  # workspace box in the robot base frame

    def __post_init__(self):
        if not 0.0 < self.relative_dynamics_factor <= 1.0:
            raise ValueError(f"relative_dynamics_factor must be in (0, 1], got {self.relative_dynamics_factor}")
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, got {self.rate_hz}")
        if self.command_rate_hz is not None and self.command_rate_hz < self.rate_hz:
            raise ValueError(f"command_rate_hz ({self.command_rate_hz}) must be at least rate_hz ({self.rate_hz})")
        if len(self.home_q) != 7:
            raise ValueError(f"home_q: expected 7 joint positions, got {len(self.home_q)}")
        if len(self.observation_offset_m) != 3:
            raise ValueError(f"observation_offset_m: expected 3 values, got {self.observation_offset_m}")
        q = self.quat_reference_xyzw
        if len(q) != 4 or not np.isclose(np.linalg.norm(q), 1.0, atol=1e-3):
            raise ValueError(f"quat_reference_xyzw must be a unit quaternion (x, y, z, w), got {q}")
        if self.max_target_lead_m <= 0 or self.state_timeout_s <= 0:
            raise ValueError("max_target_lead_m and state_timeout_s must be positive")
        if self.force_reaction_n is not None and self.force_reaction_n <= 0:
            raise ValueError(f"force_reaction_n must be positive or null, got {self.force_reaction_n}")

    # The action scales live in the safety config, the one place the filter reads them from.
    @property
    def pos_scale(self) -> float:
        return self.safety.pos_scale

    @property
    def rot_scale(self) -> float:
        return self.safety.rot_scale


def _text(exc: BaseException) -> str:
    """'Type: message' on one line (libfranka messages span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


# --- camera frames --------------------------------------------------------------------------------------------
class ObservationError(RuntimeError):
    """An observation cannot be assembled (a camera without a frame); the message names the camera."""


# franky objects that must not be destroyed while one of their threads still runs (destroying them crashes).
_KEEP_ALIVE: list = []


# --- gripper worker -------------------------------------------------------------------------------------------
class _GripperWorker:
    """Owns the franky Gripper on one thread: reads the width continuously and runs open/grasp commands one at a
    time, latest wish wins, so apply() never blocks on the hand and two commands never overlap."""

    def __init__(self, gripper: Any, config: GripperConfig):
        self.gripper = gripper
        self.config = config
        self.desired_closed: bool | None = None
        self.commanded_closed: bool | None = None
        self.width: float | None = None
        self.width_stamp = 0.0
        self.error: BaseException | None = None
        self.results: Counter[str] = Counter()
        self._future = None
        self._stop = threading.Event()
        self._read_width()
        self._thread = threading.Thread(target=self._run, name="franka-gripper", daemon=True)
        self._thread.start()

    def _read_width(self) -> None:
        self.width = float(self.gripper.state.width)
        self.width_stamp = time.monotonic()

    def _run(self) -> None:
        c = self.config
        while not self._stop.is_set():
            try:
                if self._future is not None and self._future.wait(0):
                    ok = bool(self._future.get())
                    self.results["ok" if ok else "not_reached"] += 1
                    self._future = None
                want = self.desired_closed
                if self._future is None and want is not None and want != self.commanded_closed:
                    if want:
                        self._future = self.gripper.grasp_async(c.width_closed_m, c.speed_mps, c.force_n,
                                                                c.epsilon_inner_m, c.epsilon_outer_m)
                    else:
                        self._future = self.gripper.move_async(c.width_open_m, c.speed_mps)
                    self.commanded_closed = want
                self._read_width()
            except Exception as exc:  # network loss or a rejected command: reported through the bridge
                self.error = exc
                log.error("gripper worker stopped: %s", _text(exc))
                return
            self._stop.wait(c.poll_period_s)

    @property
    def busy(self) -> bool:
        pending = self.desired_closed is not None and self.desired_closed != self.commanded_closed
        return self._future is not None or pending

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread and let a running open/grasp finish (a full stroke at most): libfranka crashes when a
        Gripper is destroyed under a running command, so one that does not finish is kept alive, never freed."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        future = self._future
        if future is not None:
            c = self.config
            if timeout is None:
                timeout = abs(c.width_open_m - c.width_closed_m) / max(c.speed_mps, 1e-3) + 1.0
            try:
                done = future.wait(timeout)
            except Exception:
                done = False
            if not done:
                log.warning("gripper command still running at close; keeping its connection alive")
                _KEEP_ALIVE.append((self.gripper, future))
        if self._thread.is_alive():
            _KEEP_ALIVE.append((self.gripper, self._thread))
        self._future = None


# --- the bridge -----------------------------------------------------------------------------------------------
class FrankaBridge:
    """The Robot protocol (observe, apply, hold, reset, close) on a Franka through franky; see the module doc."""

    def __init__(self, config: FrankaConfig | None = None, cameras: dict[str, Any] | None = None,
                 connect: bool = True, clouds: Any = None):
        """clouds: the point clouds of a point-cloud model (hardware/rig.py DepthClouds), built at every observe."""
        self.config = config or FrankaConfig()
        self.clouds = clouds
        # The control loop calls apply() at rate_hz (the command rate); an action is a delta per policy period,
        # so at a faster command rate each call moves the hand by the matching fraction of it.
        self.set_command_rate(self.config.command_rate_hz or self.config.rate_hz)
        self.cameras = dict(cameras or {})
        self.safety = SafetyFilter(self.config.safety)
        self.gripper_latch = GripperLatch(self.config.gripper.close_above, self.config.gripper.open_below)
        self.stats: Counter[str] = Counter()
        self.command_times: deque[float] = deque(maxlen=2000)  # monotonic time of every streamed target
        self.fault: FrankaError | None = None
        self._fault_reported = False
        self.stopped = False
        self._robot = None
        self._gripper: _GripperWorker | None = None
        self._franky = None
        self._target_pos: np.ndarray | None = None
        self._target_rot: np.ndarray | None = None
        self._impedance_motion = self._motion_target = None
        self._last_motion_time = 0.0
        self._unsent_target = False
        self._force_event: tuple[np.ndarray, float] | None = None
        self._expect_preemption = False
        self._last_state_time: float | None = None
        self._last_state_change = 0.0
        self._quat_ref = np.asarray(self.config.quat_reference_xyzw, np.float64)
        self._offset = np.asarray(self.config.observation_offset_m, np.float64)
        if connect:
            self.connect()

    # --- connection -----------------------------------------------------------------------------------------
    def _import_franky(self):
        if self._franky is None:
            try:
                import franky
            except ImportError as exc:
                raise FrankaError("franky is not installed: pip install franky-control==2.0.0", "config") from exc
            self._franky = franky
        return self._franky

    def connect(self) -> None:
        """Connect arm (and hand), apply dynamics factor and collision thresholds. Raises FrankaError."""
        franky = self._import_franky()
        c = self.config
        rt = franky.RealtimeConfig.Enforce if c.realtime == "enforce" else franky.RealtimeConfig.Ignore
        try:
            robot = franky.Robot(c.robot_ip, realtime_config=rt)
        except franky.RealtimeException as exc:
            raise FrankaError(f"cannot connect to the Franka at {c.robot_ip}: {_text(exc)} (realtime: enforce needs "
                              "a PREEMPT_RT kernel; set realtime: ignore only for simulation and tests)",
                              "config") from exc
        except Exception as exc:
            raise FrankaError(f"cannot connect to the Franka at {c.robot_ip}: {_text(exc)}", "connection") from exc
        try:
            robot.relative_dynamics_factor = c.relative_dynamics_factor
            cc = c.collision
            robot.set_collision_behavior(cc.lower_torque_nm, cc.upper_torque_nm, cc.lower_force_n, cc.upper_force_n)
            if robot.has_errors:
                log.warning("robot reports errors at connect; running automatic error recovery")
                robot.recover_from_errors()
        except Exception as exc:
            raise FrankaError(f"configuring the Franka at {c.robot_ip} failed: {_text(exc)}", "connection") from exc
        self._robot = robot
        if c.gripper.enabled:
            try:
                self._gripper = _GripperWorker(franky.Gripper(c.robot_ip), c.gripper)
            except Exception as exc:
                self._robot = None
                raise FrankaError(f"cannot connect to the Franka Hand at {c.robot_ip}: {_text(exc)} "
                                  "(set gripper.enabled: false to run without it)", "connection") from exc
        self._last_state_time = None
        self._target_pos = self._target_rot = None
        log.info("connected to the Franka at %s (realtime %s, dynamics factor %.2f, streaming %s)", c.robot_ip,
                 c.realtime, c.relative_dynamics_factor, c.streaming)

    @property
    def connected(self) -> bool:
        return self._robot is not None and not (self.fault is not None and self.fault.kind == "connection")

    @property
    def robot(self):
        """The franky.Robot (for inspection); None before connect() or after close()."""
        return self._robot

    # --- errors ---------------------------------------------------------------------------------------------
    def _describe(self, exc: BaseException) -> tuple[str, str]:
        franky = self._franky
        text = _text(exc)
        if franky is not None and isinstance(exc, franky.NetworkException):
            return "connection", (f"connection to the Franka at {self.config.robot_ip} lost ({text}); the robot stops "
                                  "itself on a communication loss; check the network and the robot, then recover()")
        if franky is not None and isinstance(exc, franky.ControlException):
            return "reflex", f"robot aborted the motion ({text}){self._robot_errors_text()}"
        if isinstance(exc, RuntimeError) and "planner" in str(exc).lower():
            return "planner", f"motion planning failed ({text}): target invalid or unreachable"
        return "other", f"unexpected error ({text})"

    def _errors_clear_within(self, seconds: float) -> bool:
        """Whether a robot state without errors arrives within `seconds`. franky's recover_from_errors() judges by
        the state it reads right after the recovery command is acknowledged, and that state may have been sent
        before the robot left Reflex mode (shown with a franky-sim that clears its reflex late); later states tell
        the truth."""
        deadline = time.monotonic() + seconds
        while True:
            if not self._robot.has_errors:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def _robot_errors_text(self) -> str:
        try:
            errors = str(self._robot.state.current_errors)
        except Exception:
            return ""
        return "" if errors in ("[]", "") else f"; robot errors: {errors}"

    def _fail(self, what: str, exc: BaseException | None = None, kind: str | None = None,
              message: str | None = None, report: bool = True) -> FrankaError:
        """Record a fault, stop streaming (best effort) and return the FrankaError to raise (report=False: the
        caller does not raise it; the next apply() or reset() will)."""
        if exc is not None:
            k, text = self._describe(exc)
        else:
            k, text = "other", ""
        kind = kind or k
        err = FrankaError(f"Franka {what}: {message or text}", kind)
        if self.fault is None:
            self.fault = err
            self._fault_reported = report
            log.error("%s", err)
        self.stats[f"fault_{kind}"] += 1
        self._target_pos = self._target_rot = None
        if kind == "force":
            self._halt_motion(preempt=False)  # let the reaction's stop motion bring the arm to rest
        elif kind != "connection":
            self._halt_motion()
        self._impedance_motion = self._motion_target = None
        return err

    def _is_own_preemption(self, exc: BaseException) -> bool:
        return "preempted" in str(exc).lower() and self._expect_preemption

    def _poll(self) -> None:
        """Collect an exception from the asynchronous motion, a force reaction or a gripper failure as a fault."""
        if self._robot is None or self.fault is not None:
            return
        try:
            self._robot.poll_motion()
        except Exception as exc:
            if not self._is_own_preemption(exc):
                self._fail("motion failed", exc, report=False)
                return
        if self._force_event is not None:
            force, rel_time = self._force_event
            self._fail("force reaction", kind="force", report=False, message=(
                f"external force {np.linalg.norm(force[:3]):.1f} N {np.round(force[:3], 1).tolist()} exceeded "
                f"force_reaction_n = {self.config.force_reaction_n} N; the motion was stopped"))
            return
        if self._gripper is not None and self._gripper.error is not None:
            exc = self._gripper.error
            self._fail("gripper failed", kind="gripper", report=False, message=(
                f"Franka Hand at {self.config.robot_ip}: {_text(exc)}"))

    def _check_motion_allowed(self, what: str) -> None:
        if self._robot is None:
            raise FrankaError(f"Franka {what} refused: not connected (closed or never connected)", "refused")
        if self.fault is not None:
            if not self._fault_reported:  # first report of a fault that observe() or hold() collected
                self._fault_reported = True
                raise self.fault
            raise FrankaError(f"Franka {what} refused after a fault, call recover() first; the fault was: {self.fault}",
                              "refused")
        if self.stopped:
            raise FrankaError(f"Franka {what} refused: stopped by stop(); call recover() or reset() to move again",
                              "refused")

    # --- state ----------------------------------------------------------------------------------------------
    def _read_state(self):
        try:
            state = self._robot.state
        except Exception as exc:
            raise self._fail("state unavailable", exc) from exc
        now = time.monotonic()
        t = state.time.to_sec()
        if t != self._last_state_time:
            self._last_state_time = t
            self._last_state_change = now
        elif now - self._last_state_change > self.config.state_timeout_s:
            raise self._fail("state stale", kind="connection", message=(
                f"no new robot state from {self.config.robot_ip} for {now - self._last_state_change:.2f} s "
                f"(limit {self.config.state_timeout_s} s): connection lost or robot controller stopped"))
        return state

    @staticmethod
    def _pose(state) -> tuple[np.ndarray, np.ndarray]:
        """Measured EE pose in the base frame: position (3,), rotation matrix (3, 3)."""
        m = np.asarray(state.O_T_EE.matrix, np.float64)
        return m[:3, 3].copy(), m[:3, :3].copy()

    def gripper_width(self) -> float:
        if self._gripper is None or self._gripper.width is None:
            return float(self.config.gripper.width_open_m)
        return float(self._gripper.width)

    def stop_cameras(self) -> None:
        """Stop the colour cameras and the depth cameras of the point clouds (the caller started them)."""
        for camera in self.cameras.values():
            camera.stop()
        if self.clouds is not None:
            self.clouds.stop()

    def observe(self) -> Observation:
        """proprio = [eef pos (3, base frame + observation_offset_m), eef quat xyzw (4), fingers +w/2, -w/2];
        images from the cameras, point clouds from the depth cameras (clouds); stamp = the oldest camera frame's stamp
        (time.monotonic() without cameras).
        Raises FrankaError when the robot state cannot be read, ObservationError when a camera has no frame."""
        if self._robot is None:
            raise FrankaError("Franka observe() refused: not connected", "refused")
        self._poll()
        if self.fault is not None and self.fault.kind == "connection":
            self._fault_reported = True
            raise self.fault
        state = self._read_state()
        stamp = time.monotonic()
        pose = state.O_T_EE
        pos = np.asarray(pose.translation, np.float64) + self._offset
        quat = canonical_quat(np.asarray(pose.quaternion, np.float64), self._quat_ref)
        width = self.gripper_width()
        proprio = np.concatenate([pos, quat, [width / 2.0, -width / 2.0]]).astype(np.float32)
        images: dict[str, np.ndarray] = {}
        stamps = []
        for name, camera in self.cameras.items():
            frame = camera.latest()
            if frame is None:
                raise ObservationError(f"camera '{name}' has no frame yet (not started, or no image received)")
            images[name] = frame.image
            stamps.append(float(frame.stamp))
        points = {}
        if self.clouds is not None:
            points, cloud_stamps = self.clouds.observe(proprio)
            stamps += cloud_stamps
        return Observation(images=images, proprio=proprio, stamp=min(stamps) if stamps else stamp, points=points)

    @property
    def observation_spec(self) -> ObservationSpec:
        specs = []
        for name, camera in self.cameras.items():
            frame = camera.latest()
            if frame is not None:
                h, w = frame.image.shape[:2]
            elif hasattr(camera, "height") and hasattr(camera, "width"):
                h, w = int(camera.height), int(camera.width)
            else:
                raise ObservationError(f"camera '{name}': image size unknown until its first frame")
            specs.append(ImageSpec(name, h, w))
        clouds = list(self.clouds.specs) if self.clouds is not None else []
        return ObservationSpec(images=specs, proprio_keys=list(PROPRIO_KEYS), proprio_dims=list(PROPRIO_DIMS),
                               point_clouds=clouds)

    def set_command_rate(self, hz: float) -> None:
        """How often apply() will be called; each call then moves the hand by rate_hz / hz of an action."""
        if hz < self.config.rate_hz:
            raise ValueError(f"command rate {hz} Hz is below the policy rate {self.config.rate_hz} Hz")
        self.rate_hz = float(hz)
        self._step_fraction = float(self.config.rate_hz) / self.rate_hz

    # --- motion ---------------------------------------------------------------------------------------------
    def apply(self, action: np.ndarray) -> None:
        """One 7-d OSC delta action: safety filter -> new streamed EE target; gripper through the hysteresis latch.
        Raises FrankaError on a fault (and afterwards, until recover())."""
        self._check_motion_allowed("apply()")
        self._poll()
        self._check_motion_allowed("apply()")
        state = self._read_state()
        meas_pos, meas_rot = self._pose(state)
        if self.config.target_base == "target" and self._target_pos is not None:
            base_pos, base_rot = self._target_pos, self._target_rot
        else:
            base_pos, base_rot = meas_pos, meas_rot
        safe = self.safety.filter(action, base_pos, 1.0 / self.config.rate_hz)  # limits per policy period
        k = self._step_fraction
        pos = base_pos + safe[:3].astype(np.float64) * self.config.pos_scale * k
        rot = orthonormalize(rotvec_to_matrix(safe[3:6].astype(np.float64) * self.config.rot_scale * k) @ base_rot)
        lead = pos - meas_pos
        dist = float(np.linalg.norm(lead))
        if dist > self.config.max_target_lead_m:
            pos = meas_pos + lead * (self.config.max_target_lead_m / dist)
            self.stats["target_leashed"] += 1
        self._send_target(pos, rot)
        closed = self.gripper_latch(float(safe[6])) > 0
        if self._gripper is not None:
            self._gripper.desired_closed = closed

    def _affine(self, pos: np.ndarray, rot: np.ndarray):
        m = np.eye(4)
        m[:3, :3] = rot
        m[:3, 3] = pos
        return self._franky.Affine(m)

    def _force_reaction(self, stop_motion):
        franky = self._franky
        f = self.config.force_reaction_n
        condition = (franky.Measure.FORCE_X ** 2 + franky.Measure.FORCE_Y ** 2 + franky.Measure.FORCE_Z ** 2) > f * f
        reaction = franky.Reaction(condition, stop_motion)

        def on_force(state, rel_time, abs_time):  # franky's control thread: only record, never call franky here
            if self._force_event is None:
                self._force_event = (np.asarray(state.O_F_ext_hat_K, np.float64).copy(), float(rel_time.to_sec()))

        reaction.register_callback(on_force)
        return reaction

    def _send_target(self, pos: np.ndarray, rot: np.ndarray) -> None:
        franky = self._franky
        target = self._affine(pos, rot)
        now = time.monotonic()
        self._target_pos, self._target_rot = pos, rot
        self.command_times.append(now)
        self.stats["targets"] += 1
        if self.config.streaming == "motion" and now - self._last_motion_time < 1.0 / self.config.max_retarget_hz:
            self._unsent_target = True  # sent by a later apply() or hold()
            return
        self._unsent_target = False
        if self.config.streaming == "motion" and self._motion_target is not None \
                and np.allclose(pos, self._motion_target[0], rtol=0, atol=1e-9) \
                and np.allclose(rot, self._motion_target[1], rtol=0, atol=1e-9):
            # the running motion already goes (and stays) there; re-planning a zero-length motion to the same
            # target can fail in the trajectory generator (ruckig -111, seen under franky-sim with a still arm)
            self.stats["targets_unchanged"] += 1
            return
        try:
            if self.config.streaming == "motion":
                self._last_motion_time = now
                motion = franky.CartesianMotion(target, franky.ReferenceType.Absolute, return_when_finished=False)
                if self.config.force_reaction_n is not None:
                    motion.add_reaction(self._force_reaction(franky.CartesianStopMotion()))
                self._expect_preemption = False
                self._robot.move(motion, asynchronous=True)
                self._motion_target = (pos.copy(), rot.copy())
            else:
                reference = franky.CartesianReference(target=target)
                if self._impedance_motion is None or not self._robot.is_in_control:
                    motion = franky.CartesianImpedanceTrackingMotion(
                        translational_stiffness=self.config.impedance_translational_stiffness,
                        rotational_stiffness=self.config.impedance_rotational_stiffness)
                    motion.set_reference(reference)
                    if self.config.force_reaction_n is not None:
                        motion.add_reaction(self._force_reaction(franky.TorqueStopMotion()))
                    self._expect_preemption = False
                    self._robot.move(motion, asynchronous=True)
                    self._impedance_motion = motion
                else:
                    self._impedance_motion.set_reference(reference)
        except Exception as exc:
            raise self._fail("streaming a target failed", exc) from exc

    def _flush_target(self) -> None:
        """Send a target that a throttled apply() left pending."""
        if self._unsent_target and self._target_pos is not None and time.monotonic() - self._last_motion_time >= 1.0 / self.config.max_retarget_hz:
            self.command_times.pop()  # _send_target re-records it: count each command once
            self.stats["targets"] -= 1
            self._send_target(self._target_pos, self._target_rot)

    def hold(self) -> None:
        """Send no new delta: the running motion keeps (and settles on) its last, already filtered target, the
        gripper stays as it is. Never raises for a fault (a faulted robot is already stopped)."""
        self.stats["holds"] += 1
        if self._robot is None or self.fault is not None or self.stopped:
            return
        self._poll()
        if self.fault is None and not self.stopped:
            try:
                self._flush_target()
            except FrankaError:
                pass  # recorded in self.fault; holding never raises

    def _halt_motion(self, timeout: float = 3.0, preempt: bool = True) -> None:
        """Stop the running motion (preempt=False: only wait for it to end) and wait; swallow the preemption this
        causes. Best effort, never raises."""
        robot = self._robot
        if robot is None:
            return
        franky = self._franky
        self._expect_preemption = True
        try:
            if not preempt or not robot.is_in_control:
                pass
            elif self.config.streaming == "impedance" and self._impedance_motion is not None:
                robot.move(franky.TorqueStopMotion(), asynchronous=True)  # ramps the torques down, then finishes
            else:
                robot.stop()
        except Exception as exc:
            log.warning("stopping the motion: %s", _text(exc))
        try:
            robot.join_motion(timeout)
        except Exception as exc:
            if "preempted" not in str(exc).lower():
                log.warning("motion ended with %s", _text(exc))
        self._impedance_motion = self._motion_target = None
        self._target_pos = self._target_rot = None

    def stop(self) -> None:
        """Safe stop: end the streamed motion (the arm halts and holds), keep the gripper as it is, and refuse
        motion until recover() or reset()."""
        self.stopped = True
        if self._robot is not None and not (self.fault is not None and self.fault.kind == "connection"):
            self._halt_motion()
        self.stats["stops"] += 1

    def recover(self) -> None:
        """Clear a fault: automatic error recovery on the robot, or a reconnect after a lost connection.
        Raises FrankaError when the robot cannot be recovered (e.g. user stop pressed, controller down)."""
        franky = self._import_franky()
        fault = self.fault
        if self._robot is None or (fault is not None and fault.kind == "connection"):
            self._disconnect()
            self.fault = None
            try:
                self.connect()
            except FrankaError as exc:
                self.fault = exc
                raise FrankaError(f"Franka recover() failed: {exc}", "connection") from exc
        elif fault is not None and fault.kind == "gripper":
            if self._gripper is not None:
                self._gripper.close()
            self._gripper = None
            try:
                self._gripper = _GripperWorker(franky.Gripper(self.config.robot_ip), self.config.gripper)
            except Exception as exc:
                raise FrankaError(f"Franka recover() failed: cannot reconnect the Franka Hand: {_text(exc)}",
                                  "gripper") from exc
            self.fault = None
        else:
            try:
                self._halt_motion()
                ok = self._robot.recover_from_errors() or self._errors_clear_within(RECOVERY_STATE_WAIT_S)
                if not ok:
                    errors = self._robot_errors_text()
                    raise FrankaError(f"Franka automatic error recovery failed{errors or ''}: manual recovery needed "
                                      "(release the user stop, check Desk)", "reflex")
            except FrankaError:
                raise
            except Exception as exc:
                kind, text = self._describe(exc)
                raise FrankaError(f"Franka recover() failed: {text}", kind) from exc
            self.fault = None
        self._force_event = None
        self.stopped = False
        self._target_pos = self._target_rot = None
        self._last_state_time = None
        self.stats["recoveries"] += 1
        log.info("Franka recovered")

    def reset(self, seed: int | None = None) -> Observation:
        """Move to `home_q` (joint motion), open the gripper, and return the observation. `seed` is ignored (the
        real scene is set up by hand). Raises FrankaError on a fault."""
        if self.fault is not None or self._robot is None:
            self._check_motion_allowed("reset()")
        self.stopped = False
        self._halt_motion()
        franky = self._franky
        try:
            self._robot.move(franky.JointMotion(franky.JointState(np.asarray(self.config.home_q, np.float64))))
        except Exception as exc:
            raise self._fail("reset to home_q failed", exc) from exc
        self.gripper_latch.reset()
        self.safety.last_gripper = -1.0
        if self._gripper is not None:
            self._gripper.desired_closed = False
            deadline = time.monotonic() + self.config.gripper.reset_timeout_s
            while time.monotonic() < deadline and self._gripper.busy and self._gripper.error is None:
                time.sleep(0.02)
            if self._gripper.busy:
                log.warning("gripper not open after %.1f s", self.config.gripper.reset_timeout_s)
        self._target_pos = self._target_rot = None
        self._last_state_time = None
        self.stats["resets"] += 1
        return self.observe()

    # --- figures --------------------------------------------------------------------------------------------
    def command_rate_hz(self, last: int = 50) -> float | None:
        """Achieved rate of streamed targets over the last `last` commands (None with fewer than 2)."""
        times = list(self.command_times)[-last:]
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def tracking_error(self) -> tuple[float, float] | None:
        """(position m, rotation rad) between the last streamed target and the measured EE pose."""
        if self._target_pos is None or self._robot is None:
            return None
        pos, rot = self._pose(self._read_state())
        return float(np.linalg.norm(self._target_pos - pos)), rotation_angle_between(self._target_rot, rot)

    # --- shutdown -------------------------------------------------------------------------------------------
    def _disconnect(self) -> None:
        if self._gripper is not None:
            self._gripper.close(timeout=0.5 if self.fault is not None and self.fault.kind == "connection" else None)
        self._gripper = None
        if self._robot is not None:
            try:
                running = self._robot.is_in_control
            except Exception:
                running = True
            if running:  # a motion thread that did not end: never free the Robot under it
                log.warning("robot motion still running at disconnect; keeping its connection alive")
                _KEEP_ALIVE.append(self._robot)
        self._robot = None  # franky closes the connection when the Robot object goes away
        self._impedance_motion = self._motion_target = None

    def close(self) -> None:
        """Stop (best effort) and disconnect arm and hand; the bridge cannot be used afterwards without connect()."""
        if self._robot is not None and not (self.fault is not None and self.fault.kind == "connection"):
            try:
                self._halt_motion()
            except Exception as exc:  # closing must not fail
                log.warning("close: %s", exc)
        self._disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
