"""ONNX policy: a bundle run by onnxruntime. No torch, so a robot PC deploys with onnxruntime alone.

    policy = OnnxPolicy("models/lift_image")
    chunk = policy.predict(observation)     # ActionChunk: (Ta, Da) actions in robot units
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dm1_ros.errors import Dm1Error
from dm1_ros.runtime.bundle import BundleError, Manifest, load_bundle
from dm1_ros.runtime.contract import ActionChunk, Observation
from dm1_ros.runtime.cpu import this_cpu_saturates_int8

log = logging.getLogger("dm1_ros.onnx_policy")

# Preference order; onnxruntime-gpu provides the first two, plain onnxruntime only the CPU one.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SPINNING = ("in_run", "always", "never")  # OnnxPolicy(spinning=...)
NOISE_BLOCK = 256  # sampling-noise chunks drawn at once


class PolicyInputError(Dm1Error, ValueError):
    """An observation the model cannot take; the message names the key and the expected shape."""


def choose_providers(requested: list[str] | str | None = "auto") -> list[str]:
    available = ort.get_available_providers()
    if requested in (None, "auto"):
        wanted = list(PROVIDER_ORDER)
    else:
        wanted = [requested] if isinstance(requested, str) else list(requested)
        unknown = [p for p in wanted if not p.endswith("ExecutionProvider")]
        if unknown:
            raise ValueError(f"unknown execution provider {unknown[0]!r}; known: {', '.join(PROVIDER_ORDER)}")
    chosen = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if missing and requested not in (None, "auto"):
        log.warning("execution providers not available here: %s (available: %s)", missing, available)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")  # always keep the fallback
    return chosen


class OnnxPolicy:
    """Loads and validates a bundle; `predict(observation) -> ActionChunk`, timed per call.

    providers: "auto" (TensorRT -> CUDA -> CPU, whichever this onnxruntime has) or an explicit list.
    threads: intra-op threads for the CPU provider; None: onnxruntime's choice (one per core). One by default: at a
    camera's cadence, one call per frame, one thread was as fast or faster than two for every shipped model and kept
    the p99 lowest (no pool thread to wake; docs/results.md "Inference latency"), and it leaves the other cores
    to the robot bridge, the camera and the simulator.
    noise_seed: seed of the sampling noise (reproducible rollouts); None draws fresh entropy.
    spinning: with threads > 1, how onnxruntime's worker threads wait for work. "in_run" (default): they busy-wait between the
    operators of one call and stop when it returns, so no operator waits for a thread to wake and nothing spins
    between calls; "always": they also spin between calls (onnxruntime's own default: at a camera's 30 Hz a whole
    core busy, taken from the robot bridge and the simulator); "never": they sleep between operators (slowest).
    Measured side by side by `dm1 bench inference --model BUNDLE`.
    """

    def __init__(
        self,
        bundle_dir: str | Path,
        providers: list[str] | str | None = "auto",
        threads: int | None = 1,
        warmup: int = 5,
        noise_seed: int | None = None,
        spinning: str = "in_run",
    ):
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest
        self.manifest, onnx_path = load_bundle(self.bundle_dir)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = int(threads)
        if spinning not in SPINNING:
            raise ValueError(f"spinning must be one of {', '.join(SPINNING)}, got {spinning!r}")
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spinning == "never" else "1")
        options.add_session_config_entry("session.force_spinning_stop", "1" if spinning == "in_run" else "0")
        options.log_severity_level = 3
        self.requested_providers = choose_providers(providers)
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=self.requested_providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"{onnx_path} could not be loaded by onnxruntime: {exc}") from None
        self.provider = self.session.get_providers()[0]
        skipped = [p for p in self.requested_providers if p not in self.session.get_providers()]
        log.info(
            "policy %s runs on %s%s", self.model_id, self.provider, f" ({', '.join(skipped)} failed to start)" if skipped else ""
        )
        self._check_graph()
        self._check_int8_weights()
        self.rng = np.random.default_rng(noise_seed)
        self.latencies_ms: deque[float] = deque(maxlen=10_000)
        self.last_latency_ms = 0.0
        self.proprio_out_of_range = 0  # observations whose proprio lies far outside the training data's range
        lo = np.asarray(self.manifest.normalization.proprio_min, np.float32)
        hi = np.asarray(self.manifest.normalization.proprio_max, np.float32)
        margin = np.maximum(hi - lo, 0.05)  # "far": a whole training range (at least 0.05) past either end
        self._proprio_bounds = ((lo - margin).tolist(), (hi + margin).tolist())  # lists: validate() is plain Python
        self._check_output()
        for _ in range(warmup):
            self.predict(self.dummy_observation())
        self.latencies_ms.clear()

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    @property
    def chunk_shape(self) -> tuple[int, int]:
        return (self.manifest.action.chunk, self.manifest.action.dim)

    def _check_graph(self) -> None:
        names = [i.name for i in self.session.get_inputs()]
        spec = self.manifest.observation
        expected = [s.name for s in spec.images] + [c.name for c in spec.point_clouds] + ["proprio", "noise"]
        if sorted(names) != sorted(expected):
            raise BundleError(f"{self.bundle_dir}: model.onnx inputs {names} do not match the manifest's {expected}")

    def _check_int8_weights(self) -> None:
        """Refuse an int8 bundle whose 8-bit weights overflow this CPU's int8 products (x86 without VNNI, see
        dm1_ros/runtime/cpu.py): its actions would be wrong by up to a robot unit, and nothing else would show it.
        Bundles made before `weight_bits` was recorded have 8-bit weights."""
        quantization = self.manifest.training.get("quantization")
        if quantization and quantization.get("weight_bits", 8) == 8 and this_cpu_saturates_int8():
            raise BundleError(
                f"{self.bundle_dir} has 8-bit int8 weights, which overflow the int8 products of this CPU (x86 without "
                f"VNNI): its actions would be wrong. Run its float bundle ({quantization.get('source', 'the source')}) "
                "or re-quantize it with dm1 quantize (7-bit weights)")

    def _check_output(self) -> None:
        """One inference on a neutral observation: the output must have the manifest's chunk shape and be finite, or
        the bundle is refused here (at load, and so at every hot swap) instead of reaching the robot."""
        obs = self.dummy_observation()
        try:
            out = self.predict_batch({k: v[None] for k, v in obs.images.items()}, obs.proprio[None],
                                     points={k: v[None] for k, v in obs.points.items()})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
            raise BundleError(f"{self.bundle_dir}: model.onnx fails on a neutral observation: {exc}") from None
        want = (1, *self.chunk_shape)
        if tuple(out.shape) != want:
            raise BundleError(f"{self.bundle_dir}: model.onnx returns actions of shape {tuple(out.shape)}, the manifest "
                              f"says {want} (batch, chunk, action dim)")
        if not np.all(np.isfinite(out)):
            raise BundleError(f"{self.bundle_dir}: model.onnx returns NaN or Inf on a neutral observation")

    def dummy_observation(self) -> Observation:
        spec = self.manifest.observation
        images = {s.name: np.zeros(s.shape, np.uint8) for s in spec.images}
        lo = np.asarray(self.manifest.normalization.proprio_min, np.float32)
        hi = np.asarray(self.manifest.normalization.proprio_max, np.float32)
        points = {c.name: np.tile((np.asarray(c.crop_min, np.float32) + np.asarray(c.crop_max, np.float32)) / 2,
                                  (c.num_points, 1)) for c in spec.point_clouds}  # every point at the crop's centre
        return Observation(images=images, proprio=(lo + hi) / 2, stamp=0.0, points=points)

    def validate(self, obs: Observation) -> None:
        for spec in self.manifest.observation.images:
            if spec.name not in obs.images:
                raise PolicyInputError(
                    f"observation has no image '{spec.name}' (has {sorted(obs.images)}); model {self.model_id} needs it"
                )
            image = obs.images[spec.name]
            if image.shape != spec.shape:
                raise PolicyInputError(f"image '{spec.name}' has shape {image.shape}, model expects {spec.shape} (H, W, 3)")
            if image.dtype != np.uint8:
                raise PolicyInputError(f"image '{spec.name}' has dtype {image.dtype}, model expects uint8")
        for spec in self.manifest.observation.point_clouds:
            points = obs.points.get(spec.name)
            if points is None:
                raise PolicyInputError(f"observation has no point cloud '{spec.name}' (has {sorted(obs.points)}); "
                                       f"model {self.model_id} needs it")
            if points.shape != spec.shape:
                raise PolicyInputError(f"point cloud '{spec.name}' has shape {points.shape}, model expects {spec.shape}")
            if not np.all(np.isfinite(points)):
                raise PolicyInputError(f"point cloud '{spec.name}' contains NaN or Inf")
        proprio = np.asarray(obs.proprio)
        want = (self.manifest.observation.proprio_dim,)
        if proprio.shape != want:
            raise PolicyInputError(f"proprio has shape {proprio.shape}, model expects {want}")
        # in plain Python: a handful of numbers, and numpy's small-array calls right before onnxruntime's run cost
        # several times their own time there (measured: about 30 us a call, 6 % of the fast bundle's latency)
        outside = []
        for i, (value, low, high) in enumerate(zip(proprio.tolist(), *self._proprio_bounds)):
            if not low <= value <= high:
                if value != value or value in (math.inf, -math.inf):
                    raise PolicyInputError("proprio contains NaN or Inf")
                outside.append(i)
        if outside:
            self.proprio_out_of_range += 1
            if self.proprio_out_of_range in (1, 10, 100) or self.proprio_out_of_range % 1000 == 0:
                keys = [f"{k}[{i}]" for k, d in zip(self.manifest.observation.proprio_keys, self.manifest.observation.proprio_dims)
                        for i in range(d)]
                n = self.manifest.normalization
                bad = [f"{keys[i]}={proprio[i]:.3g} (trained on {n.proprio_min[i]:.3g}..{n.proprio_max[i]:.3g})"
                       for i in outside]
                log.warning("policy %s: proprio far outside its training range (%d times so far): %s; its actions "
                            "there are extrapolation", self.model_id, self.proprio_out_of_range, ", ".join(bad[:3]))

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @rng.setter
    def rng(self, generator: np.random.Generator) -> None:
        self._rng = generator
        self._noise = np.empty((0, *self.chunk_shape), np.float32)

    def sample_noise(self, batch: int = 1) -> np.ndarray:
        """(batch, Ta, Da) standard normal float32, drawn from `rng` in blocks of NOISE_BLOCK chunks: the same numbers,
        in the same order, as one draw per call, without a numpy call on every control tick."""
        if len(self._noise) < batch:
            fresh = self._rng.standard_normal((max(batch, NOISE_BLOCK), *self.chunk_shape), dtype=np.float32)
            self._noise = np.concatenate([self._noise, fresh])
        drawn, self._noise = self._noise[:batch], self._noise[batch:]
        return drawn

    def predict_batch(self, images: dict[str, np.ndarray], proprio: np.ndarray, noise: np.ndarray | None = None,
                      points: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(B, H, W, 3) uint8 per camera, (B, N, 3) per point cloud, (B, P) proprio -> (B, Ta, Da) actions in robot
        units."""
        batch = proprio.shape[0]
        feeds = {s.name: images[s.name] for s in self.manifest.observation.images}
        for c in self.manifest.observation.point_clouds:
            feeds[c.name] = np.asarray(points[c.name], np.float32)
        feeds["proprio"] = proprio.astype(np.float32, copy=False)
        feeds["noise"] = self.sample_noise(batch) if noise is None else noise.astype(np.float32, copy=False)
        return self.session.run(None, feeds)[0]

    def predict(self, obs: Observation, noise: np.ndarray | None = None) -> ActionChunk:
        self.validate(obs)
        if noise is not None and noise.shape != self.chunk_shape:
            raise PolicyInputError(f"noise has shape {noise.shape}, model expects {self.chunk_shape}")
        start = time.perf_counter()
        images = {name: image[None] for name, image in obs.images.items()}
        proprio = np.asarray(obs.proprio, np.float32)[None]
        points = {name: cloud[None] for name, cloud in obs.points.items()}
        actions = self.predict_batch(images, proprio, None if noise is None else noise[None], points)[0]
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        self.latencies_ms.append(self.last_latency_ms)
        return ActionChunk(actions=actions, stamp=obs.stamp, model_id=self.model_id, latency_ms=self.last_latency_ms)

    def latency_summary(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {"n": 0}
        x = np.asarray(self.latencies_ms)
        return {"n": int(x.size), "p50_ms": float(np.percentile(x, 50)), "p99_ms": float(np.percentile(x, 99)), "max_ms": float(x.max())}
