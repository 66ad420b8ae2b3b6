"""robosuite tasks behind the observation contract: Panda, OSC_POSE delta actions (7-d) at 20 Hz.

    env = SimEnv(SimConfig(task="lift"))
    obs = env.reset(seed=3)                       # Observation: upright uint8 images + 9-d proprio
    obs, reward, done, info = env.step(action)    # info["success"]

Images come out upright (robosuite renders them bottom-up); `SimConfig(point_cloud=PointCloudSpec(...))` adds a
point cloud from the metric depth of its cameras, in robosuite's world frame (runtime/pointcloud.py), under
`obs.points[name]`; proprio uses the robomimic keys robot0_eef_pos,
robot0_eef_quat (xyzw) and robot0_gripper_qpos. `SimConfig(proprio_keys=[..., "object"])` appends robosuite's
object state (robomimic's obs/object, e.g. 10-d for lift, 14-d for can) for low-dimensional policies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dm1_ros.configuration import to_dict
from dm1_ros.errors import raised_by_interrupt
from dm1_ros.runtime.bundle import ImageSpec, ObservationSpec, PointCloudSpec
from dm1_ros.runtime.pointcloud import CameraModel, merged_cloud
from dm1_ros.runtime.contract import PROPRIO_DIMS, PROPRIO_KEYS, Observation
from dm1_ros.sim.rendering import (APPEARANCES, apply_appearance, configure_gl, disable_shadows_and_reflections,
                                   import_robosuite)

TASKS = {"lift": "Lift", "can": "PickPlaceCan", "square": "NutAssemblySquare"}
# Episode limits at 20 Hz: about 3x what the scripted experts need.
DEFAULT_MAX_STEPS = {"lift": 150, "can": 350, "square": 400}
# Low-dimensional keys beyond the robot's proprio: robomimic name -> (robosuite observation name, dimension per task).
EXTRA_STATE = {"object": ("object-state", {"lift": 10, "can": 14, "square": 14})}
# Point-cloud crop boxes (world frame, metres): the workspace from just above the table or bin floor (robosuite: Lift's
# table top at z 0.8, PickPlace's bins at 0.8, NutAssembly's table at 0.82) up to above the hand's reach, so the cloud
# holds the objects and the hand, not the table (DP3's use_point_crop).
DEFAULT_CROPS = {"lift": ([-0.35, -0.35, 0.805], [0.35, 0.35, 1.25]),
                 "can": ([-0.3, -0.6, 0.805], [0.5, 0.6, 1.3]),
                 "square": ([-0.35, -0.4, 0.825], [0.35, 0.4, 1.3])}


def default_point_cloud(task: str, cameras: list[str], num_points: int = 512, crop=None) -> PointCloudSpec:
    """The point cloud of `cameras` for `task`, cropped to DEFAULT_CROPS[task] unless `crop` = (min xyz, max xyz)."""
    lo, hi = crop if crop is not None else DEFAULT_CROPS[task]
    return PointCloudSpec(cameras=list(cameras), frame="world", num_points=num_points, crop_min=list(lo), crop_max=list(hi))


@dataclass
class SimConfig:
    task: Literal["lift", "can", "square"] = "lift"
    cameras: list[str] = field(default_factory=lambda: ["robot0_eye_in_hand"])
    image_size: list[int] = field(default_factory=lambda: [96, 96])  # height, width
    use_images: bool = True
    control_rate_hz: float = 20.0
    max_steps: int = 0  # 0: the task's default
    fast_render: bool = True  # shadows and reflections off (collection and evaluation must agree)
    # robosuite draws some model properties (Lift's cube size) from numpy's global generator once, when the model is
    # built; seeding that draw makes a seeded episode the same in every process.
    model_seed: int = 0
    reward_shaping: bool = False  # robosuite's staged dense reward in step()'s reward (fine-tuning uses it as a potential)
    # Low-dimensional observation layout: the robot's proprio keys, optionally followed by "object" (the object
    # state, which only a simulator knows: low-dim policies are sim-only).
    proprio_keys: list[str] = field(default_factory=lambda: list(PROPRIO_KEYS))
    point_cloud: PointCloudSpec | None = None  # a point cloud from these depth cameras (frame: robosuite's world)
    # default | recolor (table, floor and objects in other colours) | relight (dimmer, warmer, from the other side) |
    # both: evaluation under appearance changes (sim/rendering.py); the geometry and depth are untouched
    appearance: str = "default"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose from {sorted(TASKS)}")
        known = [*PROPRIO_KEYS, *EXTRA_STATE]
        for key in self.proprio_keys:
            if key not in known:
                raise ValueError(f"unknown proprio key {key!r}; the simulator provides {known}")
        if self.max_steps <= 0:
            self.max_steps = DEFAULT_MAX_STEPS[self.task]
        if self.appearance not in APPEARANCES:
            raise ValueError(f"appearance {self.appearance!r}: choose one of {', '.join(APPEARANCES)}")
        if self.point_cloud is not None and self.point_cloud.frame != "world":
            raise ValueError(f"simulated point clouds are in robosuite's world frame, the spec says "
                             f"{self.point_cloud.frame!r}")

    @classmethod
    def matching(cls, spec: ObservationSpec, task: str, **kwargs) -> "SimConfig":
        """The configuration whose observations have a model's layout (`manifest.observation`): its cameras, image
        size and proprio keys. Raises ValueError naming a proprio key the simulator does not have."""
        if len(spec.point_clouds) > 1:
            raise ValueError("the simulator makes one point cloud; the model takes "
                             f"{[c.name for c in spec.point_clouds]}")
        return cls(task=task, cameras=[s.name[: -len("_image")] for s in spec.images],
                   image_size=[spec.images[0].height, spec.images[0].width] if spec.images else [96, 96],
                   use_images=bool(spec.images), proprio_keys=list(spec.proprio_keys),
                   point_cloud=spec.point_clouds[0] if spec.point_clouds else None, **kwargs)

    def render_cameras(self) -> list[str]:
        """Every camera robosuite renders: the image cameras, then the depth cameras of the point cloud."""
        cams = list(self.cameras) if self.use_images else []
        depth = list(self.point_cloud.cameras) if self.point_cloud is not None else []
        return cams + [c for c in depth if c not in cams]

    def image_keys(self) -> list[str]:
        return [f"{c}_image" for c in self.cameras] if self.use_images else []

    def proprio_dims(self) -> list[int]:
        robot = dict(zip(PROPRIO_KEYS, PROPRIO_DIMS))
        return [robot[k] if k in robot else EXTRA_STATE[k][1][self.task] for k in self.proprio_keys]


class SimEnv:
    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        configure_gl()
        robosuite = import_robosuite()
        from robosuite.controllers import load_composite_controller_config

        cfg = self.config
        h, w = cfg.image_size
        rendered = cfg.render_cameras()
        depth_cameras = set(cfg.point_cloud.cameras) if cfg.point_cloud is not None else set()
        self.env_kwargs = dict(
            robots="Panda",
            controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
            has_renderer=False,
            has_offscreen_renderer=bool(rendered),
            use_camera_obs=bool(rendered),
            use_object_obs=True,
            camera_names=rendered or list(cfg.cameras),
            camera_heights=h,
            camera_widths=w,
            camera_depths=[c in depth_cameras for c in rendered] if rendered else False,
            control_freq=int(cfg.control_rate_hz),
            horizon=10 * cfg.max_steps,
            ignore_done=True,  # episode length is ours to decide
            hard_reset=False,  # rebuilding model and renderer costs 1-2 s per reset
            reward_shaping=cfg.reward_shaping,
        )
        global_rng = np.random.get_state()
        np.random.seed(cfg.model_seed)
        try:
            self.env = robosuite.make(TASKS[cfg.task], **self.env_kwargs)
        finally:
            np.random.set_state(global_rng)
        self._fast_render_applied = False
        self._intrinsics = {}  # depth camera -> 3 x 3 (fixed); extrinsics are read each step (a wrist camera moves)
        self._obs: dict | None = None
        self.steps = 0

    # --- contract -----------------------------------------------------------------------------------------------
    @property
    def observation_spec(self) -> ObservationSpec:
        h, w = self.config.image_size
        return ObservationSpec(images=[ImageSpec(k, h, w) for k in self.config.image_keys()],
                               proprio_keys=list(self.config.proprio_keys), proprio_dims=self.config.proprio_dims(),
                               point_clouds=[self.config.point_cloud] if self.config.point_cloud is not None else [])

    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            np.random.seed(seed)  # robosuite's placement samplers draw from the global generator
            self.env.rng = np.random.default_rng(seed)
        self._obs = self.env.reset()
        if self.config.render_cameras() and self.config.fast_render and not self._fast_render_applied:
            self._fast_render_applied = disable_shadows_and_reflections(self.env)
            self._obs = self.env._get_observations(force_update=True)  # re-render with the flags
        if self.config.appearance != "default":
            apply_appearance(self.env, self.config.appearance)
            self._obs = self.env._get_observations(force_update=True)
        self.steps = 0
        return self.observation()

    def shaped_reward(self) -> float:
        """robosuite's staged dense reward of the current state (reach, grasp, lift / place), in [0, 1]."""
        return float(self.env.reward(None))

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, dict]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise ValueError(f"action must have shape (7,), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError("action contains NaN or Inf")
        try:
            self._obs, reward, _, info = self.env.step(np.clip(action, -1.0, 1.0))
        except SystemError as exc:  # Ctrl-C inside the numba controller: let callers' interrupt handlers run
            if raised_by_interrupt(exc):
                raise KeyboardInterrupt from exc
            raise
        self.steps += 1
        success = self.success()
        done = success or self.steps >= self.config.max_steps
        return self.observation(), float(reward), done, {**info, "success": success}

    def observation(self) -> Observation:
        o = self._obs
        images = {k: np.ascontiguousarray(o[k][::-1]) for k in self.config.image_keys()}  # upright
        proprio = np.concatenate([o[EXTRA_STATE[k][0]] if k in EXTRA_STATE else o[k] for k in self.config.proprio_keys]).astype(np.float32)
        cloud = self.config.point_cloud
        points = {cloud.name: self.point_cloud()} if cloud is not None else {}
        return Observation(images=images, proprio=proprio, stamp=self.steps / self.config.control_rate_hz, points=points)

    def depth(self, camera: str) -> np.ndarray:
        """Metric depth (H, W) in metres of a depth camera of the point cloud, upright like the images."""
        from robosuite.utils.camera_utils import get_real_depth_map

        return np.ascontiguousarray(get_real_depth_map(self.env.sim, self._obs[f"{camera}_depth"])[::-1, :, 0])

    def camera_model(self, camera: str) -> CameraModel:
        """Intrinsics and the camera's pose in the world frame now (OpenCV axes, for the upright depth image)."""
        from robosuite.utils import camera_utils

        h, w = self.config.image_size
        if camera not in self._intrinsics:
            self._intrinsics[camera] = camera_utils.get_camera_intrinsic_matrix(self.env.sim, camera, h, w)
        return CameraModel.from_matrices(self._intrinsics[camera], camera_utils.get_camera_extrinsic_matrix(self.env.sim, camera))

    def point_cloud(self) -> np.ndarray:
        """(num_points, 3) float32 in the world frame, from the depth cameras of the configured point cloud."""
        spec = self.config.point_cloud
        return merged_cloud([(self.depth(c), self.camera_model(c)) for c in spec.cameras], spec)

    def success(self) -> bool:
        return bool(self.env._check_success())

    # --- for experts, datasets and replays ------------------------------------------------------------------------
    def raw_observation(self) -> dict:
        """robosuite's observation dict (object state included) of the current step."""
        return self._obs

    def sim_state(self) -> np.ndarray:
        return np.asarray(self.env.sim.get_state().flatten())

    def env_args(self) -> dict:
        """robomimic's env_args attribute: enough to rebuild this environment."""
        kwargs = {k: v for k, v in self.env_kwargs.items() if k not in ("controller_configs",)}
        kwargs["controller_configs"] = self.env_kwargs["controller_configs"]
        return {"env_name": TASKS[self.config.task], "type": 1, "env_kwargs": json.loads(json.dumps(kwargs, default=str)),
                "dm1_ros": {"task": self.config.task, "fast_render": self.config.fast_render,
                            **({"point_cloud": to_dict(self.config.point_cloud)} if self.config.point_cloud else {})}}

    def render(self, camera: str = "agentview", height: int = 256, width: int = 256) -> np.ndarray:
        """An upright RGB frame from any camera, for videos."""
        frame = self.env.sim.render(camera_name=camera, height=height, width=width)
        return np.ascontiguousarray(frame[::-1])

    def close(self) -> None:
        self.env.close()
