"""Point-cloud pipeline cost per frame -> docs/bench_pointcloud.json (runtime/pointcloud.py).

    python bench/pointcloud.py          # about a minute on 2 cores

A RealSense-sized 640 x 480 depth frame of a ray-cast table-top scene (a plane and a box, camera 0.7 m above and
tilted) -> 512 points, measured stage by stage and end to end, for the automatic pixel stride and for every
pixel (stride 1), and robosuite's 96 x 96 depth (the simulator's policy camera). Rounds interleave the variants so
that a noisy machine slows all of them alike.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.runtime import pointcloud  # noqa: E402
from dm1_ros.runtime.pointcloud import (CameraModel, PointCloudConfig, backproject, crop,  # noqa: E402
                                        depth_to_points, sample_points, transform, transform_crop)


def numpy_only(fn):
    """fn run as on a machine without numba (the numpy functions the compiled kernels replace)."""
    def run():
        compiled, pointcloud._COMPILED = pointcloud._COMPILED, {name: None for name in pointcloud._KERNELS}
        try:
            return fn()
        finally:
            pointcloud._COMPILED = compiled
    return run


def scene(height: int, width: int, fx: float) -> tuple[np.ndarray, CameraModel]:
    """Depth (metres) of a table plane at z = 0 with a 10 cm box on it, seen from 0.7 m, tilted 20 degrees."""
    K = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]])
    tilt = np.radians(20)
    T = np.eye(4)
    T[:3, :3] = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]]) @ np.array(
        [[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    T[:3, 3] = [0, -0.25, 0.7]
    v, u = np.mgrid[0:height, 0:width].astype(float)
    rays = np.stack([(u - K[0, 2]) / fx, (v - K[1, 2]) / fx, np.ones_like(u)], -1) @ T[:3, :3].T
    depth = -T[2, 3] / rays[..., 2]
    top = (0.1 - T[2, 3]) / rays[..., 2]
    hit = T[:2, 3] + top[..., None] * rays[..., :2]
    depth = np.where(np.all(np.abs(hit) < 0.05, -1), top, depth)
    return depth.astype(np.float32), CameraModel.from_matrices(K, T)


def timed(fn, n):
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def main(rounds: int = 10, per_round: int = 20) -> dict:
    # the table inside the crop: thousands of candidates, the costly case for farthest point sampling
    config = dict(num_points=512, crop_min=[-0.3, -0.3, -0.01], crop_max=[0.3, 0.3, 0.5])
    rs_depth, rs_cam = scene(480, 640, 600.0)
    sim_depth, sim_cam = scene(96, 96, 90.0)
    auto = PointCloudConfig(**config)
    every = PointCloudConfig(**config, stride=1)
    stride = auto.stride_for(480, 640)
    cam_points = backproject(rs_depth, rs_cam, auto.max_depth, stride)
    cropped = crop(transform(cam_points, rs_cam.base_from_camera), auto.crop_min, auto.crop_max)
    variants = {
        f"640x480 -> 512 points (stride {stride}, end to end)": lambda: depth_to_points(rs_depth, rs_cam, auto),
        "640x480 -> 512 points (every pixel, end to end)": lambda: depth_to_points(rs_depth, rs_cam, every),
        "96x96 (robosuite) -> 512 points (end to end)": lambda: depth_to_points(sim_depth, sim_cam, auto),
        f"  back-projection (640x480, stride {stride})": lambda: backproject(rs_depth, rs_cam, auto.max_depth, stride),
        "  transform + crop": lambda: transform_crop(cam_points, rs_cam.base_from_camera, auto.crop_min, auto.crop_max),
        f"  farthest point sampling ({min(len(cropped), auto.candidates)} candidates -> 512)":
            lambda: sample_points(cropped, auto),
        f"640x480 -> 512 points (stride {stride}, end to end), numpy only": numpy_only(lambda: depth_to_points(rs_depth, rs_cam, auto)),
        "  transform + crop, numpy only": lambda: crop(transform(cam_points, rs_cam.base_from_camera), auto.crop_min, auto.crop_max),
        "  farthest point sampling, numpy only": numpy_only(lambda: sample_points(cropped, auto)),
    }
    for fn in variants.values():
        fn()  # numba compiles its kernels on first use
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name] += timed(fn, per_round)
    rows = {name: {"p50_ms": round(float(np.percentile(x, 50)), 3), "p99_ms": round(float(np.percentile(x, 99)), 3),
                   "n": len(x)} for name, x in samples.items()}
    end_to_end = f"640x480 -> 512 points (stride {stride}, end to end)"
    result = {"goal_ms": 2.0, "cropped_points": int(len(cropped)), "stride": stride, "rows": rows,
              "numba_vs_numpy_speedup": round(rows[end_to_end + ", numpy only"]["p50_ms"] / rows[end_to_end]["p50_ms"], 2)}
    (ROOT / "docs" / "bench_pointcloud.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| stage | p50 ms | p99 ms |\n|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    print(f"compiled (numba) vs numpy only, end to end: {result['numba_vs_numpy_speedup']}x")
    return result


if __name__ == "__main__":
    main()
