"""Collection throughput with and without images, and dataset size per 100 episodes, per task.

    python bench/collection.py [--episodes 10]     -> docs/collection.json
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dm1_ros.sim.collect import CollectArgs, collect  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", default=["lift", "can", "square"])
    args = parser.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for images in (True, False):
                name = f"{task}, {'eye-in-hand 96x96 + proprio' if images else 'low-dim only'}, 1 worker"
                s = collect(CollectArgs(task=task, episodes=args.episodes, out=f"{tmp}/{task}_{images}.hdf5", images=images),
                            progress=False)
                out[name] = {"episodes_per_min": s["episodes_per_min"], "steps_per_s": s["steps_per_s"],
                             "mb_per_100": s["bytes"] / 1e6 * 100 / s["kept"], "expert_success_rate": s["expert_success_rate"]}
                print(name, json.dumps(out[name]), flush=True)
    (ROOT / "docs" / "collection.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
