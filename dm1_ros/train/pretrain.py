"""Pre-training (`dm1 train`): MeanFlow (+ dispersive) or flow matching on robomimic HDF5 demonstrations.

A cleanrl-style loop, top to bottom: data -> policy with fitted normalizers -> AdamW with warm-up + cosine ->
EMA weights (used for validation and export) -> checkpoints (every N steps, at the end, on Ctrl-C) -> logs
(CSV, TensorBoard when installed, PNG of the curves). `--resume` continues from `out_dir/last.pt` with the
optimizer, schedule, EMA and random-generator states. Data-parallel under torchrun with PyTorch's
DistributedDataParallel (train/distributed.py): every rank starts from rank 0's weights, draws its own batches, and
takes the same step with gradients averaged over ranks; rank 0 logs and checkpoints; at the end the ranks' weights
are compared.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Literal
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dm1_ros.configuration import ConfigError, from_dict, to_dict
from dm1_ros.data.fingerprint import data_hash, file_hash
from dm1_ros.outputs import claim_run_dir, command_line, open_run_log
from dm1_ros.policy.checkpoint import CheckpointError, load_state_strict, read_checkpoint, save_checkpoint
from dm1_ros.policy.config import PolicyConfig
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.train.augment import object_pose_noise, random_shift
from dm1_ros.train.dataset import RobomimicDataset
from dm1_ros.train.distributed import Ranks
from dm1_ros.train.interrupt import signals_ignored, stop_on_sigterm


@dataclass
class TrainConfig:
    """Pre-training recipe. Defaults follow DMPO's robomimic image recipe (SPEC §3) scaled to a 2-core CPU."""

    data: str = "data/lift.hdf5"  # robomimic HDF5 (mask/train and mask/valid used when present)
    episodes: int = 0  # train on the first N demonstrations of the train split (0: all of them)
    # our obs key (as the policy and its manifest name it) -> the key in the dataset, for data recorded under other
    # names (robomimic files from elsewhere: {agentview_image: front_rgb, robot0_eef_pos: eef_pos}); others as named
    obs_keys: dict[str, str] = field(default_factory=dict)
    out_dir: str = "runs/lift_image"  # checkpoints, logs, curves
    # start from this checkpoint's EMA weights and normalization (fresh optimizer and schedule) instead of from
    # scratch; its policy config must match this recipe's except for `method` (e.g. to distil its one-step map)
    init_from: str = ""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    steps: int = 6000  # optimizer steps
    batch_size: int = 64
    lr: float = 3e-4  # AdamW peak learning rate
    weight_decay: float = 1e-6
    warmup_steps: int = 300  # linear warm-up, then cosine decay to lr_min
    lr_min: float = 1e-5
    grad_clip: float = 1.0  # max gradient norm (0: off)
    ema_decay: float = 0.995  # EMA of the weights, used for validation and export
    shift_pad: int = 4  # random-shift augmentation (training only)
    # a state policy that will act on a pose read from cameras (dm1_ros/policy/cascade.py): perturb the nut's world
    # pose in robosuite's 14-d `object` state by these standard deviations per axis and recompute its hand-relative
    # part (training only; 0: off)
    object_position_noise_m: float = 0.0
    object_rotation_noise_deg: float = 0.0
    seed: int = 0
    checkpoint_every: int = 1000
    validate_every: int = 500
    log_every: int = 50
    threads: int = 0  # torch intra-op threads (0: torch's default)
    max_memory_gb: float = 8.0  # the training images are held in memory up to this size; a larger file is refused
    device: Literal["cpu", "cuda", "auto"] = "cpu"  # auto: cuda when available; under torchrun each rank takes cuda:LOCAL_RANK
    control_rate_hz: float = 20.0  # recorded in the exported manifest

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every", "validate_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")
        for name in ("lr", "control_rate_hz", "max_memory_gb"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("episodes", "weight_decay", "warmup_steps", "lr_min", "grad_clip", "shift_pad", "threads",
                     "object_position_noise_m", "object_rotation_noise_deg"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.device == "cuda" and not _cuda_available():
            raise ConfigError("device: cuda, but torch sees no CUDA device here (torch.cuda.is_available() is False); "
                              "use cpu, or auto to take a GPU only where there is one")


OBJECT_NOISE_READS = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "object": 14}


def check_object_noise(cfg: TrainConfig) -> None:
    """Object-pose noise needs the hand's pose and the 14-d nut-assembly object state in the proprio (ConfigError)."""
    if cfg.object_position_noise_m <= 0 and cfg.object_rotation_noise_deg <= 0:
        return
    have = dict(zip(cfg.policy.proprio_keys, cfg.policy.proprio_dims))
    missing = {k: d for k, d in OBJECT_NOISE_READS.items() if have.get(k) != d}
    if missing:
        raise ConfigError(f"object_position_noise_m / object_rotation_noise_deg perturb robosuite's nut-assembly "
                          f"object state: policy.proprio_keys must hold {OBJECT_NOISE_READS}; "
                          f"{missing} missing or of another size (the policy reads {have})")


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _cpu_copy(model: GenerativePolicy) -> GenerativePolicy:
    return model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def to_torch(batch: dict, device: torch.device | str = "cpu") -> dict:
    """A dataset batch (arrays, and dicts of arrays per camera or cloud) as tensors on `device`; tensors already
    there pass through, so it also moves a converted batch."""
    def move(value):
        return torch.as_tensor(value).to(device)

    return {k: {n: move(a) for n, a in v.items()} if isinstance(v, dict) else move(v) for k, v in batch.items()}


def open_split(pc: PolicyConfig, data: str, split: str, episodes: int = 0,
               obs_keys: dict[str, str] | None = None, max_memory_gb: float = 8.0) -> RobomimicDataset:
    """The split ("train" or "valid") of a robomimic file as the policy pc reads it (first `episodes`; 0: all)."""
    predict = pc.state_prediction
    return RobomimicDataset(data, pc.image_keys, pc.chunk, pc.proprio_keys, split, pc.action_dim,
                            (pc.image_size[0], pc.image_size[1], 3), pc.proprio_dims, max_memory_gb=max_memory_gb,
                            max_episodes=episodes,
                            point_cloud_keys=pc.point_cloud_keys, num_points=[c.num_points for c in pc.point_clouds],
                            key_map=obs_keys or {}, state_keys=predict.keys, state_dims=predict.dims,
                            state_quaternions=predict.quaternions)


@torch.no_grad()
def validation_loss(policy: GenerativePolicy, ds: RobomimicDataset, batch_size: int, seed: int, max_batches: int = 8,
                    device: torch.device | str = "cpu") -> float:
    """Mean loss over fixed batches with a fixed noise generator, so values are comparable across steps."""
    rng = np.random.default_rng(seed)
    g = torch.Generator(device=device).manual_seed(seed)
    losses = []
    for _ in range(max_batches):
        idx = rng.integers(0, len(ds), size=min(batch_size, len(ds)))
        with torch.enable_grad():  # MeanFlow's JVP needs autograd machinery even without training
            loss, _ = policy.compute_loss(to_torch(ds.batch(idx), device), g)
        losses.append(float(loss))
    return float(np.mean(losses))


@torch.no_grad()
def sampling_gap(policy: GenerativePolicy, ds: RobomimicDataset, batch_size: int, seed: int, steps: int = 5,
                 max_batches: int = 8, device: torch.device | str = "cpu") -> float:
    """Root mean squared distance, in normalized action units (-1..1), between the one-step and the `steps`-step
    sample from the same noise on fixed batches: what one network evaluation gives up against more of them, without
    a rollout (0 when the learned average velocity is consistent over the whole interval)."""
    rng = np.random.default_rng(seed)
    g = torch.Generator(device=device).manual_seed(seed)
    squared = []
    for _ in range(max_batches):
        batch = to_torch(ds.batch(rng.integers(0, len(ds), size=min(batch_size, len(ds)))), device)
        cond, _ = policy.encode(batch["images"], batch["proprio"], batch["points"])
        noise = torch.randn(cond.shape[0], policy.config.chunk * policy.config.action_dim, generator=g, device=device)
        one, more = (policy.sample_normalized(cond, noise, k) for k in (1, steps))
        squared.append(float((one - more).pow(2).mean()))
    return float(np.sqrt(np.mean(squared)))


def plot_curves(csv_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return
    keys = [k for k in rows[0] if k.startswith(("loss/", "disp/", "val/"))]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for k in keys:
        pts = [(int(r["step"]), float(r[k])) for r in rows if r.get(k) not in ("", None)]
        if pts:
            ax = axes[1] if k.startswith("disp/") else axes[0]
            ax.plot(*zip(*pts), label=k, marker="o" if k.startswith("val/") else None, ms=3)
    axes[0].set_yscale("log")
    for ax, title in zip(axes, ("loss (train, EMA validation)", "dispersive terms")):
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def check_point_clouds(pc: PolicyConfig, env_args, data: str) -> None:
    """The recipe's point clouds must be made as the dataset's were (cameras, frame, size, crop): a policy trained on
    one crop and run on another sees other geometry."""
    import json

    try:
        recorded = json.loads(env_args).get("dm1_ros", {}).get("point_cloud")
    except (TypeError, ValueError):
        recorded = None
    for cloud in pc.point_clouds:
        if recorded is None:
            continue  # a dataset from elsewhere: nothing to compare with
        mine = to_dict(cloud)
        differ = [k for k in ("cameras", "frame", "num_points", "crop_min", "crop_max") if mine[k] != recorded.get(k)]
        if differ:
            raise ConfigError(f"policy.point_clouds[{cloud.name}]: {', '.join(f'{k} {mine[k]}' for k in differ)} "
                              f"differ from how {data} recorded it ({', '.join(f'{k} {recorded.get(k)}' for k in differ)})")


def init_weights(policy: GenerativePolicy, ema: GenerativePolicy, pc: PolicyConfig, path: str, device) -> None:
    """Both the trained and the EMA copy start from the EMA weights (and normalization) of the checkpoint at path."""
    payload = read_checkpoint(path)
    theirs = to_dict(from_dict(PolicyConfig, payload.get("config") or {}))
    mine = to_dict(pc)
    differ = [k for k in mine if k != "method" and mine[k] != theirs.get(k)]
    if differ:
        raise CheckpointError(f"init_from {path}: policy {', '.join(differ)} differ from this recipe's; only `method` "
                              "may change")
    state = {k: v.to(device) for k, v in (payload.get("ema_state_dict") or payload["state_dict"]).items()}
    load_state_strict(policy, state, path)
    load_state_strict(ema, state, path)
    print(f"initialized from {path} (step {payload.get('step')})", flush=True)


class LossOf(nn.Module):
    """policy.compute_loss as a module's forward, so DistributedDataParallel can wrap it (DDP averages the gradients
    of what its forward computed)."""

    def __init__(self, policy: GenerativePolicy):
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict, generator: torch.Generator | None = None, teacher: GenerativePolicy | None = None):
        return self.policy.compute_loss(batch, generator, teacher)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, command: str | None = None,
          force: bool = False) -> Path:
    """Runs the whole recipe; returns the path of the final checkpoint (out_dir/last.pt). An out_dir that holds a
    run is continued (resume), moved aside (force) or refused (dm1_ros/outputs.py)."""
    from tqdm import tqdm

    # --- processes: plain, or data-parallel under torchrun -----------------------------------------------------
    ranks = Ranks.start(cfg.device)
    device, is_main = ranks.device, ranks.is_main
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    rng = np.random.default_rng(cfg.seed + ranks.rank)  # each rank its own batches, noise and augmentation
    gen = torch.Generator().manual_seed(cfg.seed + ranks.rank)
    out = Path(cfg.out_dir)
    if is_main:
        claim_run_dir(out, resume=resume, force=force)

    # --- data --------------------------------------------------------------------------------------------------
    pc = cfg.policy
    check_object_noise(cfg)
    train_ds = open_split(pc, cfg.data, "train", cfg.episodes, cfg.obs_keys, cfg.max_memory_gb)
    try:
        valid_ds = open_split(pc, cfg.data, "valid", obs_keys=cfg.obs_keys, max_memory_gb=cfg.max_memory_gb)
    except ValueError:
        valid_ds = None  # no validation split in this file
    check_point_clouds(pc, train_ds.env_args, cfg.data)
    data_fingerprint = data_hash(cfg.data)  # of the content: the same for every dm1 collect run of one command

    # --- model, EMA, optimizer ---------------------------------------------------------------------------------
    policy = GenerativePolicy(pc)
    stats = train_ds.stats()
    policy.action_normalizer.fit(np.stack([stats["action_min"], stats["action_max"]]))
    policy.proprio_normalizer.fit(np.stack([stats["proprio_min"], stats["proprio_max"]]))
    if pc.state_prediction.keys:
        policy.state_normalizer.fit(np.stack([stats["state_min"], stats["state_max"]]))
    policy.to(device)
    if ranks.distributed:
        torch.manual_seed(cfg.seed + ranks.rank)  # the global generator (sampling noise on a GPU) differs per rank
    ema = copy.deepcopy(policy).requires_grad_(False).eval()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_step, init_hash, seconds_before = 0, None, 0.0
    last = out / "last.pt"
    if resume:
        if not last.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {last}")
        payload = read_checkpoint(last)
        if to_dict(from_dict(PolicyConfig, payload.get("config") or {})) != to_dict(pc):
            raise CheckpointError(f"--resume: {last} was trained with another policy config; start a new out_dir")
        payload["state_dict"] = {k: v.to(device) for k, v in payload["state_dict"].items()}
        payload["ema_state_dict"] = {k: v.to(device) for k, v in payload["ema_state_dict"].items()}
        load_state_strict(policy, payload["state_dict"], str(last))
        load_state_strict(ema, payload["ema_state_dict"], str(last))
        optimizer.load_state_dict(payload["optimizer"])
        start_step = int(payload["step"])
        seconds_before = float(payload.get("seconds", 0.0))  # checkpoints before this field: the clock restarts
        rng.bit_generator.state = payload["numpy_rng"]
        gen.set_state(payload["torch_generator"])
        torch.set_rng_state(payload["torch_rng"])
        if ranks.rank:  # the checkpoint holds rank 0's generators; the others must not draw rank 0's batches
            rng = np.random.default_rng((cfg.seed, ranks.rank, start_step))
            gen.manual_seed(cfg.seed + 7919 * ranks.rank + start_step)
        print(f"resumed {last} at step {start_step}", flush=True)
        init_hash = payload.get("provenance", {}).get("init_from_hash")  # the weights it started from, then
    elif cfg.init_from:
        init_weights(policy, ema, pc, cfg.init_from, device)
        init_hash = file_hash(cfg.init_from)
    provenance = {"command": command or command_line(), "data": str(cfg.data),
                  "data_hash": data_fingerprint, "episodes": train_ds.num_episodes, "recipe": to_dict(cfg)}
    if cfg.init_from and init_hash:
        provenance["init_from_hash"] = init_hash

    learner = ranks.wrap(LossOf(policy))  # gradients averaged over ranks in backward (one process: the loss itself)

    saved_step = start_step  # the newest step on disk: a run that fails before its first step writes nothing

    def checkpoint(step: int) -> None:
        nonlocal saved_step
        if not is_main or step == saved_step:
            return
        saved_step = step
        save_checkpoint(last, _cpu_copy(policy), _cpu_copy(ema), step=step, optimizer=optimizer.state_dict(), numpy_rng=rng.bit_generator.state,
                        torch_generator=gen.get_state(), torch_rng=torch.get_rng_state(), seconds=time.perf_counter() - t0,
                        provenance={**provenance, "steps": step})
        plot_curves(out / "log.csv", out / "curves.png")

    # --- logs --------------------------------------------------------------------------------------------------
    csv_file = writer = tb = None
    if is_main:
        csv_file = open_run_log(out / "log.csv", resume, start_step, "step")
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tb"))
        except ImportError:
            tb = None
    columns = None

    def log(step: int, values: dict) -> None:
        nonlocal writer, columns
        if not is_main:
            return
        if writer is None:
            columns = ["step", "lr", "seconds", *sorted(k for k in values if k not in ("lr", "seconds")), "val/loss",
                       "val/gap_1_vs_5"]
            if csv_file.tell():  # resumed: the header on disk decides, so rows stay aligned with it
                with open(out / "log.csv", newline="") as f:
                    columns = next(csv.reader(f))
            writer = csv.DictWriter(csv_file, fieldnames=columns, extrasaction="ignore")
            if csv_file.tell() == 0:
                writer.writeheader()
        writer.writerow({"step": step, **values})
        csv_file.flush()
        if tb is not None:
            for k, v in values.items():
                tb.add_scalar(k, v, step)

    # --- loop --------------------------------------------------------------------------------------------------
    interrupted = False
    stop = contextlib.ExitStack()  # on the main rank SIGTERM stops the run like Ctrl-C until the `finally` below
    if is_main:
        stop.enter_context(stop_on_sigterm())
    bar = tqdm(total=cfg.steps, initial=start_step, desc=f"train {pc.method.name}", unit="step", disable=not (progress and is_main))
    step, t0, acc = start_step, time.perf_counter() - seconds_before, {}  # seconds count training time across resumes
    policy.train()
    try:
        while step < cfg.steps:
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = to_torch(train_ds.batch(rng.integers(0, len(train_ds), size=cfg.batch_size)))
            batch["images"] = {k: random_shift(v, cfg.shift_pad, gen) for k, v in batch["images"].items()}  # CPU generator
            batch["proprio"] = object_pose_noise(batch["proprio"], pc.proprio_keys, pc.proprio_dims,
                                                 cfg.object_position_noise_m, cfg.object_rotation_noise_deg, gen)
            batch = to_torch(batch, device)
            loss, logs = learner(batch, gen if device.type == "cpu" else None, ema if pc.method.distill_steps else None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip))
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"loss became {float(loss.detach())} at step {step}; the weights before it are "
                                         f"saved in {last}")
            optimizer.step()
            ema_update(ema, policy, cfg.ema_decay)
            step += 1
            for k, v in logs.items():
                acc[k] = acc.get(k, 0.0) + v
            acc["_n"] = acc.get("_n", 0) + 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                n = acc.pop("_n")
                row = {k: v / n for k, v in acc.items()}
                acc = {}
                row.update(lr=lr, seconds=time.perf_counter() - t0)
                if is_main and valid_ds is not None and (step % cfg.validate_every == 0 or step == cfg.steps):
                    row["val/loss"] = validation_loss(ema, valid_ds, cfg.batch_size, cfg.seed, device=device)
                    row["val/gap_1_vs_5"] = sampling_gap(ema, valid_ds, cfg.batch_size, cfg.seed, device=device)
                log(step, row)
                bar.set_postfix(loss=f"{row['loss/total']:.4f}", **({"val": f"{row['val/loss']:.4f}"} if "val/loss" in row else {}))
            if step % cfg.checkpoint_every == 0:
                checkpoint(step)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        with signals_ignored():
            checkpoint(step)
        stop.close()
        if csv_file:
            csv_file.close()
        if tb is not None:
            tb.close()
    if interrupted:
        print(f"\ninterrupted at step {step}: checkpoint saved to {last}; continue with --resume", file=sys.stderr)
        raise KeyboardInterrupt
    if ranks.distributed:
        digest = ranks.check_same_weights(policy, ema)
        if is_main:
            print(f"{ranks.world} ranks in step at step {step}: weights {digest} on every rank", flush=True)
        ranks.close()
    return last
