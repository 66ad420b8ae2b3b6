"""policy_node: camera image(s) + robot state -> Planner (OnnxPolicy, blending, hot swap) -> commands.

Subscribes to image_topics (one per camera of the model, in manifest order; sensor QoS), /dm1/joint_states and
/dm1/eef_pose. Planning is driven by the images: when the first camera's image arrives, an Observation is built
(stamped with the image header stamp) and the Planner runs (at most once per image, at most `rate` times a
second when rate > 0); its command goes out at once:
  /dm1/action_trajectory  MultiDOFJointTrajectory stamped with the observation time (the blended command); a
                          trajectory with no points when the robot must hold (stale image, model failure, NaN)
  /dm1/action_chunk       Float64MultiArray (Ta, Da): the model's raw output, when the model ran
configure loads the bundle (warm-up included) and checks it; activate starts planning. Setting `model_path`
hot-swaps: the new bundle is loaded, warmed up and checked inside the set-parameters call (its ControlExecutor runs
parameter changes on a worker thread, so the old model keeps planning meanwhile), so a bad bundle is refused with the reason and the parameter
keeps naming the model that runs; a good one takes over before the next plan (blended actions of the old model
dropped). Services /dm1/policy/{start,stop,reset}.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import MultiDOFJointTrajectory

from dm1_ros.ros.assembler import ObservationAssembler
from dm1_ros.runtime.pointcloud import DepthMount, depth_cameras_of
from dm1_ros.ros.conversions import actions_to_trajectory, chunk_to_array_msg
from dm1_ros.ros.node_base import COMMAND_QOS, LATEST_QOS, Dm1Node, Param, run
from dm1_ros.ros.topics import (ACTION_CHUNK, ACTION_TRAJECTORY, CAMERA_DEPTH, CAMERA_DEPTH_INFO, CAMERA_IMAGE, EEF_POSE, FINGER_JOINTS,
                                JOINT_STATES, POLICY_RESET, POLICY_START, POLICY_STOP)
from dm1_ros.runtime.planner import BLENDING, SAME_OBSERVATION


class PolicyNode(Dm1Node):
    PARAMETERS = (
        Param("model_path", "", "model bundle directory (model.onnx + manifest.yaml); setting it hot-swaps "
              "('' = the shipped default, models/lift_image_fast_500)"),
        Param("providers", ["auto"], "onnxruntime execution providers: [auto] or e.g. "
              "[CUDAExecutionProvider, CPUExecutionProvider]", configure_only=True),
        Param("threads", 1, "intra-op threads of the CPU provider (0 = onnxruntime's choice: one per core)", configure_only=True),
        Param("rate", 0.0, "most plans per second (0 = one per image)", configure_only=True),
        Param("sampling_steps", 0, "expected sampling steps (0 = the bundle's); baked into the ONNX graph at "
              "export, so a bundle that differs is refused", read_only=True),
        Param("blending", "model", "model | latest | ensemble | chunk (how chunks become the published command; "
              "model: the bundle's manifest execution)"),
        Param("ensemble_decay", 0.5, "ensemble weight exp(-decay * age in control steps) of older chunks",
              configure_only=True),
        Param("plan_ahead_s", 0.0, "chunk blending: plan the next chunk this long before the current runs out",
              configure_only=True),
        Param("lookahead_s", -1.0, "run, at each image, the action its chunk planned this long after it (-1 = the "
              "bundle's manifest lookahead_s)", configure_only=True),
        Param("image_topics", [CAMERA_IMAGE], "one image topic per camera of the model, in manifest order",
              configure_only=True),
        Param("depth_topics", [CAMERA_DEPTH], "point-cloud models: one aligned depth topic per depth camera of the "
              "manifest's point_clouds, in its order", configure_only=True),
        Param("depth_info_topics", [CAMERA_DEPTH_INFO], "camera_info (intrinsics) topic of each depth topic",
              configure_only=True),
        Param("camera_mounts", ["fixed"], "per depth camera: fixed (camera_poses gives base_from_camera) or hand "
              "(eef_from_camera, a hand-eye calibration)", configure_only=True),
        Param("camera_poses", [0.0], "per depth camera 16 numbers, a row-major 4 x 4 transform (see camera_mounts), "
              "optical axes (z forward, y down)", configure_only=True),
        Param("resize_images", True, "resize images to the model's size (false: refuse other sizes)",
              configure_only=True),
        Param("finger_joints", list(FINGER_JOINTS), "joint_states names of the two fingers", configure_only=True),
        Param("max_observation_age_s", 0.25, "hold (publish a hold) when the image or the state is older than this (s)"),
        Param("max_camera_skew_s", 0.05, "several cameras: their images of one observation are at most this far apart "
              "in time (approximate time sync; farther: no plan, diagnostics count unsynced_images)"),
        Param("pos_scale", 0.05, "metres per unit of dx dy dz (trajectory translation = action * pos_scale)"),
        Param("rot_scale", 0.5, "radians per unit of drx dry drz"),
        Param("base_frame", "panda_link0", "frame_id of the published trajectory"),
        Param("start_on_activate", True, "plan as soon as the node is active (false: wait for the start service)"),
        Param("warmup", 5, "inferences at load before the robot may move", configure_only=True),
        Param("noise_seed", -1, "sampling-noise seed (-1 = fresh entropy)", configure_only=True),
    )

    def __init__(self, **kwargs):
        self.planner = None
        self._prepared: tuple[str, object] | None = None
        super().__init__("policy", **kwargs)
        self.assembler = None
        self.running = False
        self.cadence = None
        self.skipped: dict[str, int] = {}
        self.holds: dict[str, int] = {}
        self.plans = 0
        self.commands = 0
        self.last_plan_wall: float | None = None
        self._image_subs = []
        self.trajectory_pub = self.create_publisher(MultiDOFJointTrajectory, ACTION_TRAJECTORY, COMMAND_QOS)
        self.chunk_pub = self.create_publisher(Float64MultiArray, ACTION_CHUNK, COMMAND_QOS)
        self.subscribe(JointState, JOINT_STATES, self._on_joints, LATEST_QOS)
        self.subscribe(PoseStamped, EEF_POSE, self._on_pose, LATEST_QOS)
        self.trigger_service(POLICY_START, self._start)
        self.trigger_service(POLICY_STOP, self._stop)
        self.trigger_service(POLICY_RESET, self._reset)

    # --- parameters --------------------------------------------------------------------------------------------
    def model_path(self, value: str | None = None) -> str:
        from dm1_ros.paths import default_model_path

        value = self.p("model_path") if value is None else value
        return value or str(default_model_path())

    def validate(self, name, value):
        if name == "blending" and value not in BLENDING:
            return f"{value!r} is not one of {', '.join(BLENDING)}"
        if name in ("rate", "ensemble_decay", "plan_ahead_s") and value < 0:
            return "must not be negative"
        if name == "lookahead_s" and value < 0 and value != -1.0:
            return "must be -1 (the bundle's) or a non-negative number of seconds"
        if name in ("max_observation_age_s", "max_camera_skew_s", "pos_scale", "rot_scale") and value <= 0:
            return "must be positive"
        if name == "camera_mounts" and any(m not in ("fixed", "hand") for m in value):
            return "each mount is fixed or hand"
        if name == "image_topics" and not value:
            return "needs one topic per camera of the model"
        if name == "model_path" and not self.declaring:
            return self._prepare_model(self.model_path(value))
        return None

    def _prepare_model(self, path: str) -> str | None:
        """A new model_path: while configured, load and check it completely now (the answer to the set-parameters
        call says whether it will run); while unconfigured, read its manifest (configure loads it)."""
        from dm1_ros.runtime.bundle import BundleError, read_manifest

        planner = self.planner
        try:
            if planner is None:
                read_manifest(path)
            else:
                self._prepared = (path, planner.load(path))
        except Exception as exc:  # noqa: BLE001 - BundleError, onnxruntime's own: the reason goes back to the caller
            kind = "" if isinstance(exc, BundleError) else f"{type(exc).__name__}: "
            running = planner.model_id if planner is not None else "no model"
            return f"refused, keeping {running}: {kind}{exc}"
        return None

    def on_parameter(self, name, value):
        planner = self.planner
        if planner is None:
            return
        if name == "model_path" and self._prepared is not None:
            path, policy = self._prepared
            self._prepared = None
            planner.stage(policy, path)
            self.get_logger().info(f"model {policy.model_id} from {path} loaded and checked; it takes over from "
                                   f"{planner.model_id} before the next plan")
        elif name == "blending":
            planner.set_blending(value)
        elif name == "max_observation_age_s":
            planner.watchdog.timeout_s = float(value)
            if self.assembler is not None:
                self.assembler.max_state_age_s = float(value)
        elif name == "max_camera_skew_s" and self.assembler is not None:
            self.assembler.max_camera_skew_s = float(value)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def configure(self) -> None:
        from dm1_ros.runtime.cadence import CadenceMonitor
        from dm1_ros.runtime.onnx_policy import OnnxPolicy
        from dm1_ros.runtime.planner import Planner

        providers = self.p("providers")
        policy_kwargs = dict(providers="auto" if providers in ([], ["auto"]) else providers,
                             threads=self.p("threads") or None, warmup=self.p("warmup"),
                             noise_seed=None if self.p("noise_seed") < 0 else self.p("noise_seed"))
        policy = OnnxPolicy(self.model_path(), **policy_kwargs)
        planner = Planner(policy, self.p("blending"), max_observation_age_s=self.p("max_observation_age_s"),
                          ensemble_decay=self.p("ensemble_decay"), plan_ahead_s=self.p("plan_ahead_s"),
                          lookahead_s=None if self.p("lookahead_s") < 0 else self.p("lookahead_s"),
                          sampling_steps=self.p("sampling_steps"), **policy_kwargs)
        spec = planner.manifest.observation
        topics = self.p("image_topics")
        if spec.images and len(topics) != len(spec.images):
            raise ValueError(f"model {planner.model_id} has {len(spec.images)} camera(s) "
                             f"{[s.name for s in spec.images]}; image_topics lists {len(topics)}: {topics}")
        depth_cameras = depth_cameras_of(spec.point_clouds)
        mounts = self._depth_mounts(depth_cameras, planner.model_id)
        self.assembler = ObservationAssembler(
            [s.name for s in spec.images], {s.name: (s.height, s.width) for s in spec.images},
            max_state_age_s=self.p("max_observation_age_s"), finger_names=self.p("finger_joints"),
            resize=self.p("resize_images"), point_clouds=spec.point_clouds, mounts=mounts,
            max_camera_skew_s=self.p("max_camera_skew_s"))
        for i, (topic, image) in enumerate(zip(topics, spec.images)):
            self._image_subs.append(self.subscribe(
                Image, topic, lambda msg, key=image.name, first=i == 0: self._on_image(key, msg, first), LATEST_QOS))
        for i, (camera, topic, info) in enumerate(zip(depth_cameras, self.p("depth_topics"), self.p("depth_info_topics"))):
            first = i == 0 and not spec.images  # a point-cloud model plans on its first depth camera's frames
            self._image_subs.append(self.subscribe(
                Image, topic, lambda msg, cam=camera, first=first: self._on_depth(cam, msg, first), LATEST_QOS))
            self._image_subs.append(self.subscribe(
                CameraInfo, info, lambda msg, cam=camera: self._on_depth_info(cam, msg), LATEST_QOS))
        if depth_cameras and not spec.images:
            topics = self.p("depth_topics")
        self.cadence = CadenceMonitor(self.p("rate") or planner.manifest.control_rate_hz)
        self.planner = planner
        self.get_logger().info(f"policy {planner.model_id} on {policy.provider}, {planner.manifest.sampling_steps} "
                               f"step(s), planning on every image of {topics[0]}, blending {planner.mode}, lookahead "
                               f"{planner.lookahead_s * 1e3:g} ms")

    def _depth_mounts(self, cameras: list[str], model_id: str) -> dict[str, DepthMount]:
        """camera_mounts / camera_poses for the model's depth cameras; a ValueError names what is missing."""
        if not cameras:
            return {}
        mounts, poses = self.p("camera_mounts"), list(self.p("camera_poses"))
        need = len(cameras)
        if len(self.p("depth_topics")) < need or len(self.p("depth_info_topics")) < need:
            raise ValueError(f"model {model_id} builds point clouds from {need} depth camera(s) {cameras}; "
                             f"depth_topics and depth_info_topics need one entry each")
        if len(mounts) < need or len(poses) != 16 * need:
            raise ValueError(f"model {model_id} builds point clouds from depth camera(s) {cameras}: set camera_mounts "
                             f"(fixed | hand, one each) and camera_poses (16 numbers each, a row-major 4 x 4); got "
                             f"{len(mounts)} mount(s) and {len(poses)} numbers")
        return {c: DepthMount(m, np.asarray(poses[16 * i: 16 * (i + 1)], np.float64).reshape(4, 4))
                for i, (c, m) in enumerate(zip(cameras, mounts))}

    def activate(self) -> None:
        self.running = bool(self.p("start_on_activate"))
        self.planner.reset()

    def deactivate(self) -> None:
        self.running = False

    def cleanup(self) -> None:
        for sub in self._image_subs:
            self.destroy_subscription(sub)
        self._image_subs = []
        self.planner = self.assembler = None

    # --- inputs ------------------------------------------------------------------------------------------------
    def _on_joints(self, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_joints(msg)

    def _on_pose(self, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_pose(msg)

    def _on_depth_info(self, camera: str, msg) -> None:
        if self.assembler is not None:
            self.assembler.set_depth_info(camera, msg)

    def _on_depth(self, camera: str, msg, first: bool) -> None:
        if self.assembler is None:
            return
        self.assembler.set_depth(camera, msg)
        if first:
            self.plan()

    def _on_image(self, key: str, msg, first: bool) -> None:
        if self.assembler is None:
            return
        self.assembler.set_image(key, msg)
        if first:
            self.plan()

    # --- services ----------------------------------------------------------------------------------------------
    def _start(self):
        if self.state != "active":
            return False, f"node is {self.state}; activate it first"
        self.running = True
        return True, f"planning with {self.planner.model_id}"

    def _stop(self):
        self.running = False
        self.publish_hold("stopped")
        return True, "planning stopped; the robot holds"

    def _reset(self):
        if self.planner is None:
            return False, "not configured"
        self.planner.reset()
        self.skipped.clear()
        return True, "blending history cleared"

    # --- planning ----------------------------------------------------------------------------------------------
    def _count(self, table: dict, reason: str) -> None:
        table[reason] = table.get(reason, 0) + 1

    def poll_swap(self) -> None:
        for event in self.planner.poll_swap():
            if event.ok:
                self.get_logger().info(f"model swapped: {event.message}")
            else:
                self.get_logger().error(f"model swap failed, keeping {self.planner.model_id}: {event.message}")

    def publish_hold(self, reason: str) -> None:
        """A command with no actions: the robot drops what it was sent and holds."""
        if self.planner is None:
            return
        self._count(self.holds, reason)
        self.trajectory_pub.publish(actions_to_trajectory(np.zeros((0, 7)), self.now(), 1.0, 1.0, 1.0,
                                                          self.p("base_frame")))

    def plan(self) -> None:
        """Observation -> Planner -> published command (once per image)."""
        if self.planner is None or self.state != "active" or not self.running:
            return
        self.poll_swap()
        rate = self.p("rate")
        if rate > 0 and self.last_plan_wall is not None and self.now() - self.last_plan_wall < 0.999 / rate:
            return
        now = self.now()
        with self.cadence.tick():
            with self.cadence.stage("observe"):
                obs, reason = self.assembler.build(now)
            if obs is None:
                self._count(self.skipped, reason)
                if reason not in ("no_image", "no_state"):
                    self.publish_hold(reason)
                return
            with self.cadence.stage("infer"):
                plan = self.planner.step(obs, now)
            if plan.hold:
                self.publish_hold(plan.reason)
                return
            if plan.command is None:
                if plan.reason != SAME_OBSERVATION:
                    self._count(self.skipped, plan.reason)
                return
            with self.cadence.stage("send"):
                self.trajectory_pub.publish(self._trajectory(plan.command))
                if plan.raw is not None:
                    self.chunk_pub.publish(chunk_to_array_msg(plan.raw.actions))
            self.commands += 1
            self.plans += int(plan.planned)
            self.last_plan_wall = now

    def _trajectory(self, command):
        return actions_to_trajectory(command.actions, command.stamp, self.planner.manifest.control_rate_hz,
                                     self.p("pos_scale"), self.p("rot_scale"), self.p("base_frame"))

    # --- diagnostics -------------------------------------------------------------------------------------------
    def diagnostics(self):
        if self.planner is None:
            return super().diagnostics()
        self.poll_swap()  # a staged model takes over even while no image arrives
        r, m = self.planner, self.planner.manifest
        s = self.cadence.summary()
        values = {"state": self.state, "running": self.running, "model_id": r.model_id, "model_path": r.bundle_dir,
                  "provider": getattr(r.policy, "provider", ""), "sampling_steps": m.sampling_steps,
                  "blending": r.mode, "lookahead_s": r.lookahead_s, "target_hz": s["target_hz"], "achieved_hz": s["achieved_hz"],
                  "plans": self.plans, "commands": self.commands, "overruns": s["overruns"], "swaps": r.swaps,
                  "failed_swaps": r.failed_swaps, "last_error": r.last_error,
                  "proprio_out_of_range": getattr(r.policy, "proprio_out_of_range", 0)}
        # how much each re-plan changes the previous plan's actions (dm1_ros/runtime/consistency.py)
        values.update({f"replan_{k}": v for k, v in r.consistency.summary().items() if v is not None})
        values.update({f"skipped_{k}": v for k, v in sorted(self.skipped.items())})
        values.update({f"hold_{k}": v for k, v in sorted(self.holds.items())})
        for name, st in s["stages"].items():
            values[f"{name}_p50_ms"] = st["p50_ms"]
            values[f"{name}_p99_ms"] = st["p99_ms"]
        if self.holds:
            level = "WARN"
        elif self.state == "active" and self.running and s["ticks"] > 10 and s["achieved_hz"] < 0.9 * s["target_hz"]:
            level = "WARN"
        else:
            level = "OK" if self.state == "active" else "WARN"
        message = f"{r.model_id}: {self.cadence.report_line()}" if s["ticks"] else f"{r.model_id}: {self.state}"
        return [("policy", level, message, values)]


def main(args=None) -> int:
    return run(PolicyNode, args, executor="control")


if __name__ == "__main__":
    raise SystemExit(main())
