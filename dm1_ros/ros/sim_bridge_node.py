"""sim_bridge_node: robosuite (SimRobot) behind the same topics as camera_node + franka_bridge_node.

Publishes the simulated camera(s) on the camera topics (rgb8 + CameraInfo, sensor QoS), the robot state on
/dm1/{joint_states,eef_pose,gripper_state} and /dm1/sim/success; consumes /dm1/action_trajectory and offers the
/dm1/robot/{stop,recover,reset} services, so `use_sim:=true` exercises the identical stack.

The simulated world stands still between ticks: one tick applies one action, steps the simulation by one control
period and publishes the new observation stamped with the ROS time of the tick. Commands are therefore scheduled
at the stamp of the last published observation (the instant the world is frozen at). With `lockstep` (default)
a tick waits, up to lockstep_timeout_s, until a command has arrived since the last observation, so a slow policy
or a busy CPU changes the timing of nothing (like `dm1 run`); when none comes in time the tick steps holding
(reason stale_command). lockstep: false runs at the wall-clock rate with the command watchdog of the real robot.
"""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool

from dm1_ros.ros.conversions import array_to_image, camera_info
from dm1_ros.ros.node_base import SENSOR_QOS, STATE_QOS, Param, run
from dm1_ros.ros.robot_bridge import BRIDGE_PARAMETERS, RobotBridgeNode
from dm1_ros.ros.topics import CAMERA_IMAGE, SIM_SUCCESS, info_topic


class SimBridgeNode(RobotBridgeNode):
    PARAMETERS = BRIDGE_PARAMETERS + (
        Param("task", "lift", "robosuite task: lift | can | square", configure_only=True),
        Param("cameras", ["robot0_eye_in_hand"], "robosuite camera names", configure_only=True),
        Param("image_topics", [CAMERA_IMAGE], "image topic per camera (camera_info beside each)", read_only=True),
        Param("image_size", [96, 96], "rendered image height, width", configure_only=True),
        Param("camera_frame_id", "camera_color_optical_frame", "frame_id of the simulated images"),
        Param("seed", 0, "seed of the first episode (reset uses seed + episode index)", configure_only=True),
        Param("max_steps", 0, "ticks per episode before `done` (0 = the task's default)", configure_only=True),
        Param("auto_reset", False, "start the next episode when one is done (success or max_steps)"),
        Param("lockstep", True, "wait for a command per observation (deterministic on a slow machine)"),
        Param("lockstep_timeout_s", 1.0, "lockstep: step anyway (holding) after waiting this long (s)"),
        Param("fast_render", True, "shadows and reflections off (must match how training data was rendered)",
              configure_only=True),
    )

    def __init__(self, *, robot_factory=None, **kwargs):
        """robot_factory(SimConfig) -> robot (default SimRobot; tests may inject a lighter one)."""
        super().__init__("sim_bridge", robot_factory=robot_factory, **kwargs)
        topics = self.p("image_topics")
        self.image_pubs = [self.create_publisher(Image, t, SENSOR_QOS) for t in topics]
        self.info_pubs = [self.create_publisher(CameraInfo, info_topic(t), SENSOR_QOS) for t in topics]
        self.success_pub = self.create_publisher(Bool, SIM_SUCCESS, STATE_QOS)
        self.episode = 0
        self.episodes_done = 0
        self.successes = 0
        self.last_obs_stamp: float | None = None
        self.last_obs_wall: float | None = None
        self.lockstep_waits = 0
        self.lockstep_timeouts = 0
        self._was_done = False

    def validate(self, name, value):
        if name == "task" and value not in ("lift", "can", "square"):
            return f"{value!r}: choose lift, can or square"
        if name == "image_size" and (len(value) != 2 or min(value) <= 0):
            return "expected [height, width], both positive"
        if name == "lockstep_timeout_s" and value <= 0:
            return "must be positive"
        return super().validate(name, value)

    # --- robot -------------------------------------------------------------------------------------------------
    def make_robot(self):
        from dm1_ros.sim.env import SimConfig

        cameras, topics = self.p("cameras"), self.p("image_topics")
        if len(cameras) != len(topics):
            raise ValueError(f"cameras {cameras} and image_topics {topics} must pair up one to one")
        rate = self.p("control_rate")
        if abs(rate - round(rate)) > 1e-9:
            raise ValueError(f"control_rate {rate}: robosuite's control frequency must be a whole number of Hz")
        config = SimConfig(task=self.p("task"), cameras=cameras, image_size=self.p("image_size"),
                           control_rate_hz=rate, max_steps=self.p("max_steps"), fast_render=self.p("fast_render"))
        if self.robot_factory is not None:
            robot = self.robot_factory(config)
        else:
            from dm1_ros.sim.robot import SimRobot

            robot = SimRobot(config)
        robot.reset(seed=self.p("seed"))
        self.episode = 0
        return robot

    def reset_robot(self) -> None:
        self.episode += 1
        self.robot.reset(seed=self.p("seed") + self.episode)
        self._was_done = False
        self.publish_observation(self.now())

    def arm_joints(self):
        env = getattr(self.robot, "env", None)
        try:
            return np.asarray(env.raw_observation()["robot0_joint_pos"], np.float64)
        except Exception:  # noqa: BLE001 - a robot without joint readings
            return None

    # --- time --------------------------------------------------------------------------------------------------
    def schedule_time(self):
        return self.last_obs_stamp

    def activate(self) -> None:
        super().activate()
        self.publish_observation(self.now())  # the first observation: the policy plans on it

    def before_tick(self, now: float):
        if not self.p("lockstep") or self.last_obs_stamp is None:
            return True, None
        if self.commands_since_obs > 0:
            # A command for the frozen world's current state arrived: the link is alive, however long the policy
            # took in wall-clock time (the watchdog's timeout is for the free-running mode).
            self.control.watchdog.feed(now)
            return True, None
        if now - self.last_obs_wall < self.p("lockstep_timeout_s"):
            self.lockstep_waits += 1
            return False, None
        self.lockstep_timeouts += 1
        return True, "stale_command"  # nothing came: step, holding

    def after_tick(self, tick, now: float) -> None:
        done = bool(getattr(self.robot, "done", False))
        if done and not self._was_done:
            self.episodes_done += 1
            self.successes += int(bool(getattr(self.robot, "success", False)))
            if self.p("auto_reset"):
                self.get_logger().info(f"episode {self.episode}: "
                                       f"{'success' if self.robot.success else 'failure'}; next episode")
                self.reset_robot()
                self.control.reset()
                self._was_done = False
                return
        self._was_done = done
        self.publish_observation(now)

    def publish_observation(self, stamp: float) -> None:
        obs = self.robot.observe()
        frame = self.p("camera_frame_id")
        self.publish_state(obs.proprio, stamp)  # state first: a subscriber that sees the image has the state
        for key, pub, info in zip([f"{c}_image" for c in self.p("cameras")], self.image_pubs, self.info_pubs):
            image = obs.images[key]
            pub.publish(array_to_image(image, stamp, frame))
            info.publish(camera_info(image.shape[1], image.shape[0], stamp, frame))
        self.success_pub.publish(Bool(data=bool(getattr(self.robot, "success", False))))
        self.last_obs_stamp, self.last_obs_wall = stamp, stamp
        self.commands_since_obs = 0

    def diagnostics(self):
        statuses = super().diagnostics()
        if self.control is not None:
            name, level, message, values = statuses[0]
            values.update(task=self.p("task"), episode=self.episode, episodes_done=self.episodes_done,
                          successes=self.successes, lockstep=self.p("lockstep"), lockstep_waits=self.lockstep_waits,
                          lockstep_timeouts=self.lockstep_timeouts)
            statuses[0] = (name, level, message, values)
        return statuses


def main(args=None) -> int:
    return run(SimBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
