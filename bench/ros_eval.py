"""The shipped model through ROS 2 against `dm1 eval` on the same seeds -> docs/bench_ros_eval.json.

    tools/with_ros2 python bench/ros_eval.py [--episodes 20] [--seed 100000]

`ros2 launch dm1_ros sim_policy.launch.py seed:=S` (sim_bridge_node + policy_node over DDS, robosuite in lockstep,
auto reset: episode k runs seed S + k, as `dm1 eval --seed-base S` does) is left running until --episodes episodes
are done; successes are read from sim_bridge's diagnostics. The `dm1 eval` row is the committed evaluation of the
same bundle (results/lift_meanflow_dispersive_1step.json, same seeds, same execution from the manifest). The two
differ in the sampling noise only: `dm1 eval` seeds it per episode, policy_node draws it fresh. Figures only.
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dm1_ros.train.evaluate import wilson_interval  # noqa: E402

COMMITTED = ROOT / "results" / "lift_meanflow_dispersive_1step.json"


def main():
    import subprocess

    from ros_loop import colcon_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100_000)
    args = parser.parse_args()
    committed = json.loads(COMMITTED.read_text())
    by_seed = {e["seed"]: e for e in committed["per_episode"]}
    seeds = list(range(args.seed, args.seed + args.episodes))
    missing = [s for s in seeds if s not in by_seed]
    if missing:
        sys.exit(f"{COMMITTED.name} has no episodes for seeds {missing}; pick --seed/--episodes inside "
                 f"{committed['seeds']}")
    domain = 1 + os.getpid() % 100
    with tempfile.TemporaryDirectory() as tmp:
        env = {**colcon_env(Path(tmp)), "ROS_DOMAIN_ID": str(domain)}
        log_path = Path(tmp) / "launch.log"
        log = open(log_path, "w")
        stack = subprocess.Popen(["ros2", "launch", "dm1_ros", "sim_policy.launch.py", f"seed:={args.seed}"], env=env,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        outcomes: list[bool] = []
        start = time.monotonic()
        try:  # sim_bridge_node logs "episode k: success|failure" as each episode ends
            while len(outcomes) < args.episodes and time.monotonic() - start < 60 * args.episodes:
                time.sleep(1.0)
                found = re.findall(r"\[sim_bridge\]: episode (\d+): (success|failure)", log_path.read_text())
                for k, outcome in found[len(outcomes):args.episodes]:
                    outcomes.append(outcome == "success")
                    print(f"episode {int(k) + 1} (seed {seeds[int(k)]}): {outcome}", flush=True)
        finally:
            os.killpg(stack.pid, 2)
            try:
                stack.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, 9)
            log.close()
        seconds = time.monotonic() - start
        successes = sum(outcomes)
    n = min(len(outcomes), args.episodes)
    eval_ok = sum(by_seed[s]["success"] for s in seeds[:n])
    ros_ci, eval_ci = wilson_interval(successes, n), wilson_interval(eval_ok, n)
    result = {"model": committed["model_id"], "seeds": [seeds[0], seeds[n - 1]], "episodes": n,
              "ros2": {"successes": successes, "ci95": ros_ci, "seconds": round(seconds, 1),
                       "per_episode": dict(zip(map(str, seeds), outcomes))},
              "dm1_eval": {"successes": eval_ok, "ci95": eval_ci, "source": COMMITTED.name}}
    (ROOT / "docs" / "bench_ros_eval.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n| path | seeds | success |\n|---|---|---|\n"
          f"| ROS 2 (sim_policy.launch.py, DDS, lockstep) | {seeds[0]}-{seeds[n - 1]} | {successes}/{n} "
          f"({ros_ci[0]:.0%}-{ros_ci[1]:.0%}) |\n"
          f"| dm1 eval (committed, {COMMITTED.name}) | {seeds[0]}-{seeds[n - 1]} | {eval_ok}/{n} "
          f"({eval_ci[0]:.0%}-{eval_ci[1]:.0%}) |")


if __name__ == "__main__":
    main()
