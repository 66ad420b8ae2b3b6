"""How smooth is the arm under streamed policy actions? franky-sim, both streaming modes -> docs/bench_franka_smooth.json.

    python bench/franka_smooth.py [--minutes 10] [--seed 0]

FrankaBridge against franky-sim (real libfranka protocol, MuJoCo, its own process, 1 kHz real time) receives
policy-like actions at 20 Hz, interpolated to 200 Hz commands as in deployment: every 0.2 s (one 4-action chunk) a
new random direction (translation up to half the step limit, rotation up to 0.3 of it, about a random axis), the
gripper toggling now and then, the workspace box keeping the hand in range. Each streaming mode (`motion`: a
re-planned CartesianMotion per target; `impedance`: a Cartesian impedance target) runs --minutes. The end-effector
pose is sampled every command tick with the robot's own clock (RobotState.time); velocity, acceleration and jerk
are derivatives over that clock. A fault (planner error, reflex) is counted, recovered, and the run goes on.
Figures only.
"""
import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))


def run_mode(hostname: str, streaming: str, minutes: float, seed: int) -> dict:
    from franky_sim_support import sim_config

    from dm1_ros.hardware.franka import FrankaBridge, FrankaError

    bridge = FrankaBridge(sim_config(hostname, streaming=streaming, state_timeout_s=2.0))
    rng = np.random.default_rng(seed)
    faults: Counter = Counter()
    samples: list[tuple[int, float, np.ndarray]] = []  # (segment, robot time, position); a fault starts a segment
    segment = 0
    try:
        bridge.reset()
        bridge.set_command_rate(200.0)
        period = 1.0 / 200.0
        end = time.monotonic() + 60 * minutes
        action = np.zeros(7, np.float32)
        gripper = -1.0
        tick, t_next = 0, time.monotonic()
        while time.monotonic() < end:
            if tick % 40 == 0:  # a new chunk direction every 0.2 s
                direction = rng.normal(size=3)
                axis = rng.normal(size=3)
                action[:3] = 0.5 * direction / np.linalg.norm(direction) * rng.uniform(0.2, 1.0)
                action[3:6] = 0.3 * axis / np.linalg.norm(axis) * rng.uniform(0.0, 1.0)
                if rng.random() < 0.1:
                    gripper = -gripper
                action[6] = gripper
            try:
                bridge.observe()
                bridge.apply(action)
                state = bridge.robot.state
                samples.append((segment, state.time.to_sec(), np.asarray(state.O_T_EE.matrix)[:3, 3].copy()))
            except FrankaError as exc:
                faults[exc.kind] += 1
                segment += 1
                try:
                    bridge.recover()
                    bridge.reset()
                    bridge.set_command_rate(200.0)
                except FrankaError as again:
                    faults[f"recover_{again.kind}"] += 1
                    time.sleep(1.0)
            tick += 1
            t_next += period
            time.sleep(max(0.0, t_next - time.monotonic()))
            if t_next < time.monotonic() - 0.1:
                t_next = time.monotonic()
        stats = dict(bridge.stats)
    finally:
        bridge.close()
    vs, accs, jerks = [], [], []
    for seg in sorted({s[0] for s in samples}):
        t = np.array([s[1] for s in samples if s[0] == seg])
        p = np.stack([s[2] for s in samples if s[0] == seg])
        keep = np.concatenate([[True], np.diff(t) > 5e-4])  # the same robot state read twice adds nothing
        t, p = t[keep], p[keep]
        settled = t >= t[0] + 1.0  # the first second of a segment follows a reset (a joint motion home)
        if settled.sum() < 10:
            continue
        t, p = t[settled], p[settled]
        v = np.gradient(p, t, axis=0)
        a = np.gradient(v, t, axis=0)
        vs.append(v), accs.append(a), jerks.append(np.gradient(a, t, axis=0))
    v, a, j = np.concatenate(vs), np.concatenate(accs), np.concatenate(jerks)
    norm = lambda x: np.linalg.norm(x, axis=1)  # noqa: E731
    return {"minutes": minutes, "targets": int(stats.get("targets", 0)), "samples": len(v),
            "vel_p99": float(np.percentile(norm(v), 99)), "vel_max": float(norm(v).max()),
            "acc_p99": float(np.percentile(norm(a), 99)), "acc_max": float(norm(a).max()),
            "jerk_p99": float(np.percentile(norm(j), 99)),
            "planner_errors": int(faults.get("planner", 0)), "faults": int(sum(faults.values())),
            "fault_kinds": dict(faults), "bridge_stats": {k: int(v) for k, v in stats.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per streaming mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=["motion", "impedance"])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_franka_smooth.json"))
    args = parser.parse_args()
    from franky_sim_support import franky_sim_process

    rows = {}
    with franky_sim_process() as server:
        for mode in args.modes:
            rows[mode] = run_mode(server.hostname, mode, args.minutes, args.seed)
            r = rows[mode]
            print(f"{mode}: {r['targets']} targets, velocity p99 {r['vel_p99']:.3f} m/s, accel p99 {r['acc_p99']:.2f} "
                  f"m/s2, jerk p99 {r['jerk_p99']:.1f} m/s3, faults {r['fault_kinds'] or 'none'}", flush=True)
    result = {"description": "random policy-like 20 Hz actions (a new direction every 4-action chunk, rotation up to "
              "0.3 of the step limit), 200 Hz commands, relative dynamics factor 0.2, derivatives over the robot's "
              f"clock; {math.ceil(args.minutes)} min per mode, seed {args.seed}.", "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
