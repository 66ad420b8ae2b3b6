"""policy_node: camera image(s) + robot state -> OnnxPolicy -> action trajectory and raw chunk.

Subscribes to image_topics (one per camera of the model, in manifest order; sensor QoS), /dm1/joint_states and
/dm1/eef_pose. A timer at `rate` Hz builds an Observation stamped with the image header stamp (once per new image;
stale or missing inputs are skipped and counted), runs the policy and publishes
  /dm1/action_trajectory  MultiDOFJointTrajectory stamped with the observation time (the blended command)
  /dm1/action_chunk       Float64MultiArray (Ta, Da): the model's raw output
configure loads the bundle (warm-up included) and checks it; activate starts planning. `model_path` hot-swaps:
validated in the set-parameters callback (a bad path is refused with the reason), loaded on a worker thread,
swapped between ticks (blended actions of the old model dropped); if loading fails the old model keeps running
and model_path is set back to it. Services /dm1/policy/{start,stop,reset}.
"""
from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import MultiDOFJointTrajectory

from dm1_ros.ros.assembler import ObservationAssembler
from dm1_ros.ros.conversions import actions_to_trajectory, chunk_to_array_msg
from dm1_ros.ros.node_base import COMMAND_QOS, LATEST_QOS, Dm1Node, Param, run
from dm1_ros.ros.policy_runner import BLENDING
from dm1_ros.ros.topics import (ACTION_CHUNK, ACTION_TRAJECTORY, CAMERA_IMAGE, EEF_POSE, FINGER_JOINTS,
                                JOINT_STATES, POLICY_RESET, POLICY_START, POLICY_STOP)


def _default_model() -> str:
    from dm1_ros.cli import default_model_path

    return str(default_model_path())


class PolicyNode(Dm1Node):
    PARAMETERS = (
        Param("model_path", "", "model bundle directory (model.onnx + manifest.yaml); setting it hot-swaps "
              "('' = the shipped models/lift_image)"),
        Param("providers", ["auto"], "onnxruntime execution providers: [auto] or e.g. "
              "[CUDAExecutionProvider, CPUExecutionProvider]", configure_only=True),
        Param("threads", 0, "intra-op threads of the CPU provider (0 = onnxruntime's choice)", configure_only=True),
        Param("rate", 0.0, "planning rate, Hz (0 = the model's control rate)", configure_only=True),
        Param("sampling_steps", 0, "expected sampling steps (0 = the bundle's); baked into the ONNX graph at "
              "export, so a bundle that differs is refused", read_only=True),
        Param("blending", "model", "model | latest | ensemble | chunk (how chunks become the published command; "
              "model: the bundle's manifest execution)"),
        Param("ensemble_decay", 0.5, "ensemble weight exp(-decay * age in control steps) of older chunks",
              configure_only=True),
        Param("plan_ahead_s", 0.0, "chunk blending: plan the next chunk this long before the current runs out",
              configure_only=True),
        Param("image_topics", [CAMERA_IMAGE], "one image topic per camera of the model, in manifest order",
              configure_only=True),
        Param("resize_images", True, "resize images to the model's size (false: refuse other sizes)",
              configure_only=True),
        Param("finger_joints", list(FINGER_JOINTS), "joint_states names of the two fingers", configure_only=True),
        Param("max_observation_age_s", 0.25, "skip planning when an image or the state is older than this (s)"),
        Param("pos_scale", 0.05, "metres per unit of dx dy dz (trajectory translation = action * pos_scale)"),
        Param("rot_scale", 0.5, "radians per unit of drx dry drz"),
        Param("base_frame", "panda_link0", "frame_id of the published trajectory"),
        Param("start_on_activate", True, "plan as soon as the node is active (false: wait for the start service)"),
        Param("warmup", 5, "inferences at load before the robot may move", configure_only=True),
        Param("noise_seed", -1, "sampling-noise seed (-1 = fresh entropy)", configure_only=True),
    )

    def __init__(self, **kwargs):
        super().__init__("policy", **kwargs)
        self.runner = None
        self.assembler = None
        self.running = False
        self.timer = None
        self.cadence = None
        self.skipped: dict[str, int] = {}
        self.errors = 0
        self.plans = 0
        self.last_planned_stamp = None
        self._image_subs = []
        self._reverting = False
        self.trajectory_pub = self.create_publisher(MultiDOFJointTrajectory, ACTION_TRAJECTORY, COMMAND_QOS)
        self.chunk_pub = self.create_publisher(Float64MultiArray, ACTION_CHUNK, COMMAND_QOS)
        self.create_subscription(JointState, JOINT_STATES, self._on_joints, LATEST_QOS)
        self.create_subscription(PoseStamped, EEF_POSE, self._on_pose, LATEST_QOS)
        self.trigger_service(POLICY_START, self._start)
        self.trigger_service(POLICY_STOP, self._stop)
        self.trigger_service(POLICY_RESET, self._reset)

    # --- parameters --------------------------------------------------------------------------------------------
    def model_path(self, value: str | None = None) -> str:
        value = self.p("model_path") if value is None else value
        return value or _default_model()

    def validate(self, name, value):
        if name == "blending" and value not in BLENDING:
            return f"{value!r} is not one of {', '.join(BLENDING)}"
        if name in ("rate", "ensemble_decay", "plan_ahead_s") and value < 0:
            return "must not be negative"
        if name in ("max_observation_age_s", "pos_scale", "rot_scale") and value <= 0:
            return "must be positive"
        if name == "image_topics" and not value:
            return "needs one topic per camera of the model"
        if name == "model_path" and self._params_ready() and not self._reverting:
            from dm1_ros.runtime.bundle import BundleError, read_manifest

            path = self.model_path(value)
            try:
                if self.runner is not None:
                    self.runner.check_bundle(path)
                else:
                    read_manifest(path)
            except BundleError as exc:
                return f"refused, keeping {self.runner.model_id if self.runner else 'no model'}: {exc}"
        return None

    def _params_ready(self) -> bool:
        return hasattr(self, "runner")

    def on_parameter(self, name, value):
        if self.runner is None:
            return
        if name == "model_path" and not self._reverting:
            self.runner.request_swap(self.model_path(value))
            self.get_logger().info(f"loading {self.model_path(value)} in the background; "
                                   f"{self.runner.model_id} keeps running until it is ready")
        elif name == "blending":
            self.runner.set_blending(value)
        elif name == "max_observation_age_s" and self.assembler is not None:
            self.assembler.max_age_s = float(value)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def configure(self) -> None:
        from dm1_ros.runtime.cadence import CadenceMonitor
        from dm1_ros.ros.policy_runner import PolicyRunner

        providers = self.p("providers")
        self.runner = PolicyRunner(
            self.model_path(), providers="auto" if providers in ([], ["auto"]) else providers,
            threads=self.p("threads") or None, blending=self.p("blending"), sampling_steps=self.p("sampling_steps"),
            warmup=self.p("warmup"), noise_seed=None if self.p("noise_seed") < 0 else self.p("noise_seed"),
            ensemble_decay=self.p("ensemble_decay"), plan_ahead_s=self.p("plan_ahead_s"))
        spec = self.runner.manifest.observation
        topics = self.p("image_topics")
        if len(topics) != len(spec.images):
            raise ValueError(f"model {self.runner.model_id} has {len(spec.images)} camera(s) "
                             f"{[s.name for s in spec.images]}; image_topics lists {len(topics)}: {topics}")
        self.assembler = ObservationAssembler(
            [s.name for s in spec.images], {s.name: (s.height, s.width) for s in spec.images},
            max_age_s=self.p("max_observation_age_s"), finger_names=self.p("finger_joints"),
            resize=self.p("resize_images"))
        for topic, image in zip(topics, spec.images):
            self._image_subs.append(self.create_subscription(
                Image, topic, lambda msg, key=image.name: self.assembler.set_image(key, msg), LATEST_QOS))
        rate = self.p("rate") or self.runner.manifest.control_rate_hz
        self.cadence = CadenceMonitor(rate)
        self.timer = self.create_timer(1.0 / rate, self.tick)
        self.get_logger().info(f"policy {self.runner.model_id} on {self.runner.policy.provider}, "
                               f"{self.runner.manifest.sampling_steps} step(s), planning at {rate:.0f} Hz, "
                               f"blending {self.runner.blender.mode}")

    def activate(self) -> None:
        self.running = bool(self.p("start_on_activate"))
        self.runner.reset()
        self.last_planned_stamp = None

    def deactivate(self) -> None:
        self.running = False

    def cleanup(self) -> None:
        if self.timer is not None:
            self.destroy_timer(self.timer)
        for sub in self._image_subs:
            self.destroy_subscription(sub)
        self._image_subs = []
        self.timer = self.runner = self.assembler = None

    # --- inputs ------------------------------------------------------------------------------------------------
    def _on_joints(self, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_joints(msg)

    def _on_pose(self, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_pose(msg)

    # --- services ----------------------------------------------------------------------------------------------
    def _start(self):
        if self.state != "active":
            return False, f"node is {self.state}; activate it first"
        self.running = True
        return True, f"planning with {self.runner.model_id}"

    def _stop(self):
        self.running = False
        return True, "planning stopped; the robot holds once the published actions run out"

    def _reset(self):
        if self.runner is None:
            return False, "not configured"
        self.runner.reset()
        self.last_planned_stamp = None
        self.skipped.clear()
        return True, "blending history cleared"

    # --- the tick ----------------------------------------------------------------------------------------------
    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def tick(self) -> None:
        if self.runner is None:
            return
        for event in self.runner.poll_swap():  # between ticks
            if event.ok:
                self.last_planned_stamp = None
                self.get_logger().info(f"model swapped: {event.message}")
            else:
                self.get_logger().error(f"model swap failed, keeping {self.runner.model_id}: {event.message}")
                self._reverting = True
                try:
                    self.set_parameters([Parameter("model_path", value=self.runner.bundle_dir)])
                finally:
                    self._reverting = False
        if self.state != "active" or not self.running:
            return
        stamp = self.assembler.image_stamp()
        if stamp is None or stamp == self.last_planned_stamp:
            return  # plan once per image
        now = self.now()
        with self.cadence.tick():
            with self.cadence.stage("observe"):
                obs, reason = self.assembler.build(now)
            if obs is None:
                self._skip(reason)
                return
            blender = self.runner.blender
            if not blender.needs_plan(obs.stamp):
                actions, chunk_stamp = blender.current  # chunk blending: the running chunk again
                with self.cadence.stage("send"):
                    self.trajectory_pub.publish(self._trajectory(actions, chunk_stamp))
                self.last_planned_stamp = stamp
                return
            with self.cadence.stage("infer"):
                try:
                    raw, actions = self.runner.plan(obs)
                except Exception as exc:  # bad input or a failing model: publish nothing, the robot holds
                    self.errors += 1
                    self.get_logger().error(f"policy failed: {exc}", throttle_duration_sec=1.0)
                    return
            with self.cadence.stage("send"):
                self.trajectory_pub.publish(self._trajectory(actions, obs.stamp))
                self.chunk_pub.publish(chunk_to_array_msg(raw.actions))
            self.last_planned_stamp = stamp
            self.plans += 1

    def _trajectory(self, actions, stamp):
        return actions_to_trajectory(actions, stamp, self.runner.manifest.control_rate_hz, self.p("pos_scale"),
                                     self.p("rot_scale"), self.p("base_frame"))

    # --- diagnostics -------------------------------------------------------------------------------------------
    def diagnostics(self):
        if self.runner is None:
            return super().diagnostics()
        r, m = self.runner, self.runner.manifest
        s = self.cadence.summary()
        values = {"state": self.state, "running": self.running, "model_id": r.model_id, "model_path": r.bundle_dir,
                  "provider": r.policy.provider, "sampling_steps": m.sampling_steps, "blending": r.blender.mode,
                  "target_hz": s["target_hz"], "achieved_hz": s["achieved_hz"], "plans": self.plans,
                  "overruns": s["overruns"], "errors": self.errors, "swaps": r.swaps, "failed_swaps": r.failed_swaps,
                  "swapping": r.swapping, "last_swap_error": r.last_swap_error}
        values.update({f"skipped_{k}": v for k, v in sorted(self.skipped.items())})
        for name, st in s["stages"].items():
            values[f"{name}_p50_ms"] = st["p50_ms"]
            values[f"{name}_p99_ms"] = st["p99_ms"]
        if self.errors or r.last_swap_error:
            level = "WARN"
        elif self.state == "active" and self.running and s["ticks"] > 10 and s["achieved_hz"] < 0.9 * s["target_hz"]:
            level = "WARN"
        else:
            level = "OK" if self.state == "active" else "WARN"
        message = f"{r.model_id}: {self.cadence.report_line()}" if s["ticks"] else f"{r.model_id}: {self.state}"
        return [("policy", level, message, values)]


def main(args=None) -> int:
    return run(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
