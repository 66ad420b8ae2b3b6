"""Confirm fine-tuning gains on fresh seeds: evaluate the weak start and fine-tuned bundles on many new episodes.

The 50-episode evaluations in results/finetune/ use the seeds the runs were compared on; their 95 % intervals
overlap. This re-evaluates every model on --episodes seeds no earlier evaluation used (from --seed-base) and tests
each against the start with a two-sided two-proportion z test.

    python bench/finetune_confirm.py --episodes 200 --seed-base 200000 \
        start=runs/ft_lift_weak/last.pt v3_bc_long=runs/ft_lift_v3_bc_long/bundle_final ...
    -> results/finetune/<task>_confirm.json and .md (--results DIR: DIR/<task>_confirm.*)
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DM1 = [sys.executable, "-m", "dm1_ros.cli"]


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of H0: equal success rates (pooled z test)."""
    p = (k1 + k2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (k2 / n2 - k1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME=PATH (bundle or checkpoint); the first is the start")
    parser.add_argument("--task", default="lift")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed-base", type=int, default=200_000)
    parser.add_argument("--execute", default="chunk", help="as in the fine-tuning rollouts (act_steps = chunk)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results", type=Path, default=Path("results/finetune"), help="where <task>_confirm.json and .md go")
    args = parser.parse_args()
    pairs = [m.split("=", 1) for m in args.models]
    if any(len(p) != 2 for p in pairs):
        parser.error("models are NAME=PATH")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in pairs:
            out = Path(tmp) / f"{name}.json"
            cmd = [*DM1, "eval", "--model", path, "--task", args.task, "--episodes", str(args.episodes),
                   "--seed-base", str(args.seed_base), "--execute", args.execute, "--workers", str(args.workers),
                   "--out", str(out)]
            print("+", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            s = json.loads(out.read_text())
            rows[name] = {"model": path, "successes": s["successes"], "episodes": s["episodes"],
                          "success_rate": s["success_rate"], "ci95": s["ci95"], "seconds": s["seconds"]}
    start_name = pairs[0][0]
    k0, n0 = rows[start_name]["successes"], rows[start_name]["episodes"]
    lines = [f"| model | success ({args.episodes} episodes, seeds {args.seed_base}-{args.seed_base + args.episodes - 1}) "
             f"| 95 % CI | vs {start_name}: p (two-sided) |", "|---|---|---|---|"]
    for name, r in rows.items():
        p = None if name == start_name else two_proportion_p(k0, n0, r["successes"], r["episodes"])
        r["p_vs_start"] = p
        lo, hi = r["ci95"]
        lines.append(f"| {name} | {r['successes']}/{r['episodes']} = {r['success_rate']:.0%} | {lo:.0%}-{hi:.0%} | "
                     f"{'-' if p is None else f'{p:.2g}'} |")
    table = "\n".join(lines)
    print(table)
    res = ROOT / args.results
    res.mkdir(parents=True, exist_ok=True)
    summary = {"task": args.task, "episodes": args.episodes, "seed_base": args.seed_base, "execute": args.execute,
               "start": start_name, "rows": rows}
    (res / f"{args.task}_confirm.json").write_text(json.dumps(summary, indent=1) + "\n")
    (res / f"{args.task}_confirm.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
