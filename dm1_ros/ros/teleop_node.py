"""teleop_node: keyboard / SpaceMouse -> robot commands, and demonstrations recorded for training.

Every `rate` tick with a new observation (image(s) + robot state, as the policy would see them) the device's
7-d action is published on /dm1/action_trajectory stamped with that observation's time (hold_points copies, so a
command stays valid for a few ticks and the robot holds soon after the operator's input stops), and, while an
episode is being recorded, (observation, action, timestamp) goes to a DemoRecorder: robomimic HDF5 written on a
background thread, one atomic shard per episode, assembled into `output` on cleanup or shutdown (or after each
episode with assemble_every_episode) - the file `dm1 train` reads. With bag_path set, the raw topics also go to a
rosbag2 (MCAP by default), with the episode events (/dm1/teleop/episode) and success flags that make the bag
importable on its own (`dm1 dataset import --from-bag`). A step's reward is the success flag (/dm1/sim/success) seen with the next observation,
as in robomimic (reward after acting); the last step gets the flag at stop. Services /dm1/teleop/{start,stop,discard}; device buttons and keys (enter toggles,
backspace discards) do the same. Key taps may also arrive on /dm1/teleop/keys (std_msgs/String).
"""
from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from trajectory_msgs.msg import MultiDOFJointTrajectory

from dm1_ros.ros.assembler import ObservationAssembler
from dm1_ros.ros.conversions import actions_to_trajectory
from dm1_ros.ros.node_base import COMMAND_QOS, LATEST_QOS, STATE_QOS, Dm1Node, Param, run
from dm1_ros.ros.topics import (ACTION_TRAJECTORY, CAMERA_IMAGE, EEF_POSE, FINGER_JOINTS, GRIPPER_STATE,
                                JOINT_STATES, SIM_SUCCESS, TELEOP_DISCARD, TELEOP_EPISODE, TELEOP_KEYS, TELEOP_START, TELEOP_STOP,
                                info_topic)
from dm1_ros.runtime.safety import Watchdog

DEVICES = ("keyboard", "spacemouse")


class TeleopNode(Dm1Node):
    PARAMETERS = (
        Param("device", "keyboard", "keyboard | spacemouse", configure_only=True),
        Param("keyboard_backend", "auto", "auto | pynput | terminal | topic (only /dm1/teleop/keys taps); auto "
              "takes pynput on a desktop, the terminal when there is one, else the topic",
              configure_only=True),
        Param("rate", 20.0, "command and recording rate, Hz (the dataset's control rate)", configure_only=True),
        Param("output", "data/teleop.hdf5", "robomimic HDF5 to write (episode shards in <output>.parts/)",
              configure_only=True),
        Param("image_topics", [CAMERA_IMAGE], "image topics to record", configure_only=True),
        Param("camera_names", ["robot0_eye_in_hand_image"], "dataset key of each image topic", configure_only=True),
        Param("record_image_size", [96, 96], "height, width images are stored at ([0, 0] = as received)",
              configure_only=True),
        Param("hold_points", 3, "points per command: the action stays valid for this many ticks"),
        Param("max_observation_age_s", 0.25, "do not command or record on inputs older than this (s)"),
        Param("max_camera_skew_s", 0.05, "several cameras: their images of one step are at most this far apart in time",
              configure_only=True),
        Param("finger_joints", list(FINGER_JOINTS), "joint_states names of the two fingers", configure_only=True),
        Param("pos_scale", 0.05, "metres per unit of dx dy dz (must match the robot's)"),
        Param("rot_scale", 0.5, "radians per unit of drx dry drz"),
        Param("base_frame", "panda_link0", "frame_id of the published commands"),
        Param("env_args", "", "JSON stored as the dataset's env_args ('' = a generic teleop entry)",
              configure_only=True),
        Param("assemble_every_episode", False, "rewrite the dataset file after every episode (else at cleanup)",
              configure_only=True),
        Param("valid_fraction", 0.1, "share of episodes in mask/valid", configure_only=True),
        Param("bag_path", "", "also record the raw topics to this rosbag2 directory ('' = off)", configure_only=True),
        Param("bag_storage", "mcap", "rosbag2 storage: mcap | sqlite3", configure_only=True),
        Param("record_on_activate", False, "start recording an episode as soon as the node is active"),
    )

    def __init__(self, *, device=None, **kwargs):
        """device: a dm1_ros.hardware.teleop.TeleopDevice to use instead of building one (tests, scripts)."""
        super().__init__("teleop", **kwargs)
        self.injected_device = device
        self.device = None
        self.recorder = None
        self.bag = None
        self.assembler = None
        self.timer = None
        self.last_stamp = None
        self.commands = 0
        self.skipped: dict[str, int] = {}
        self._dm1_subs = []
        self.command_pub = self.create_publisher(MultiDOFJointTrajectory, ACTION_TRAJECTORY, COMMAND_QOS)
        self.episode_pub = self.create_publisher(String, TELEOP_EPISODE, STATE_QOS)
        self.subscribe(JointState, JOINT_STATES, self._on_joints, LATEST_QOS)
        self.subscribe(PoseStamped, EEF_POSE, self._on_pose, LATEST_QOS)
        self.subscribe(Bool, SIM_SUCCESS, self._on_success, STATE_QOS)
        self.subscribe(String, TELEOP_KEYS, self._on_key, 10)
        self.trigger_service(TELEOP_START, self._start)
        self.trigger_service(TELEOP_STOP, self._stop)
        self.trigger_service(TELEOP_DISCARD, self._discard)

    def validate(self, name, value):
        if name == "device" and value not in DEVICES:
            return f"{value!r}: choose {' or '.join(DEVICES)}"
        if name == "keyboard_backend" and value not in ("auto", "pynput", "terminal", "topic"):
            return f"{value!r}: choose auto, pynput, terminal or topic"
        if name in ("rate", "max_observation_age_s", "max_camera_skew_s", "pos_scale", "rot_scale") and value <= 0:
            return "must be positive"
        if name == "hold_points" and value < 1:
            return "must be at least 1"
        if name == "record_image_size" and (len(value) != 2 or min(value) < 0):
            return "expected [height, width] ([0, 0] = as received)"
        if name == "bag_storage" and value not in ("mcap", "sqlite3"):
            return f"{value!r}: choose mcap or sqlite3"
        if name == "env_args" and value:
            try:
                if not isinstance(json.loads(value), dict):
                    return "must be a JSON object"
            except json.JSONDecodeError as exc:
                return f"not valid JSON: {exc}"
        return None

    def on_parameter(self, name, value):
        if name == "max_observation_age_s" and self.assembler is not None:
            self.assembler.max_state_age_s = float(value)
            self.image_watchdog.timeout_s = float(value)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def configure(self) -> None:
        from dm1_ros.hardware.teleop import KeyboardTeleop, SpaceMouseTeleop
        from dm1_ros.data.recorder import DemoRecorder

        topics, names = self.p("image_topics"), self.p("camera_names")
        if len(topics) != len(names):
            raise ValueError(f"image_topics {topics} and camera_names {names} must pair up one to one")
        size = self.p("record_image_size")
        self.assembler = ObservationAssembler(names, max_state_age_s=self.p("max_observation_age_s"),
                                              finger_names=self.p("finger_joints"),
                                              max_camera_skew_s=self.p("max_camera_skew_s"))
        self.image_watchdog = Watchdog(self.p("max_observation_age_s"), "image")
        env_args = json.loads(self.p("env_args")) if self.p("env_args") else None
        self.recorder = DemoRecorder(self.p("output"), env_args, image_size=tuple(size) if min(size) > 0 else None,
                                     valid_fraction=self.p("valid_fraction"),
                                     assemble_every_episode=self.p("assemble_every_episode"))
        if self.p("bag_path"):
            from dm1_ros.data.rosbag import BagRecorder

            self.bag = BagRecorder(self.p("bag_path"), storage=self.p("bag_storage"))
            for topic in topics:
                self._dm1_subs.append(self.subscribe(
                    CameraInfo, info_topic(topic), lambda m, t=info_topic(topic): self._to_bag(t, m), LATEST_QOS))
            self._dm1_subs.append(self.subscribe(
                Float64MultiArray, GRIPPER_STATE, lambda m: self._to_bag(GRIPPER_STATE, m), LATEST_QOS))
        for topic, name in zip(topics, names):
            self._dm1_subs.append(self.subscribe(
                Image, topic, lambda m, k=name, t=topic: self._on_image(k, t, m), LATEST_QOS))
        if self.injected_device is not None:
            self.device = self.injected_device
        elif self.p("device") == "keyboard":
            backend = self.p("keyboard_backend")
            self.device = KeyboardTeleop(backend="none" if backend == "topic" else backend)
        else:
            self.device = SpaceMouseTeleop()
        self.device.start()  # a missing device fails configure with the reason
        self.timer = self.every(1.0 / self.p("rate"), self.tick)
        keys = getattr(self.device, "active_backend", None)
        how = f" (keys: {'only from ' + TELEOP_KEYS if keys == 'none' else keys})" if keys else ""
        self.get_logger().info(f"teleop with {type(self.device).__name__}{how}, recording to {self.p('output')}")

    def activate(self) -> None:
        self.last_stamp = None
        if self.p("record_on_activate") and not self.recorder.recording:
            self.recorder.start(device=self.p("device"))

    def deactivate(self) -> None:
        if self.recorder is not None and self.recorder.recording:
            name = self.recorder.stop()
            self.get_logger().info(f"deactivated: episode {name} saved")

    def cleanup(self) -> None:
        if self.timer is not None:
            self.destroy_timer(self.timer)
        for sub in self._dm1_subs:
            self.destroy_subscription(sub)
        self._dm1_subs = []
        if self.device is not None and self.device is not self.injected_device:
            self.device.stop()
        if self.recorder is not None:
            path = self.recorder.close()
            if path is not None:
                self.get_logger().info(f"dataset {path}: {len(self.recorder.saved)} new episode(s)")
            for err in self.recorder.errors:
                self.get_logger().error(f"recorder: {err}")
        if self.bag is not None:
            self.bag.close()
        self.timer = self.device = self.recorder = self.bag = self.assembler = None

    # --- inputs ------------------------------------------------------------------------------------------------
    def _to_bag(self, topic: str, msg) -> None:
        if self.bag is not None:
            self.bag.write(topic, msg, self.get_clock().now().nanoseconds)

    def _on_image(self, key, topic, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_image(key, msg)
        self._to_bag(topic, msg)

    def _on_joints(self, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_joints(msg)
        self._to_bag(JOINT_STATES, msg)

    def _on_pose(self, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_pose(msg)
        self._to_bag(EEF_POSE, msg)

    def _on_success(self, msg) -> None:
        if self.recorder is not None:
            self.recorder.set_success(msg.data)
        self._to_bag(SIM_SUCCESS, msg)

    def _episode_event(self, text: str) -> None:
        """'start NAME', 'stop NAME success=B', 'discard NAME' on TELEOP_EPISODE and into the bag, so that a bag
        alone says where its episodes begin and end (`dm1 dataset import --from-bag`)."""
        msg = String(data=text)
        self.episode_pub.publish(msg)
        self._to_bag(TELEOP_EPISODE, msg)

    def _on_key(self, msg) -> None:
        press = getattr(self.device, "press", None)
        if press is not None:
            press(msg.data, tap=True)

    # --- services ----------------------------------------------------------------------------------------------
    def _start(self):
        if self.state != "active":
            return False, f"node is {self.state}; activate it first"
        name = self.recorder.start(device=self.p("device"))
        self._episode_event(f"start {name}")
        return True, f"recording {name}"

    def _stop(self):
        if self.recorder is None or not self.recorder.recording:
            return False, "not recording"
        success = self.recorder.success
        name = self.recorder.stop()
        self._episode_event(f"stop {name} success={success}")
        return True, f"{name}: {self.recorder.steps} steps, success={success}; written in the background"

    def _discard(self):
        if self.recorder is None or not self.recorder.recording:
            return False, "not recording"
        name = self.recorder.discard()
        self._episode_event(f"discard {name}")
        return True, f"{name} discarded"

    # --- the tick ----------------------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.state != "active":
            return
        for event in self.device.events():
            if event == "toggle_episode":
                ok, message = self._stop() if self.recorder.recording else self._start()
            else:
                ok, message = self._discard()
            self.get_logger().info(message)
        stamp = self.assembler.image_stamp() if self.assembler.image_keys else self.assembler.state_stamp()
        if stamp is None or stamp == self.last_stamp:
            return  # one command (and one recorded step) per observation
        now = self.now()
        obs, reason = self.assembler.build(now)
        if obs is not None:
            self.image_watchdog.feed(obs.stamp)
            reason = self.image_watchdog.check(now)
            obs = None if reason else obs
        if obs is None:
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
            return
        action = np.asarray(self.device.action(), np.float32)
        n = self.p("hold_points")
        msg = actions_to_trajectory(np.repeat(action[None], n, axis=0), obs.stamp, self.p("rate"), self.p("pos_scale"),
                                    self.p("rot_scale"), self.p("base_frame"))
        self.command_pub.publish(msg)
        self._to_bag(ACTION_TRAJECTORY, msg)
        self.commands += 1
        self.last_stamp = stamp
        self.recorder.step(obs, action)  # recorded while an episode is (its reward: the next success flag)

    # --- diagnostics -------------------------------------------------------------------------------------------
    def diagnostics(self):
        if self.recorder is None:
            return super().diagnostics()
        r = self.recorder
        values = {"state": self.state, "device": type(self.device).__name__, "recording": r.recording or "",
                  "episode_steps": r.steps, "saved": len(r.saved), "discarded": r.discarded, "dropped_steps": r.dropped,
                  "commands": self.commands, "output": str(r.store.out), "errors": "; ".join(r.errors[-3:])}
        values.update({f"skipped_{k}": v for k, v in sorted(self.skipped.items())})
        if self.bag is not None:
            values.update(bag=str(self.bag.path), bag_messages=self.bag.written, bag_dropped=self.bag.dropped)
        level = "ERROR" if r.errors or r.dropped else ("OK" if self.state == "active" else "WARN")
        message = f"recording {r.recording} ({r.steps} steps)" if r.recording else f"idle, {len(r.saved)} saved"
        return [("teleop", level, message, values)]


def main(args=None) -> int:
    return run(TeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
