"""Can the square nut's pose be read from the cameras on scenes the demonstrations never show? A probe, not a policy.

A camera policy trained with a pose term (policy.state_prediction) reads the nut's pose well on its validation
demonstrations and badly in closed loop (bench/pose_cascade.py: 42 degrees on the approach). Its training data hold
one nut placement per demonstration, 450 in all. This probe trains the same encoder and pose head on scenes that
need no expert success: many placements, each seen at a few ticks of a scripted approach with noise added to its
actions, so the hand is where a policy's hand might be. The checkpoint it writes is a policy checkpoint whose
encoder and pose head are trained (its action head is not), so bench/pose_cascade.py takes it as `--camera`.

    python bench/pose_reader.py scenes --scenes 4000 --out data/pose_scenes.npz
    python bench/pose_reader.py train --scenes data/pose_scenes.npz --config config/train/square_image_dagger2.yaml \
        --steps 6000 --out runs/pose_reader/last.pt
    python bench/pose_reader.py report --checkpoint runs/pose_reader/last.pt --scenes data/pose_scenes.npz
    python bench/pose_cascade.py --camera runs/pose_reader/last.pt \
        --state results/square_lowdim/square_lowdim_1000_distill --object derived --episodes 20

Scenes: placement seed s resets the scene (robosuite draws the nut's position and yaw), the scripted square expert
drives with Gaussian noise of a per-scene scale on its arm actions, and the cameras render only at the sampled ticks
(camera observables are switched off in between: physics is a quarter of a rendered tick's cost).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAMERAS = ["robot0_eye_in_hand", "agentview"]
ROBOT_KEYS = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
QUATERNIONS = [3, 10]  # where the 14-d object state's xyzw quaternions start (relative to the hand, the nut's own)


# --- scenes -------------------------------------------------------------------------------------------------------
def scene_worker(job):
    """(seeds, ticks per scene, max tick, image size[, render every tick]) -> arrays of one worker's scenes.
    Rendering every tick gives the same scenes, slower: the check that skipping renders changes nothing."""
    seeds, per_scene, max_tick, size, *every_tick = job
    every_tick = bool(every_tick and every_tick[0])
    from dm1_ros.sim.env import SimConfig, SimEnv
    from dm1_ros.sim.experts import make_expert

    env = SimEnv(SimConfig(task="square", cameras=CAMERAS, image_size=[size, size],
                           proprio_keys=[*ROBOT_KEYS, "object"]))
    names = [f"{c}_image" for c in CAMERAS]

    def cameras(enabled: bool):
        for name in names if not every_tick else []:
            env.env.modify_observable(name, "enabled", enabled)

    out = {"images": {n: [] for n in names}, "proprio": [], "seed": [], "tick": []}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        cameras(True)
        env.reset(seed=seed)
        expert = make_expert("square", seed)
        expert.reset(env)
        noise = rng.uniform(0.0, 0.6)  # per scene: from the expert's own path to well off it
        # ticks skewed to the approach (where a misread pose sends the hand astray), some later (nut in the hand)
        ticks = sorted(set(int(t) for t in np.minimum(rng.exponential(max_tick / 3, per_scene), max_tick)))
        cameras(False)
        tick = 0
        for sample in ticks:
            while tick < sample:
                action = expert.act(env)
                action[:6] += noise * rng.standard_normal(6)
                # robosuite's step, not SimEnv.step: SimEnv's observation needs the images this probe skips
                env._obs = env.env.step(np.clip(action, -1.0, 1.0))[0]
                tick += 1
            cameras(True)
            o = env.env._get_observations(force_update=True)
            cameras(False)
            for n in names:
                out["images"][n].append(np.ascontiguousarray(o[n][::-1]))  # upright, as SimEnv.observation gives
            out["proprio"].append(np.concatenate([o[k] for k in ROBOT_KEYS] + [o["object-state"]]).astype(np.float32))
            out["seed"].append(seed)
            out["tick"].append(tick)
    env.close()
    return {"images": {n: np.stack(v) for n, v in out["images"].items()}, "proprio": np.stack(out["proprio"]),
            "seed": np.array(out["seed"]), "tick": np.array(out["tick"])}


def make_scenes(args) -> None:
    seeds = list(range(args.seed_base, args.seed_base + args.scenes))
    chunks = [seeds[i:i + 50] for i in range(0, len(seeds), 50)]
    jobs = [(c, args.ticks_per_scene, args.max_tick, args.image_size) for c in chunks]
    start, parts = time.perf_counter(), []
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        for i, part in enumerate(pool.map(scene_worker, jobs)):
            parts.append(part)
            done = sum(len(p["seed"]) for p in parts)
            print(f"{(i + 1) * 50} scenes, {done} samples, {time.perf_counter() - start:.0f} s", flush=True)
    arrays = {f"images/{n}": np.concatenate([p["images"][n] for p in parts]) for n in parts[0]["images"]}
    arrays.update({k: np.concatenate([p[k] for p in parts]) for k in ("proprio", "seed", "tick")})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out.with_suffix(".tmp.npz"), **arrays)
    out.with_suffix(".tmp.npz").replace(out)
    print(f"{out}: {len(arrays['seed'])} samples from {args.scenes} scenes in {time.perf_counter() - start:.0f} s")


# --- training -----------------------------------------------------------------------------------------------------
def pose_errors(policy, images, proprio, robot_dims: int) -> dict[str, np.ndarray]:
    """-> per sample: rotation (deg) and position (mm) errors of the nut's pose in the world and relative to the hand
    (robosuite's object-state: relative position 3 and xyzw 4, then the nut's own position 3 and xyzw 4)."""
    import torch

    from dm1_ros.train.rotations import rotation_angle_deg, rotation_columns, rotation_from_columns

    with torch.no_grad():
        _, features = policy.encode(images, proprio[:, :robot_dims])
        pred = policy.state_normalizer.unnormalize(policy.predict_state(features)).numpy().astype(np.float64)
    true = proprio[:, robot_dims:].numpy().astype(np.float64)

    def rotation(columns, quaternion):
        return rotation_angle_deg(rotation_from_columns(columns), rotation_from_columns(rotation_columns(quaternion)))

    # predicted layout: relative position 3, its rotation columns 6, the nut's position 3, its rotation columns 6
    return {"rotation_deg": rotation(pred[:, 12:18], true[:, 10:14]),
            "position_mm": 1e3 * np.linalg.norm(pred[:, 9:12] - true[:, 7:10], axis=-1),
            "relative_rotation_deg": rotation(pred[:, 3:9], true[:, 3:7]),
            "relative_position_mm": 1e3 * np.linalg.norm(pred[:, 0:3] - true[:, 0:3], axis=-1)}


def held_out(seeds: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) scene seeds -> (N,) whether each sample is held out: whole scenes, every 1/fraction-th placement, so a
    validation sample shows a placement training never saw."""
    val_seeds = np.unique(seeds)[:: max(1, int(1 / fraction))]
    return np.isin(seeds, val_seeds)


def train(args) -> None:
    """The recipe's optimizer, schedule, EMA and shift augmentation (dm1_ros/train/pretrain.py's), on the pose term
    alone; --steps and --validate-every replace the recipe's, which are sized for a policy's training."""
    import torch

    from dm1_ros.configuration import load_yaml, to_dict
    from dm1_ros.data.fingerprint import file_hash
    from dm1_ros.outputs import command_line
    from dm1_ros.policy.checkpoint import save_checkpoint
    from dm1_ros.policy.model import GenerativePolicy
    from dm1_ros.train.augment import random_shift
    from dm1_ros.train.pretrain import TrainConfig, ema_update, lr_at
    from dm1_ros.train.rotations import with_rotation_columns

    cfg = load_yaml(TrainConfig, args.config, [*args.set, f"steps={args.steps}"])
    config = cfg.policy
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(args.threads)
    predict = config.state_prediction
    if predict.keys != ["object"] or sorted(predict.quaternions) != QUATERNIONS:
        sys.exit(f"{args.config}: policy.state_prediction must predict square's `object` with quaternions at 3 and 10")
    data = np.load(args.scenes)
    names = [f"{c}_image" for c in CAMERAS]
    if list(config.image_keys) != names or list(config.proprio_keys) != ROBOT_KEYS:
        sys.exit(f"{args.config}: the probe's scenes hold {names} and {ROBOT_KEYS}; the recipe reads "
                 f"{config.image_keys} and {config.proprio_keys}")
    images = {n: torch.from_numpy(data[f"images/{n}"]) for n in names}
    proprio = torch.from_numpy(data["proprio"])
    robot_dims = sum(config.proprio_dims)
    targets, valid = with_rotation_columns(data["proprio"][:, robot_dims:], QUATERNIONS)
    targets = torch.from_numpy(targets.astype(np.float32))
    # Samples at the reset itself hold no hand-relative pose (robosuite fills it from the first step on): left out.
    seeds = data["seed"]
    val = held_out(seeds, args.val_fraction)
    train_idx, val_idx = np.flatnonzero(~val & valid), np.flatnonzero(val & valid)

    policy = GenerativePolicy(config)
    policy.action_normalizer.fit(np.stack([-np.ones(config.action_dim), np.ones(config.action_dim)]))
    policy.proprio_normalizer.fit(data["proprio"][train_idx, :robot_dims])
    policy.state_normalizer.fit(targets[train_idx].numpy())
    ema = copy.deepcopy(policy).requires_grad_(False).eval()
    params = [p for name, p in policy.named_parameters() if not name.startswith(("head.", "time_"))]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    # what `dm1 export --actor` writes into a cascade's manifest: the command, and the scenes it read
    provenance = {"command": f"python {command_line()}", "data": args.scenes, "data_hash": file_hash(args.scenes),
                  "scenes": int(len(np.unique(seeds))), "recipe": to_dict(cfg)}
    log, start = [], time.perf_counter()
    for step in range(1, cfg.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, cfg)
        idx = torch.from_numpy(np.random.default_rng(cfg.seed + step).choice(train_idx, cfg.batch_size))
        batch_images = {n: random_shift(v[idx], cfg.shift_pad, gen) for n, v in images.items()}
        _, features = policy.encode(batch_images, proprio[idx, :robot_dims])
        loss = policy.state_prediction_loss(features, {"state_targets": targets[idx]})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        ema_update(ema, policy, cfg.ema_decay)
        if step % args.validate_every == 0 or step == cfg.steps:
            errors: dict[str, list] = {}
            for i in range(0, len(val_idx), 256):
                j = torch.from_numpy(val_idx[i:i + 256])
                for name, e in pose_errors(ema, {n: v[j] for n, v in images.items()}, proprio[j], robot_dims).items():
                    errors.setdefault(name, []).append(e)
            entry = {"step": step, "loss": float(loss.detach()), "seconds": time.perf_counter() - start}
            for name, e in errors.items():
                e = np.concatenate(e)
                entry[f"val_{name}"] = [float(np.median(e)), float(np.percentile(e, 90))]  # median, p90
            log.append(entry)
            print(json.dumps(entry), flush=True)
            save_checkpoint(args.out, policy, ema, probe="bench/pose_reader.py", scenes=args.scenes, overrides=args.set,
                            scene_count=int(len(np.unique(seeds))), log=log, provenance={**provenance, "steps": step})


def report(args) -> None:
    """The reader's errors on training and held-out scenes, with the hand's pose shuffled across samples (does the
    reading come from the pixels or from where the hand is?), and by tick (approach, grasp, carry)."""
    import torch

    from dm1_ros.policy.checkpoint import load_checkpoint

    torch.set_num_threads(args.threads)
    policy, payload = load_checkpoint(args.checkpoint)
    data = np.load(args.scenes)
    names = [f"{c}_image" for c in CAMERAS]
    robot_dims = sum(policy.config.proprio_dims)
    seeds, ticks = data["seed"], data["tick"]
    val = held_out(seeds, args.val_fraction) & (ticks > 0)  # as train() holds them out
    rng = np.random.default_rng(0)

    def errors(idx, shuffle_hand=False):
        proprio = torch.from_numpy(data["proprio"][idx])
        if shuffle_hand:
            proprio[:, :robot_dims] = proprio[torch.from_numpy(rng.permutation(len(idx))), :robot_dims]
        e = pose_errors(policy, {n: torch.from_numpy(data[f"images/{n}"][idx]) for n in names}, proprio, robot_dims)
        return {"samples": int(len(idx)), **{k: float(np.median(v)) for k, v in e.items()}}

    train_idx = rng.choice(np.flatnonzero(~val & (ticks > 0)), min(args.samples, int((~val & (ticks > 0)).sum())),
                           replace=False)
    val_idx = np.flatnonzero(val)
    rows = {"training scenes": errors(train_idx), "held-out scenes": errors(val_idx),
            "held-out, hand pose shuffled": errors(val_idx, shuffle_hand=True)}
    for lo, hi in ((1, 30), (30, 80), (80, 10_000)):
        in_range = val_idx[(ticks[val_idx] >= lo) & (ticks[val_idx] < hi)]
        if len(in_range):
            rows[f"held-out, ticks {lo}-{min(hi, int(ticks.max()) + 1) - 1}"] = errors(in_range)
    doc = {"checkpoint": args.checkpoint, "scenes": args.scenes, "overrides": payload.get("overrides", []),
           "steps": payload["log"][-1]["step"], "training_log": payload["log"],
           "medians": rows, "seconds_training": payload["log"][-1]["seconds"]}
    for name, row in rows.items():
        print(f"{name:32s} " + ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k != "samples") + f" ({row['samples']})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scenes", help="render scenes with the nut's true pose")
    s.add_argument("--scenes", type=int, default=4000, help="nut placements (one robosuite reset each)")
    s.add_argument("--seed-base", type=int, default=700_000, help="away from evaluation (100000..) and collection seeds")
    s.add_argument("--ticks-per-scene", type=int, default=3)
    s.add_argument("--max-tick", type=int, default=150)
    s.add_argument("--image-size", type=int, default=96)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--out", required=True)
    t = sub.add_parser("train", help="train a camera encoder and pose head on those scenes")
    t.add_argument("--scenes", required=True)
    t.add_argument("--config", required=True, help="a training recipe whose policy predicts the `object` state")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. policy.vision.stem_stride=4 or batch_size=32")
    t.add_argument("--steps", type=int, default=6000)
    t.add_argument("--val-fraction", type=float, default=0.1)
    t.add_argument("--validate-every", type=int, default=1000)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--out", required=True)
    r = sub.add_parser("report", help="a trained reader's errors: training vs held-out scenes, hand pose shuffled")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--scenes", required=True)
    r.add_argument("--samples", type=int, default=1000, help="training samples to measure")
    r.add_argument("--val-fraction", type=float, default=0.1, help="as the reader was trained with")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--out", help="JSON file for the figures and the training log")
    args = parser.parse_args()
    {"scenes": make_scenes, "train": train, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
