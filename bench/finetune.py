"""Fine-tuning evidence: a deliberately weak one-step low-dim policy, PPO with and without BC, success over iterations.

    python bench/finetune.py [--task can] [--demos 10] [--pretrain-steps 2000] [--iterations 200] [--minutes 20]

Steps (each skipped when its output exists, so an interrupted run continues where it stopped):
1. data/<task>_lowdim_<N>demos.hdf5: the first N demonstrations of --source (default data/<task>.hdf5; a file from
   `dm1 collect --no-images` will do), low-dimensional keys only;
2. dm1 train  (config/train/<task>_lowdim.yaml on that file) -> runs/ft_<task>_weak/last.pt;
3. dm1 eval of the weak start (50 episodes, 1 step);
4. dm1 finetune with BC (the recipe's schedule) and with bc 0, each for --iterations or --minutes;
5. dm1 eval of both fine-tuned bundles (50 episodes, the same seeds as 3);
6. <--results>/<task>_*.{csv,json} (default results/finetune), docs/finetune_<task>.png.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DM1 = [sys.executable, "-m", "dm1_ros.cli"]
LOWDIM_KEYS = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")


def subset(src: Path, dst: Path, n: int) -> None:
    """The first n demonstrations of src, low-dimensional observations only (written to a temporary file, renamed)."""
    tmp = dst.with_suffix(".tmp")
    with h5py.File(src, "r") as f, h5py.File(tmp, "w") as g:
        names = sorted(f["data"].keys(), key=lambda s: int(s.split("_")[-1]))[:n]
        data = g.create_group("data")
        for k, v in f["data"].attrs.items():
            data.attrs[k] = v
        total = 0
        for name in names:
            s, t = f["data"][name], data.create_group(name)
            for k in ("actions", "rewards", "dones", "states"):
                if k in s:
                    t.create_dataset(k, data=s[k][()])
            obs = t.create_group("obs")
            for k in LOWDIM_KEYS:
                obs.create_dataset(k, data=s["obs"][k][()])
            for k, v in s.attrs.items():
                t.attrs[k] = v
            total += s["actions"].shape[0]
        data.attrs["total"] = total
        g.create_group("mask").create_dataset("train", data=np.array([x.encode() for x in names]))
    tmp.replace(dst)


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(["nice", "-n", "5", *cmd], check=True, cwd=ROOT)


def evaluate(model: str, task: str, out: Path, episodes: int, execute: str) -> dict:
    if not out.is_file():
        run([*DM1, "eval", "--model", model, "--task", task, "--episodes", str(episodes), "--workers", "2", "--execute", execute,
             "--out", str(out)])
    return json.loads(out.read_text())


def rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path))) if path.is_file() else []


def plot(task: str, runs: dict[str, Path], start: dict, finals: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {"bc": "tab:blue", "no_bc": "tab:red"}
    for name, log in runs.items():
        r = rows(log)
        ev = [(int(x["env_steps"]), float(x["eval/success_rate"])) for x in r if x.get("eval/success_rate")]
        ro = [(int(x["env_steps"]), float(x["rollout/success_rate"])) for x in r if x.get("rollout/success_rate")]
        label = "PPO + BC" if name == "bc" else "PPO, BC coefficient 0"
        if ro:
            xs, ys = zip(*ro)
            k = 5
            smooth = np.convolve(ys, np.ones(k) / k, mode="valid") if len(ys) >= k else np.asarray(ys)
            axes[0].plot(xs[len(xs) - len(smooth):], smooth, color=colors[name], label=f"{label} (5-iteration mean)")
        if ev:
            axes[1].plot(*zip(*ev), marker="o", color=colors[name], label=label)
        kl = [(int(x["iteration"]), float(x["approx_kl"])) for x in r if x.get("approx_kl")]
        if kl:
            axes[2].plot(*zip(*kl), color=colors[name], label=label)
        if name in finals:
            f = finals[name]
            axes[1].errorbar([ev[-1][0] if ev else 0], [f["success_rate"]], yerr=[[f["success_rate"] - f["ci95"][0]], [f["ci95"][1] - f["success_rate"]]],
                             color=colors[name], marker="s", capsize=4, label=f"{label}: dm1 eval, {f['episodes']} episodes")
    axes[1].axhline(start["success_rate"], color="gray", ls="--", label=f"weak start: dm1 eval {start['successes']}/{start['episodes']}")
    axes[0].set_title("rollout success (with exploration noise)")
    axes[1].set_title("noise-free 1-step success (deployed sampler)")
    axes[2].set_title("approximate KL per update")
    for ax in axes[:2]:
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("environment steps")
        ax.legend(fontsize=7)
    axes[2].set_xlabel("iteration")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{task}: PPO fine-tuning of a weak one-step low-dim MeanFlow policy (K=1), 2 CPU cores")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="can", choices=["lift", "can"])
    ap.add_argument("--demos", type=int, default=10)
    ap.add_argument("--pretrain-steps", type=int, default=2000)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock cap per fine-tuning run")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--execute", default="chunk", choices=["chunk", "first"],
                    help="dm1 eval execution; chunk matches the recipes' act_steps = chunk (4)")
    ap.add_argument("--set", action="append", default=[], help="extra fine-tuning overrides for both runs")
    ap.add_argument("--tag", default="", help="prefix of the run directories and result files (several settings side by side)")
    ap.add_argument("--only", choices=["bc", "no_bc"], help="run one of the two fine-tunings")
    ap.add_argument("--source", type=Path, help="demonstrations to take the first --demos from (default data/<task>.hdf5)")
    ap.add_argument("--results", type=Path, default=Path("results/finetune"),
                    help="where the evaluations, logs and summary go (a finished evaluation there is not redone)")
    args = ap.parse_args()
    task = args.task
    res = ROOT / args.results
    res.mkdir(parents=True, exist_ok=True)

    data = ROOT / "data" / f"{task}_lowdim_{args.demos}demos.hdf5"
    if not data.is_file():
        subset(ROOT / (args.source or Path("data") / f"{task}.hdf5"), data, args.demos)
    weak = ROOT / "runs" / f"ft_{task}_weak"
    t0 = time.perf_counter()
    if not (weak / "last.pt").is_file():
        run([*DM1, "train", "--config", f"config/train/{task}_lowdim.yaml", "--no-progress", "--set", f"data={data.relative_to(ROOT)}",
             "--set", f"out_dir={weak.relative_to(ROOT)}", "--set", f"steps={args.pretrain_steps}", "--set", "validate_every=100000"])
    pretrain_s = time.perf_counter() - t0
    start = evaluate(str(weak / "last.pt"), task, res / f"{task}_weak_start.json", args.episodes, args.execute)
    print(f"weak start: {start['successes']}/{start['episodes']}", flush=True)

    variants = {"bc": [], "no_bc": ["--set", "bc_coef_start=0", "--set", "bc_coef_end=0"]}
    logs, finals, timing = {}, {}, {}
    for name, extra in variants.items():
        out = ROOT / "runs" / f"ft_{task}_{args.tag}{name}"
        logs[name] = out / "log.csv"
        if args.only and name != args.only:
            continue
        if not (out / "bundle" / "manifest.yaml").is_file():
            cmd = [*DM1, "finetune", "--config", f"config/finetune/{task}_lowdim.yaml", "--init", str(weak / "last.pt"), "--no-progress",
                   "--set", f"out_dir={out.relative_to(ROOT)}", "--set", f"iterations={args.iterations}", *extra]
            for s in args.set:
                cmd += ["--set", s]
            if (out / "last.pt").is_file():
                cmd.append("--resume")
            print("+", " ".join(cmd), flush=True)
            proc = subprocess.Popen(["nice", "-n", "5", *cmd], cwd=ROOT)
            deadline = time.monotonic() + 60 * args.minutes
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(5)
            if proc.poll() not in (None, 0):
                raise SystemExit(f"dm1 finetune failed with exit status {proc.returncode}")
            if proc.poll() is None:  # wall-clock cap: SIGTERM checkpoints; export the last checkpoint ourselves
                proc.terminate()
                proc.wait()
                # the recipes roll out whole chunks (act_steps = chunk); deploy them the same way, as dm1 finetune does
                run([*DM1, "export", str(out / "last.pt"), "--out", str(out / "bundle"), "--execution", "chunk"])
        r = rows(logs[name])
        timing[name] = {"iterations": int(r[-1]["iteration"]), "env_steps": int(r[-1]["env_steps"]), "seconds": float(r[-1]["seconds"])}
        finals[name] = evaluate(str(out / "bundle"), task, res / f"{task}_{args.tag}{name}_final.json", args.episodes, args.execute)
        shutil.copy(logs[name], res / f"{task}_{args.tag}{name}_log.csv")
        print(f"{name}: {finals[name]['successes']}/{finals[name]['episodes']} after {timing[name]}", flush=True)

    summary = {"task": task, "demos": args.demos, "execute": args.execute, "overrides": args.set, "pretrain_steps": args.pretrain_steps, "pretrain_seconds_this_call": pretrain_s,
               "start": {k: start[k] for k in ("successes", "episodes", "success_rate", "ci95")},
               "runs": {n: {**timing.get(n, {}), **({k: finals[n][k] for k in ("successes", "episodes", "success_rate", "ci95")} if n in finals else {}),
                            "eval_curve": [(int(x["iteration"]), int(x["env_steps"]), float(x["eval/success_rate"])) for x in rows(logs[n]) if x.get("eval/success_rate")]}
                        for n in variants}}
    (res / f"{task}_{args.tag}summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(task, {n: p for n, p in logs.items() if p.is_file()}, start, finals, ROOT / "docs" / f"finetune_{task}{'_' + args.tag.rstrip('_') if args.tag else ''}.png")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
