"""Scripted-expert success over seeded episodes, per task, and simulator throughput without images.

    python bench/experts.py [--episodes 50]     -> docs/experts.json and a table on stdout
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from dm1_ros.sim.experts import make_expert, run_expert_episode  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", default=["lift", "can", "square"])
    args = parser.parse_args()
    results = {}
    for task in args.tasks:
        env = SimEnv(SimConfig(task=task, use_images=False))
        ok, steps, start = 0, 0, time.perf_counter()
        for seed in range(args.episodes):
            success, n = run_expert_episode(env, make_expert(task, seed=seed), seed=seed)
            ok += success
            steps += n
        elapsed = time.perf_counter() - start
        env.close()
        results[task] = {"episodes": args.episodes, "success": ok, "success_rate": ok / args.episodes,
                         "mean_steps": steps / args.episodes, "steps_per_s": steps / elapsed}
        print(f"| {task} | {ok}/{args.episodes} ({ok / args.episodes:.0%}) | {steps / args.episodes:.0f} | {steps / elapsed:.0f} |", flush=True)
    (ROOT / "docs" / "experts.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
