"""franka_bridge_node: the Franka (FrankaBridge, franky) behind the dm1 command and state topics.

configure loads the robot configuration (config/robot/franka.yaml; robot_ip, realtime and control_rate override
it) and connects; activate executes commands. FrankaBridge.apply runs every action through its own SafetyFilter
(workspace box in the robot base frame, per-step and velocity limits), so the executor adds no second filter.
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
        if name == "realtime" and value not in ("", "enforce", "ignore"):
            return f"{value!r}: choose enforce, ignore or '' (the config's)"
        return super().validate(name, value)

    def load_config(self):
        from pathlib import Path

        from dm1_ros.configuration import load_yaml

        from dm1_ros.hardware.franka import FrankaConfig  # lazy: franky itself is imported only at connect

        path = self.p("robot_config")
        if not path:
            here = Path(__file__).resolve().parents[2] / "config" / "robot" / "franka.yaml"
            if here.is_file():
                path = str(here)
            else:
                try:
                    from ament_index_python.packages import get_package_share_directory

                    path = str(Path(get_package_share_directory("dm1_ros")) / "config" / "robot" / "franka.yaml")
                except Exception:  # noqa: BLE001 - no file: the dataclass defaults
                    path = ""
        overrides = [f"robot_ip={self.p('robot_ip')}", f"rate_hz={self.p('control_rate')}"]
        if self.p("realtime"):
            overrides.append(f"realtime={self.p('realtime')}")
        if path:
            return load_yaml(FrankaConfig, path, overrides=overrides)
        return FrankaConfig(robot_ip=self.p("robot_ip"), rate_hz=self.p("control_rate"),
                            realtime=self.p("realtime") or "enforce")

    def make_robot(self):
        from dm1_ros.hardware.franka import FrankaBridge

        self.config = self.load_config()
        factory = self.robot_factory or (lambda config: FrankaBridge(config))
        robot = factory(self.config)
        self.get_logger().info(f"connected to the Franka at {self.config.robot_ip}")
        return robot

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
