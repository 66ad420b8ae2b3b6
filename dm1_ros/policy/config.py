"""Policy configuration: what the network looks like and how it is trained to sample. YAML-loadable, strict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dm1_ros.runtime.bundle import PointCloudSpec
from dm1_ros.runtime.contract import PROPRIO_DIMS, PROPRIO_KEYS

FEATURE_LAYERS = ("condition", "tokens", "head_hidden", "time_embedding")


@dataclass
class VisionConfig:
    """DMPO's light ViT (SPEC §3): conv stem -> 11x11 tokens -> pre-LN transformer -> spatial-embedding pooling."""

    channels: int = 128
    stem_kernel: int = 8
    stem_stride: int = 4
    # DMPO's stem ends with a 3x3 stride-2 convolution (half the network's multiply-adds at 96x96). False: the first
    # convolution alone makes the tokens (a patchify stem: kernel = stride = patch size).
    stem_downsample: bool = True
    depth: int = 1
    heads: int = 4
    mlp_ratio: float = 4.0
    pool_dim: int = 128


@dataclass
class LowDimConfig:
    """State-only encoder: MLP over the normalized low-dimensional observation."""

    hidden: int = 256
    layers: int = 2
    out_dim: int = 64


@dataclass
class PointNetConfig:
    """DP3's point encoder (SPEC §7): per-point MLP over XYZ with LayerNorm + ReLU, max-pool over points, then
    Linear -> out_dim + LayerNorm."""

    hidden: list[int] = field(default_factory=lambda: [64, 128, 256])
    out_dim: int = 64


@dataclass
class TimeEmbeddingConfig:
    """mode t_r embeds t and r; t_dt embeds t and t - r (the MeanFlow paper's choice).

    scale multiplies t before the sinusoidal embedding; it sets the highest frequency. The (t - r) du/dt term of
    the MeanFlow target grows with it: 10 trains, 100 does not (SPEC §6).
    """

    mode: Literal["t_r", "t_dt"] = "t_r"
    dim: int = 16
    scale: float = 10.0


@dataclass
class HeadConfig:
    """Residual MLP velocity head over [noisy chunk, t-emb, r-emb, condition]. activation: mish (DMPO's) or silu
    (onnxruntime fuses it into one QuickGelu operator; Mish stays three)."""

    hidden: int = 768
    blocks: int = 1
    activation: Literal["mish", "silu"] = "mish"


@dataclass
class DispersiveTerm:
    """One dispersive regularizer on one named layer (see FEATURE_LAYERS), with its own weight."""

    layer: Literal["condition", "tokens", "head_hidden", "time_embedding"] = "condition"
    kind: Literal["infonce_l2", "infonce_cosine", "hinge", "covariance"] = "infonce_l2"
    weight: float = 0.5
    tau: float = 0.5
    margin: float = 1.0


@dataclass
class GuidanceConfig:
    """Guidance baked in at training, one network evaluation at run time (SPEC §7). The MeanFlow target's velocity v
    becomes v_hat = scale * v + (1 - scale) * u(z_t, t, t | c), used as the JVP tangent and in the target.
    mp1: c is the observation (MP1's code; no dropout, no unconditional branch). cfg: MeanFlow's classifier-free
    guidance: c is a learned null condition, and the condition is dropped (replaced by it) with probability
    `dropout` in training. none: v_hat = v."""

    kind: Literal["none", "mp1", "cfg"] = "none"
    scale: float = 2.0
    dropout: float = 0.1  # cfg only


@dataclass
class MethodConfig:
    """meanflow: one-step average-velocity model (SPEC §1). flow_matching: rectified-flow baseline, Euler K steps."""

    name: Literal["meanflow", "flow_matching"] = "meanflow"
    flow_ratio: float = 0.5  # fraction of the batch with r = t (plain flow matching inside MeanFlow)
    time_mean: float = -0.4  # logit-normal time sampling: sigmoid(N(mean, std))
    time_std: float = 1.0
    adaptive_power: float = 0.0  # 0 = off; 0.5 (MP1) or 1.0 (MeanFlow)
    adaptive_c: float = 1e-3
    sampling_steps: int = 1  # default for select_action / export
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)  # meanflow only
    # Self-distillation of the one-step map (meanflow only; 0: off). With K > 1 the loss also pulls the one-step
    # sample eps - u(eps, 0, 1) toward the EMA weights' K-step sample from the same noise, so the map the runtime
    # evaluates learns what the multi-step sampler of the same model does. Training only: the exported graph is
    # still one network evaluation.
    distill_steps: int = 0
    distill_weight: float = 1.0


@dataclass
class StatePredictionConfig:
    """Privileged state as an auxiliary target. A small MLP predicts these observation keys (simulator-only
    state, e.g. `object`: the object's pose, absolute and relative to the hand) from the condition, with
    weight x the mean squared error in normalized units. The encoder must then represent what the state-only
    policies are given. Training needs the state; deployment never does.

    quaternions: where xyzw quaternions start in the concatenated target. Each is predicted as its rotation
    matrix's first two columns, so that q and -q (one rotation) are one target.
    feed: False: training only, the exported graph samples actions without the MLP. True: the prediction
    (normalized units) is appended to the condition the head reads, as a state-only policy reads the true
    state; the MLP is then part of the exported graph."""

    keys: list[str] = field(default_factory=list)
    dims: list[int] = field(default_factory=list)
    quaternions: list[int] = field(default_factory=list)
    weight: float = 0.0
    hidden: int = 256
    feed: bool = False

    def __post_init__(self):
        if self.feed and not self.keys:
            raise ValueError("state_prediction.feed: there is no predicted state to feed without keys")
        if len(self.keys) != len(self.dims):
            raise ValueError(f"state_prediction: keys {self.keys} and dims {self.dims} must have the same length")
        if self.keys and not self.weight > 0:
            raise ValueError(f"state_prediction: keys {self.keys} need a positive weight, got {self.weight}")
        if self.weight and not self.keys:
            raise ValueError(f"state_prediction: weight {self.weight} without keys to predict")
        size = sum(self.dims)
        starts = sorted(self.quaternions)
        if any(not 0 <= q <= size - 4 for q in starts) or any(b - a < 4 for a, b in zip(starts, starts[1:])):
            raise ValueError(f"state_prediction.quaternions {self.quaternions}: each must start a 4-wide block inside "
                             f"the {size}-wide target, without overlap")

    @property
    def target_dim(self) -> int:
        """The predicted width: each quaternion (4) becomes two rotation-matrix columns (6)."""
        return sum(self.dims) + 2 * len(self.quaternions)


@dataclass
class PolicyConfig:
    """Shapes: images (B, H, W, 3) uint8 per camera (encoder vit), or point clouds (B, N, 3) float32 (encoder
    pointnet), and proprio (B, P) -> actions (B, Ta, Da)."""

    image_keys: list[str] = field(default_factory=lambda: ["robot0_eye_in_hand_image"])
    image_size: list[int] = field(default_factory=lambda: [96, 96])
    proprio_keys: list[str] = field(default_factory=lambda: list(PROPRIO_KEYS))
    proprio_dims: list[int] = field(default_factory=lambda: list(PROPRIO_DIMS))
    action_dim: int = 7
    chunk: int = 4
    encoder: Literal["vit", "mlp", "pointnet"] = "vit"
    # pointnet: the point clouds the policy sees, each with how it is made (cameras, frame, crop, sampling)
    point_clouds: list[PointCloudSpec] = field(default_factory=list)
    vision: VisionConfig = field(default_factory=VisionConfig)
    pointnet: PointNetConfig = field(default_factory=PointNetConfig)
    lowdim: LowDimConfig = field(default_factory=LowDimConfig)
    time: TimeEmbeddingConfig = field(default_factory=TimeEmbeddingConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    dispersive: list[DispersiveTerm] = field(default_factory=list)
    state_prediction: StatePredictionConfig = field(default_factory=StatePredictionConfig)

    def __post_init__(self):
        if self.encoder == "vit" and not self.image_keys:
            raise ValueError("encoder 'vit' needs at least one entry in image_keys")
        if self.encoder == "mlp" and self.image_keys:
            raise ValueError("encoder 'mlp' is state-only: set image_keys to []")
        if self.encoder == "pointnet" and (self.image_keys or not self.point_clouds):
            raise ValueError("encoder 'pointnet' reads point clouds only: set image_keys to [] and list point_clouds")
        if self.encoder != "pointnet" and self.point_clouds:
            raise ValueError(f"point_clouds need encoder 'pointnet', got encoder {self.encoder!r}")
        if len(self.proprio_keys) != len(self.proprio_dims):
            raise ValueError("proprio_keys and proprio_dims must have the same length")
        if len(self.image_size) != 2:
            raise ValueError("image_size must be [height, width]")
        if not 0.0 <= self.method.flow_ratio <= 1.0:
            raise ValueError("method.flow_ratio must lie in [0, 1]")
        if self.method.sampling_steps < 1:
            raise ValueError("method.sampling_steps must be >= 1")
        g = self.method.guidance
        if g.kind != "none" and self.method.name != "meanflow":
            raise ValueError(f"method.guidance {g.kind} is for meanflow, not {self.method.name}")
        if not 0.0 <= g.dropout < 1.0 or not g.scale > 0:
            raise ValueError(f"method.guidance: scale must be positive and dropout in [0, 1), got {g.scale}, {g.dropout}")
        m = self.method
        if m.distill_steps < 0 or m.distill_steps == 1:
            raise ValueError(f"method.distill_steps must be 0 (off) or at least 2, not {m.distill_steps}")
        if m.distill_steps and m.name != "meanflow":
            raise ValueError(f"method.distill_steps trains MeanFlow's one-step map, not {m.name}")
        if m.distill_steps and g.kind != "none":
            raise ValueError(f"method.distill_steps with guidance {g.kind} is not supported: the teacher samples "
                             "without the guided velocity the student is trained toward")
        if m.distill_weight < 0:
            raise ValueError(f"method.distill_weight must be >= 0, got {m.distill_weight}")

    @property
    def point_cloud_keys(self) -> list[str]:
        return [c.name for c in self.point_clouds]

    @property
    def proprio_dim(self) -> int:
        return int(sum(self.proprio_dims))
