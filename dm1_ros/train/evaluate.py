"""Seeded evaluation in robosuite through the ONNX runtime, the code path the robot uses (`dm1 eval`).

    summary = evaluate(EvalArgs(model="models/lift_image", task="lift", episodes=50))

Each episode: reset with seed (seed_base + i), then every control tick observe -> OnnxPolicy.predict -> apply the
first action of the chunk (re-plan every tick, the default for a one-step policy) or the whole chunk open loop
(`execute="chunk"`, the papers' setting). Success rate comes with a 95 % Wilson interval.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dm1_ros.runtime.consistency import pool_summaries
from dm1_ros.runtime.cpu import cpu_description

EVAL_SEED_BASE = 100_000  # far from the seeds scripted demonstrations use (0, 1, 2, ...)
_WORKER: dict = {}


@dataclass
class EvalArgs:
    model: str = "models/lift_image"  # bundle directory
    task: str = "lift"
    episodes: int = 50
    seed_base: int = EVAL_SEED_BASE
    # first: re-plan every tick; chunk: run the whole chunk open loop; ensemble: temporal ensemble;
    # "": the bundle's manifest execution
    execute: str = ""
    workers: int = 1
    threads: int = 1  # onnxruntime threads per worker
    video: str | None = None  # record the first episode
    max_steps: int = 0  # 0: the task's default
    delay_ms: float = 0.0  # the observation the policy sees is this old when its actions start (rounded to ticks)
    noise: str = "fresh"  # sampling noise across re-plans: fresh | shifted (runtime/planner.py)
    # run, at each observation, the action its chunk planned this much later (None: the bundle's manifest lookahead_s)
    lookahead_ms: float | None = None
    delay_mode: str = "stamped"  # stamped: actions run at the instants planned for; naive: from the first (sim/latency.py)
    appearance: str = "default"  # default | recolor | relight | both: colours / lighting changed (sim/rendering.py)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _setup(args: EvalArgs):
    """-> (SimRobot matching the bundle's cameras, OnnxPolicy); refuses a bundle the robot cannot feed."""
    from dm1_ros.runtime.onnx_policy import OnnxPolicy
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.robot import SimRobot

    policy = OnnxPolicy(args.model, threads=args.threads, noise_seed=args.seed_base)
    spec = policy.manifest.observation
    from dm1_ros.runtime.bundle import BundleError

    try:
        sim_config = SimConfig.matching(spec, args.task, max_steps=args.max_steps, appearance=args.appearance)
    except ValueError as exc:  # a proprio key the simulator does not have
        raise BundleError(f"proprio layout: model {policy.model_id} expects "
                          f"{list(zip(spec.proprio_keys, spec.proprio_dims))}; {exc}") from None
    robot = SimRobot(sim_config)
    try:
        policy.manifest.check_observation_spec(robot.observation_spec)
    except Exception:
        robot.close()
        raise
    return robot, policy


EXECUTE_MODES = {"first": "latest", "chunk": "chunk", "ensemble": "ensemble"}


def execute_of(manifest) -> str:
    """The --execute name of a bundle's manifest execution (latest is called first here)."""
    return {mode: name for name, mode in EXECUTE_MODES.items()}[manifest.execution]


def delay_ticks(delay_ms: float, rate_hz: float) -> int:
    """Observation delay in whole control periods (the simulation advances one period per tick)."""
    if not (math.isfinite(delay_ms) and delay_ms >= 0):
        raise ValueError(f"delay must be a non-negative number of milliseconds, got {delay_ms}")
    return int(round(delay_ms * 1e-3 * rate_hz))


def run_episode(robot, policy, seed: int, args: EvalArgs | None = None, video=None) -> dict:
    """One seeded episode through the control loop the real robot uses (planner, executor, the robot's safety
    filter, holds), run as `args` say (execution, observation delay, lookahead, noise; default: EvalArgs())."""
    from dm1_ros.runtime.loop import control_loop
    from dm1_ros.sim.latency import DelayedObservations
    from dm1_ros.sim.stages import StageTracker
    from dm1_ros.sim.video import side_by_side

    args = args or EvalArgs()
    execute = args.execute or execute_of(policy.manifest)
    policy.rng = np.random.default_rng(seed)  # reproducible sampling noise per episode
    sim = robot
    ticks = delay_ticks(args.delay_ms, robot.rate_hz)
    clock = None  # simulated time: each observation's own stamp
    if ticks:
        if args.delay_mode not in ("stamped", "naive"):
            raise ValueError(f"delay mode {args.delay_mode!r}: choose stamped or naive")
        robot = DelayedObservations(sim, ticks, restamp=args.delay_mode == "naive")
        clock = robot.now if args.delay_mode == "stamped" else None
    lookahead_s = None if args.lookahead_ms is None else args.lookahead_ms * 1e-3
    loop = control_loop(robot, policy, EXECUTE_MODES[execute], interpolate=False, noise=args.noise, clock=clock,
                        lookahead_s=lookahead_s)
    robot.reset(seed=seed)
    robot.safety.interventions.clear()
    progress = StageTracker(sim.env.config.task)
    progress.reset(sim.env)
    steps, tick_ms = 0, []
    while not robot.done:
        start = time.perf_counter()
        if video is not None:
            video.add(side_by_side(sim.render("agentview", 256, 256), *robot.observe().images.values()))
        loop.tick()
        tick_ms.append((time.perf_counter() - start) * 1e3)
        progress.update(sim.env)
        steps += 1
    return {"seed": seed, "success": robot.success, "steps": steps, "progress": progress.reached,
            "tick_ms": float(np.mean(tick_ms)), "holds": dict(loop.stats.holds),
            "interventions": dict(robot.safety.interventions), "cadence": loop.cadence.summary()["stages"],
            "replan_change": loop.planner.consistency.summary()}


def stage_counts(results: list[dict], task: str) -> dict[str, int]:
    """How many episodes reached each of the task's stages (dm1_ros/sim/stages.py), in order, then succeeded."""
    from dm1_ros.sim.stages import STAGES

    return {**{s: sum(s in r["progress"] for r in results) for s in STAGES[task]},
            "success": sum(r["success"] for r in results)}


def _init(args):
    _WORKER["robot"], _WORKER["policy"] = _setup(args)
    _WORKER["args"] = args


def _work(seed):
    r = run_episode(_WORKER["robot"], _WORKER["policy"], seed, _WORKER["args"])
    r["latencies"] = list(_WORKER["policy"].latencies_ms)
    _WORKER["policy"].latencies_ms.clear()
    return r


def evaluate(args: EvalArgs, progress: bool = True) -> dict:
    from tqdm import tqdm

    from dm1_ros.runtime.bundle import read_manifest
    from dm1_ros.sim.video import VideoWriter

    manifest = read_manifest(args.model)
    args = replace(args, execute=args.execute or execute_of(manifest))
    seeds = [args.seed_base + i for i in range(args.episodes)]
    results, latencies = [], []
    start = time.perf_counter()
    bar = tqdm(total=args.episodes, desc=f"eval {Path(args.model).name} ({manifest.sampling_steps} step)", unit="ep", disable=not progress)
    if args.workers <= 1:
        robot, policy = _setup(args)
        for i, seed in enumerate(seeds):
            with VideoWriter(args.video, fps=robot.rate_hz) if (i == 0 and args.video) else _Null() as video:
                results.append(run_episode(robot, policy, seed, args, video if args.video and i == 0 else None))
            latencies += list(policy.latencies_ms)
            policy.latencies_ms.clear()
            bar.update(1)
            bar.set_postfix(success=f"{sum(r['success'] for r in results)}/{len(results)}")
        provider = policy.provider
        robot.close()
    else:
        if args.video:
            robot, policy = _setup(args)
            with VideoWriter(args.video, fps=robot.rate_hz) as video:
                results.append(run_episode(robot, policy, seeds[0], args, video))
            latencies += list(policy.latencies_ms)
            robot.close()
            seeds = seeds[1:]
            bar.update(1)
        with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=_init, initargs=(args,)) as pool:
            for r in pool.map(_work, seeds):
                latencies += r.pop("latencies")
                results.append(r)
                bar.update(1)
                bar.set_postfix(success=f"{sum(x['success'] for x in results)}/{len(results)}")
        provider = "CPUExecutionProvider"
    bar.close()
    n_ok = sum(r["success"] for r in results)
    lo, hi = wilson_interval(n_ok, len(results))
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {
        "model": args.model, "model_id": manifest.model_id, "method": manifest.method, "sampling_steps": manifest.sampling_steps,
        "task": args.task, "episodes": len(results), "successes": n_ok, "success_rate": n_ok / len(results),
        "ci95": [lo, hi], "progress": stage_counts(results, args.task),
        "mean_steps": float(np.mean([r["steps"] for r in results])),
        "mean_steps_success": float(np.mean([r["steps"] for r in results if r["success"]])) if n_ok else None,
        "policy_latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))},
        "loop_tick_ms": float(np.mean([r["tick_ms"] for r in results])),
        "replan_change": pool_summaries([r["replan_change"] for r in results]),
        "execute": args.execute, "delay_ms": args.delay_ms, "delay_mode": args.delay_mode, "noise": args.noise,
        "appearance": args.appearance,
        "lookahead_ms": manifest.lookahead_s * 1e3 if args.lookahead_ms is None else args.lookahead_ms,
        "lookahead_includes_latency": manifest.lookahead_includes_latency,
        "provider": provider, "cpu": cpu_description(), "seconds": time.perf_counter() - start,
        "seeds": [args.seed_base, args.seed_base + args.episodes - 1], "per_episode": results, "args": asdict(args),
    }


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def export_variants(checkpoint: str, steps: list[int], workdir: str | None = None) -> dict[int, str]:
    """Checkpoint -> one temporary parity-checked bundle per sampling-step count."""
    from dm1_ros.policy.checkpoint import load_checkpoint
    from dm1_ros.policy.export import export_bundle

    policy, payload = load_checkpoint(checkpoint)
    root = Path(workdir or tempfile.mkdtemp(prefix="dm1-eval-"))
    out = {}
    for k in steps:
        export_bundle(policy, root / f"k{k}", steps=k, training={"checkpoint": checkpoint, **(payload.get("provenance") or {})})
        out[k] = str(root / f"k{k}")
    return out


def markdown_row(s: dict) -> str:
    lo, hi = s["ci95"]
    execute = s["execute"] + (f", {s['delay_ms']:g} ms delay ({s.get('delay_mode', 'stamped')})" if s.get("delay_ms") else "") + (
        f", {s['noise']} noise" if s.get("noise", "fresh") != "fresh" else "") + (
        f", {s['lookahead_ms']:g} ms lookahead" if s.get("lookahead_ms") else "") + (
        f", {s['appearance']} scene" if s.get("appearance", "default") != "default" else "")
    return (f"| {s['task']} | {s['method']} | {s['sampling_steps']} | {execute} | {s['successes']}/{s['episodes']} "
            f"({s['success_rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}) | {s['mean_steps']:.0f} | "
            f"{s['policy_latency_ms']['p50']:.2f} / {s['policy_latency_ms']['p99']:.2f} |")


MARKDOWN_HEADER = ("| task | method | steps | execution | success | mean episode length | policy latency p50 / p99 ms |\n"
                   "|---|---|---:|---|---|---:|---|")


def summary_files(out: str | Path, steps: list[int]) -> dict[int, Path]:
    """Where the summary of each sampling-step count goes: OUT itself for one, OUT_k{steps} beside it for several."""
    out = Path(out)
    if len(steps) == 1:
        return {steps[0]: out}
    return {k: out.with_name(f"{out.stem}_k{k}{out.suffix or '.json'}") for k in steps}


def claim_summary(path: str | Path, force: bool = False) -> None:
    """The JSON summary and its .md table may be written (dm1_ros/outputs.py): new, or force."""
    from dm1_ros.outputs import claim_file

    claim_file(path, force, "evaluation summary")
    claim_file(Path(path).with_suffix(".md"), force, "evaluation table")


def write_summary(summary: dict, path: str | Path, force: bool = False) -> None:
    path = Path(path)
    claim_summary(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    path.with_suffix(".md").write_text(MARKDOWN_HEADER + "\n" + markdown_row(summary) + "\n")
