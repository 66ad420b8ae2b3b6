"""Inference benchmark -> docs/bench_inference.json and the table in docs/results.md.

    python bench/inference.py            # a few minutes on 2 cores; prints the table too
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.policy.benchmark import bench_inference, format_table  # noqa: E402


def main():
    # the shipped int8 fast lift model through the runtime against the shipped DMPO-network lift model in plain
    # onnxruntime, with the float bundle it was quantized from beside them
    models = ROOT / "models"
    int8, fast, reference = models / "lift_image_fast_int8", models / "lift_image_fast", models / "lift_image"
    result = bench_inference(model=str(int8), reference=str(reference), iters=1000, rounds=10, train_iters=10,
                             others={"onnx_bundle_float": str(fast)})
    (ROOT / "docs" / "bench_inference.json").write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(result))


if __name__ == "__main__":
    main()
