"""A camera policy in two parts, exported as one graph: an encoder reads the object's pose, a state policy acts on it.

    images: name -> (B, H, W, 3) uint8, proprio (B, 9) the robot's (eef position 3, eef xyzw 4, gripper 2),
    noise (B, Ta, Da)
        -> the object's pose in the world, read by the reader's pose head (policy.state_prediction)
        -> robosuite's 14-d nut-assembly `object` state computed from it and the hand's pose
        -> the actor's (a state-only bundle's) actions (B, Ta, Da), in one network evaluation

Why: on square a state policy given the simulator's pose places the nut, while camera policies trained end to end do
not; a reader trained on many placements (bench/pose_reader.py) reads the nut's pose. Only the nut's world pose is
read; the pose relative to the hand is computed as robosuite computes it, so the reading needs no simulator value.
Quaternion signs as the actor was trained on them: the nut's as robosuite's placement sampler gives it (a yaw in
[0, 2 pi): z >= 0), the hand-relative one as robosuite's mat2quat gives it (w >= 0).

The reader part is traced from torch, or cut out of a cascade written before (to swap its actor without the reader's
checkpoint); the actor's ONNX graph is spliced in unchanged (onnx.compose), and the whole is parity-checked against
the two parts run one after the other.
"""
from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
import onnx.utils
from onnx import compose
from torch import nn

from dm1_ros.outputs import staged_bundle
from dm1_ros.policy.export import OPSET, ExportError, observation_spec, save_checked, trace_onnx
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.runtime.bundle import (
    MANIFEST_FORMAT_VERSION,
    ONNX_NAME,
    Manifest,
    Normalization,
    ObservationSpec,
    OnnxSpec,
    Parity,
    load_bundle,
    random_inputs,
    sha256_file,
)

ROBOT_KEYS = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
ROBOT_DIMS = [3, 4, 2]
OBJECT_KEY, OBJECT_DIM = "object", 14  # hand-relative position 3, xyzw 4, then the object's own in the world 3 + 4
PREDICTED_QUATERNIONS = [3, 10]  # where the reader's target held xyzw quaternions (each predicted as 6 columns)
ACTOR_PREFIX = "actor/"


# --- rotations, in torch and traceable (no data-dependent branches) ------------------------------------------------
def matrix_from_columns(columns: torch.Tensor) -> torch.Tensor:
    """(..., 6) two predicted rotation-matrix columns -> (..., 3, 3) the nearest rotation (Gram-Schmidt), as
    dm1_ros/train/rotations.py rotation_from_columns."""
    a = columns[..., :3] / columns[..., :3].norm(dim=-1, keepdim=True)
    b = columns[..., 3:] - (a * columns[..., 3:]).sum(-1, keepdim=True) * a
    b = b / b.norm(dim=-1, keepdim=True)
    (a0, a1, a2), (b0, b1, b2) = a.unbind(-1), b.unbind(-1)
    c = torch.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], dim=-1)  # a x b, spelled out for ONNX
    return torch.stack([a, b, c], dim=-1)


def matrix_from_quaternion(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyzw -> (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    x, y, z, w = q.unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def quaternion_from_matrix(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 4) xyzw with w >= 0 (robosuite's mat2quat sign). Each of the four classic
    formulas is computed and the best-conditioned one (largest denominator) taken with a gather, not a branch."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * component^2 for w, x, y, z
    squares = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    root = squares.clamp(min=1e-12).sqrt()  # 2 * |component|
    # candidate xyzw quaternions (times 2 * |component|), one per row
    candidates = torch.stack([
        torch.stack([m21 - m12, m02 - m20, m10 - m01, squares[..., 0]], -1),
        torch.stack([squares[..., 1], m01 + m10, m02 + m20, m21 - m12], -1),
        torch.stack([m01 + m10, squares[..., 2], m12 + m21, m02 - m20], -1),
        torch.stack([m02 + m20, m12 + m21, squares[..., 3], m10 - m01], -1),
    ], dim=-2) / (2 * root[..., None])
    best = root.argmax(-1, keepdim=True)[..., None].expand(*root.shape[:-1], 1, 4)
    q = torch.gather(candidates, -2, best).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return q * torch.where(q[..., 3:4] < 0, -1.0, 1.0)


def nut_object_state(nut_pos: torch.Tensor, nut_rotation: torch.Tensor, eef_pos: torch.Tensor,
                     eef_quat: torch.Tensor) -> torch.Tensor:
    """The object's world pose (B, 3), (B, 3, 3) and the hand's (B, 3), (B, 4) xyzw -> robosuite's 14-d object state
    (B, 14): the pose in the hand's frame (position, xyzw with w >= 0), then the world pose (position, xyzw with
    z >= 0, the placement sampler's sign)."""
    hand = matrix_from_quaternion(eef_quat)
    hand_t = hand.transpose(-1, -2)
    rel_pos = (hand_t @ (nut_pos - eef_pos)[..., None]).squeeze(-1)
    rel_quat = quaternion_from_matrix(hand_t @ nut_rotation)
    quat = quaternion_from_matrix(nut_rotation)
    quat = quat * torch.where(quat[..., 2:3] < 0, -1.0, 1.0)
    return torch.cat([rel_pos, rel_quat, nut_pos, quat], dim=-1)


# --- the reader part -------------------------------------------------------------------------------------------------
def check_reader(reader: GenerativePolicy) -> None:
    """Refuse a reader that cannot feed a nut-assembly state policy, naming what does not fit (ExportError)."""
    cfg = reader.config
    predict = cfg.state_prediction
    if predict.keys != [OBJECT_KEY] or sorted(predict.quaternions) != PREDICTED_QUATERNIONS:
        raise ExportError(f"the reader must predict robosuite's `{OBJECT_KEY}` state with quaternions at "
                          f"{PREDICTED_QUATERNIONS} (policy.state_prediction); it predicts {predict.keys} with "
                          f"quaternions at {predict.quaternions}")
    if list(cfg.proprio_keys) != ROBOT_KEYS or list(cfg.proprio_dims) != ROBOT_DIMS:
        raise ExportError(f"the reader must read the robot's {list(zip(ROBOT_KEYS, ROBOT_DIMS))}; it reads "
                          f"{list(zip(cfg.proprio_keys, cfg.proprio_dims))}")
    if not cfg.image_keys:
        raise ExportError("the reader has no cameras: a cascade reads the object's pose from images")


def check_actor(actor: Manifest) -> None:
    """Refuse an actor the reader's state cannot feed (ExportError)."""
    obs = actor.observation
    want = (ROBOT_KEYS + [OBJECT_KEY], ROBOT_DIMS + [OBJECT_DIM])
    if (list(obs.proprio_keys), list(obs.proprio_dims)) != want or obs.images or obs.point_clouds:
        raise ExportError(f"the actor must be a state policy reading {list(zip(*want))} and no cameras; "
                          f"{actor.model_id} reads {list(zip(obs.proprio_keys, obs.proprio_dims))} and "
                          f"{[i.name for i in obs.images] + [c.name for c in obs.point_clouds]}")


class StateReader(nn.Module):
    """(*images, proprio (B, 9)) -> (B, 23) the robot's proprio followed by the object state read from the images."""

    def __init__(self, reader: GenerativePolicy):
        super().__init__()
        self.reader = reader
        self.image_keys = list(reader.config.image_keys)

    def forward(self, *inputs):
        images, proprio = dict(zip(self.image_keys, inputs[:-1])), inputs[-1]
        _, features = self.reader.encode(images, proprio)
        # the predicted target: hand-relative position 3 + columns 6, then the object's position 3 + columns 6
        state = self.reader.state_normalizer.unnormalize(self.reader.predict_state(features))
        obj = nut_object_state(state[:, 9:12], matrix_from_columns(state[:, 12:18]), proprio[:, 0:3], proprio[:, 3:7])
        return torch.cat([proprio, obj], dim=-1)


@dataclass
class ReaderPart:
    """The reader half of a cascade as a graph (cameras, proprio -> `state_proprio` (B, 23)), what it observes, and a
    second implementation of it to check the chained graph against."""

    graph: onnx.ModelProto
    observation: ObservationSpec
    proprio_min: list[float]
    proprio_max: list[float]
    reference: Callable[[dict[str, np.ndarray]], np.ndarray]  # feeds -> (B, 23)
    training: dict

    @property
    def inputs(self) -> list[str]:
        return [*(i.name for i in self.observation.images), "proprio"]


def reader_from_policy(reader: GenerativePolicy, training: dict, fuse: bool = True) -> ReaderPart:
    """A pose reader in torch: traced to ONNX, checked against itself run in torch."""
    check_reader(reader)
    reader = reader.eval()
    names = [*reader.config.image_keys, "proprio"]
    obs = observation_spec(reader)
    low, high = reader.proprio_normalizer.low.tolist(), reader.proprio_normalizer.high.tolist()
    module = StateReader(reader).eval()
    feeds = random_inputs(obs, low, high, (1, 1), 2)
    graph = onnx.load_from_string(trace_onnx(module, [torch.from_numpy(feeds[n]) for n in names], names,
                                             ["state_proprio"], fuse))

    def reference(feeds: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(feeds[n]) for n in names)).numpy()

    return ReaderPart(graph, obs, low, high, reference, training)


def reader_from_cascade(bundle_dir: str | Path) -> ReaderPart:
    """The reader of a cascade bundle this module wrote, cut out of its graph (everything up to `state_proprio`), so
    its actor can be swapped without the reader's checkpoint; checked against that cut run on its own."""
    import onnxruntime as ort

    manifest, onnx_path = load_bundle(bundle_dir)
    whole = onnx.load(str(onnx_path))
    made = {n for node in whole.graph.node for n in node.output}
    if "reader" not in manifest.training or "state_proprio" not in made:
        raise ExportError(f"{bundle_dir} is not a cascade (dm1 export CHECKPOINT --actor BUNDLE writes them): its "
                          "graph has no `state_proprio` between a reader and an actor")
    obs = manifest.observation
    inputs = [*(i.name for i in obs.images), "proprio"]
    graph = onnx.utils.Extractor(whole).extract_model(inputs, ["state_proprio"])
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    training = {"from_cascade": {"bundle": str(bundle_dir), "model_id": manifest.model_id},
                **manifest.training["reader"]}
    return ReaderPart(graph, obs, list(manifest.normalization.proprio_min), list(manifest.normalization.proprio_max),
                      lambda feeds: session.run(None, {n: feeds[n] for n in inputs})[0], training)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in [*graph.input, *graph.output]:
        if value.name == old:
            value.name = new


def chain(reader_model: onnx.ModelProto, actor_model: onnx.ModelProto) -> onnx.ModelProto:
    """One graph: the reader's `state_proprio` feeds the actor's `proprio`; inputs cameras, proprio, noise; output
    actions."""
    reader_model, actor_model = copy.deepcopy(reader_model), compose.add_prefix(actor_model, ACTOR_PREFIX)
    ir = max(reader_model.ir_version, actor_model.ir_version)
    reader_model.ir_version = actor_model.ir_version = ir
    domains = {}
    for model in (reader_model, actor_model):
        for opset in model.opset_import:
            domains[opset.domain] = max(domains.get(opset.domain, 0), opset.version)
    for model in (reader_model, actor_model):
        del model.opset_import[:]
        model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in domains.items())
    merged = compose.merge_models(reader_model, actor_model, io_map=[("state_proprio", ACTOR_PREFIX + "proprio")])
    _rename(merged.graph, ACTOR_PREFIX + "noise", "noise")
    _rename(merged.graph, ACTOR_PREFIX + "actions", "actions")
    onnx.checker.check_model(merged)
    return merged


def parity(reader: ReaderPart, actor_onnx: Path, chained: Path, chunk_shape: tuple[int, int],
           samples: int = 16) -> float:
    """Max |chained graph - (the reader's reference, then the actor's graph)| over random inputs at batch 1 and
    `samples`."""
    import onnxruntime as ort

    whole = ort.InferenceSession(str(chained), providers=["CPUExecutionProvider"])
    actor = ort.InferenceSession(str(actor_onnx), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, seed in ((1, 1), (samples, 2)):
        feeds = random_inputs(reader.observation, reader.proprio_min, reader.proprio_max, chunk_shape, batch, seed)
        expected = actor.run(None, {"proprio": reader.reference(feeds), "noise": feeds["noise"]})[0]
        got = whole.run(None, {n: feeds[n] for n in [*reader.inputs, "noise"]})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_cascade(reader: ReaderPart, actor_dir: str | Path, out_dir: str | Path, command: str = "",
                   tolerance: float = 1e-4, overwrite: bool = False) -> Manifest:
    """Write `out_dir` as a camera bundle that runs `reader` then the state bundle at `actor_dir`, in one graph.
    The manifest takes the actor's method, steps, actions and execution, the reader's cameras and robot proprio;
    its training record holds both parts' and `command`. Refused (ExportError) when the parts do not chain or
    parity > tolerance."""
    actor, actor_onnx = load_bundle(actor_dir)
    check_actor(actor)
    out_dir = Path(out_dir)
    with staged_bundle(out_dir, overwrite) as staging:
        onnx_path = staging / ONNX_NAME
        onnx.save(chain(reader.graph, onnx.load(str(actor_onnx))), str(onnx_path))
        diff = parity(reader, actor_onnx, onnx_path, (actor.action.chunk, actor.action.dim))
        if not diff <= tolerance:  # also catches NaN
            raise ExportError(f"the chained graph differs from its parts by {diff:.3g} > tolerance {tolerance:g}; "
                              "bundle not written")
        digest = sha256_file(onnx_path)
        manifest = Manifest(
            format_version=MANIFEST_FORMAT_VERSION,
            model_id=f"{out_dir.name}-{actor.method}-{actor.sampling_steps}step-cascade-{digest[:8]}",
            method=actor.method,
            sampling_steps=actor.sampling_steps,
            control_rate_hz=actor.control_rate_hz,
            observation=reader.observation,
            action=actor.action,
            normalization=Normalization(
                action_min=list(actor.normalization.action_min), action_max=list(actor.normalization.action_max),
                proprio_min=list(reader.proprio_min), proprio_max=list(reader.proprio_max)),
            onnx=OnnxSpec(file=ONNX_NAME, sha256=digest, opset=OPSET,
                          inputs=[*reader.inputs, "noise"], outputs=["actions"]),
            parity=Parity(max_abs_diff=diff, tolerance=tolerance, samples=17),
            execution=actor.execution,
            lookahead_s=actor.lookahead_s,
            lookahead_includes_latency=actor.lookahead_includes_latency,
            training={"reader": reader.training, "command": command,
                      "actor": {"bundle": str(actor_dir), "model_id": actor.model_id, **actor.training}},
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        save_checked(manifest, staging)
    return manifest
