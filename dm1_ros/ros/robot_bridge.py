"""RobotBridgeNode: what franka_bridge_node and sim_bridge_node share.

Subscribes to /dm1/action_trajectory (the policy's or the teleop's commands) and executes them at its own
control rate through CommandExecutor (ActionScheduler latest mode with latency compensation and interpolation,
Watchdog: a command link silent for command_timeout_s holds the robot, SafetyFilter). Publishes the robot state
every tick (/dm1/joint_states, /dm1/eef_pose, /dm1/gripper_state). Services /dm1/robot/{stop,recover,reset}.
configure connects (make_robot), activate executes; while inactive nothing moves and nothing is published.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import MultiDOFJointTrajectory

from dm1_ros.ros.conversions import state_messages, trajectory_to_actions
from dm1_ros.ros.node_base import COMMAND_QOS, STATE_QOS, Dm1Node, Param
from dm1_ros.ros.topics import (ACTION_TRAJECTORY, EEF_POSE, GRIPPER_STATE, JOINT_STATES, ROBOT_RECOVER,
                                ROBOT_RESET, ROBOT_STOP)

BRIDGE_PARAMETERS = (
    Param("control_rate", 20.0, "control loop rate, Hz (commands are interpolated between their points)",
          configure_only=True),
    Param("command_timeout_s", 0.3, "watchdog: hold when no command arrived for this long (s)", configure_only=True),
    Param("camera_latency_s", 0.0, "capture -> image stamp latency the scheduler accounts for (s)",
          configure_only=True),
    Param("actuation_latency_s", 0.0, "command -> motion latency the scheduler accounts for (s)", configure_only=True),
    Param("interpolate", True, "interpolate between a command's points when the loop outruns them",
          configure_only=True),
    Param("base_frame", "panda_link0", "frame_id of the published pose and joint states"),
)


class RobotBridgeNode(Dm1Node):
    def __init__(self, name: str, *, robot_factory=None, **kwargs):
        super().__init__(name, **kwargs)
        self.robot_factory = robot_factory
        self.robot = None
        self.control = None
        self.timer = None
        self.commands_since_obs = 0
        self.ignored_commands = 0
        self.bad_commands = 0
        self.last_command_error = ""
        self.joints_pub = self.create_publisher(JointState, JOINT_STATES, STATE_QOS)
        self.pose_pub = self.create_publisher(PoseStamped, EEF_POSE, STATE_QOS)
        self.gripper_pub = self.create_publisher(Float64MultiArray, GRIPPER_STATE, STATE_QOS)
        self.create_subscription(MultiDOFJointTrajectory, ACTION_TRAJECTORY, self._on_command, COMMAND_QOS)
        self.trigger_service(ROBOT_STOP, self._stop)
        self.trigger_service(ROBOT_RECOVER, self._recover)
        self.trigger_service(ROBOT_RESET, self._reset)

    def validate(self, name, value):
        if name in ("control_rate", "command_timeout_s") and value <= 0:
            return "must be positive"
        if name in ("camera_latency_s", "actuation_latency_s") and value < 0:
            return "must not be negative"
        return None

    # --- what subclasses provide --------------------------------------------------------------------------------
    def make_robot(self):
        raise NotImplementedError

    def make_safety(self):
        """A SafetyFilter, or None when the robot filters every action itself."""
        return None

    def scales(self) -> tuple[float, float]:
        """(pos_scale m, rot_scale rad) per action unit: trajectory metres/radians -> policy units."""
        return 0.05, 0.5

    def schedule_time(self) -> float | None:
        return None

    def before_tick(self, now: float) -> tuple[bool, str | None]:
        """(tick now?, reason to hold this tick or None)."""
        return True, None

    def after_tick(self, tick, now: float) -> None:
        if tick.observation is not None:
            self.publish_state(tick.observation.proprio, now)

    def arm_joints(self):
        return None

    def gripper_command(self) -> float:
        latch = getattr(self.robot, "gripper_latch", None)
        return 1.0 if latch is not None and latch.closed else -1.0

    def stop_robot(self) -> None:
        pass

    def recover_robot(self) -> None:
        pass

    def reset_robot(self) -> None:
        self.robot.reset()

    def robot_errors(self) -> tuple[type[BaseException], ...]:
        return (RuntimeError,)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def configure(self) -> None:
        from dm1_ros.runtime.cadence import CadenceMonitor
        from dm1_ros.runtime.safety import Watchdog
        from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig
        from dm1_ros.ros.executor import CommandExecutor

        self.robot = self.make_robot()
        rate = self.p("control_rate")
        scheduler = ActionScheduler(SchedulerConfig(
            mode="latest", rate_hz=float(getattr(self.robot, "rate_hz", rate)),
            camera_latency_s=self.p("camera_latency_s"), actuation_latency_s=self.p("actuation_latency_s"),
            interpolate=self.p("interpolate")))
        watchdog = Watchdog(observation_timeout_s=max(1.0, 5.0 / rate), command_timeout_s=self.p("command_timeout_s"))
        self.control = CommandExecutor(self.robot, scheduler, self.make_safety(), watchdog, CadenceMonitor(rate),
                                        errors=self.robot_errors())
        self.timer = self.create_timer(1.0 / rate, self.tick)

    def activate(self) -> None:
        self.control.reset()
        self.commands_since_obs = 0

    def cleanup(self) -> None:
        if self.timer is not None:
            self.destroy_timer(self.timer)
        robot, self.robot, self.control, self.timer = self.robot, None, None, None
        if robot is not None:
            robot.close()

    # --- commands and ticks ------------------------------------------------------------------------------------
    def _on_command(self, msg) -> None:
        if self.control is None or self.state != "active":
            self.ignored_commands += 1
            return
        pos_scale, rot_scale = self.scales()
        try:
            actions, stamp, spacing = trajectory_to_actions(msg, pos_scale, rot_scale)
        except ValueError as exc:
            self.bad_commands += 1
            self.last_command_error = str(exc)
            self.get_logger().error(f"command refused: {exc}", throttle_duration_sec=1.0)
            return
        self.control.command(actions, stamp, self.now(), spacing, schedule_time=self.schedule_time())
        self.commands_since_obs += 1

    def tick(self) -> None:
        if self.control is None or self.state != "active":
            return
        now = self.now()
        proceed, hold_reason = self.before_tick(now)
        if not proceed:
            return
        tick = self.control.tick(now, schedule_time=self.schedule_time(), hold_reason=hold_reason)
        self.after_tick(tick, now)

    def publish_state(self, proprio, stamp: float) -> None:
        joints, pose, gripper = state_messages(np.asarray(proprio), stamp, self.p("base_frame"),
                                               arm_joints=self.arm_joints(), gripper_command=self.gripper_command())
        self.joints_pub.publish(joints)
        self.pose_pub.publish(pose)
        self.gripper_pub.publish(gripper)

    # --- services ----------------------------------------------------------------------------------------------
    def _stop(self):
        if self.control is None:
            return False, f"not configured ({self.state})"
        self.control.stop()
        self.stop_robot()
        return True, "stopped: holding; call recover (or reset) to move again"

    def _recover(self):
        if self.control is None:
            return False, f"not configured ({self.state})"
        self.recover_robot()
        self.control.resume()
        return True, "recovered: executing commands again"

    def _reset(self):
        if self.control is None:
            return False, f"not configured ({self.state})"
        self.reset_robot()
        self.control.resume()
        self.control.reset()
        self.commands_since_obs = 0
        return True, "reset to the start configuration"

    # --- diagnostics -------------------------------------------------------------------------------------------
    def diagnostics(self):
        if self.control is None:
            return super().diagnostics()
        f = self.control.figures()
        f.update(state=self.state, ignored_commands=self.ignored_commands, bad_commands=self.bad_commands,
                 last_command_error=self.last_command_error)
        if f["fault"]:
            level, message = "ERROR", f"fault: {f['fault']}"
        elif f["stopped"]:
            level, message = "WARN", "stopped (call recover)"
        elif self.state == "active" and f["ticks"] > 10 and f["achieved_hz"] < 0.9 * f["target_hz"]:
            level, message = "WARN", f"{f['achieved_hz']:.1f}/{f['target_hz']:.0f} Hz, below target"
        else:
            level, message = ("OK" if self.state == "active" else "WARN"), (
                f"{f['achieved_hz']:.1f}/{f['target_hz']:.0f} Hz, {self.state}")
        return [("robot", level, message, f)]
