"""What the CPU does to int8 bundles (models made by `dm1 quantize`).

onnxruntime's int8 matrix products on x86 multiply unsigned 8-bit activations by signed 8-bit weights. CPUs with
VNNI (AVX512-VNNI, AVX-VNNI, AMX) add the products in 32 bits; CPUs with AVX2 only add pairs of them in 16 bits,
which saturates when weights use all 8 bits: on an AVX2-only AMD EPYC the shipped lift model's actions moved by
1.1 robot units instead of 0.04. Weights quantized to 7 bits (`dm1 quantize`'s default) cannot saturate there.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def _cpuinfo_field(name: str, cpuinfo: str | Path) -> str | None:
    """The first processor's `name` field in /proc/cpuinfo, or None where it cannot be read (not Linux)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The first processor's feature flags, or None where they cannot be read (not Linux)."""
    flags = _cpuinfo_field("flags", cpuinfo)
    return None if flags is None else set(flags.split())


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name and whether it has VNNI (which decides int8 speed and correctness), e.g. 'AMD EPYC
    (AVX2, no VNNI)', for benchmark records: latency figures mean little without the CPU they came from."""
    model = _cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return model
    simd = next((f.upper() for f in ("avx512f", "avx2", "asimd") if f in flags), None)
    vnni = "VNNI" if any(f in flags for f in VNNI_FLAGS) else "no VNNI"
    return f"{model} ({simd + ', ' if simd else ''}{vnni})"


def int8_products_saturate(flags: set[str] | None, machine: str) -> bool:
    """True on an x86 CPU without VNNI, where 8-bit int8 weights overflow onnxruntime's 16-bit sums. `flags`: the
    CPU's feature flags (None: unknown, which is not refused on a guess); `machine`: as platform.machine() says."""
    if machine.lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False  # ARM's int8 dot products add in 32 bits
    return flags is not None and not any(f in flags for f in VNNI_FLAGS)


@functools.cache
def this_cpu_saturates_int8() -> bool:
    """int8_products_saturate for the CPU this process runs on (read once)."""
    return int8_products_saturate(cpu_flags(), platform.machine())
