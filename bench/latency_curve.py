"""Success as a function of observation latency -> docs/bench_latency.json.

    python bench/latency_curve.py [--model models/lift_image_fast_500] [--task lift] [--episodes 20] [--delays 0 50 100 200]
                                  [--lookahead-ms L]

For each delay D and each execution (re-plan every tick, chunks open loop) the same seeded episodes run through
`dm1 eval --delay-ms D` (the observation the policy sees is D ms old when its actions start; sim/latency.py).
Same seeds and sampling noise in every cell, so the cells differ by the delay and the execution only.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dm1_ros.paths import SHIPPED_MODEL  # noqa: E402 - after the path insert: the source tree's package


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / SHIPPED_MODEL))
    parser.add_argument("--task", default="lift")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed-base", type=int, default=100_000)
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 50, 100, 200])
    parser.add_argument("--executions", nargs="+", default=["first", "chunk"])
    parser.add_argument("--delay-modes", nargs="+", default=["stamped", "naive"])
    parser.add_argument("--lookahead-ms", type=float, default=None,
                        help="run the action each chunk planned this long after its observation (default: the manifest's)")
    parser.add_argument("--workers", type=int, default=2, help="simulator processes (episodes run in parallel)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_latency.json"))
    args = parser.parse_args()
    from dm1_ros.runtime.bundle import read_manifest
    from dm1_ros.train.evaluate import EvalArgs, evaluate

    model = Path(args.model).resolve()
    args.model = str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else str(model)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"cells": []}  # resumable: finished cells are kept
    includes = read_manifest(model).lookahead_includes_latency
    lookahead = ("manifest" if args.lookahead_ms is None else args.lookahead_ms, includes)
    done = {(c["model"], c["task"], c["execute"], c["delay_ms"], c.get("delay_mode", "naive"), c["episodes"],
             (c.get("lookahead_requested", "manifest"), c.get("lookahead_includes_latency", False)))
            for c in result["cells"]}
    for mode in args.delay_modes:
        for execute in args.executions:
            for delay in args.delays:
                if (args.model, args.task, execute, delay, "stamped" if delay == 0 else mode, args.episodes, lookahead) in done or (
                        delay == 0 and (args.model, args.task, execute, 0, "naive", args.episodes, lookahead) in done):
                    continue  # without delay the two modes are the same run
                s = evaluate(EvalArgs(model=str(ROOT / args.model), task=args.task, episodes=args.episodes,
                                      execute=execute, delay_ms=delay, delay_mode=mode, seed_base=args.seed_base,
                                      workers=args.workers, lookahead_ms=args.lookahead_ms),
                             progress=False)
                cell = {"model": args.model, "model_id": s["model_id"], "task": args.task, "execute": execute,
                        "delay_ms": delay, "delay_mode": mode, "lookahead_ms": s.get("lookahead_ms") or 0.0,
                        "episodes": s["episodes"], "successes": s["successes"],
                        "ci95": s["ci95"], "mean_steps": s["mean_steps"], "seeds": s["seeds"],
                        "holds": sum(sum(e["holds"].values()) for e in s["per_episode"])}
                if args.lookahead_ms is not None:
                    cell["lookahead_requested"] = args.lookahead_ms
                if includes:
                    cell["lookahead_includes_latency"] = True
                result["cells"].append(cell)
                done.add((args.model, args.task, execute, delay, mode, args.episodes, lookahead))
                out.write_text(json.dumps(result, indent=1) + "\n")
                print(f"{args.task} {execute} delay {delay:g} ms ({mode}): {s['successes']}/{s['episodes']} "
                      f"(95% CI {s['ci95'][0]:.0%}-{s['ci95'][1]:.0%})", flush=True)


if __name__ == "__main__":
    main()
