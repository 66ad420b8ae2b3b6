"""Model bundle = directory with `model.onnx` + `manifest.yaml`. Reading and validating it needs no torch.

The manifest says what the model expects (cameras, image sizes, proprio layout), what it returns (chunk length,
action layout), how it was made (training recipe, data hash) and how closely ONNX matches torch (parity).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dm1_ros.configuration import ConfigError, from_dict, to_dict
from dm1_ros.errors import Dm1Error
from dm1_ros.runtime.pointcloud import PointCloudConfig, PointCloudError
from dm1_ros.runtime.scheduler import MODES

MANIFEST_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
ONNX_NAME = "model.onnx"


MAX_SIZE = 1024  # chunk, action and proprio dimensions, sampling steps: far above any policy, far below a crash
MAX_IMAGE_SIDE = 4096


class BundleError(Dm1Error, RuntimeError):
    """A bundle that cannot be used; the message names the file and the problem."""


@dataclass
class ImageSpec:
    name: str
    height: int
    width: int
    channels: int = 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


@dataclass
class PointCloudSpec(PointCloudConfig):
    """A point-cloud input: its name in the graph, (num_points, 3) float32, and how it is made (cameras, frame,
    crop, sampling: PointCloudConfig)."""

    name: str = "point_cloud"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_points, 3)


@dataclass
class ObservationSpec:
    images: list[ImageSpec]
    proprio_keys: list[str]
    proprio_dims: list[int]
    point_clouds: list[PointCloudSpec] = field(default_factory=list)

    @property
    def proprio_dim(self) -> int:
        return int(sum(self.proprio_dims))


@dataclass
class ActionSpec:
    dim: int
    chunk: int
    names: list[str] = field(default_factory=list)


@dataclass
class Normalization:
    """Min-max statistics; the ONNX graph already applies them, they are here for inspection and checks."""

    action_min: list[float]
    action_max: list[float]
    proprio_min: list[float]
    proprio_max: list[float]


@dataclass
class OnnxSpec:
    file: str
    sha256: str
    opset: int
    inputs: list[str]
    outputs: list[str]


@dataclass
class Parity:
    max_abs_diff: float
    tolerance: float
    samples: int


@dataclass
class Manifest:
    format_version: int
    model_id: str
    method: str
    sampling_steps: int
    control_rate_hz: float
    observation: ObservationSpec
    action: ActionSpec
    normalization: Normalization
    onnx: OnnxSpec
    parity: Parity
    # How the runtime turns chunks into commands unless the user says otherwise (ActionScheduler modes: latest,
    # chunk, ensemble). It travels with the model because the best choice depends on it: the shipped lift policy
    # succeeds more often running each chunk open loop, the can policy re-planning every tick (docs/results_notes.md).
    execution: str = "latest"
    # Re-planning every tick, run at each observation the action its chunk planned for this long after it (the
    # command is stamped that much earlier). The shipped lift policy lifts 16/20 running each chunk's first action
    # and 19/20 (97/100) with 0.05 s, as many as its chunks run open loop (docs/results_notes.md).
    lookahead_s: float = 0.0
    # Whether the observation's age when its chunk is planned counts toward lookahead_s (runtime/planner.py). For a
    # policy whose success follows which action of the chunk runs, as the shipped lift models' does: with 50 ms of
    # latency the fast one lifts 50/50 running the action planned 100 ms after the observation and 39/50 running the
    # one planned 150 ms after it. Not for every model: the two-camera can policy does worse with it (36/50 against
    # 48/50 at 50 ms; docs/results_notes.md).
    lookahead_includes_latency: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def check(self) -> None:
        """Refuse values no model can have (ValueError naming the field): they would reach onnxruntime or numpy as
        a crash, or the robot as a silently wrong command."""
        if not (self.control_rate_hz > 0 and math.isfinite(self.control_rate_hz)):
            raise ValueError(f"control_rate_hz must be a positive number of Hz, got {self.control_rate_hz}")
        if not 1 <= self.sampling_steps <= MAX_SIZE:
            raise ValueError(f"sampling_steps must be between 1 and {MAX_SIZE}, got {self.sampling_steps}")
        a, o, n = self.action, self.observation, self.normalization
        if not (1 <= a.dim <= MAX_SIZE and 1 <= a.chunk <= MAX_SIZE):
            raise ValueError(f"action.dim and action.chunk must be between 1 and {MAX_SIZE}, got {a.dim} and {a.chunk}")
        if a.names and len(a.names) != a.dim:
            raise ValueError(f"action.names lists {len(a.names)} names for {a.dim} dimensions")
        for image in o.images:
            if not (1 <= image.height <= MAX_IMAGE_SIDE and 1 <= image.width <= MAX_IMAGE_SIDE) or image.channels != 3:
                raise ValueError(f"observation image {image.name!r}: {image.height}x{image.width}x{image.channels} "
                                 "is not an H x W x 3 image")
        names = [i.name for i in o.images] + [c.name for c in o.point_clouds]
        if len(set(names)) != len(names) or {"proprio", "noise"} & set(names):
            raise ValueError(f"observation input names {names} must be unique and not 'proprio' or 'noise'")
        if len(o.proprio_keys) != len(o.proprio_dims) or any(not 1 <= d <= MAX_SIZE for d in o.proprio_dims):
            raise ValueError(f"observation.proprio_keys {o.proprio_keys} and proprio_dims {o.proprio_dims} do not pair "
                             "up with positive sizes")
        for name, want in (("action_min", a.dim), ("action_max", a.dim), ("proprio_min", o.proprio_dim),
                           ("proprio_max", o.proprio_dim)):
            if len(getattr(n, name)) != want:
                raise ValueError(f"normalization.{name} has {len(getattr(n, name))} values for {want} dimensions")
        for kind in ("action", "proprio"):
            lo, hi = getattr(n, f"{kind}_min"), getattr(n, f"{kind}_max")
            if not all(math.isfinite(x) for x in (*lo, *hi)):
                raise ValueError(f"normalization.{kind}_min/{kind}_max hold a value that is not finite")
            if any(x > y for x, y in zip(lo, hi)):
                raise ValueError(f"normalization.{kind}_min exceeds {kind}_max")
        horizon = a.chunk / self.control_rate_hz
        if not (math.isfinite(self.lookahead_s) and 0.0 <= self.lookahead_s < horizon):
            raise ValueError(f"lookahead_s must lie in [0, {horizon:g}) s (the chunk's length), got {self.lookahead_s}")
        name = self.onnx.file
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"onnx.file {name!r} must name a file inside the bundle directory")
        if self.parity.max_abs_diff < 0:
            raise ValueError(f"parity.max_abs_diff must not be negative, got {self.parity.max_abs_diff}")

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        tmp = path.with_suffix(".yaml.tmp")
        with open(tmp, "w") as f:
            yaml.safe_dump(to_dict(self), f, sort_keys=False)
        tmp.replace(path)
        return path

    def check_observation_spec(self, provided: ObservationSpec) -> None:
        """Refuse a robot/sim whose observations do not match the model, naming the mismatch."""
        want = {s.name: s.shape for s in self.observation.images}
        have = {s.name: s.shape for s in provided.images}
        for name, shape in want.items():
            if name not in have:
                raise BundleError(f"model {self.model_id} needs camera '{name}', the robot provides {sorted(have)}")
            if have[name] != shape:
                raise BundleError(f"camera '{name}': model {self.model_id} expects {shape}, robot provides {have[name]}")
        clouds = {c.name: c for c in provided.point_clouds}
        for cloud in self.observation.point_clouds:
            got = clouds.get(cloud.name)
            if got is None:
                raise BundleError(f"model {self.model_id} needs point cloud '{cloud.name}', the robot provides "
                                  f"{sorted(clouds) or 'none'}")
            if (got.shape, got.frame, list(got.crop_min), list(got.crop_max)) != (
                    cloud.shape, cloud.frame, list(cloud.crop_min), list(cloud.crop_max)):
                raise BundleError(f"point cloud '{cloud.name}': model {self.model_id} expects {cloud.shape} points in "
                                  f"frame {cloud.frame} cropped to {cloud.crop_min}..{cloud.crop_max}, the robot "
                                  f"provides {got.shape} in {got.frame} cropped to {got.crop_min}..{got.crop_max}")
        if list(provided.proprio_keys) != list(self.observation.proprio_keys) or list(provided.proprio_dims) != list(
            self.observation.proprio_dims
        ):
            raise BundleError(
                f"proprio layout: model {self.model_id} expects {list(zip(self.observation.proprio_keys, self.observation.proprio_dims))}, "
                f"robot provides {list(zip(provided.proprio_keys, provided.proprio_dims))}"
            )


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(bundle_dir: str | Path) -> Manifest:
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleError(f"model bundle not found: {bundle_dir} is not a directory")
    path = bundle_dir / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"model bundle {bundle_dir} has no {MANIFEST_NAME}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BundleError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path} is not a mapping")
    version = data.get("format_version")
    if version != MANIFEST_FORMAT_VERSION:
        raise BundleError(
            f"{path}: manifest format_version {version!r} is not supported (this dm1_ros reads {MANIFEST_FORMAT_VERSION})"
        )
    try:
        manifest = from_dict(Manifest, data)
    except (ConfigError, PointCloudError) as exc:
        raise BundleError(f"{path}: {exc}") from None
    if manifest.execution not in MODES:
        raise BundleError(f"{path}: execution {manifest.execution!r} is not one of {', '.join(MODES)}")
    try:
        manifest.check()
    except ValueError as exc:
        raise BundleError(f"{path}: {exc}") from None
    return manifest


def random_inputs(observation: ObservationSpec, proprio_min, proprio_max, chunk_shape: tuple[int, int], batch: int,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for a bundle's graph, to compare two implementations of it (export's torch-vs-onnxruntime parity,
    quantize's int8-vs-float): uint8 images, points spread over each cloud's crop box, proprio over (and a little
    beyond) the training range, standard normal noise of shape (batch, *chunk_shape)."""
    rng = np.random.default_rng(seed)
    feeds = {s.name: rng.integers(0, 256, (batch, *s.shape), dtype=np.uint8) for s in observation.images}
    for c in observation.point_clouds:
        lo, hi = np.asarray(c.crop_min, np.float32), np.asarray(c.crop_max, np.float32)
        feeds[c.name] = (lo + (hi - lo) * rng.random((batch, c.num_points, 3))).astype(np.float32)
    lo, hi = np.asarray(proprio_min, np.float32), np.asarray(proprio_max, np.float32)
    feeds["proprio"] = (lo + (hi - lo) * (rng.random((batch, observation.proprio_dim)) * 1.2 - 0.1)).astype(np.float32)
    feeds["noise"] = rng.standard_normal((batch, *chunk_shape)).astype(np.float32)
    return feeds


def set_execution(bundle_dir: str | Path, execution: str | None = None, lookahead_s: float | None = None,
                  command: str = "", lookahead_includes_latency: bool | None = None) -> Manifest:
    """Change how the runtime runs a bundle unless told otherwise (manifest `execution` and `lookahead_s`), without
    touching its network; `command` (what asked for it) is kept in the manifest's training record. Raises
    BundleError naming a value the manifest cannot hold."""
    manifest = read_manifest(bundle_dir)
    if execution is not None:
        if execution not in MODES:
            raise BundleError(f"execution {execution!r} is not one of {', '.join(MODES)}")
        manifest.execution = execution
    if lookahead_s is not None:
        manifest.lookahead_s = float(lookahead_s)
    if lookahead_includes_latency is not None:
        manifest.lookahead_includes_latency = bool(lookahead_includes_latency)
    try:
        manifest.check()
    except ValueError as exc:
        raise BundleError(f"{bundle_dir}: {exc}; manifest left as it was") from None
    if command:
        manifest.training = {**manifest.training, "execution_set_by": command}
    manifest.save(bundle_dir)
    return manifest


def load_bundle(bundle_dir: str | Path) -> tuple[Manifest, Path]:
    """Validate a bundle directory and return (manifest, path of the ONNX file)."""
    manifest = read_manifest(bundle_dir)
    onnx_path = Path(bundle_dir) / manifest.onnx.file
    if not onnx_path.is_file():
        raise BundleError(f"model bundle {bundle_dir} has no {manifest.onnx.file}")
    digest = sha256_file(onnx_path)
    if digest != manifest.onnx.sha256:
        raise BundleError(
            f"{onnx_path} is corrupt or was replaced: sha256 {digest[:12]}… does not match the manifest's {manifest.onnx.sha256[:12]}…"
        )
    return manifest, onnx_path
