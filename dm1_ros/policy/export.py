"""Export the sampler to an ONNX bundle: normalization inside the graph, parity-checked against torch.

Graph inputs: one uint8 (B, H, W, 3) tensor per camera, `proprio` (B, P) raw, `noise` (B, Ta, Da).
Output: `actions` (B, Ta, Da) in robot units. Batch is dynamic. The bundle is written only if onnxruntime
matches torch within `tolerance`; it is assembled in a temporary directory and renamed into place.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from dm1_ros.errors import Dm1Error
from dm1_ros.outputs import staged_bundle
from dm1_ros.policy.graph_fusion import fuse_attention
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.runtime.bundle import (
    MANIFEST_FORMAT_VERSION,
    ONNX_NAME,
    ActionSpec,
    ImageSpec,
    Manifest,
    Normalization,
    ObservationSpec,
    OnnxSpec,
    Parity,
    random_inputs,
    sha256_file,
)
from dm1_ros.runtime.contract import ACTION_NAMES
from dm1_ros.runtime.scheduler import MODES

OPSET = 17


class ExportError(Dm1Error, RuntimeError):
    pass


def input_names(policy: GenerativePolicy) -> list[str]:
    """The graph's inputs, in order: cameras, point clouds, proprio, noise."""
    return [*policy.config.image_keys, *policy.config.point_cloud_keys, "proprio", "noise"]


class SamplerGraph(nn.Module):
    """Positional wrapper the ONNX exporter can trace: (*images, *point clouds, proprio, noise) -> actions."""

    def __init__(self, policy: GenerativePolicy, steps: int):
        super().__init__()
        self.policy = policy
        self.steps = steps
        self.image_keys = list(policy.config.image_keys)
        self.point_keys = list(policy.config.point_cloud_keys)

    def forward(self, *inputs):
        n, m = len(self.image_keys), len(self.point_keys)
        images = dict(zip(self.image_keys, inputs[:n]))
        points = dict(zip(self.point_keys, inputs[n: n + m])) or None
        proprio, noise = inputs[n + m], inputs[n + m + 1]
        return self.policy(images, proprio, noise, self.steps, points)


def observation_spec(policy: GenerativePolicy) -> ObservationSpec:
    """What the policy's graph takes, as its manifest will say."""
    cfg = policy.config
    return ObservationSpec(images=[ImageSpec(k, cfg.image_size[0], cfg.image_size[1]) for k in cfg.image_keys],
                           proprio_keys=list(cfg.proprio_keys), proprio_dims=list(cfg.proprio_dims),
                           point_clouds=copy.deepcopy(list(cfg.point_clouds)))


def example_inputs(policy: GenerativePolicy, batch: int, seed: int = 0) -> list[torch.Tensor]:
    """The graph's inputs in order (runtime/bundle.py random_inputs) as tensors."""
    feeds = random_inputs(observation_spec(policy), policy.proprio_normalizer.low.tolist(),
                          policy.proprio_normalizer.high.tolist(), (policy.config.chunk, policy.config.action_dim),
                          batch, seed)
    return [torch.from_numpy(feeds[name]) for name in input_names(policy)]


def trace_onnx(module: nn.Module, inputs: list[torch.Tensor], names: list[str], outputs: list[str],
               fuse: bool = True) -> bytes:
    """A module traced to ONNX with a dynamic batch on every input and output; `fuse`: each self-attention as one
    onnxruntime Attention operator (graph_fusion.py)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(inputs),
            buffer,
            input_names=names,
            output_names=outputs,
            dynamic_axes={n: {0: "batch"} for n in [*names, *outputs]},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and handles this graph in one pass
        )
    if not fuse:
        return buffer.getvalue()
    model = onnx.load_from_string(buffer.getvalue())
    return model.SerializeToString() if fuse_attention(model) else buffer.getvalue()


def to_onnx_bytes(policy: GenerativePolicy, steps: int, fuse: bool = True) -> bytes:
    """The sampler as ONNX; `fuse`: each self-attention as one onnxruntime Attention operator (graph_fusion.py)."""
    return trace_onnx(SamplerGraph(policy, steps).eval(), example_inputs(policy, 2), input_names(policy), ["actions"],
                      fuse)


def parity(policy: GenerativePolicy, onnx_path: Path, steps: int, samples: int = 16) -> float:
    """Max |onnxruntime - torch| over random inputs at batch 1 and `samples`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, seed in ((1, 1), (samples, 2)):
        inputs = example_inputs(policy, batch, seed)
        with torch.no_grad():
            expected = SamplerGraph(policy, steps)(*inputs).numpy()
        feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        got = session.run(None, feeds)[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_bundle(
    policy: GenerativePolicy,
    out_dir: str | Path,
    steps: int | None = None,
    control_rate_hz: float = 20.0,
    training: dict | None = None,
    model_id: str | None = None,
    tolerance: float = 1e-4,
    execution: str = "latest",
    overwrite: bool = False,
    lookahead_s: float = 0.0,
    fuse: bool = True,
) -> Manifest:
    """Write `out_dir/model.onnx` + `out_dir/manifest.yaml`; refuse (ExportError) when parity > tolerance.
    `fuse`: attention blocks as onnxruntime's fused operator (policy/graph_fusion.py); off, plain ONNX operators.
    An existing `out_dir` is replaced (atomically) only when it is a bundle and `overwrite` is set
    (dm1_ros/outputs.py); anything else there is never touched."""
    if execution not in MODES:
        raise ExportError(f"execution {execution!r} is not one of {', '.join(MODES)}")
    policy = policy.eval()
    cfg = policy.config
    steps = cfg.method.sampling_steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ExportError(f"steps must be a whole number >= 1 (sampling steps baked into the graph), got {steps!r}")
    if not (isinstance(control_rate_hz, (int, float)) and math.isfinite(control_rate_hz) and control_rate_hz > 0):
        raise ExportError(f"control rate must be a positive number of Hz, got {control_rate_hz!r}")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ExportError(f"tolerance must be a positive number, got {tolerance!r}")
    out_dir = Path(out_dir)
    with staged_bundle(out_dir, overwrite) as staging:
        blob = to_onnx_bytes(policy, steps, fuse)
        onnx_path = staging / ONNX_NAME
        onnx_path.write_bytes(blob)
        diff = parity(policy, onnx_path, steps)
        if not diff <= tolerance:  # also catches NaN
            raise ExportError(f"ONNX output differs from torch by {diff:.3g} > tolerance {tolerance:g}; bundle not written")
        digest = sha256_file(onnx_path)
        name = out_dir.name
        manifest = Manifest(
            format_version=MANIFEST_FORMAT_VERSION,
            model_id=model_id or f"{name}-{cfg.method.name}-{steps}step-{digest[:8]}",
            method=cfg.method.name,
            sampling_steps=steps,
            control_rate_hz=float(control_rate_hz),
            observation=observation_spec(policy),
            action=ActionSpec(
                dim=cfg.action_dim,
                chunk=cfg.chunk,
                names=list(ACTION_NAMES) if cfg.action_dim == len(ACTION_NAMES) else [f"a{i}" for i in range(cfg.action_dim)],
            ),
            normalization=Normalization(
                action_min=policy.action_normalizer.low.tolist(),
                action_max=policy.action_normalizer.high.tolist(),
                proprio_min=policy.proprio_normalizer.low.tolist(),
                proprio_max=policy.proprio_normalizer.high.tolist(),
            ),
            onnx=OnnxSpec(file=ONNX_NAME, sha256=digest, opset=OPSET, inputs=input_names(policy), outputs=["actions"]),
            parity=Parity(max_abs_diff=diff, tolerance=tolerance, samples=17),
            execution=execution,
            lookahead_s=float(lookahead_s),
            training=training or {},
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        save_checked(manifest, staging)
    return manifest


def save_checked(manifest: Manifest, staging: Path) -> None:
    """Write the manifest into the staged bundle, or refuse (ExportError) values no model can have: then the staged
    bundle is dropped and nothing at the destination changes."""
    try:
        manifest.check()
    except ValueError as exc:
        raise ExportError(f"{exc}; bundle not written") from None
    manifest.save(staging)


def config_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
