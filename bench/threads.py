"""One onnxruntime thread or two, for each shipped bundle: back to back and at a camera's 30 Hz -> docs/bench_threads.json.

    python bench/threads.py            # about 3 minutes on 2 cores

The runtime's default (OnnxPolicy threads=1) rests on this table: on the robot a policy is called once per camera
frame, where a second thread has to be woken for every call. Each bundle's three ways are interleaved in one run
(dm1_ros/policy/benchmark.py `interleaved`).
"""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.policy.benchmark import CAMERA_HZ, interleaved, machine  # noqa: E402
from dm1_ros.runtime.onnx_policy import OnnxPolicy  # noqa: E402

BUNDLES = ("lift_image", "can_image_2cam", "lift_image_fast", "lift_image_fast_int8")
WAYS = {"1_thread": dict(threads=1), "2_threads_in_run": dict(threads=2, spinning="in_run"),
        "2_threads_parked": dict(threads=2, spinning="never")}


def main():
    result = {"machine": machine(), "bundles": {}}
    for name in BUNDLES:
        runners = {}
        for way, kwargs in WAYS.items():
            policy = OnnxPolicy(ROOT / "models" / name, providers=["CPUExecutionProvider"], warmup=20, **kwargs)
            runners[way] = lambda p=policy, obs=policy.dummy_observation(): p.predict(obs)
        rows = {}
        for label, iters, period in (("back_to_back", 300, 0.0), ("at_30hz", 150, 1.0 / CAMERA_HZ)):
            samples = interleaved(runners, iters, 5, period_s=period)
            rows[label] = {way: {"p50_ms": round(float(np.median(s)) * 1e3, 3),
                                 "p99_ms": round(float(np.percentile(s, 99)) * 1e3, 3)} for way, s in samples.items()}
        result["bundles"][name] = rows
        print(name, json.dumps(rows), flush=True)
    (ROOT / "docs" / "bench_threads.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
