"""`dm1 demo`: the shipped policy controls the Panda in robosuite through the ONNX runtime the robot uses."""
from __future__ import annotations

import time



def run_demo(model: str, task: str = "lift", episodes: int = 5, video: str | None = "docs/demo_lift.mp4", seed: int = 200_000) -> dict:
    from dm1_ros.sim.video import VideoWriter
    from dm1_ros.train.evaluate import EvalArgs, _setup, run_episode, wilson_interval

    t0 = time.perf_counter()
    robot, policy = _setup(EvalArgs(model=model, task=task, threads=2))
    print(f"dm1 demo: {policy.model_id} ({policy.manifest.method}, {policy.manifest.sampling_steps} step) on {task}, "
          f"{policy.provider}, {policy.manifest.control_rate_hz:.0f} Hz policy, chunks executed '{policy.manifest.execution}'; set-up {time.perf_counter() - t0:.1f} s", flush=True)
    results = []
    for i in range(episodes):
        start = time.perf_counter()
        if i == 0 and video:
            with VideoWriter(video, fps=robot.rate_hz) as writer:
                r = run_episode(robot, policy, seed + i, video=writer)
        else:
            r = run_episode(robot, policy, seed + i)
        r["wall_s"] = time.perf_counter() - start
        results.append(r)
        print(f"  episode {i + 1}/{episodes} (seed {seed + i}): {'success' if r['success'] else 'failure'} in {r['steps']} steps, "
              f"loop {r['steps'] / r['wall_s']:.0f} Hz", flush=True)
    lat = policy.latency_summary()
    ok = sum(r["success"] for r in results)
    lo, hi = wilson_interval(ok, len(results))
    ticks = sum(r["steps"] for r in results)
    wall = sum(r["wall_s"] for r in results)
    print(f"\nsuccess {ok}/{len(results)} (95% CI {lo:.0%}-{hi:.0%})")
    print(f"loop rate {ticks / wall:.0f} Hz achieved sim-in-the-loop (robosuite physics + 96x96 rendering + policy; "
          f"the policy's control rate is {policy.manifest.control_rate_hz:.0f} Hz)")
    print(f"policy latency p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms "
          f"({1e3 / lat['p50_ms']:.0f} Hz)")
    if video:
        print(f"video: {video}")
    robot.close()
    return {"success": ok, "episodes": len(results), "loop_hz": ticks / wall, "latency": lat}
