"""dm1 quantize: a float bundle -> an int8 bundle the runtime loads, checked against the float graph."""
import subprocess
import sys

import numpy as np
import onnx
import pytest

from dm1_ros.outputs import OutputExistsError
from dm1_ros.policy import export, quantize
from dm1_ros.runtime.bundle import read_manifest
from dm1_ros.runtime.onnx_policy import OnnxPolicy


@pytest.fixture
def float_bundle(tiny_policy, tmp_path):
    out = tmp_path / "tiny"
    export.export_bundle(tiny_policy, out, training={"command": "pytest"}, execution="chunk", lookahead_s=0.05)
    return out


def test_int8_bundle_runs_close_to_its_float_graph_and_says_where_it_came_from(float_bundle, tmp_path):
    source = read_manifest(float_bundle)
    manifest = quantize.quantize_bundle(float_bundle, tmp_path / "tiny_int8", command="dm1 quantize x --out y")
    graph = onnx.load(tmp_path / "tiny_int8" / "model.onnx")
    ops = {n.op_type for n in graph.graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger", "QAttention"} <= ops
    assert not {"Gemm", "Attention"} & ops  # every product with a stored weight matrix is int8
    assert manifest.training["quantization"]["source_sha256"] == source.onnx.sha256
    assert manifest.training["command"] == "pytest"  # the float bundle's provenance is kept
    assert (manifest.execution, manifest.lookahead_s, manifest.normalization) == (
        source.execution, source.lookahead_s, source.normalization)
    assert 0 < manifest.parity.max_abs_diff <= manifest.parity.tolerance
    assert manifest.model_id != source.model_id and manifest.model_id.endswith(manifest.onnx.sha256[:8])
    assert read_manifest(float_bundle).onnx.sha256 == source.onnx.sha256  # the source is untouched

    fp32 = OnnxPolicy(float_bundle, threads=1, noise_seed=3)
    int8 = OnnxPolicy(tmp_path / "tiny_int8", threads=1, noise_seed=3)
    obs = fp32.dummy_observation()
    a, b = fp32.predict(obs).actions, int8.predict(obs).actions
    assert a.shape == b.shape == (4, 7)
    assert 0 < np.abs(a - b).max() <= manifest.parity.max_abs_diff + 1e-6  # int8 moves the actions a little


def test_quantize_refuses_what_it_cannot_do_and_writes_nothing(float_bundle, tmp_path):
    with pytest.raises(quantize.QuantizeError, match=r"differ from .* > tolerance 1e-09"):
        quantize.quantize_bundle(float_bundle, tmp_path / "strict", tolerance=1e-9)
    assert not (tmp_path / "strict").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]  # no staging leftovers
    with pytest.raises(quantize.QuantizeError, match="is the source bundle"):
        quantize.quantize_bundle(float_bundle, float_bundle, overwrite=True)
    quantize.quantize_bundle(float_bundle, tmp_path / "int8")
    with pytest.raises(quantize.QuantizeError, match="already quantized"):
        quantize.quantize_bundle(tmp_path / "int8", tmp_path / "twice")
    with pytest.raises(OutputExistsError, match="--force"):
        quantize.quantize_bundle(float_bundle, tmp_path / "int8")
    with pytest.raises(quantize.QuantizeError, match="tolerance must be a positive number"):
        quantize.quantize_bundle(float_bundle, tmp_path / "nan", tolerance=float("nan"))
    with pytest.raises(quantize.QuantizeError, match=r"weight_bits must be one of \(7, 8\)"):
        quantize.quantize_bundle(float_bundle, tmp_path / "w6", weight_bits=6)


def test_int8_products_saturate_on_x86_without_vnni(tmp_path):
    from dm1_ros.runtime.cpu import cpu_description, cpu_flags, int8_products_saturate

    assert int8_products_saturate({"sse4_2", "avx2", "fma"}, "x86_64")  # e.g. AMD EPYC before Zen 4
    assert not int8_products_saturate({"avx2", "avx512f", "avx512_vnni"}, "x86_64")
    assert not int8_products_saturate({"avx2", "avx_vnni"}, "x86_64")  # Intel Alder Lake and later
    assert not int8_products_saturate({"asimd", "asimddp"}, "aarch64")
    assert not int8_products_saturate(None, "x86_64")  # flags unknown (not Linux): no refusal on a guess
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU\nflags\t\t: fpu sse avx2 avx512_vnni\n\n"
                       "processor\t: 1\nmodel name\t: another\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx2", "avx512_vnni"}
    assert cpu_flags(tmp_path / "missing") is None
    assert cpu_description(cpuinfo) == "Intel(R) Xeon(R) CPU (AVX2, VNNI)"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2\n")
    assert cpu_description(cpuinfo) == "AMD EPYC (AVX2, no VNNI)"


def test_the_runtime_refuses_8bit_weights_where_they_overflow(float_bundle, tmp_path, monkeypatch):
    """7-bit weights (the default) load everywhere; 8-bit ones are refused on an x86 CPU without VNNI, where
    onnxruntime's int8 products saturate (on an AVX2-only EPYC the shipped lift model's actions moved by 1.1)."""
    from dm1_ros.runtime import onnx_policy
    from dm1_ros.runtime.bundle import BundleError

    seven = quantize.quantize_bundle(float_bundle, tmp_path / "w7")
    eight = quantize.quantize_bundle(float_bundle, tmp_path / "w8", weight_bits=8, tolerance=10.0)
    assert (seven.training["quantization"]["weight_bits"], eight.training["quantization"]["weight_bits"]) == (7, 8)
    assert seven.onnx.sha256 != eight.onnx.sha256
    monkeypatch.setattr(onnx_policy, "this_cpu_saturates_int8", lambda: True)
    OnnxPolicy(tmp_path / "w7", warmup=0)
    with pytest.raises(BundleError, match=r"w8 has 8-bit int8 weights, which overflow .* without VNNI"):
        OnnxPolicy(tmp_path / "w8", warmup=0)
    monkeypatch.setattr(onnx_policy, "this_cpu_saturates_int8", lambda: False)
    OnnxPolicy(tmp_path / "w8", warmup=0)


def test_cli_quantize_prints_the_new_bundle(float_bundle, tmp_path):
    out = tmp_path / "cli_int8"
    run = subprocess.run([sys.executable, "-m", "dm1_ros.cli", "quantize", str(float_bundle), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"wrote {out}" in run.stdout and "robot units" in run.stdout
    assert read_manifest(out).training["quantization"]["command"].startswith("dm1 quantize ")


def test_benchmark_rounds_rotate_and_give_every_variant_its_calls(monkeypatch):
    """bench_inference's interleaving: every runner gets iters calls; each round starts one runner later, so none
    always follows the same one (and inherits its spinning threads)."""
    from dm1_ros.policy import benchmark

    monkeypatch.setattr(benchmark, "SETTLE_S", 0.0)
    calls = []
    runners = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = benchmark.interleaved(runners, iters=12, rounds=3)
    assert {k: len(v) for k, v in samples.items()} == {"a": 12, "b": 12, "c": 12}
    assert [calls[i] for i in (0, 12, 24)] == ["a", "b", "c"]  # the first runner of each round
    assert calls[12:24] == ["b"] * 4 + ["c"] * 4 + ["a"] * 4
