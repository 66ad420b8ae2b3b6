"""Regenerate docs/results.md from the committed summaries (docs/*.json, results/*.json).

    python bench/results.py

Inputs: docs/bench_inference.json (bench/inference.py), docs/toy.json (dm1 toy), docs/experts.json
(bench/experts.py), docs/collection.json (bench/collection.py), results/*.json (dm1 eval --out ...).
"""
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def cores(machine: dict) -> str:
    """The cores, and the CPU where the benchmark recorded it (dm1_ros/runtime/cpu.py), e.g. '2 CPU cores, AMD EPYC
    (AVX2, no VNNI)': the same bundle ran 4-5x slower on one 2-core machine than on another."""
    cpu = machine.get("cpu")
    return f"{machine['cores']} CPU cores" + (f", {cpu}" if cpu else "")


def inference_section(b) -> list[str]:
    if not b:
        return ["_not measured yet: run `python bench/inference.py`_"]
    out = [f"Batch 1, {cores(b['machine'])}; the onnx_meanflow_*, onnx_flow_matching_* and torch rows are "
           f"DMPO's image network with random weights ({b['parameters']:,} parameters), "
           f"onnxruntime {b['machine']['onnxruntime']}, torch {b['machine']['torch']}; variants interleaved in rounds "
           "in one run (`python bench/inference.py`), each turn followed by a pause so that no variant inherits "
           "another's spinning threads. onnx_bundle is `models/lift_image_fast_int8` through the runtime "
           "(`OnnxPolicy.predict`, input checks included), onnx_bundle_float the float bundle it was quantized from, "
           "reference_plain_onnxruntime `models/lift_image` (DMPO's network) in a plain onnxruntime session with "
           "default options.", "",
           "| variant | p50 ms | p99 ms | Hz (p50) |", "|---|---:|---:|---:|"]
    for name, s in b["inference"].items():
        out.append(f"| {name} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | {s['hz']:.0f} |")
    r, t = b["ratios"], b["training"]
    out += ["", "| ratio (same run) | value |", "|---|---:|"]
    out += [f"| {k} | {v}x |" for k, v in r.items()]
    if b.get("cpu_percent_of_a_core_at_30hz"):
        out += ["", "CPU the bundle costs at a camera's 30 Hz: onnx_bundle on one thread (the runtime's default), the "
                "others on two, by how onnxruntime's pool waits (`OnnxPolicy(threads=2, spinning=...)`):", "",
                "| variant | % of a core |", "|---|---:|"]
        out += [f"| {k} | {v} |" for k, v in b["cpu_percent_of_a_core_at_30hz"].items()]
    if b.get("at_30hz"):
        out += ["", "Latency at a camera's 30 Hz (one call per frame: caches cold and threads parked between calls, as "
                "on the robot), the same variants and the reference, interleaved:", "",
                "| variant | p50 ms | p99 ms |", "|---|---:|---:|"]
        out += [f"| {k} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} |" for k, v in b["at_30hz"].items()]
    out += ["", f"Training step (batch {t['batch']}, forward + backward + AdamW): MeanFlow {t['meanflow_step_ms']} ms, "
            f"flow matching {t['flow_matching_step_ms']} ms: ratio **{t['meanflow_vs_flow_matching_ratio']}** (target <= 1.5)."]
    return out


def toy_section(t) -> list[str]:
    if not t:
        return ["_not measured yet: run `dm1 toy`_"]
    out = [f"Conditional 2-mode task (`dm1 toy`, {t['steps']} optimizer steps per method; two independent samples of the "
           f"data score SW {t['floor']:.3f}). ![toy](toy_onestep.png)", "",
           "| sampler | network evaluations | sliced Wasserstein | on-mode |", "|---|---:|---:|---:|"]
    for key, r in t["scores"].items():
        name, _, k = key.rpartition("_")
        out.append(f"| {name} | {k.replace('step', '')} | {r['sw']:.3f} | {r['on_mode']:.0%} |")
    return out


def experts_section(e, c) -> list[str]:
    out = []
    if e:
        out += ["| task | expert success (seeds 0-49) | mean episode steps | sim steps/s (no camera) |", "|---|---|---:|---:|"]
        for task, r in e.items():
            out.append(f"| {task} | {r['success']}/{r['episodes']} ({r['success_rate']:.0%}) | {r['mean_steps']:.0f} | {r['steps_per_s']:.0f} |")
    if c:
        out += ["", "| collection | episodes/min | steps/s | MB per 100 episodes |", "|---|---:|---:|---:|"]
        for name, r in c.items():
            out.append(f"| {name} | {r['episodes_per_min']:.1f} | {r['steps_per_s']:.0f} | {r['mb_per_100']:.0f} |")
    return out or ["_not measured yet_"]


# results/<task>_<variant>.json and results/methods/<row>_<variant>.json -> the comparison table's columns
# (issue 4: task x method; issue 14 item 5: every cell for lift, can and square)
METHODS = [
    ("meanflow_dispersive_1step", "MeanFlow + dispersive, 1 step"),
    ("meanflow_1step", "MeanFlow, no dispersive, 1 step"),
    ("meanflow_dispersive_5step", "MeanFlow + dispersive, 5 steps"),
    ("flow_matching_10step", "flow matching, 10 steps"),
    ("flow_matching_1step", "flow matching, 1 step"),
]
# What each row's policies see and which network they are; one recipe per row, varied only in the method.
METHOD_ROWS = {
    "can": "can: wrist camera, DMPO's network (config/train/can_image.yaml)",
    "lift": "lift: wrist camera, DMPO's network (config/train/lift_image.yaml)",
    "lift-fast": "lift: wrist camera, fast network (config/train/lift_image_fast.yaml)",
    "square-state": "square: state only (config/train/square_lowdim.yaml)",
}
# Cells measured before this table had their row: (row, variant) -> committed summary.
METHOD_CELLS = {
    ("lift-fast", "meanflow_dispersive_1step"): "fast/lift_image_fast_chunk_50ep.json",
    ("lift-fast", "meanflow_dispersive_5step"): "one_vs_five/lift_image_fast_5step_chunk_100ep.json",
    ("square-state", "meanflow_1step"): "square_lowdim/square_lowdim_chunk_50ep.json",
}


def method_rows(rows) -> list[tuple[str, dict]]:
    """(name, summary) of every cell of the task x method table: results/*.json, results/methods/*.json and
    METHOD_CELLS, named <row>_<variant>."""
    cells = dict(rows)
    cells.update((p.stem, load(p)) for p in sorted((ROOT / "results" / "methods").glob("*.json")))
    for (row, key), rel in METHOD_CELLS.items():
        if (ROOT / "results" / rel).is_file():
            cells[f"{row}_{key}"] = load(ROOT / "results" / rel)
    return sorted(cells.items())


def comparison_section(rows) -> list[str]:
    by_name = dict(rows)
    present = {name.split("_", 1)[0] for name, _ in rows}
    tasks = [row for row in METHOD_ROWS if row in present] + sorted(present - set(METHOD_ROWS))
    if not tasks:
        return []
    out = ["| task | " + " | ".join(label for _, label in METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for task in tasks:
        cells = []
        for key, _ in METHODS:
            s = by_name.get(f"{task}_{key}")
            cells.append(f"{s['successes']}/{s['episodes']} = {s['success_rate']:.0%} "
                         f"({s['policy_latency_ms']['p50']:.1f} ms, {s['execute']})" if s else "not run")
        out.append(f"| {METHOD_ROWS.get(task, task)} | " + " | ".join(cells) + " |")
    return out + ["", "Success over seeded episodes from seed 100000, chunks executed the way each bundle's manifest says (first = "
                      "re-plan every tick, chunk = each chunk open loop; both are listed below where both were run), "
                      "policy latency p50 in the loop (onnxruntime, 1 thread, "
                      "2 evaluation workers sharing 2 cores with whatever else ran, on the machine of the day: summaries "
                      "made since 2026-12-02 record their CPU; compare latency in the inference table below, measured "
                      "side by side). Within a row only the method changes: the same recipe, "
                      "data, training seed and schedule. Every cell: details below.", ""]


def execution_pairs(rows) -> list[tuple[str, list[str], list[str]]]:
    """(label, chunks open loop, re-planning every tick) for each cell of the method table evaluated both ways:
    <task>_<variant>.json beside <task>_<variant>_replan[_...].json or <task>_<variant>_chunk.json (the suffix
    names what else differs, e.g. _replan_lookahead50); on other seeds, <task>_<variant>_seeds<N>_chunk.json beside
    <task>_<variant>_seeds<N>_replan[_...].json."""
    summaries = dict(rows)
    pairs = []
    for task in METHOD_ROWS:
        for key, label in METHODS:
            base = f"{task}_{key}"
            for other in sorted(summaries):
                found = re.fullmatch(rf"{re.escape(base)}(_seeds\d+)?_(replan.*|chunk)", other)
                if not found:
                    continue
                seeds, kind = found.groups()
                anchor = f"{base}{seeds}_chunk" if seeds else base
                if anchor not in summaries or (seeds and kind == "chunk"):
                    continue
                if summaries[anchor]["model_id"] != summaries[other]["model_id"]:
                    raise ValueError(f"results/{anchor}.json and results/{other}.json evaluate different models")
                chunk, replan = (anchor, other) if kind.startswith("replan") else (other, anchor)
                pairs.append((f"{task}, {label}: chunks -> re-planning", [f"{chunk}.json"], [f"{replan}.json"]))
    return pairs


def execution_section(rows) -> list[str]:
    found = paired_rows(execution_pairs(rows), same_execution=False)
    if not found:
        return []
    return ["Chunks open loop (a) against re-planning every tick (b), the same model on the same seeds, episode by "
            "episode (issue 14 asks re-planning to be at least as good):", "", *PAIRED_HEADER, *found, ""]


def replan_change_section() -> list[str]:
    """results/replan_change/<task>_<variant>[_shifted].json: re-planning runs that recorded how much each plan
    changes the previous plan's actions for the same instants (dm1_ros/runtime/consistency.py)."""
    from dm1_ros.runtime.consistency import pool_summaries

    def pooled(episodes):
        p = pool_summaries([e["replan_change"] for e in episodes])
        return f"{p['arm_rms']:.3f} / {p['gripper_flips']:.1%}" if p["compared"] else "-"

    labels = dict(METHODS)
    out = []
    for path in sorted((ROOT / "results" / "replan_change").glob("*.json")):
        r = load(path)
        task, rest = path.stem.split("_", 1)
        variant = rest.removesuffix("_shifted")  # the noise is in the summary
        ok = [e for e in r["per_episode"] if e["success"]]
        failed = [e for e in r["per_episode"] if not e["success"]]
        out.append(f"| {task}, {labels[variant]} | {r['noise']} | {r['execute']}, {r['lookahead_ms']:.0f} ms lookahead | "
                   f"{r['successes']}/{r['episodes']} | {pooled(r['per_episode'])} | {pooled(ok)} | {pooled(failed)} |")
    if not out:
        return []
    return ["How much each re-plan changes what the previous plan meant for the same instants (`dm1 eval` reports it: "
            "RMS over the shared instants of the arm actions' change, in robot units of the 7-d action, 1 = 5 cm or "
            "0.5 rad per step; and the share of shared instants whose gripper command flips between open and closed; "
            "DMPO's lift network, seeds 100000-100049):", "",
            "| model | noise | execution | success | change: arm RMS / gripper flips | in successes | in failures |",
            "|---|---|---|---|---|---|---|", *out, ""]


def eval_section(rows) -> list[str]:
    rows = method_rows(rows)
    if not rows:
        return ["_no evaluation summaries in results/ yet_"]
    out = [*comparison_section(rows), *execution_section(rows), *replan_change_section(),
           "| summary file | task | method | sampling steps | execution | success (95% CI) | mean length | policy p50 / p99 ms |",
           "|---|---|---|---:|---|---|---:|---|"]
    for name, s in rows:
        lo, hi = s["ci95"]
        out.append(f"| {name} | {s['task']} | {s['method']} | {s['sampling_steps']} | {s['execute']} | "
                   f"{s['successes']}/{s['episodes']} = {s['success_rate']:.0%} ({lo:.0%}-{hi:.0%}) | {s['mean_steps']:.0f} | "
                   f"{s['policy_latency_ms']['p50']:.2f} / {s['policy_latency_ms']['p99']:.2f} |")
    return out


def finetune_section() -> list[str]:
    """The re-run whose models are committed (results/finetune/committed, bundles in results/finetune/bundles), then
    the earlier runs, whose models were not kept."""
    committed = finetune_tables(ROOT / "results" / "finetune" / "committed")
    earlier = finetune_tables(ROOT / "results" / "finetune")
    if not committed and not earlier:
        return ["_not run yet: `python bench/finetune.py`_"]
    out = ["`python bench/finetune.py` (commands and reading: results/finetune/README.md): a deliberately weak one-step "
           "low-dim policy, then PPO (K = 1) with BC to the frozen start and without it; `dm1 eval` on the same seeds "
           "before and after (50 episodes for lift, 100 for can, chunks open loop)."]
    if committed:
        out += ["", "**Models in the repository** (results/finetune/bundles/: `<task>_start`, `<task>_ppo_bc`, "
                "`<task>_ppo_no_bc`; `dm1 eval --model results/finetune/bundles/NAME --task TASK --episodes N --execute "
                "chunk` re-checks a row; `--seed-base 200000` for the confirmations):", "", *committed]
    if earlier:
        out += ["", "Earlier runs of the same commands (their data and models were not kept; the re-run above is what "
                "the repository can re-check):", "", *earlier]
    return out


def finetune_tables(folder: Path) -> list[str]:
    summaries = sorted(folder.glob("*_summary.json"))
    if not summaries:
        return []
    out = ["| setting | start | PPO + BC | PPO, BC 0 | env steps (BC / no BC) | wall-clock s | plot |", "|---|---|---|---|---|---|---|"]
    for path in summaries:
        d = load(path)
        tag = path.stem[: -len("_summary")]
        runs = d["runs"]

        def cell(r):
            return f"{r['successes']}/{r['episodes']} = {r['success_rate']:.0%} ({r['ci95'][0]:.0%}-{r['ci95'][1]:.0%})" if r else "not run"

        bc, nobc = runs.get("bc"), runs.get("no_bc")
        png = f"docs/finetune_{tag}.png"
        out.append(f"| {tag}: {d['demos']} demos, {d['pretrain_steps']} pre-training steps; {', '.join(d['overrides'])} | "
                   f"{cell(d['start'])} | {cell(bc)} | {cell(nobc)} | "
                   f"{bc['env_steps'] if bc else '-'} / {nobc['env_steps'] if nobc else '-'} | "
                   f"{bc['seconds'] if bc else 0:.0f} / {nobc['seconds'] if nobc else 0:.0f} | "
                   f"{'[png](' + png.split('/', 1)[1] + ')' if (ROOT / png).is_file() else '-'} |")
    for path in sorted(folder.glob("*_confirm.json")):
        c = load(path)
        out += ["", f"Confirmation on {c['episodes']} fresh seeds ({c['seed_base']}-{c['seed_base'] + c['episodes'] - 1}, "
                f"{c['task']}, `python bench/finetune_confirm.py`), two-sided two-proportion z test against the start:", "",
                "| model | success | 95% CI | p vs start |", "|---|---|---|---|"]
        for name, r in c["rows"].items():
            p = r.get("p_vs_start")
            out.append(f"| {name} | {r['successes']}/{r['episodes']} = {r['success_rate']:.0%} | "
                       f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%} | {'-' if p is None else f'{p:.2g}'} |")
    return out


def loop_section(b) -> list[str]:
    if not b:
        return ["_not measured yet: run `python bench/loop.py`_"]
    out = [f"`python bench/loop.py`: model `{b['model']}` on {b['provider']}, commands paced at {b['command_target_hz']:.0f} Hz "
           f"for {b['seconds_per_row']:.0f} s per row, camera frames pushed by a driver-like thread, {cores(b)} "
           "shared by everything (franky-sim runs in its own process and takes most of one core). Observation -> command "
           "runs from a frame's arrival to the first command computed from it leaving the loop, so it includes the wait "
           "for the next 5 ms tick; a policy tick is a tick that runs the network.", "",
           "| loop | commands Hz | obs -> command p50 / p99 ms | policy tick p50 / p99 ms | overruns |", "|---|---:|---|---|---:|"]
    for key, r in b["rows"].items():
        out.append(f"| {key} | {r['command_hz']:.0f} | {r['obs_to_command']['p50_ms']:.2f} / {r['obs_to_command']['p99_ms']:.2f} | "
                   f"{r['policy_tick']['p50_ms']:.2f} / {r['policy_tick']['p99_ms']:.2f} | {r['overruns']} |")
    return out


def ros_section(b, e) -> list[str]:
    out = []
    if b:
        inproc = next(r for k, r in b["rows"].items() if not k.startswith("ROS"))["obs_to_command"]
        out += [f"`tools/with_ros2 python bench/ros_loop.py`: the shipped model in policy_node, franka_bridge_node "
                f"commanding at {b['bridge_target_hz']} Hz against franky-sim (its own process), this script publishing "
                f"camera images at {b['camera_fps']:.0f} fps over Cyclone DDS (loopback) and receiving the commands; "
                f"{b['seconds_per_row']:.0f} s per row, {cores(b)} shared by all of it. Image -> command: from "
                "an image's publication to the receipt of the command planned on it. The last row is the same loop in "
                "one process (ControlLoop, `dm1 run --robot franka`) in the same run; its latency includes the wait for "
                "the next 5 ms command tick.", "",
                "| loop | image -> command p50 / p99 / max ms | p99 / in-process p99 | policy Hz | bridge Hz | "
                "CPU % policy / bridge, idle -> running |", "|---|---|---:|---:|---:|---|"]
        for key, r in b["rows"].items():
            if key.startswith("ROS"):
                lat, ci, cr = r["image_to_trajectory"], r["cpu_percent_idle"], r["cpu_percent_running"]
                bridge = f"{r['bridge_achieved_hz']:.0f}" if r["bridge_target_hz"] else "-"
                out.append(f"| {key} | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} / {lat['max_ms']:.2f} | "
                           f"{lat['p99_ms'] / inproc['p99_ms']:.2f} | {r['policy_plans_hz']:.1f} | {bridge} | "
                           f"{ci['policy_node']:.0f} / {ci.get('franka_bridge_node', 0):.0f} -> "
                           f"{cr['policy_node']:.0f} / {cr.get('franka_bridge_node', 0):.0f} |")
            else:
                out.append(f"| {key} | {inproc['p50_ms']:.2f} / {inproc['p99_ms']:.2f} / {inproc['max_ms']:.2f} | 1.00 | "
                           f"- | {r['command_hz']:.0f} | {r['cpu_percent']:.0f} (one process) |")
    if e:
        r, d = e["ros2"], e["dm1_eval"]
        out += ["", f"Closed loop through ROS 2 (`tools/with_ros2 python bench/ros_eval.py`): `sim_policy.launch.py` "
                f"(sim_bridge_node + policy_node, robosuite in lockstep) on seeds {e['seeds'][0]}-{e['seeds'][1]}, "
                f"against `dm1 eval` of the same model on the same seeds (they differ in the sampling noise only).", "",
                "| path | success | 95% CI |", "|---|---|---|",
                f"| ROS 2, sim_policy.launch.py | {r['successes']}/{e['episodes']} | {r['ci95'][0]:.0%}-{r['ci95'][1]:.0%} |",
                f"| dm1 eval ({d['source']}) | {d['successes']}/{e['episodes']} | {d['ci95'][0]:.0%}-{d['ci95'][1]:.0%} |"]
    return out or ["_not measured yet: run `tools/with_ros2 python bench/ros_loop.py` and `bench/ros_eval.py`_"]


def closed_loop_section(latency) -> list[str]:
    out = []
    runs = sorted((ROOT / "results" / "closed_loop").glob("*.json"))
    if runs:
        out += ["Closed-loop runs (seeds from 100000) of the shipped lift and can models and of the first square model "
                "(not shipped; docs/results_notes.md): how chunks are executed (first = re-plan "
                "every tick, chunk = open loop), which action of each chunk is run (`--lookahead-ms`: the one planned "
                "that long after the observation) and the sampling noise across re-plans (`--noise`). Lift, chunks "
                "open loop on the same first 20 seeds: 19/20.", "",
                "| run | model | task | execution | lookahead ms | noise | success | 95% CI |",
                "|---|---|---|---|---:|---|---|---|"]
        for path in runs:
            r = load(path)
            out.append(f"| {path.stem} | {r['model']} | {r['task']} | {r['execute'] or 'manifest'} | {r.get('lookahead_ms') or 0:g} | "
                       f"{r.get('noise', 'fresh')} | {r['successes']}/{r['episodes']} | "
                       f"{r['ci95'][0]:.0%}-{r['ci95'][1]:.0%} |")
    if latency:
        out += ["", "Success against observation latency (`python bench/latency_curve.py`, `dm1 eval --delay-ms D`: the "
                "observation the policy sees is D ms old when its actions start; same seeds and noise in every cell;"
                " stamped: each action runs at the instant it was planned for, as the runtime does with true capture "
                "stamps, so the first D ms of a chunk are skipped; naive: a chunk starts with its first action.", "",
                "Lookahead: which action of each chunk runs at each observation (the bundle's manifest default; cells "
                "made before bundles carried one ran the first action, 0 ms).", "",
                "| model | task | execution | lookahead ms | delay mode | delay ms | success | 95% CI |",
                "|---|---|---|---:|---|---:|---|---|"]
        cells = sorted(latency["cells"], key=lambda c: (c["model"], c["execute"], c.get("delay_mode", "naive"),
                                                           c["delay_ms"]))
        for c in cells:
            mode = "-" if c["delay_ms"] == 0 else c.get("delay_mode", "naive")
            out.append(f"| {c['model']} | {c['task']} | {c['execute']} | {lookahead_label(c)} | {mode} | "
                       f"{c['delay_ms']:g} | "
                       f"{c['successes']}/{c['episodes']} | {c['ci95'][0]:.0%}-{c['ci95'][1]:.0%} |")
        out += lookahead_grids(cells)
    return out or ["_not measured yet: run `python bench/latency_curve.py`_"]


def lookahead_label(cell: dict) -> str:
    la = f"{cell.get('lookahead_ms', 0.0):g}"
    return f"{la}, latency included" if cell.get("lookahead_includes_latency") else la


def lookahead_grids(cells: list[dict]) -> list[str]:
    """For each model run at several lookaheads (re-planning, stamped): success by lookahead (rows) and delay
    (columns), and the index of the chunk action that runs, (lookahead + delay) / control period."""
    out = []
    for model in sorted({c["model"] for c in cells}):
        mine = [c for c in cells if c["model"] == model and c["execute"] == "first"
                and (c["delay_ms"] == 0 or c.get("delay_mode") == "stamped")]
        lookaheads = sorted({(c.get("lookahead_includes_latency", False), c.get("lookahead_ms", 0.0)) for c in mine})
        if len(lookaheads) < 2:
            continue
        delays = sorted({c["delay_ms"] for c in mine})
        grid = {(c.get("lookahead_includes_latency", False), c.get("lookahead_ms", 0.0), c["delay_ms"]): c for c in mine}
        out += ["", f"{model}, re-planning every tick, stamped: success by lookahead and delay (the chunk action that "
                "runs: index (lookahead + delay) / 50 ms at 20 Hz, max(lookahead, delay) / 50 ms when the latency is included in "
                "the lookahead; 4 and above is past the chunk, so the robot holds).", "",
                "| lookahead ms | " + " | ".join(f"delay {d:g} ms" for d in delays) + " |",
                "|---:|" + "---|" * len(delays)]
        for includes, la in lookaheads:
            row = []
            for d in delays:
                c = grid.get((includes, la, d))
                index = max(la, d) if includes else la + d
                row.append("" if c is None else f"{c['successes']}/{c['episodes']} (index {index / 50:g})")
            out.append(f"| {lookahead_label({'lookahead_ms': la, 'lookahead_includes_latency': includes})} | "
                       + " | ".join(row) + " |")
    return out


def point_cloud_section() -> list[str]:
    """results/pointcloud/*.json: RGB and point-cloud policies on the same seeds, the scene as trained and with its
    colours or lighting changed (dm1 eval --appearance). Every cell over the first N seeds all runs share."""
    runs = [(p.stem, load(p)) for p in sorted((ROOT / "results" / "pointcloud").glob("*.json"))]
    if not runs:
        return ["_not measured yet: see docs/results_notes.md (point clouds)_"]
    n = min(r["episodes"] for _, r in runs)
    out = [f"Lift, one step, seeds {EVAL_SEEDS}..{EVAL_SEEDS + n - 1} in every cell (`dm1 eval --appearance`: recolor = "
           "blue table, green floor and cube; relight = dimmer, warmer light from the other side; the geometry, and "
           "so depth, unchanged). Policy latency p50 through the ONNX runtime in the loop; the simulator hands the "
           f"point-cloud policy its cloud, which from 640 x 480 depth costs {cloud_ms()} ms more (bench/pointcloud.py).", "",
           "| model | scene | success | 95% CI | policy p50 ms | file |", "|---|---|---|---|---:|---|"]
    for stem, r in runs:
        episodes = sorted(r["per_episode"], key=lambda e: e["seed"])[:n]
        ok = sum(bool(e["success"]) for e in episodes)
        lo, hi = wilson(ok, n)
        out.append(f"| {r['model_id']} | {r.get('appearance', 'default')} | {ok}/{n} | {lo:.0%}-{hi:.0%} | "
                   f"{r['policy_latency_ms']['p50']:.2f} | {stem} ({r['successes']}/{r['episodes']} in all) |")
    return out


def cloud_ms() -> str:
    b = load(DOCS / "bench_pointcloud.json")
    rows = b.get("rows", {}) if b else {}
    end_to_end = [r for name, r in rows.items() if name.startswith("640x480") and "stride" in name and "numpy" not in name]
    return f"{end_to_end[0]['p50_ms']:.1f}" if end_to_end else "?"


def pooled_section(folder: str, reference: list[str], what: str, first: int | None = None) -> list[str]:
    """Success pooled per (model, execution) over results/<folder>/*.json (runs on adjacent seed ranges), beside the
    reference runs named (paths under results/); `first`: only each run's first N seeds, so every row has the same."""
    runs = [load(p) for p in sorted((ROOT / "results" / folder).glob("*.json"))]
    if not runs:
        return [f"_not measured yet: see docs/results_notes.md ({what})_"]
    pools: dict = {}
    for r in [load(ROOT / "results" / ref) for ref in reference] + runs:
        episodes = sorted(r["per_episode"], key=lambda e: e["seed"])[:first]
        key = (r["model"], r["execute"], r.get("lookahead_ms") or 0)
        pool = pools.setdefault(key, {"ok": 0, "n": 0, "seeds": [], "p50": []})
        pool["ok"] += sum(bool(e["success"]) for e in episodes)
        pool["n"] += len(episodes)
        pool["seeds"] += [e["seed"] for e in episodes]
        pool["p50"].append(r["policy_latency_ms"]["p50"])
    out = ["| model | execution | success | 95% CI | seeds | policy p50 ms (in the loop) |", "|---|---|---|---|---|---:|"]
    for (model, execute, lookahead), p in pools.items():
        lo, hi = wilson(p["ok"], p["n"])
        out.append(f"| {model} | {execute}, {lookahead:.0f} ms lookahead | {p['ok']}/{p['n']} | {lo:.0%}-{hi:.0%} | "
                   f"{min(p['seeds'])}-{max(p['seeds'])} | {sorted(p['p50'])[len(p['p50']) // 2]:.2f} |")
    return out


INT8_PAIRS = [  # (float bundle, its evaluations on seeds 100000-100099, the int8 bundle's, same execution)
    ("models/lift_image_fast, 7-bit weights (shipped; int8 on an AVX2 CPU)",
     ["int8/replan/lift_image_fast_first_lookahead100_100ep.json"],
     ["int8/lift_image_fast_int8_w7_first_lookahead100_100ep.json"]),
    ("models/lift_image_fast, 8-bit weights (VNNI CPU)", ["fused_attention/lift_image_fast_fused_chunk_50ep.json",
                                                          "fast/lift_image_fast_chunk_seeds100050_50ep.json"],
     ["int8/lift_image_fast_int8_chunk_100ep.json"]),
    ("models/lift_image, 7-bit weights (int8 on an AVX2 CPU)", ["closed_loop/lift_first_lookahead50_100ep.json"],
     ["int8/lift_image_int8_w7_100ep.json"]),
    ("models/lift_image, 8-bit weights (VNNI CPU)", ["closed_loop/lift_first_lookahead50_100ep.json"],
     ["int8/lift_image_int8_100ep.json"]),
    ("models/can_image_2cam, 7-bit weights (int8 on an AVX2 CPU)", ["cameras/can_image_2cam_100ep.json"],
     ["int8/can_image_2cam_int8_w7_100ep.json"]),
    ("models/can_image_2cam, 8-bit weights (VNNI CPU)", ["cameras/can_image_2cam_100ep.json"],
     ["int8/can_image_2cam_int8_100ep.json"]),
]


# the committed runs the lookahead table sets its own beside (chunks, and re-planning with the 50 ms lookahead)
REPLAN_REFERENCES = ["closed_loop/lift_first_lookahead50_100ep.json", "fused_attention/lift_image_fast_fused_chunk_50ep.json",
                     "fast/lift_image_fast_chunk_seeds100050_50ep.json", "fast/lift_image_fast_100ep.json",
                     "int8/lift_image_fast_int8_chunk_100ep.json"]


PAIRED_HEADER = ["| a -> b | execution | seeds | a | b (95% CI) | only a / only b | McNemar p | policy p50 ms a / b |",
                 "|---|---|---|---|---|---|---:|---|"]  # the table paired_rows() fills


def paired_rows(pairs, same_execution: bool = True) -> list[str]:
    """One table row per (label, evaluations a, evaluations b): the same seeds (and execution, unless told otherwise),
    episode by episode; pairs with runs not committed yet are left out."""
    out = []
    for label, a_paths, b_paths in pairs:
        if not all((ROOT / "results" / p).is_file() for p in a_paths + b_paths):
            continue
        a_runs, b_runs = [load(ROOT / "results" / p) for p in a_paths], [load(ROOT / "results" / p) for p in b_paths]
        a = {e["seed"]: bool(e["success"]) for r in a_runs for e in r["per_episode"]}
        b = {e["seed"]: bool(e["success"]) for r in b_runs for e in r["per_episode"]}
        if sorted(a) != sorted(b) or (same_execution and {r["execute"] for r in a_runs} != {r["execute"] for r in b_runs}):
            raise ValueError(f"{label}: the two models' evaluations differ in seeds or execution")
        only_a, only_b, p = discordant(a, b)
        lo, hi = wilson(sum(b.values()), len(b))
        p50_a = sorted(r["policy_latency_ms"]["p50"] for r in a_runs)[0]
        p50_b = sorted(r["policy_latency_ms"]["p50"] for r in b_runs)[0]
        noise = b_runs[0].get("noise", "fresh")  # fresh draws unless the row says otherwise
        execution = f"{b_runs[0]['execute']}, {b_runs[0].get('lookahead_ms') or 0:.0f} ms lookahead" + (
            f", {noise} noise" if noise != "fresh" else "")
        out.append(f"| {label} | {execution} | "
                   f"{min(a)}-{max(a)} | {sum(a.values())}/{len(a)} | {sum(b.values())}/{len(b)} ({lo:.0%}-{hi:.0%}) | "
                   f"{only_a} / {only_b} | {p:.2g} | {p50_a:.2f} / {p50_b:.2f} |")
    return out


def int8_section() -> list[str]:
    """Each float bundle against its `dm1 quantize` bundle, episode by episode on the same seeds."""
    return ["| float bundle | execution | seeds | float | int8 (95% CI) | only float / only int8 | McNemar p | "
            "policy p50 ms float / int8 (in the loop) |", "|---|---|---|---|---|---|---:|---|", *paired_rows(INT8_PAIRS)]


# the default lift model's evaluations (results/demos/), seeds 100000-100199 and 100000-100099
LIFT_500_REPLAN = ["demos/lift_image_fast_500_first_lookahead100_100ep.json",
                   "demos/lift_image_fast_500_first_lookahead100_seeds100100_100ep.json"]
LIFT_500_CHUNK = ["demos/lift_image_fast_500_chunk_lookahead50_100ep.json",
                  "demos/lift_image_fast_500_chunk_lookahead50_seeds100100_100ep.json"]
# (label, the shipped model's evaluations, the same recipe on more demonstrations: same seeds and execution)
DEMO_PAIRS = [
    ("lift: models/lift_image_fast (180 training demos) -> models/lift_image_fast_500 (450)",
     ["int8/replan/lift_image_fast_first_lookahead100_100ep.json",
      "int8/replan/lift_image_fast_first_lookahead100_seeds100100_100ep.json"], LIFT_500_REPLAN),
    ("lift: models/lift_image_fast (180 training demos) -> models/lift_image_fast_500 (450)",
     ["fused_attention/lift_image_fast_fused_chunk_50ep.json", "fast/lift_image_fast_chunk_seeds100050_50ep.json"],
     LIFT_500_CHUNK[:1]),
    ("can: models/can_image_2cam (90 training demos) -> models/can_image_2cam_300 (270)",
     ["cameras/can_image_2cam_100ep.json"], ["demos/can_image_2cam_300_first_lookahead50_100ep.json"]),
]


# Square, state only, on data/square_lowdim_1000.hdf5 (900 training demonstrations unless the row says otherwise):
# (evaluation under results/square_lowdim/, recipe, training steps); the sampling steps and execution are in the file
SQ = "square_lowdim/"
TEACHER = "config/train/square_lowdim_1000.yaml"
DISTILLED = ("config/train/square_lowdim_1000_distill.yaml", "72,000 + 8,000")  # distill_weight 10: the shipped bundle
WEIGHT_1 = (DISTILLED[0] + " --set policy.method.distill_weight=1", DISTILLED[1])
WEIGHT_30 = (DISTILLED[0] + " --set policy.method.distill_weight=30", DISTILLED[1])
LONGER = (DISTILLED[0] + " --set steps=16000", "72,000 + 16,000")
SEED_1 = (DISTILLED[0] + " --set seed=1", DISTILLED[1])
NOT_DISTILLED = (DISTILLED[0] + " --set policy.method.distill_steps=0 (no distillation)", DISTILLED[1])
WEIGHT_1_AGAIN = (WEIGHT_1[0] + ", again from the weight-1 model", "72,000 + 8,000 + 8,000")
RUNS_OF = {  # evaluation tag under results/square_lowdim/onestep/ -> (recipe, training steps)
    "sq900_72k_distill5_w10_8k": DISTILLED, "sq900_72k_distill5_8k": WEIGHT_1, "sq900_72k_distill5_w30_8k": WEIGHT_30,
    "sq900_72k_distill5_w10_16k": LONGER, "sq900_72k_distill5_w10_8k_seed1": SEED_1, "sq900_72k_cont8k": NOT_DISTILLED,
    "sq900_72k_distill5_8k_r2": WEIGHT_1_AGAIN,
}
SQUARE_1000_RUNS = [
    ("more/square_lowdim_450_72k_1step_chunk_100ep.json", TEACHER + " --set episodes=450", "72,000"),
    ("more/square_lowdim_450_72k_5step_chunk_100ep.json", TEACHER + " --set episodes=450", "72,000"),
    ("more/square_lowdim_900_72k_1step_chunk_100ep.json", TEACHER + " (the teacher)", "72,000"),
    ("more/square_lowdim_900_72k_5step_chunk_100ep.json", TEACHER + " (the teacher)", "72,000"),
    ("onestep/square_lowdim_900_72k_10step_chunk_100ep.json", TEACHER + " (the teacher)", "72,000"),
    ("onestep/square_lowdim_900_72k_5step_chunk_seeds100100_100ep.json", TEACHER + " (the teacher)", "72,000"),
    ("onestep/sq900_24k_tstd2_1step_chunk_100ep.json", TEACHER + " --set steps=24000 --set policy.method.time_std=2.0",
     "24,000"),
    ("onestep/sq900_24k_head512x3_1step_chunk_100ep.json", TEACHER + " --set steps=24000 --set policy.head.blocks=3",
     "24,000"),
    *((f"onestep/{tag}_{k}step_{x}{seeds}_100ep.json", *recipe) for tag, recipe in RUNS_OF.items() for k in (1, 5)
      for x in ("chunk", "first") for seeds in ("", "_seeds100100")),
]
SQUARE_TEACHER_1 = [SQ + "more/square_lowdim_900_72k_1step_chunk_100ep.json"]
SQUARE_TEACHER_5 = [SQ + "more/square_lowdim_900_72k_5step_chunk_100ep.json"]


def square_evals(tag: str, steps: int, execute: str, both_seed_ranges: bool = False) -> list[str]:
    """Evaluation files of a run in the distillation study (seeds 100000-100099, and 100100-100199 when asked)."""
    return [SQ + f"onestep/{tag}_{steps}step_{execute}{seeds}_100ep.json"
            for seeds in ("", "_seeds100100")[:1 + both_seed_ranges]]


SHIPPED_SQUARE = "sq900_72k_distill5_w10_8k"
SQUARE_DISTILLED_1 = square_evals(SHIPPED_SQUARE, 1, "chunk")

CAN_DISTILLED = "one_vs_five/can_image_2cam_300_distill"  # config/train/can_image_2cam_300_distill.yaml, evaluated

# (model, its chunks open loop, the same model re-planning every tick as its manifest says; same seeds)
REPLAN_VS_CHUNK = [
    ("models/lift_image_fast_500", LIFT_500_CHUNK, LIFT_500_REPLAN),
    ("models/can_image_2cam", ["closed_loop/can_2cam_chunk_lookahead50_100ep.json"], ["cameras/can_image_2cam_100ep.json"]),
    ("models/can_image_2cam_300", ["demos/can_image_2cam_300_chunk_lookahead50_100ep.json"],
     ["demos/can_image_2cam_300_first_lookahead50_100ep.json"]),
    ("square, state only, distilled (results/square_lowdim/square_lowdim_1000_distill)",
     square_evals(SHIPPED_SQUARE, 1, "chunk", True), square_evals(SHIPPED_SQUARE, 1, "first", True)),
    ("can, models/can_image_2cam_300 distilled (config/train/can_image_2cam_300_distill.yaml)",
     [CAN_DISTILLED + "_1step_chunk_100ep.json"], [CAN_DISTILLED + "_1step_first_100ep.json"]),
    ("models/square_image (pose reader chained to the distilled state policy)", ["demos/square_image_chunk_100ep.json"],
     ["demos/square_image_first_100ep.json"]),
    ("square, state only, distilled at weight 1", square_evals("sq900_72k_distill5_8k", 1, "chunk", True),
     square_evals("sq900_72k_distill5_8k", 1, "first", True)),
]


# (label, evaluations a, evaluations b): the same seeds and execution
DISTILL_PAIRS = [
    ("teacher, one step -> distilled, one step", SQUARE_TEACHER_1, SQUARE_DISTILLED_1),
    ("teacher, five steps -> distilled, one step", SQUARE_TEACHER_5, SQUARE_DISTILLED_1),
    ("teacher, five steps -> distilled, one step", [SQ + "onestep/square_lowdim_900_72k_5step_chunk_seeds100100_100ep.json"],
     [SQ + f"onestep/{SHIPPED_SQUARE}_1step_chunk_seeds100100_100ep.json"]),
    ("no distillation -> distilled, one step (the same 8,000 extra steps)",
     square_evals("sq900_72k_cont8k", 1, "chunk"), SQUARE_DISTILLED_1),
    ("distillation weight 1 -> 10, one step", square_evals("sq900_72k_distill5_8k", 1, "chunk", True),
     square_evals(SHIPPED_SQUARE, 1, "chunk", True)),
    ("distillation weight 1 -> 10, one step", square_evals("sq900_72k_distill5_8k", 1, "first", True),
     square_evals(SHIPPED_SQUARE, 1, "first", True)),
    ("distillation weight 10 -> 30, one step", SQUARE_DISTILLED_1, square_evals("sq900_72k_distill5_w30_8k", 1, "chunk")),
    ("distillation weight 10 -> 30, one step", square_evals(SHIPPED_SQUARE, 1, "first"),
     square_evals("sq900_72k_distill5_w30_8k", 1, "first")),
    ("distillation 8,000 -> 16,000 steps, one step", SQUARE_DISTILLED_1, square_evals("sq900_72k_distill5_w10_16k", 1, "chunk")),
    ("distillation 8,000 -> 16,000 steps, one step", square_evals(SHIPPED_SQUARE, 1, "first"),
     square_evals("sq900_72k_distill5_w10_16k", 1, "first")),
    ("training seed 0 -> 1, one step", SQUARE_DISTILLED_1, square_evals("sq900_72k_distill5_w10_8k_seed1", 1, "chunk")),
    ("training seed 0 -> 1, one step", square_evals(SHIPPED_SQUARE, 1, "first"),
     square_evals("sq900_72k_distill5_w10_8k_seed1", 1, "first")),
    ("weight 1 -> weight 1 again (8,000 steps more), one step", square_evals("sq900_72k_distill5_8k", 1, "chunk"),
     square_evals("sq900_72k_distill5_8k_r2", 1, "chunk")),
]


def square_1000_section() -> list[str]:
    """The state-only square study on 1,000 demonstrations: every run, then the distilled model against its teacher."""
    out = ["Square, state only (robot proprio + robosuite's 14-d object state), on `dm1 collect --task square --episodes "
           "1000 --no-images --workers 2 --out data/square_lowdim_1000.hdf5`; the network and method of "
           "config/train/square_lowdim.yaml; 100 seeded episodes per row, chunks open loop unless the row says "
           "otherwise, 0 ms lookahead.", "",
           "| evaluation (results/square_lowdim/) | recipe | training steps | sampling steps | execution | seeds | success "
           "| 95% CI | model id |", "|---|---|---:|---:|---|---|---|---|---|"]
    for path, recipe, steps in SQUARE_1000_RUNS:
        r = load(ROOT / "results" / SQ / path)
        if not r:
            continue
        seeds = [e["seed"] for e in r["per_episode"]]
        lo, hi = wilson(r["successes"], r["episodes"])
        out.append(f"| {path} | {recipe} | {steps} | {r['sampling_steps']} | {r['execute']} | {min(seeds)}-{max(seeds)} | "
                   f"{r['successes']}/{r['episodes']} | {lo:.0%}-{hi:.0%} | {r['model_id']} |")
    return out + ["", "The distilled model (one network evaluation) against its teacher, episode by episode:", "",
                  *PAIRED_HEADER, *paired_rows(DISTILL_PAIRS)]


def demos_section() -> list[str]:
    """The shipped recipes trained again on more demonstrations, episode by episode against the shipped models; then
    each model re-planning every tick against its own chunks open loop (issue 14, item 1)."""
    return ["| recipe: fewer -> more demonstrations | execution | seeds | fewer | more (95% CI) | only fewer / only more | "
            "McNemar p | policy p50 ms fewer / more (in the loop) |", "|---|---|---|---|---|---|---:|---|",
            *paired_rows(DEMO_PAIRS), "", "Each model re-planning every tick against its own chunks open loop, same seeds:",
            "", "| model | re-planning as the manifest says | seeds | chunks open loop | re-planning (95% CI) | "
            "only chunks / only re-planning | McNemar p | policy p50 ms chunks / re-planning |",
            "|---|---|---|---|---|---|---:|---|", *paired_rows(REPLAN_VS_CHUNK, same_execution=False)]


def threads_section(t) -> list[str]:
    if not t:
        return ["_not measured yet: run `python bench/threads.py`_"]
    out = ["| bundle | calls | 1 thread p50 / p99 ms | 2 threads, spinning in a call | 2 threads, parked |", "|---|---|---|---|---|"]
    for name, rows in t["bundles"].items():
        for label, ways in rows.items():
            cells = " | ".join(f"{w['p50_ms']:.2f} / {w['p99_ms']:.2f}" for w in ways.values())
            out.append(f"| {name} | {label.replace('_', ' ').replace('30hz', '30 Hz')} | {cells} |")
    return out


def successes_by_seed(runs: list[dict]) -> dict:
    """{(run index, episode seed): success} over evaluations listed in training-seed order."""
    return {(i, e["seed"]): bool(e["success"]) for i, r in enumerate(runs) for e in r["per_episode"]}


def paired(a: list[dict], b: list[dict]) -> tuple[int, int, float]:
    """Evaluations of two recipes, one per training seed, on the same episode seeds: (episodes only a solves, episodes
    only b solves, exact two-sided McNemar p)."""
    sa, sb = successes_by_seed(a), successes_by_seed(b)
    if sorted(sa) != sorted(sb):
        raise ValueError(f"{[r['model'] for r in a]} and {[r['model'] for r in b]} were not evaluated on the same seeds")
    return discordant(sa, sb)


def discordant(sa: dict, sb: dict) -> tuple[int, int, float]:
    """Two success maps over the same keys: (only a succeeds, only b succeeds, exact two-sided McNemar p)."""
    only_a = sum(sa[k] and not sb[k] for k in sa)
    only_b = sum(sb[k] and not sa[k] for k in sa)
    n, k = only_a + only_b, min(only_a, only_b)
    return only_a, only_b, min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


# results/dispersive_few_demos/<study>_<N>demos_w<weight>[_seed<S>].json -> what each study trained and how it ran
FEW_DEMO_STUDIES = {
    "can_fast": "Can, `config/train/can_image_fast.yaml` on the first N of the 90 training demonstrations of "
                "data/can_2cam.hdf5 (wrist camera), InfoNCE-L2 dispersive on the condition at the recipe's weight 0.1 or "
                "off; one step, re-planning every tick with the 50 ms lookahead",
    "square_state": "Square, state only, `config/train/square_lowdim.yaml` (24,000 steps) on the first N of the 450 "
                    "training demonstrations of data/square.hdf5 (training seed 1: its state part collected again on the same "
                    "seeds, data/square_state_500.hdf5), InfoNCE-L2 dispersive on the condition at weight 0.1 "
                    "(temperature 0.5, as the image recipes) or off (the recipe's default); one step, chunks open loop",
}

# The same pair on all the training demonstrations, measured for the method table (training seed 0; other seeds are
# files of the study's own pattern): study -> (N, weight 0.1, weight 0).
FEW_DEMO_ALL = {
    "square_state": (450, "methods/square-state_meanflow_dispersive_1step.json", "square_lowdim/square_lowdim_chunk_50ep.json"),
}


# The studies' reading, in one paragraph above their tables (the issue asks for it plainly, whatever it is).
FEW_DEMO_VERDICT = (
    "**What it says: InfoNCE-L2 dispersive regularization (weight 0.1, on the condition) does not help with few "
    "demonstrations here.** It is significantly worse than no regularizer in two settings (can with 10 "
    "demonstrations, 3 training seeds; square with 50, 2 seeds) and level within noise in the others; in no setting "
    "is it significantly better. On square it is behind in both training seeds with 50 and with all 450 "
    "demonstrations (pooled 21 vs 37 and 33 vs 46 of 100; p = 0.011 and 0.07). Not varied in these studies: the "
    "weight and the layer; on square the encoder is an MLP over state, with no image representation to collapse.")


def few_demos_section() -> list[str]:
    """One table per FEW_DEMO_STUDIES entry: the same recipe with the dispersive weight at 0.1 and at 0, trained (seed 0,
    and S where named) on the first N demonstrations, evaluated on the same episode seeds; a cell pools its training
    seeds."""
    out = []
    for study, what in FEW_DEMO_STUDIES.items():
        runs: dict = {}
        for path in sorted((ROOT / "results" / "dispersive_few_demos").glob(f"{study}_*.json")):
            m = re.fullmatch(rf"{study}_(\d+)demos_w([\d.]+)(?:_seed(\d+))?", path.stem)
            if m:
                runs.setdefault((int(m.group(1)), float(m.group(2))), {})[int(m.group(3) or 0)] = load(path)
        if runs and study in FEW_DEMO_ALL:
            n, with_, without = FEW_DEMO_ALL[study]
            runs.setdefault((n, 0.1), {})[0] = load(ROOT / "results" / with_)
            runs.setdefault((n, 0.0), {})[0] = load(ROOT / "results" / without)
        if runs:
            out += few_demos_table(runs, what)
    return [FEW_DEMO_VERDICT, "", *out] if out else \
        ["_not measured yet: see docs/results_notes.md (dispersive with few demonstrations)_"]


def few_demos_table(runs: dict, what: str) -> list[str]:
    out = [f"{what}; the same 50 seeded episodes ({EVAL_SEEDS}-{EVAL_SEEDS + 49}) for every model; paired by episode "
           "(what it says: docs/results_notes.md).", "",
           "| demonstrations | training seeds | weight 0.1 | 95% CI | weight 0 | 95% CI | episodes only 0.1 / only 0 "
           "solves | McNemar p |", "|---:|---|---|---|---|---|---|---:|"]
    for n in sorted({n for n, _ in runs}):
        with_, without = runs.get((n, 0.1), {}), runs.get((n, 0.0), {})
        seeds = sorted(set(with_) & set(without)) or sorted(set(with_) | set(without))
        cells = [", ".join(map(str, seeds))]
        for by_seed in (with_, without):
            chosen = [by_seed[s] for s in seeds if s in by_seed]
            if chosen:
                ok, total = sum(r["successes"] for r in chosen), sum(r["episodes"] for r in chosen)
                lo, hi = wilson(ok, total)
                cells += [f"{ok}/{total}", f"{lo:.0%}-{hi:.0%}"]
            else:
                cells += ["not run", "-"]
        if all(s in with_ and s in without for s in seeds):
            only_with, only_without, p = paired([with_[s] for s in seeds], [without[s] for s in seeds])
            cells += [f"{only_with} / {only_without}", f"{p:.2g}"]
        else:
            cells += ["-", "-"]
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    return out + [""]


# Five-step evaluations (exported from the checkpoint) -> the committed one-step evaluations of the same checkpoint on
# the same seeds and execution, and what the model is; paths under results/.
ONE_VS_FIVE = [  # (five-step evaluations, one-step evaluations of the same checkpoint on the same seeds, label)
    (["one_vs_five/lift_image_fast_500_5step_chunk_100ep.json"], LIFT_500_CHUNK[:1], "models/lift_image_fast_500"),
    (["one_vs_five/lift_image_fast_500_5step_first_lookahead100_100ep.json"], LIFT_500_REPLAN[:1],
     "models/lift_image_fast_500"),
    (["one_vs_five/can_image_2cam_5step_first_100ep.json"], ["cameras/can_image_2cam_100ep.json"], "models/can_image_2cam"),
    (["one_vs_five/can_image_2cam_300_5step_first_100ep.json"], ["demos/can_image_2cam_300_first_lookahead50_100ep.json"],
     "models/can_image_2cam_300"),
    ([CAN_DISTILLED + "_5step_first_100ep.json"], [CAN_DISTILLED + "_1step_first_100ep.json"],
     "models/can_image_2cam_300, distilled (config/train/can_image_2cam_300_distill.yaml)"),
    (["one_vs_five/lift_image_fast_5step_chunk_100ep.json"],
     ["fast/lift_image_fast_chunk_50ep.json", "fast/lift_image_fast_chunk_seeds100050_50ep.json"], "models/lift_image_fast"),
    (["one_vs_five/square_lowdim_5step_chunk_50ep.json"], ["square_lowdim/square_lowdim_chunk_50ep.json"],
     "square, state only (results/square_lowdim/square_lowdim)"),
    (["methods/square-state_meanflow_dispersive_5step.json"], ["methods/square-state_meanflow_dispersive_1step.json"],
     "square, state only, dispersive 0.1 (method table)"),
    (["square_lowdim/more/square_lowdim_450_72k_5step_chunk_100ep.json"],
     ["square_lowdim/more/square_lowdim_450_72k_1step_chunk_100ep.json"], "square, state only, 450 demos, 72,000 steps"),
    (SQUARE_TEACHER_5, SQUARE_TEACHER_1, "square, state only, 900 demos, 72,000 steps (the teacher)"),
    *((square_evals(tag, 5, x, tag == SHIPPED_SQUARE), square_evals(tag, 1, x, tag == SHIPPED_SQUARE), label)
      for tag, label in (
        (SHIPPED_SQUARE, "square, state only, distilled (results/square_lowdim/square_lowdim_1000_distill)"),
        ("sq900_72k_distill5_8k", "square, state only, distilled at weight 1"),
        ("sq900_72k_distill5_w30_8k", "square, state only, distilled at weight 30"),
        ("sq900_72k_distill5_w10_8k_seed1", "square, state only, distilled, training seed 1"),
        ("sq900_72k_distill5_w10_16k", "square, state only, distilled for 16,000 steps")) for x in ("chunk", "first")),
]


def points(difference: float) -> str:
    """A difference of success rates in percentage points, signed, with a decimal only where it has one."""
    value = round(100 * difference, 1)
    return f"{value:+.0f}" if value == int(value) else f"{value:+.1f}"


def one_vs_five_section() -> list[str]:
    """One and five sampling steps of the same checkpoint on the same episode seeds, paired by episode."""
    out = ["The same checkpoint exported with 1 and with 5 sampling steps (`dm1 eval --model CHECKPOINT --steps 5`), "
           "the same seeded episodes and execution; paired by episode. Issue 14 asks for a gap of at most 2 points.", "",
           "| model | execution | seeds | 1 step | 5 steps | gap (points) | episodes only 1 / only 5 solves | McNemar p | "
           "policy p50 ms 1 / 5 |", "|---|---|---|---|---|---:|---|---:|---|"]
    for five_paths, one_paths, label in ONE_VS_FIVE:
        if not all((ROOT / "results" / path).is_file() for path in five_paths + one_paths):  # not measured yet
            continue
        fives, ones = ([load(ROOT / "results" / path) for path in paths] for paths in (five_paths, one_paths))
        pool = lambda runs: {"per_episode": [e for r in runs for e in r["per_episode"]]}  # noqa: E731
        only_one, only_five, p = paired([pool(ones)], [pool(fives)])
        ok1, n1 = sum(r["successes"] for r in ones), sum(r["episodes"] for r in ones)
        ok5, n5 = sum(r["successes"] for r in fives), sum(r["episodes"] for r in fives)
        p50_1 = sorted(r["policy_latency_ms"]["p50"] for r in ones)[len(ones) // 2]
        p50_5 = sorted(r["policy_latency_ms"]["p50"] for r in fives)[len(fives) // 2]
        seeds = [e["seed"] for r in fives for e in r["per_episode"]]
        out.append(f"| {label} | {fives[0]['execute']}, {fives[0].get('lookahead_ms') or 0:.0f} ms lookahead | "
                   f"{min(seeds)}-{max(seeds)} | {ok1}/{n1} | {ok5}/{n5} | {points(ok5 / n5 - ok1 / n1)} | "
                   f"{only_one} / {only_five} | {p:.2g} | {p50_1:.2f} / {p50_5:.2f} |")
    return out


# (gap file under results/step_gap/ (bench/step_gap.py), checkpoint named in it, label, one-step evaluations, five-step
# evaluations): the offline 1-vs-5 gap beside the rollout gap; the evaluations share seeds and execution
SQUARE_RUN_EVALS = {  # training run -> its evaluations under results/square_lowdim/ (the tag before _<k>step_...)
    "square_lowdim_450_72k": "more/square_lowdim_450_72k", "square_lowdim_900_72k": "more/square_lowdim_900_72k",
    "sq900_72k_cont8k": "onestep/sq900_72k_cont8k", "sq900_72k_distill5_8k": "onestep/sq900_72k_distill5_8k",
    "sq900_72k_distill5_8k_r2": "onestep/sq900_72k_distill5_8k_r2",
    "sq900_72k_distill5_w10_8k": "onestep/sq900_72k_distill5_w10_8k",
    "sq900_72k_distill5_w30_8k": "onestep/sq900_72k_distill5_w30_8k",
    "sq900_72k_distill5_w10_16k": "onestep/sq900_72k_distill5_w10_16k",
    "sq900_72k_distill5_w10_8k_seed1": "onestep/sq900_72k_distill5_w10_8k_seed1",
    "sq900_24k_tstd2": "onestep/sq900_24k_tstd2", "sq900_24k_head512x3": "onestep/sq900_24k_head512x3",
}
STEP_GAP_MODELS = [
    ("lift.json", "runs/lift_image_fast_500/last.pt", "models/lift_image_fast_500", LIFT_500_CHUNK[:1],
     ["one_vs_five/lift_image_fast_500_5step_chunk_100ep.json"]),
    ("can.json", "runs/can_image_2cam_300/last.pt", "models/can_image_2cam_300",
     ["demos/can_image_2cam_300_first_lookahead50_100ep.json"], ["one_vs_five/can_image_2cam_300_5step_first_100ep.json"]),
    ("can.json", "runs/can_image_2cam_300_distill/last.pt", "models/can_image_2cam_300, distilled",
     [CAN_DISTILLED + "_1step_first_100ep.json"], [CAN_DISTILLED + "_5step_first_100ep.json"]),
]


CAN_PAIRS = [  # (label, the shipped can model, its distilled checkpoint): same seeds and execution
    ("models/can_image_2cam_300 -> distilled, one step", ["demos/can_image_2cam_300_first_lookahead50_100ep.json"],
     [CAN_DISTILLED + "_1step_first_100ep.json"]),
    ("models/can_image_2cam_300 -> distilled, one step", ["demos/can_image_2cam_300_chunk_lookahead50_100ep.json"],
     [CAN_DISTILLED + "_1step_chunk_100ep.json"]),
    ("models/can_image_2cam_300, five steps -> distilled, one step",
     ["one_vs_five/can_image_2cam_300_5step_first_100ep.json"], [CAN_DISTILLED + "_1step_first_100ep.json"]),
]


def can_distill_section() -> list[str]:
    rows = paired_rows(CAN_PAIRS)
    if not rows:
        return []
    return ["Square's distillation recipe on can (`config/train/can_image_2cam_300_distill.yaml`: 1,500 steps from "
            "models/can_image_2cam_300's weights at a fifth of its learning rate, distill_weight 10), episode by "
            "episode:", "", *PAIRED_HEADER, *rows, ""]


def step_gap_section() -> list[str]:
    """The offline 1-vs-5 gap (bench/step_gap.py) of each checkpoint beside its rollout gap."""
    out = ["What one step gives up against five without a rollout (`python bench/step_gap.py CKPT --data D`, the "
           "`val/gap_1_vs_5` column of the training log): RMS distance between the EMA weights' one- and five-step "
           "samples from the same noise on the same validation batches, in normalized action units (-1..1). It "
           "compares checkpoints of one task, not tasks: lift tolerates a larger gap than square does.", "",
           "| task | checkpoint | RMS gap, 1 vs 5 | execution | seeds | 1 step | 5 steps | rollout gap (points) |",
           "|---|---|---:|---|---|---|---|---:|"]
    rows = [(f"square.json", f"runs/{run}/last.pt", run, [SQ + f"{tag}_1step_chunk_100ep.json"],
             [SQ + f"{tag}_5step_chunk_100ep.json"]) for run, tag in SQUARE_RUN_EVALS.items()] + STEP_GAP_MODELS
    for gap_file, checkpoint, label, ones, fives in rows:
        gaps = load(ROOT / "results" / "step_gap" / gap_file)
        entry = (gaps or {}).get("checkpoints", {}).get(checkpoint)
        one = [r for r in (load(ROOT / "results" / p) for p in ones) if r]
        five = [r for r in (load(ROOT / "results" / p) for p in fives) if r]
        if entry is None or not one:
            continue
        seeds = [e["seed"] for r in one for e in r["per_episode"]]
        k1, n1 = sum(r["successes"] for r in one), sum(r["episodes"] for r in one)
        cell5, gap = "-", "-"
        if five:
            k5, n5 = sum(r["successes"] for r in five), sum(r["episodes"] for r in five)
            cell5, gap = f"{k5}/{n5}", points(k5 / n5 - k1 / n1)
        out.append(f"| {gap_file[:-5]} | {label} | {entry['gap']:.4f} | {one[0]['execute']}, "
                   f"{one[0].get('lookahead_ms') or 0:.0f} ms lookahead | {min(seeds)}-{max(seeds)} | {k1}/{n1} | {cell5} "
                   f"| {gap} |")
    return out


# Every square evaluation (paths under results/), with what the policy saw and how long it trained.
SQUARE_RUNS = [
    ("closed_loop/square_chunk_20ep.json", "two cameras, DMPO's network (config/train/square_image.yaml)", "10,000 x 64"),
    ("closed_loop/square_first_lookahead50_20ep.json", "two cameras, DMPO's network (config/train/square_image.yaml)", "10,000 x 64"),
    ("square_lowdim/exploratory/6k_steps_chunk_20ep.json", "state (config/train/square_lowdim.yaml --set steps=6000)", "6,000 x 128"),
    ("square_lowdim/exploratory/6k_steps_first_20ep.json", "state (config/train/square_lowdim.yaml --set steps=6000)", "6,000 x 128"),
    ("square_lowdim/square_lowdim_chunk_50ep.json", "state (config/train/square_lowdim.yaml)", "24,000 x 128"),
    ("square_lowdim/square_lowdim_first_50ep.json", "state (config/train/square_lowdim.yaml)", "24,000 x 128"),
    ("one_vs_five/square_lowdim_5step_chunk_50ep.json", "state (config/train/square_lowdim.yaml), 5 sampling steps", "24,000 x 128"),
    ("square_lowdim/recipe/square_lowdim_adaptive1_chunk_50ep.json",
     "state (config/train/square_lowdim.yaml --set policy.method.adaptive_power=1.0)", "24,000 x 128"),
    ("square_lowdim/recipe/square_lowdim_ratio025_chunk_50ep.json",
     "state (config/train/square_lowdim.yaml --set policy.method.flow_ratio=0.25)", "24,000 x 128"),
    ("square_image_fast/square_image_fast_chunk_50ep.json", "two cameras, fast network (config/train/square_image_fast.yaml)", "30,000 x 64"),
    ("square_image_fast/square_image_fast_first_20ep.json", "two cameras, fast network (config/train/square_image_fast.yaml)", "30,000 x 64"),
    ("square_image_fast/square_image_fast_state_chunk_50ep.json",
     "two cameras, fast network, the nut's pose predicted in training (config/train/square_image_fast_state.yaml)",
     "30,000 x 64"),
    ("square_dagger/square_image_dagger_chunk_50ep.json",
     "the row above fine-tuned with 300 recovery demonstrations from its own states, DAgger round 1 "
     "(config/train/square_image_dagger.yaml; 720 training episodes of data/square_dagger.hdf5)", "30,000 + 10,000 x 64"),
    ("square_dagger/square_image_dagger_first_50ep.json", "the row above, re-planning every tick",
     "30,000 + 10,000 x 64"),
    ("square_dagger/square_image_dagger2_chunk_50ep.json",
     "two cameras, fast network, the pose predicted, from scratch on both DAgger rounds' data "
     "(config/train/square_image_dagger2.yaml; 855 training episodes of data/square_dagger2.hdf5)", "30,000 x 64"),
    ("square_dagger/square_image_dagger2_first_50ep.json", "the row above, re-planning every tick", "30,000 x 64"),
    ("square_dagger/square_image_dagger2_first_lookahead50_50ep.json",
     "the row above with 50 ms lookahead (its bundle, results/square_dagger/takeover_policy_round3; on the AMD EPYC)",
     "30,000 x 64"),
    ("square_dagger/square_image_dagger3_first_50ep.json",
     "two cameras, fast network, the pose predicted, from scratch on three DAgger rounds' data, re-planning every tick "
     "(config/train/square_image_dagger3.yaml; 1,035 training episodes of data/square_dagger3.hdf5)", "30,000 x 64"),
    ("demos/square_image_first_100ep.json",
     "two cameras: models/square_image, a pose reader (DMPO's stem, 4,000 scenes, bench/pose_reader.py) chained to "
     "the distilled state policy (results/square_lowdim/square_lowdim_1000_distill) by `dm1 export --actor`",
     "16,000 x 64 (reader)"),
    ("demos/square_image_chunk_100ep.json", "the row above, chunks open loop", "16,000 x 64 (reader)"),
]


def square_section() -> list[str]:
    """Square runs side by side: the same 450 training demonstrations of data/square.hdf5, seeds from 100000."""
    out = ["Square (NutAssemblySquare), 450 training demonstrations of data/square.hdf5 and one step unless the row "
           "says otherwise, seeds from 100000; a cell with fewer episodes covers the first seeds of the "
           "longer ones. Stages: how many episodes grasped the nut, lifted it 10 cm, held it squared to the peg "
           "(within 3 degrees of a multiple of 90) and brought it, squared, within 1 cm of the peg's axis "
           "(dm1_ros/sim/stages.py). A nut let go farther off the axis can still slide down onto the peg, so a "
           "success need not pass the last stage. Evaluations run before `dm1 eval` recorded stages show -.", "",
           "| policy | observation | training steps x batch | execution | success | 95% CI | stages: grasped / lifted / "
           "squared / over peg | model id |",
           "|---|---|---:|---|---|---|---|---|"]
    for path, observation, steps in SQUARE_RUNS:
        r = load(ROOT / "results" / path)
        if not r:
            continue
        lo, hi = wilson(r["successes"], r["episodes"])
        stages = " / ".join(str(n) for stage, n in r["progress"].items() if stage != "success") if "progress" in r else "-"
        out.append(f"| {path} | {observation} | {steps} | {r['execute']}, {r.get('lookahead_ms') or 0:.0f} ms lookahead | "
                   f"{r['successes']}/{r['episodes']} | {lo:.0%}-{hi:.0%} | {stages} | {r['model_id']} |")
    return out + pose_cascade_table()


# bench/pose_cascade.py runs, keyed by what drives, per camera model (the encoder whose reading is measured)
POSE_CASCADES = [("square_image_fast/pose_cascade.json", "pose term"),
                 ("square_dagger/pose_cascade.json", "DAgger round 1"),
                 ("pose_reader/cascade_patchify12.json", "reader on 4,000 scenes, 12x12 patchify stem"),
                 ("pose_reader/cascade_patchify8.json", "reader on 4,000 scenes, 8x8 patchify stem"),
                 ("pose_reader/cascade_dmpo_stem.json", "reader on 4,000 scenes, DMPO's stem")]
# bench/pose_reader.py report: a camera encoder + pose head trained on scenes only (no policy), per stem
POSE_READERS = [("pose_reader/reader_patchify12.json", "12x12 patchify stem, 8x8 tokens (config/train/square_image_dagger2.yaml)"),
                ("pose_reader/reader_patchify8.json", "8x8 patchify stem, 12x12 tokens (the same recipe with policy.vision "
                 "stem_kernel 8, stem_stride 8)"),
                ("pose_reader/reader_dmpo_stem.json", "DMPO's stem, 11x11 tokens (the same recipe with policy.vision "
                 "stem_kernel 8, stem_stride 4, stem_downsample true)"),
                ("pose_reader/reader_dmpo_stem_16k.json", "DMPO's stem, 16,000 steps instead of 6,000 (the reader of "
                 "models/square_image)")]


def pose_cascade_row(entry: dict, model: str) -> str:
    given = "-" if entry.get("drive") == "camera" else {"true": "the simulator's", "predicted": "the camera's reading",
                                                  "derived": "the camera's reading of the nut; the rest derived"}[entry["object"]]
    who = "camera policy" if entry.get("drive") == "camera" else "state policy"
    if entry.get("expert_after"):  # success is then the scripted expert's, from where the policy left the scene
        who += f" for {entry['expert_after']} tick{'s' * (entry['expert_after'] != 1)}, then the scripted expert"
    lo, hi = wilson(entry["successes"], entry["episodes"])
    err, early = entry["median_pose_error"], entry["median_pose_error_approach"]
    # one policy tick is the reset alone, where the simulator's pose is zeros: no error to report
    figure = lambda v: f"{v:.1f}" if math.isfinite(v) and entry.get("expert_after", 0) != 1 else "-"  # noqa: E731
    cells = " | ".join(f"{figure(early[k])} / {figure(err[k])}" for k in ("rotation_deg", "position_mm", "relative_rotation_deg"))
    return (f"| {model} | {who} | {given} | {entry['execute']}, {entry.get('lookahead_ms') or 0:.0f} ms lookahead | "
            f"{entry['successes']}/{entry['episodes']} | {lo:.0%}-{hi:.0%} | {cells} |")


def pose_cascade_table() -> list[str]:
    """Who drives, what object pose it is given, success, and how far the camera encoder's pose reading is from the
    simulator's along the trajectories the loop visits (per-episode medians, then their median over episodes)."""
    files = [(load(ROOT / "results" / path), model) for path, model in POSE_CASCADES]
    if not files[0][0]:
        return []
    out = ["", "The camera encoder's pose reading in closed loop (`python bench/pose_cascade.py`, "
           f"{' and '.join(path for path, _ in POSE_CASCADES)}). The camera model reads the pose from its cameras at "
           "every tick: the policy with the nut's pose predicted in training (pose term: "
           "config/train/square_image_fast_state.yaml, 30,000 steps), or that policy after one round of DAgger "
           "(config/train/square_image_dagger.yaml), or an encoder trained for the pose alone on scenes (the table after "
           "this one). Either the committed state policy "
           "(results/square_lowdim/square_lowdim_1000_distill, 173/200 on its own) drives, given that reading or the "
           "simulator's pose, or the camera policy drives itself (for some ticks, then the scripted expert, started "
           "afresh, takes over: can it finish from there?). Pose error: the median over episodes of each episode's "
           "median, over the approach (the first 30 ticks) / over the whole episode.", "",
           "| camera model | who drives | object pose it is given | execution | success | 95% CI | "
           "nut rotation error deg | nut position error mm | relative rotation error deg |",
           "|---|---|---|---|---|---|---:|---:|---:|"]
    for runs, model in files:
        for entry in (runs or {}).values():
            out.append(pose_cascade_row(entry, model))
    return out + pose_reader_table()


def pose_reader_table() -> list[str]:
    """How well the cameras' encoder reads the nut's pose when trained for that alone, on many placements."""
    readers = [(load(ROOT / "results" / path), name) for path, name in POSE_READERS]
    readers = [(doc, name) for doc, name in readers if doc]
    if not readers:
        return []
    out = ["", "The same encoder and pose head trained for the pose alone (`python bench/pose_reader.py`): on 11,826 "
           "samples of 4,000 nut placements (3 ticks each of a scripted approach with noise on its actions, ticks "
           "1-150), 6,000 steps x 64, 10 % of the placements held out. Median errors of the nut's pose in the world / "
           "relative to the hand; the hand pose shuffled: each sample is given another sample's hand pose.", "",
           "| encoder | training min | training scenes: rotation deg / position mm | held-out scenes | held-out, hand "
           "pose shuffled | held-out, relative to the hand |", "|---|---:|---|---|---|---|"]
    for doc, name in readers:
        m = doc["medians"]
        cell = lambda row: f"{row['rotation_deg']:.1f} / {row['position_mm']:.0f}"  # noqa: E731
        out.append(f"| {name} | {doc['seconds_training'] / 60:.0f} | {cell(m['training scenes'])} | "
                   f"{cell(m['held-out scenes'])} | {cell(m['held-out, hand pose shuffled'])} | "
                   f"{m['held-out scenes']['relative_rotation_deg']:.1f} / "
                   f"{m['held-out scenes']['relative_position_mm']:.0f} |")
    return out


def guidance_section() -> list[str]:
    """results/guidance/can_fast_50demos_guidance_<kind>.json against the same recipe without guidance (the
    few-demonstration study's 50-demonstration run with the recipe's dispersive weight), on the same episode seeds."""
    baseline = load(ROOT / "results" / "dispersive_few_demos" / "can_fast_50demos_w0.1.json")
    runs = {path.stem.rsplit("_", 1)[-1]: load(path) for path in sorted((ROOT / "results" / "guidance").glob("*.json"))}
    if not runs or not baseline:
        return ["_not measured yet: see docs/results_notes.md (guidance)_"]
    out = ["Can, `config/train/can_image_fast.yaml` on 50 demonstrations with `policy.method.guidance.kind` mp1 or cfg "
           "(scale 2; cfg drops the condition with probability 0.1), against the same run without guidance; one "
           "network evaluation at run time in every row; same 50 seeded episodes, re-planning with the 50 ms "
           "lookahead; paired by episode.", "",
           "| guidance | success | 95% CI | episodes only this / only without solve | McNemar p | policy p50 ms |",
           "|---|---|---|---|---:|---:|"]
    for kind, r in [("none", baseline), *runs.items()]:
        lo, hi = wilson(r["successes"], r["episodes"])
        versus = "- | -"
        if r is not baseline:
            only_this, only_without, p = paired([r], [baseline])
            versus = f"{only_this} / {only_without} | {p:.2g}"
        out.append(f"| {kind} | {r['successes']}/{r['episodes']} | {lo:.0%}-{hi:.0%} | {versus} | "
                   f"{r['policy_latency_ms']['p50']:.2f} |")
    return out


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / n
    denom = 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / denom, z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / denom
    return max(0.0, centre - half), min(1.0, centre + half)


EVAL_SEEDS = 100_000


def hardening_section(f, soak, smooth) -> list[str]:
    out = []
    if f:
        c = f["counts"]
        out += [f"Fault campaign (`python bench/faults.py`): {c['held']} held, {c['clear error']} clear errors, "
                f"{c['crash']} crashes, {c['silent']} silent. Runtime faults: the shipped lift bundle on robosuite with "
                "the observation or the robot corrupted from tick 20 of 60; 'moved' is how far the hand ended from "
                "where it was when the fault began. The Franka faults (reflex, external force, lost connection) run "
                "against franky-sim in test/test_franka.py and test/test_ros_launch.py.", "",
                "| fault | outcome | what happened |", "|---|---|---|"]
        out += [f"| {r['fault']} | {r['outcome']} | {r['detail'].replace('|', '/')} |" for r in f["rows"]]
    if soak:
        w = soak["windows"]
        out += ["", f"Soak (`python bench/soak.py --minutes {soak['minutes']:.0f}`): the `dm1 run --robot sim` loop on "
                f"the shipped model for {soak['minutes']} min, a swap request every 30 s ({soak['swap_requests']} in all, "
                f"every fifth to a truncated bundle): {soak['swaps']} swaps done, {soak['refused']} refused (expected "
                f"{soak['expected_refusals']}), {soak['episodes']} episodes, {soak['successes']} successes, "
                f"{soak['ticks']} ticks, errors: {', '.join(soak['errors']) or 'none'}; resident memory "
                f"{soak['rss_mb_start']} -> {soak['rss_mb_end']} MB.", "",
                "| window start, s | ticks | episodes | successes | swaps / refused | policy p50 / p99 ms | RSS MB |",
                "|---:|---:|---:|---:|---|---|---:|"]
        out += [f"| {x['start_s']:.0f} | {x['ticks']} | {x['episodes']} | {x['successes']} | {x['swaps']} / "
                f"{x['refused']} | {x['policy_p50_ms']} / {x['policy_p99_ms']} | {x['rss_mb']} |" for x in w]
    if smooth:
        out += ["", f"Smoothness on franky-sim (`python bench/franka_smooth.py`): {smooth['description']}", "",
                "| streaming | minutes | targets | velocity p99 / max m/s | accel p99 / max m/s² | jerk p99 m/s³ | "
                "planner errors | faults |", "|---|---:|---:|---|---|---:|---:|---:|"]
        for name, r in smooth["rows"].items():
            out.append(f"| {name} | {r['minutes']:.1f} | {r['targets']} | {r['vel_p99']:.3f} / {r['vel_max']:.3f} | "
                       f"{r['acc_p99']:.2f} / {r['acc_max']:.2f} | {r['jerk_p99']:.1f} | {r['planner_errors']} | "
                       f"{r['faults']} |")
    return out or ["_not measured yet: run `python bench/faults.py` and `python bench/soak.py`_"]


def render() -> str:
    """docs/results.md's text from the committed summaries and docs/results_notes.md."""
    rows = [(p.stem, load(p)) for p in sorted((ROOT / "results").glob("*.json"))]
    narrative = (DOCS / "results_notes.md").read_text() if (DOCS / "results_notes.md").is_file() else ""
    lines = ["# Results", "", "Generated by `python bench/results.py` from the committed summaries; the prose is "
             "`docs/results_notes.md`. Machine: 2 CPU cores (AMD EPYC, AVX2), no GPU, unless a row says otherwise.", "",
             "## Simulation: success rates", "", *eval_section(rows), "",
             "## Inference latency", "", *inference_section(load(DOCS / "bench_inference.json")), "",
             "One onnxruntime thread or two, each shipped bundle through the runtime, interleaved (`python bench/threads.py`; "
             "the runtime's default is one):", "", *threads_section(load(DOCS / "bench_threads.json")), "",
             "Success with int8 weights (`dm1 quantize`), the same seeds and execution as the float bundle's committed runs:",
             "", *int8_section(), "",
             "## Control loop", "", *loop_section(load(DOCS / "bench_loop.json")), "",
             "## Through ROS 2", "", *ros_section(load(DOCS / "bench_ros_loop.json"), load(DOCS / "bench_ros_eval.json")), "",
             "## Closed loop and latency", "", *closed_loop_section(load(DOCS / "bench_latency.json")), "",
             "## Point clouds and appearance changes", "", *point_cloud_section(), "",
             "## More demonstrations: the default lift model, and can", "", *demos_section(), "",
             "## A lift policy in 15 minutes on a cheaper network", "",
             *pooled_section("fast", ["closed_loop/lift_first_lookahead50_100ep.json"], "fast recipe"), "",
             "## Re-planning every tick on the fast lift model: the lookahead", "",
             *pooled_section("int8/replan", REPLAN_REFERENCES, "re-planning"), "",
             "## One camera or two", "", *pooled_section("cameras", ["closed_loop/can_first_lookahead50_100ep.json"], "cameras"), "",
             "## Can: RGB or point cloud", "",
             *pooled_section("pointcloud_can", ["closed_loop/can_first_lookahead50_100ep.json"], "point clouds", first=50), "",
             "## Dispersive regularization with few demonstrations", "", *few_demos_section(), "",
             "## Square: training length, then the cameras", "", *square_section(), "",
             "## Square, state only: one step distilled from five", "", *square_1000_section(), "",
             "## One step or five, same checkpoint", "", *one_vs_five_section(), "", *can_distill_section(), *step_gap_section(), "",
             "## Guidance on can", "", *guidance_section(), "",
             "## Hardening: faults, soak, smoothness", "",
             *hardening_section(load(DOCS / "bench_faults.json"), load(DOCS / "bench_soak.json"),
                                load(DOCS / "bench_franka_smooth.json")), "",
             "## RL fine-tuning (PPO, one step)", "", *finetune_section(), "",
             "## One step on a multimodal toy task", "", *toy_section(load(DOCS / "toy.json")), "",
             "## Scripted demonstrations", "", *experts_section(load(DOCS / "experts.json"), load(DOCS / "collection.json")), "",
             narrative]
    return "\n".join(lines).rstrip() + "\n"


def main():
    (DOCS / "results.md").write_text(render())
    print(f"wrote {DOCS / 'results.md'}")


if __name__ == "__main__":
    sys.exit(main())
