"""RobotBridgeNode: what franka_bridge_node and sim_bridge_node share.

Subscribes to /dm1/action_trajectory (the policy's or the teleop's commands; one with no points means hold) and
executes them at its own control rate through the runtime's CommandExecutor, the same object `dm1 run` uses
(ActionScheduler latest mode with latency compensation and interpolation; a command link silent for
command_timeout_s holds the robot; robot errors are faults that hold until /dm1/robot/recover). The robot filters
every action itself (FrankaBridge, SimRobot: workspace box and limits in the robot's frame). Publishes the robot
state every tick (/dm1/joint_states, /dm1/eef_pose, /dm1/gripper_state). Services /dm1/robot/{stop,recover,reset}.
configure connects (make_robot), activate executes; while inactive nothing moves and nothing is published. A
fault takes the node out of active (lifecycle deactivate) with the reason on /diagnostics; recover brings it back.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import MultiDOFJointTrajectory

from dm1_ros.ros.conversions import state_messages, trajectory_to_actions
from dm1_ros.ros.node_base import COMMAND_QOS, STATE_QOS, Dm1Node, Param
from dm1_ros.runtime.contract import ActionChunk
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
    Param("state_rate", 50.0, "robot state published at most this often, Hz (0 = every tick): the policy needs it "
          "once per image, and three messages a tick at 200 Hz cost its subscribers more than they are worth"),
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
        self.deactivated_by_fault = False
        self._last_state = float("-inf")
        self.joints_pub = self.create_publisher(JointState, JOINT_STATES, STATE_QOS)
        self.pose_pub = self.create_publisher(PoseStamped, EEF_POSE, STATE_QOS)
        self.gripper_pub = self.create_publisher(Float64MultiArray, GRIPPER_STATE, STATE_QOS)
        self.subscribe(MultiDOFJointTrajectory, ACTION_TRAJECTORY, self._on_command, COMMAND_QOS)
        self.trigger_service(ROBOT_STOP, self._stop)
        self.trigger_service(ROBOT_RECOVER, self._recover)
        self.trigger_service(ROBOT_RESET, self._reset)

    def validate(self, name, value):
        if name in ("control_rate", "command_timeout_s") and value <= 0:
            return "must be positive"
        if name in ("camera_latency_s", "actuation_latency_s", "state_rate") and value < 0:
            return "must not be negative"
        return None

    # --- what subclasses provide --------------------------------------------------------------------------------
    def make_robot(self):
        raise NotImplementedError

    def policy_rate(self) -> float:
        """Hz of the actions in a command (their spacing); an action is a delta over one such period."""
        return float(self.p("control_rate"))

    def scales(self) -> tuple[float, float]:
        """(pos_scale m, rot_scale rad) per action unit: trajectory metres/radians -> policy units."""
        return 0.05, 0.5

    def schedule_time(self) -> float | None:
        return None

    def before_tick(self, now: float) -> tuple[bool, str | None]:
        """(tick now?, reason to hold this tick or None)."""
        return True, None

    def after_tick(self, tick, now: float) -> None:
        rate = self.p("state_rate")
        if tick.observation is not None and (rate <= 0 or now - self._last_state >= 0.999 / rate):
            self.publish_state(tick.observation.proprio, now)
            self._last_state = now

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
        from dm1_ros.runtime.executor import CommandExecutor
        from dm1_ros.runtime.scheduler import ActionScheduler, SchedulerConfig

        self.robot = self.make_robot()
        rate = self.p("control_rate")
        scheduler = ActionScheduler(SchedulerConfig(
            mode="latest", rate_hz=self.policy_rate(),
            camera_latency_s=self.p("camera_latency_s"), actuation_latency_s=self.p("actuation_latency_s"),
            interpolate=self.p("interpolate")))
        self.control = CommandExecutor(self.robot, scheduler, command_timeout_s=self.p("command_timeout_s"),
                                       cadence=CadenceMonitor(rate), errors=self.robot_errors())
        self.timer = self.every(1.0 / rate, self.tick)

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
        if spacing is not None and abs(spacing * self.policy_rate() - 1.0) > 1e-3:
            self.bad_commands += 1
            self.last_command_error = (f"command actions are {spacing:.4g} s apart ({1 / spacing:.4g} Hz) but this "
                                       f"bridge executes actions of a {self.policy_rate():.4g} Hz policy; set its "
                                       "policy rate to the model's control rate")
            self.get_logger().error(f"command refused: {self.last_command_error}", throttle_duration_sec=1.0)
            return
        now = self.now()
        if len(actions) == 0:
            self.control.hold_now("commanded_hold", now)
        else:
            self.control.command(ActionChunk(actions, stamp, "command"), now, schedule_time=self.schedule_time())
        self.commands_since_obs += 1

    def tick(self) -> None:
        if self.control is None or self.state != "active":
            return
        now = self.now()
        proceed, hold_reason = self.before_tick(now)
        if not proceed:
            return
        with self.control.cadence.tick():
            tick = self.control.tick(now, schedule_time=self.schedule_time(), hold_reason=hold_reason)
        self.after_tick(tick, now)
        if self.control.fault and self.state == "active":
            self.get_logger().error(f"robot fault, holding and leaving active: {self.control.fault}; "
                                    "call /dm1/robot/recover to go on")
            self.trigger_deactivate()
            self.deactivated_by_fault = True

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
        if self.deactivated_by_fault and self.state == "inactive":
            self.trigger_activate()  # the fault took the node out of active; the recovery brings it back
        self.deactivated_by_fault = False
        return True, f"recovered: executing commands again ({self.state})"

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
