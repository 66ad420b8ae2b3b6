"""franka_bridge_node: the Franka (FrankaBridge, franky) behind the dm1 command and state topics.

configure loads the robot configuration (config/robot/franka.yaml; robot_ip, realtime, policy_rate and control_rate
override it) and connects; activate executes commands: control_rate ticks a second (say 200), each sending the
action of the newest command meant for that instant (interpolated between the policy_rate actions). FrankaBridge
runs every action through its own SafetyFilter (workspace box in the robot base frame, per-step and velocity limits
per policy period), the only one in the pipeline.
A fault (reflex, lost connection, force reaction) holds the robot until /dm1/robot/recover succeeds;
/dm1/robot/stop halts and refuses motion until recover or reset; /dm1/robot/reset moves to home_q (blocking).
"""
from __future__ import annotations

import numpy as np

from dm1_ros.ros.node_base import Param, run
from dm1_ros.ros.robot_bridge import BRIDGE_PARAMETERS, RobotBridgeNode


class FrankaBridgeNode(RobotBridgeNode):
    PARAMETERS = BRIDGE_PARAMETERS + (
        Param("robot_ip", "172.16.0.2", "robot (FCI) address", configure_only=True),
        Param("policy_rate", 20.0, "control rate of the model whose actions arrive, Hz (an action is a delta over "
              "1 / policy_rate; control_rate may be higher: commands are then interpolated)", configure_only=True),
        Param("robot_config", "", "FrankaConfig YAML ('' = the packaged config/robot/franka.yaml)",
              configure_only=True),
        Param("realtime", "", "enforce | ignore ('' = the config's; ignore only without an RT kernel)",
              configure_only=True),
        Param("reset_on_activate", False, "move to home_q when activated", configure_only=True),
    )

    def __init__(self, *, robot_factory=None, **kwargs):
        """robot_factory(FrankaConfig) -> robot (tests inject a fake; default FrankaBridge, which connects)."""
        super().__init__("franka_bridge", robot_factory=robot_factory, **kwargs)
        self.config = None

    def validate(self, name, value):
        if name == "policy_rate" and value <= 0:
            return "must be positive"
        if name == "realtime" and value not in ("", "enforce", "ignore"):
            return f"{value!r}: choose enforce, ignore or '' (the config's)"
        return super().validate(name, value)

    def load_config(self):
        from dm1_ros.configuration import load_yaml
        from dm1_ros.hardware.franka import FrankaConfig  # lazy: franky itself is imported only at connect
        from dm1_ros.paths import default_config_path

        path = self.p("robot_config") or str(default_config_path("robot/franka.yaml"))
        overrides = [f"robot_ip={self.p('robot_ip')}", f"rate_hz={self.p('policy_rate')}",
                     f"command_rate_hz={self.p('control_rate')}"]
        if self.p("realtime"):
            overrides.append(f"realtime={self.p('realtime')}")
        return load_yaml(FrankaConfig, path, overrides=overrides)

    def make_robot(self):
        from dm1_ros.hardware.franka import FrankaBridge

        self.config = self.load_config()
        factory = self.robot_factory or (lambda config: FrankaBridge(config))
        robot = factory(self.config)
        self.get_logger().info(f"connected to the Franka at {self.config.robot_ip}")
        return robot

    def policy_rate(self) -> float:
        return float(self.p("policy_rate"))

    def scales(self):
        return self.config.safety.pos_scale, self.config.safety.rot_scale

    def robot_errors(self):
        return (RuntimeError,)  # FrankaError and ObservationError are RuntimeErrors

    def activate(self) -> None:
        super().activate()
        if self.p("reset_on_activate"):
            self.robot.reset()

    def arm_joints(self):
        try:
            return np.asarray(self.robot.robot.state.q, np.float64)  # franky RobotState.q
        except Exception:  # noqa: BLE001 - joint angles are informative only
            return None

    def stop_robot(self) -> None:
        self.robot.stop()

    def recover_robot(self) -> None:
        self.robot.recover()

    def diagnostics(self):
        statuses = super().diagnostics()
        if self.robot is not None:
            name, level, message, values = statuses[0]
            stats = getattr(self.robot, "stats", {})
            values.update({f"franka_{k}": v for k, v in sorted(dict(stats).items())})
            rate = getattr(self.robot, "command_rate_hz", lambda: None)()
            values["franka_command_hz"] = rate if rate is not None else 0.0
            fault = getattr(self.robot, "fault", None)
            if fault is not None:
                level, message = "ERROR", f"Franka fault: {fault}"
            statuses[0] = (name, level, message, values)
        return statuses


def main(args=None) -> int:
    return run(FrankaBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
