"""int8 weights for a bundle's matrix products: a new bundle, checked against the float graph it came from.

    manifest = quantize_bundle("models/lift_image_fast", "models/lift_image_fast_int8")

onnxruntime's dynamic quantization stores the weights of every MatMul, Gemm and fused Attention as int8 (one scale
per output channel) and quantizes each activation at run time, so no calibration data is needed; convolutions
stay float (ConvInteger was slower than the float convolution here), and so do the head's three small input
products, whose weights reach them through a Transpose (folding it first made no measurable difference). Weights
use 7 bits by default: 8-bit weights overflow the 16-bit sums of CPUs without VNNI (dm1_ros/runtime/cpu.py), and
the runtime refuses an 8-bit bundle on such a CPU. On a 2-core machine with VNNI the fast lift network ran 1.4x
faster on one thread (bench/inference.py) and lifted as often as its float graph on the same 100 seeds
(docs/results.md). The CPU provider runs it; GPU providers want the float bundle.

The new manifest is the source's with the new graph's hash and id, `parity` measured against the source graph
(robot units, random images, proprio across the training range, standard normal noise), and
`training.quantization` saying what was done to which graph. Only onnx and onnxruntime are needed, no torch.
"""
from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import tempfile
from pathlib import Path

import numpy as np

from dm1_ros.errors import Dm1Error
from dm1_ros.outputs import staged_bundle
from dm1_ros.runtime.bundle import ONNX_NAME, Manifest, Parity, load_bundle, random_inputs, sha256_file
from dm1_ros.runtime.cpu import this_cpu_saturates_int8

QUANTIZED_OPS = ("MatMul", "Gemm", "Attention")
WEIGHT_BITS = (7, 8)  # 7: right on every CPU; 8: only where int8 products add in 32 bits (VNNI, ARM)
DEFAULT_TOLERANCE = 0.1  # robot units; the shipped lift bundle moves by at most 0.05 (docs/results.md)
PARITY_SAMPLES = 64


class QuantizeError(Dm1Error, RuntimeError):
    pass


def max_difference(onnx_a: Path, onnx_b: Path, manifest: Manifest, samples: int = PARITY_SAMPLES) -> float:
    """Max |a - b| of the two graphs' actions over `samples` random inputs (one batch)."""
    import onnxruntime as ort

    n = manifest.normalization
    feeds = random_inputs(manifest.observation, n.proprio_min, n.proprio_max,
                          (manifest.action.chunk, manifest.action.dim), samples)
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
               for p in (onnx_a, onnx_b)]
    return float(np.abs(outputs[0] - outputs[1]).max())


def write_int8_graph(float_graph: Path, out: Path, weight_bits: int = 7) -> None:
    """The int8 graph of `float_graph` (the same bytes on every machine: quantizing runs no int8 product)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as scratch:  # the quantizer writes helper files beside its output
        logging.disable(logging.WARNING)  # its advice to pre-process a graph that onnxruntime optimizes at load
        try:
            quantize_dynamic(str(float_graph), str(Path(scratch) / ONNX_NAME), weight_type=QuantType.QInt8,
                             per_channel=True, reduce_range=weight_bits == 7, op_types_to_quantize=list(QUANTIZED_OPS),
                             extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1})  # 1: float
        finally:
            logging.disable(logging.NOTSET)
        Path(out).write_bytes((Path(scratch) / ONNX_NAME).read_bytes())


def quantize_bundle(source: str | Path, out_dir: str | Path, tolerance: float = DEFAULT_TOLERANCE,
                    overwrite: bool = False, command: str = "", weight_bits: int = 7) -> Manifest:
    """Write `out_dir` (model.onnx + manifest.yaml): `source`'s graph with int8 matrix-product weights. Refused
    (QuantizeError) when the source is already quantized or its actions move by more than `tolerance`."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise QuantizeError(f"tolerance must be a positive number (robot units), got {tolerance!r}")
    if weight_bits not in WEIGHT_BITS:
        raise QuantizeError(f"weight_bits must be one of {WEIGHT_BITS}, got {weight_bits!r}")
    source = Path(source)
    manifest, float_graph = load_bundle(source)
    if "quantization" in manifest.training:
        raise QuantizeError(f"{source} is already quantized ({manifest.training['quantization'].get('scheme')}); "
                            "quantize the float bundle it came from")
    out_dir = Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise QuantizeError(f"--out {out_dir} is the source bundle; write the int8 bundle beside it")
    with staged_bundle(out_dir, overwrite) as staging:
        write_int8_graph(float_graph, staging / ONNX_NAME, weight_bits)
        diff = max_difference(float_graph, staging / ONNX_NAME, manifest)
        if not diff <= tolerance:  # also catches NaN
            why = (" (8-bit weights overflow the int8 products of this CPU, which has no VNNI: use 7)"
                   if weight_bits == 8 and this_cpu_saturates_int8() else "")
            raise QuantizeError(f"int8 actions differ from {source}'s by {diff:.3g} > tolerance {tolerance:g} (robot "
                                f"units){why}; bundle not written")
        digest = sha256_file(staging / ONNX_NAME)
        out = copy.deepcopy(manifest)
        tag = "" if "int8" in out_dir.name else "-int8"
        out.model_id = f"{out_dir.name}-{manifest.method}-{manifest.sampling_steps}step{tag}-{digest[:8]}"
        out.onnx.sha256 = digest
        out.parity = Parity(max_abs_diff=diff, tolerance=float(tolerance), samples=PARITY_SAMPLES)
        out.training = {**manifest.training, "quantization": {
            "scheme": "onnxruntime dynamic int8, per-channel weights: " + ", ".join(QUANTIZED_OPS),
            "weight_bits": weight_bits,
            "source": str(source), "source_model_id": manifest.model_id, "source_sha256": manifest.onnx.sha256,
            "parity_against": "source graph", "command": command}}
        out.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        out.check()
        out.save(staging)
    return out
