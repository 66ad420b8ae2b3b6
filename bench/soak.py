"""Soak: the `dm1 run --robot sim` loop for a long time with a hot swap every 30 s -> docs/bench_soak.json.

    python bench/soak.py [--minutes 30] [--swap-every 30] [--out docs/bench_soak.json]

The same pieces as `dm1 run --robot sim` (control_loop over SimRobot, robosuite lift, the shipped bundle), episode
after episode on fresh seeds. Every --swap-every seconds the loop is asked to swap models, alternating between the
shipped bundle and a copy of it; every fifth request names a corrupt copy (truncated ONNX), which must be refused
while the running model keeps planning. Reported per 5-minute window: ticks, episodes, successes, swaps done and
refused, holds, policy p50/p99 and the process's resident memory, so a leak or a slowdown shows as a trend.
Figures only; nothing here is a pass/fail test.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--swap-every", type=float, default=30.0, help="seconds between swap requests")
    parser.add_argument("--window", type=float, default=300.0, help="seconds per reported window")
    parser.add_argument("--model", default=str(ROOT / "models" / "lift_image"))
    parser.add_argument("--seed", type=int, default=500_000)
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_soak.json"))
    args = parser.parse_args()

    from dm1_ros.runtime.loop import control_loop
    from dm1_ros.runtime.onnx_policy import OnnxPolicy
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.robot import SimRobot

    work = Path(tempfile.mkdtemp(prefix="dm1-soak-"))
    copy = work / "lift_copy"
    shutil.copytree(args.model, copy)
    corrupt = work / "lift_corrupt"
    shutil.copytree(args.model, corrupt)
    onnx = corrupt / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])
    policy = OnnxPolicy(args.model, threads=2)
    robot = SimRobot(SimConfig.matching(policy.manifest.observation, "lift"))
    loop = control_loop(robot, policy, "model")
    targets = [copy, args.model]

    start = time.monotonic()
    end = start + 60 * args.minutes
    next_swap, requests = start + args.swap_every, 0
    windows, window = [], None
    refused_messages: set[str] = set()
    episode, errors = 0, []

    def new_window(t):
        return {"start_s": round(t - start, 1), "ticks": 0, "episodes": 0, "successes": 0, "swaps": 0, "refused": 0,
                "holds": 0, "latency_ms": []}

    def close_window(w):
        lat = sorted(w.pop("latency_ms"))
        w["policy_p50_ms"] = round(lat[len(lat) // 2], 3) if lat else None
        w["policy_p99_ms"] = round(lat[int(0.99 * (len(lat) - 1))], 3) if lat else None
        w["rss_mb"] = round(rss_mb(), 1)
        windows.append(w)
        print(json.dumps(w), flush=True)

    window = new_window(start)
    rss_start = rss_mb()
    try:
        while time.monotonic() < end:
            robot.reset(seed=args.seed + episode)
            loop.reset()
            holds_before = sum(loop.stats.holds.values())
            while not robot.done and time.monotonic() < end:
                now = time.monotonic()
                if now >= next_swap:
                    requests += 1
                    target = corrupt if requests % 5 == 0 else targets[requests % 2]
                    loop.request_swap(str(target))
                    next_swap += args.swap_every
                loop.run(1)
                window["ticks"] += 1
                if loop.policy.last_latency_ms:
                    window["latency_ms"].append(loop.policy.last_latency_ms)
                for event in loop.swap_events:
                    window["swaps" if event.ok else "refused"] += 1
                    if not event.ok:
                        refused_messages.add(event.message[:160])
                loop.swap_events = []
                if now - start >= window["start_s"] + args.window:
                    close_window(window)
                    window = new_window(now)
            if robot.done:  # an episode cut short by the end of the soak is not counted
                window["episodes"] += 1
                window["successes"] += int(robot.success)
            window["holds"] += sum(loop.stats.holds.values()) - holds_before
            episode += 1
    except Exception as exc:  # noqa: BLE001 - a crash is the finding
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        close_window(window)
        robot.close()
        shutil.rmtree(work, ignore_errors=True)
    total = {k: sum(w[k] for w in windows) for k in ("ticks", "episodes", "successes", "swaps", "refused", "holds")}
    result = {"minutes": round((time.monotonic() - start) / 60, 1), "swap_requests": requests, **total,
              "expected_refusals": requests // 5, "rss_mb_start": round(rss_start, 1),
              "rss_mb_end": windows[-1]["rss_mb"], "errors": errors, "refused_messages": sorted(refused_messages),
              "windows": windows, "model": policy.model_id, "machine": f"{os.cpu_count()} CPUs"}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"soak {result['minutes']} min: {total['episodes']} episodes ({total['successes']} successes), "
          f"{total['ticks']} ticks, {requests} swap requests -> {total['swaps']} done, {total['refused']} refused "
          f"(expected {requests // 5}), RSS {result['rss_mb_start']} -> {result['rss_mb_end']} MB, errors: "
          f"{errors or 'none'}; wrote {args.out}")


if __name__ == "__main__":
    main()
