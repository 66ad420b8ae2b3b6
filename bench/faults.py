"""Fault campaign: inject each fault a careless user, a broken sensor or an attacker produces, classify what the stack
does -> docs/bench_faults.json and a markdown table.

    python bench/faults.py [--out docs/bench_faults.json]

Outcomes: "held" (the robot held still and the loop went on or stopped cleanly), "clear error" (one line naming the
problem, non-zero exit, nothing on disk lost), "crash" (an exception escaped or a traceback was printed), "silent"
(the fault went unnoticed: the robot moved on bad data or a file was replaced). Runtime faults run the shipped lift
bundle on robosuite (the `dm1 run --robot sim` pieces) with the observation or the robot corrupted from tick 20 on;
CLI faults run `dm1` in-process. The Franka faults (reflex, external force, lost connection) run against franky-sim
in test/test_franka.py and test/test_ros_launch.py. Figures only.
"""
import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "models" / "lift_image"
FAULT_TICK, TICKS = 20, 60


class FaultyRobot:
    """SimRobot whose observations (or apply) are corrupted from FAULT_TICK on by `corrupt(obs, tick)`."""

    def __init__(self, robot, corrupt=None, apply_error=False):
        self.robot, self.corrupt, self.apply_error, self.ticks, self.frozen = robot, corrupt, apply_error, 0, None

    def __getattr__(self, name):
        return getattr(self.robot, name)

    def observe(self):
        obs = self.robot.observe()
        return self.corrupt(self, obs) if self.corrupt and self.ticks >= FAULT_TICK else obs

    def apply(self, action):
        self.ticks += 1
        if self.apply_error and self.ticks > FAULT_TICK:
            raise RuntimeError("injected: the robot refused the command")
        self.robot.apply(action)


def future_then_frozen(robot, obs):
    if robot.frozen is None:
        robot.frozen = replace(obs, stamp=obs.stamp + 1.0)  # one frame from the future, then the camera freezes
    return replace(robot.frozen, proprio=obs.proprio)


def nan_stamp(robot, obs):
    return replace(obs, stamp=float("nan"))


def backwards(robot, obs):
    return replace(obs, stamp=obs.stamp - 5.0)


def nan_eef(robot, obs):
    proprio = obs.proprio.copy()
    proprio[:3] = np.nan
    return replace(obs, proprio=proprio)


def run_runtime(name, policy_dir, corrupt=None, apply_error=False, swap_to=None):
    from dm1_ros.runtime.loop import control_loop
    from dm1_ros.runtime.onnx_policy import OnnxPolicy
    from dm1_ros.sim.env import SimConfig
    from dm1_ros.sim.robot import SimRobot

    policy = OnnxPolicy(policy_dir, threads=2)
    sim = SimRobot(SimConfig.matching(policy.manifest.observation, "lift"))
    robot = FaultyRobot(sim, corrupt, apply_error)
    # the clock is the simulation's own (the true stamp of the newest frame), whatever the corrupted stamps say
    loop = control_loop(robot, policy, "model", stale_after_s=0.2, clock=lambda: sim.observe().stamp)
    robot.reset(seed=600_000)
    loop.reset()
    try:
        positions, planned_after, hold_from = [], 0, None
        for tick in range(TICKS):
            if tick == FAULT_TICK:
                hold_from = sim.eef_position().copy()  # where the hand was when the fault began
            if swap_to is not None and tick == FAULT_TICK:
                loop.request_swap(str(swap_to)).join(60.0)  # loaded (or refused) before the next tick
            result = loop.tick()
            positions.append(sim.eef_position().copy())
            if tick > FAULT_TICK and result.planned:
                planned_after += 1
            if loop.fault:  # the loop stops; its caller holds the robot (dm1 run does) while it settles
                for _ in range(TICKS - tick):
                    sim.hold()
                positions.append(sim.eef_position().copy())
                break
        moved_after = float(np.linalg.norm(positions[-1] - hold_from))  # where it ended up vs where the fault began
        holds = dict(loop.stats.holds)
        events = [e.message for e in loop.swap_events if not e.ok]
        if swap_to is not None:  # the swap outcome is about the model: ticks after it must have planned
            moved_after = 0.0
        if swap_to is not None:
            refused = loop.stats.failed_swaps > 0
            outcome = "clear error" if refused and planned_after > 0 else "silent"
            detail = (f"swap refused ({events[0][:140] if events else ''}); old model planned {planned_after} more "
                      "ticks") if refused else "the bad model was accepted"
        else:
            held = sum(holds.values()) > 0 and moved_after < 0.005
            outcome = "held" if held else "silent"
            detail = f"holds {holds}, fault {loop.fault!r}, hand moved {1e3 * moved_after:.1f} mm after the fault"
        return {"fault": name, "outcome": outcome, "detail": detail}
    except Exception as exc:  # noqa: BLE001 - the finding
        return {"fault": name, "outcome": "crash", "detail": f"{type(exc).__name__}: {exc}"}
    finally:
        sim.close()


def run_cli(name, argv, check_intact=()):
    from dm1_ros import cli

    before = {p: p.read_bytes() if p.is_file() else None for p in map(Path, check_intact)}
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        status = exc.code
    except Exception as exc:  # noqa: BLE001
        return {"fault": name, "outcome": "crash", "detail": f"{type(exc).__name__}: {exc}"}
    text = err.getvalue().strip()
    lines = [line for line in text.splitlines() if line.strip()]
    intact = all((p.read_bytes() if p.is_file() else None) == b for p, b in before.items())
    if "Traceback" in text:
        outcome = "crash"
    elif status and lines and intact:
        outcome = "clear error"
    else:
        outcome = "silent"
    return {"fault": name, "outcome": outcome, "detail": f"exit {status}: {lines[-1][:200] if lines else ''}"
            + ("" if intact else " (a file was changed)")}


def bundles(work: Path):
    """Broken copies of the shipped bundle: NaN output, wrong output shape, corrupt ONNX, control rate 0."""
    import onnx
    from onnx import numpy_helper

    from dm1_ros.runtime.bundle import sha256_file

    def copy(name):
        path = work / name
        shutil.copytree(MODEL, path)
        return path

    def edit(path, fn):
        data = yaml.safe_load((path / "manifest.yaml").read_text())
        fn(data)
        (path / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False))

    nan = copy("nan_output")
    model = onnx.load(nan / "model.onnx")
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.dims else 0)
    init.CopyFrom(numpy_helper.from_array(np.full(numpy_helper.to_array(init).shape, np.nan, np.float32), init.name))
    onnx.save(model, nan / "model.onnx")
    edit(nan, lambda m: m["onnx"].update(sha256=sha256_file(nan / "model.onnx")))
    shape = copy("wrong_shape")
    edit(shape, lambda m: m["action"].update(chunk=m["action"]["chunk"] + 2))
    corrupt = copy("corrupt")
    blob = (corrupt / "model.onnx").read_bytes()
    (corrupt / "model.onnx").write_bytes(blob[: len(blob) // 2])
    rate = copy("rate_zero")
    edit(rate, lambda m: m.update(control_rate_hz=0.0))
    return nan, shape, corrupt, rate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench_faults.json"))
    args = parser.parse_args()
    os.chdir(ROOT)
    work = Path(tempfile.mkdtemp(prefix="dm1-faults-"))
    rows = []
    try:
        nan, shape, corrupt, rate = bundles(work)
        rows.append(run_runtime("camera frame stamped 1 s ahead, then frozen", MODEL, future_then_frozen))
        rows.append(run_runtime("observation stamp NaN", MODEL, nan_stamp))
        rows.append(run_runtime("observation stamps going backwards", MODEL, backwards))
        rows.append(run_runtime("end-effector position NaN", MODEL, nan_eef))
        rows.append(run_runtime("robot refuses commands (apply raises)", MODEL, apply_error=True))
        rows.append(run_runtime("hot swap to a model with NaN output", MODEL, swap_to=nan))
        rows.append(run_runtime("hot swap to a model whose output shape disagrees with its manifest", MODEL, swap_to=shape))
        rows.append(run_runtime("hot swap to a truncated ONNX file", MODEL, swap_to=corrupt))
        rows.append(run_cli("`dm1 run` on a bundle with control rate 0", ["run", "--model", rate]))

        # a checkpoint that runs code when unpickled, a run directory and a dataset that must survive
        import torch

        from dm1_ros.policy.checkpoint import save_checkpoint
        from dm1_ros.policy.config import HeadConfig, PolicyConfig, VisionConfig
        from dm1_ros.policy.model import GenerativePolicy

        marker = work / "pwned"

        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        policy = GenerativePolicy(PolicyConfig(image_size=[32, 32], vision=VisionConfig(channels=16, heads=2, pool_dim=16),
                                               head=HeadConfig(hidden=32)))
        ckpt = save_checkpoint(work / "run" / "last.pt", policy)
        payload = torch.load(ckpt, weights_only=True)
        payload["provenance"] = Payload()
        torch.save(payload, work / "evil.pt")
        row = run_cli("`dm1 export` of a checkpoint crafted to run code", ["export", work / "evil.pt", "--out", work / "b"])
        if marker.exists():
            row.update(outcome="silent", detail=row["detail"] + " (THE CODE RAN)")
        rows.append(row)
        rows.append(run_cli("`dm1 export --out` the run directory holding the checkpoint",
                            ["export", ckpt, "--out", work / "run", "--force"], check_intact=[ckpt]))
        dataset = work / "lift.hdf5"
        dataset.write_bytes(b"weeks of demonstrations")
        rows.append(run_cli("`dm1 eval --out` an existing dataset file",
                            ["eval", "--model", MODEL, "--episodes", 1, "--out", dataset], check_intact=[dataset]))
        (work / "run" / "log.csv").write_text("step\n")
        rows.append(run_cli("`dm1 train` into a directory holding a run",
                            ["train", "--config", "config/train/lift_image.yaml", "--set", f"out_dir={work / 'run'}",
                             "--set", f"data={dataset}"], check_intact=[ckpt]))
        rows.append(run_cli("`dm1 train --set grad_clip=.nan`",
                            ["train", "--config", "config/train/lift_image.yaml", "--set", "grad_clip=.nan"]))
        rows.append(run_cli("`dm1 train --set device=tpu`",
                            ["train", "--config", "config/train/lift_image.yaml", "--set", "device=tpu"]))
        rows.append(run_cli("`dm1 train --set` with malformed YAML",
                            ["train", "--config", "config/train/lift_image.yaml", "--set", "lr=[1"]))
        rows.append(run_cli("`dm1 eval --episodes 0`", ["eval", "--model", MODEL, "--episodes", 0]))
        rows.append(run_cli("`dm1 export --steps -1`", ["export", ckpt, "--out", work / "neg", "--steps", -1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("held", "clear error", "crash", "silent")}
    Path(args.out).write_text(json.dumps({"rows": rows, "counts": counts}, indent=1) + "\n")
    print("| fault | outcome | what happened |\n|---|---|---|")
    for r in rows:
        print(f"| {r['fault']} | {r['outcome']} | {r['detail'].replace('|', '/')} |")
    print(f"\n{counts}; wrote {args.out}")
    return 0 if not (counts["crash"] or counts["silent"]) else 1


if __name__ == "__main__":
    sys.exit(main())
