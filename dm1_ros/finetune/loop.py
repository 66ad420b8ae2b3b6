"""`dm1 finetune`: PPO over the one-step (K-step) MeanFlow chain with BC to the frozen pre-trained policy.

A cleanrl-style loop, top to bottom, one iteration at a time:

1. rollout: `rollout_steps` decisions in each of `num_envs` robosuite environments (gymnasium vector env,
   subprocesses). A decision samples the stochastic chain (chain.py), executes `act_steps` actions of the chunk and
   stores the chain, its log-probability and the critic's value. Rewards are sparse (1 on success, which ends the
   episode), divided by the running std of the discounted return; a truncated episode's reward gets
   gamma * V(last observation) added, so GAE does not treat the time limit as failure.
2. GAE (gamma 0.999, lambda 0.95), advantages normalized over the batch.
3. update: `update_epochs` passes of minibatches. Loss = clipped PPO surrogate on the chain's log-probability
   - entropy_coef * entropy + value_coef * value MSE + bc_coef * BC. The actor stops for the rest of the update once
   the approximate KL exceeds target_kl (the critic keeps fitting). During the first `critic_warmup_iters`
   iterations only the critic learns, so the first policy gradients use a value baseline that means something.
4. logs (log.csv, curves.png), checkpoint (OUT_DIR/last.pt, loadable by `dm1 export`), every `eval_every`
   iterations a noise-free evaluation on fixed seeds (what the exported bundle would do).

At the end the fine-tuned actor is exported exactly like a pre-trained one (policy/export.py).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dm1_ros.configuration import to_dict
from dm1_ros.finetune.chain import ChainPolicy, bc_loss
from dm1_ros.finetune.config import FinetuneConfig
from dm1_ros.finetune.critic import Critic
from dm1_ros.finetune.ppo import RewardScaler, gae, linear, ppo_actor_loss
from dm1_ros.outputs import claim_run_dir, open_run_log
from dm1_ros.policy.checkpoint import CheckpointError, load_checkpoint, load_state_strict, read_checkpoint, save_checkpoint
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.train.distributed import Ranks
from dm1_ros.train.interrupt import signals_ignored, stop_on_sigterm

COLUMNS = ["iteration", "env_steps", "seconds", "bc_coef", "actor_updated", "rollout/episodes", "rollout/success_rate",
           "rollout/return", "rollout/episode_steps", "eval/success_rate", "eval/episodes", "loss/actor", "loss/value",
           "loss/bc", "approx_kl", "clipfrac", "entropy", "std_mean", "explained_variance", "epochs"]


def to_torch_obs(obs: dict, image_keys: list[str]) -> tuple[dict, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(obs[k])) for k in image_keys}, torch.from_numpy(np.asarray(obs["proprio"], np.float32))


def _per_env(info: dict, key: str, done: np.ndarray, default=0) -> np.ndarray:
    """A step's info value per env; for envs that just finished it is in final_info (same-step autoreset)."""
    n = len(done)
    out = np.asarray(info.get(key, np.full(n, default)))
    final = info.get("final_info")
    if final is not None and done.any():
        out = out.copy()
        out[done] = np.asarray(final[key])[done]
    return out


@torch.no_grad()
def evaluate_chain(policy: ChainPolicy, envs, episodes: int, seed: int, image_keys: list[str], act_steps: int) -> dict:
    """Noise-free chain from random x_0 (the deployed sampler) on fixed seeds: each environment runs its share of
    episodes to the end (counting only the first ones finished would favour short, successful episodes)."""
    n = envs.num_envs
    quota = np.array([episodes // n + (1 if i < episodes % n else 0) for i in range(n)])
    finished = np.zeros(n, int)
    successes = 0
    gen = torch.Generator().manual_seed(seed)
    obs, _ = envs.reset(seed=seed)
    while (finished < quota).any():
        images, proprio = to_torch_obs(obs, image_keys)
        chain = policy.sample(policy.encode(images, proprio), gen, deterministic=True)
        obs, _, term, trunc, _ = envs.step(policy.actions(chain)[:, :act_steps].numpy())
        for i in np.flatnonzero(term | trunc):
            if finished[i] < quota[i]:
                finished[i] += 1
                successes += int(term[i])
    return {"eval/success_rate": successes / max(1, episodes), "eval/episodes": int(finished.sum())}


class PPOLoss(nn.Module):
    """One minibatch's loss as a module's forward, so DistributedDataParallel can wrap it: value MSE, and while the
    actor learns the clipped surrogate, the entropy bonus and BC to the frozen reference. forward -> (loss, logs,
    approx_kl or None)."""

    def __init__(self, policy: ChainPolicy, critic: Critic, reference: GenerativePolicy | None):
        super().__init__()
        self.policy, self.critic, self.reference = policy, critic, reference

    def forward(self, images, proprio, chains, old_logp, adv, returns, cfg: FinetuneConfig, bc_coef: float,
                actor_on: bool, generator: torch.Generator | None = None):
        logs = {}
        value = self.critic(images, proprio)
        v_loss = 0.5 * (value - returns).pow(2).mean()
        loss = cfg.value_coef * v_loss
        logs["loss/value"] = float(v_loss.detach())
        kl = None
        if actor_on:
            cond = self.policy.encode(images, proprio)
            logp, entropy = self.policy.log_prob(cond, chains, cfg.logprob_reduce)
            a_loss, stats = ppo_actor_loss(logp, old_logp, adv, cfg.clip)
            loss = loss + a_loss - cfg.entropy_coef * entropy.mean()
            kl = stats["approx_kl"]
            logs.update({"loss/actor": float(a_loss.detach()), "approx_kl": kl, "clipfrac": stats["clipfrac"],
                         "entropy": float(entropy.mean().detach())})
            if bc_coef > 0 and self.reference is not None:
                bc = bc_loss(self.policy, self.reference, images, proprio, generator)
                loss = loss + bc_coef * bc
                logs["loss/bc"] = float(bc.detach())
        return loss, logs, kl


def normalized_advantages(adv: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """(adv - mean) / std over every rank's batch (one process: its own batch)."""
    a = adv.double()
    n, total, squares = ranks.sum([a.numel(), float(a.sum()), float((a * a).sum())])
    if n < 2:
        return adv
    mean = total / n
    std = math.sqrt(max(squares - n * mean * mean, 0.0) / (n - 1))
    return ((a - mean) / (std + 1e-8)).to(adv.dtype)


def ppo_update(policy: ChainPolicy, critic: Critic, reference: GenerativePolicy | None, batch: dict, cfg: FinetuneConfig,
               optimizers: dict, bc_coef: float, update_actor: bool, generator: torch.Generator | None = None,
               learner: nn.Module | None = None, ranks: Ranks | None = None) -> dict:
    """One PPO update over a flattened batch: images {k: (B, H, W, 3)}, proprio (B, P), chains (B, K+1, D),
    logp (B,), advantages (B,), returns (B,). learner: PPOLoss over the same modules, DDP-wrapped under torchrun
    (default: a plain PPOLoss); every rank steps alike and the target-KL stop uses the KL averaged over ranks.
    Returns mean diagnostics."""
    ranks = ranks or Ranks()
    learner = learner or PPOLoss(policy, critic, reference)
    size = batch["proprio"].shape[0]
    adv = batch["advantages"]
    if cfg.norm_advantages:
        adv = normalized_advantages(adv, ranks)
    actor_params = [*policy.actor.parameters(), *policy.noise.parameters()]
    actor_on = update_actor
    logs: dict[str, list[float]] = {}
    epochs = 0
    for _ in range(cfg.update_epochs):
        epochs += 1
        perm = torch.randperm(size, generator=generator)
        for start in range(0, size, cfg.minibatch_size):
            idx = perm[start: start + cfg.minibatch_size]
            images = {k: v[idx] for k, v in batch["images"].items()}
            loss, step_logs, kl = learner(images, batch["proprio"][idx], batch["chains"][idx], batch["logp"][idx],
                                          adv[idx], batch["returns"][idx], cfg, bc_coef, actor_on, generator)
            for k, v in step_logs.items():
                logs.setdefault(k, []).append(v)
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.grad_clip)
                if actor_on:
                    torch.nn.utils.clip_grad_norm_(actor_params, cfg.grad_clip)
            optimizers["critic"].step()
            if actor_on:
                optimizers["actor"].step()
                optimizers["noise"].step()
                if cfg.target_kl > 0 and ranks.mean(kl) > cfg.target_kl:
                    actor_on = False  # early stop for the actor, on every rank alike; the critic keeps fitting
    out = {k: float(np.mean(v)) for k, v in logs.items()}
    out["epochs"] = epochs
    out["actor_updated"] = int(update_actor)
    return out


def plot_finetune(csv_path: Path, png_path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(open(csv_path)))
    if not rows:
        return

    def series(key):
        pts = [(int(r["iteration"]), float(r[key])) for r in rows if r.get(key) not in ("", None)]
        return list(zip(*pts)) if pts else ([], [])

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    ax = axes[0, 0]
    ax.plot(*series("rollout/success_rate"), label="rollouts (with exploration noise)")
    ax.plot(*series("eval/success_rate"), marker="o", label="evaluation (noise-free, fixed seeds)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    for ax, key in zip(axes.flat[1:], ("rollout/return", "approx_kl", "clipfrac", "loss/bc", "loss/value")):
        ax.plot(*series(key))
        ax.set_title(key)
    axes[0, 0].set_title("success rate")
    for ax in axes.flat:
        ax.set_xlabel("iteration")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def finetune(cfg: FinetuneConfig, resume: bool = False, progress: bool = True, command: str | None = None,
             force: bool = False) -> dict:
    """Runs the recipe; returns a summary (paths, final success rates, env steps, seconds)."""
    from tqdm import tqdm

    from dm1_ros.finetune.envs import EnvSpec, make_vector_env
    from dm1_ros.outputs import command_line

    ranks = Ranks.start("cpu")  # under torchrun: one learner step across ranks, rank 0 writes
    is_main = ranks.is_main
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # a run there is resumed, moved aside or refused (rank 0 decides; the others only read it to resume)
    out = claim_run_dir(cfg.out_dir, resume=resume, force=force) if is_main else Path(cfg.out_dir)
    ranks.barrier()
    last = out / "last.pt"
    if not cfg.init:
        raise CheckpointError("no initial checkpoint: pass --init CHECKPOINT or set init in the recipe")

    # --- policies: the fine-tuned actor, its frozen reference, the critic ------------------------------------------
    reference, init_payload = load_checkpoint(cfg.init)  # EMA weights of the pre-trained policy
    reference.requires_grad_(False).eval()
    pc = reference.config
    if pc.point_clouds:
        raise CheckpointError(f"{cfg.init} is a point-cloud policy; dm1 finetune takes image and low-dimensional "
                              "policies (its environments make no point clouds yet)")
    if not 1 <= cfg.act_steps <= pc.chunk:
        raise ValueError(f"act_steps {cfg.act_steps} must lie in 1 .. the policy's chunk {pc.chunk}")
    torch.manual_seed(cfg.seed)
    policy = ChainPolicy(copy.deepcopy(reference).requires_grad_(True).train(), cfg.chain_steps, cfg.std_min, cfg.std_max, cfg.init_std)
    critic = Critic(pc, reference.proprio_normalizer, cfg.critic_hidden, cfg.critic_layers)
    optimizers = {"actor": torch.optim.Adam(policy.actor.parameters(), lr=cfg.actor_lr),
                  "noise": torch.optim.Adam(policy.noise.parameters(), lr=cfg.noise_lr),
                  "critic": torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)}
    scaler = RewardScaler(cfg.num_envs, cfg.gamma)
    gen = torch.Generator().manual_seed(cfg.seed + ranks.rank)  # each rank its own exploration and minibatches
    start_iter, env_steps, seconds_before = 0, 0, 0.0
    if resume:
        if not last.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {last}")
        payload = read_checkpoint(last)
        if payload.get("config") != to_dict(pc) or payload.get("chain_steps") != cfg.chain_steps:
            raise CheckpointError(f"--resume: {last} was fine-tuned with another policy config or chain; start a new out_dir")
        load_state_strict(policy.actor, payload["state_dict"], str(last))
        policy.noise.load_state_dict(payload["noise_state_dict"])
        critic.load_state_dict(payload["critic_state_dict"])
        reference.load_state_dict(payload["reference_state_dict"])
        for name, opt in optimizers.items():
            opt.load_state_dict(payload["optimizers"][name])
        scaler.load(payload["reward_scaler"])
        gen.set_state(payload["torch_generator"])
        torch.set_rng_state(payload["torch_rng"])
        start_iter, env_steps, seconds_before = int(payload["iteration"]), int(payload["env_steps"]), float(payload["seconds"])
        if ranks.rank:  # the checkpoint holds rank 0's generator
            gen.manual_seed(cfg.seed + 7919 * ranks.rank + start_iter)
        if is_main:
            print(f"resumed {last} at iteration {start_iter}", flush=True)
    provenance = {"command": command or command_line(), "init": str(cfg.init),
                  "init_provenance": init_payload.get("provenance") or {}, "finetune": to_dict(cfg)}

    learner = ranks.wrap(PPOLoss(policy, critic, reference), find_unused_parameters=True)  # critic-only iterations

    def checkpoint(iteration: int, seconds: float) -> None:
        if not is_main:
            return
        save_checkpoint(last, policy.actor, None, step=iteration, iteration=iteration, env_steps=env_steps, seconds=seconds,
                        chain_steps=cfg.chain_steps, noise_state_dict=policy.noise.state_dict(),
                        critic_state_dict=critic.state_dict(), reference_state_dict=reference.state_dict(),
                        optimizers={k: o.state_dict() for k, o in optimizers.items()}, reward_scaler=scaler.state(),
                        torch_generator=gen.get_state(), torch_rng=torch.get_rng_state(),
                        provenance={**provenance, "iterations": iteration, "env_steps": env_steps})

    # --- environments -----------------------------------------------------------------------------------------------
    image_keys = list(pc.image_keys)
    cameras = [k[: -len("_image")] for k in image_keys]
    spec = EnvSpec(task=cfg.task, cameras=cameras, image_size=list(pc.image_size), proprio_keys=list(pc.proprio_keys),
                   act_steps=cfg.act_steps, max_steps=cfg.max_steps, shaping_weight=cfg.shaping_weight)
    envs = make_vector_env(spec, cfg.num_envs, cfg.asynchronous)
    evaluating = is_main and cfg.eval_every > 0 and cfg.eval_episodes > 0
    eval_envs = make_vector_env(spec, cfg.num_envs, cfg.asynchronous) if evaluating else None
    eval_seed = cfg.seed + 1_000_000

    # --- logs ---------------------------------------------------------------------------------------------------------
    csv_file = writer = None
    if is_main:
        csv_file = open_run_log(out / "log.csv", resume, start_iter, "iteration")
        writer = csv.DictWriter(csv_file, fieldnames=COLUMNS, extrasaction="ignore")
        if csv_file.tell() == 0:
            writer.writeheader()

    def log(row: dict) -> None:
        if writer is not None:
            writer.writerow(row)
            csv_file.flush()

    t0 = time.perf_counter() - seconds_before
    summary: dict = {"out_dir": str(out), "checkpoint": str(last)}
    evals: list[tuple[int, float]] = []
    iteration = start_iter
    interrupted = False
    bar = tqdm(total=cfg.iterations, initial=start_iter, desc=f"finetune {cfg.task} K={cfg.chain_steps}", unit="it",
               disable=not (progress and is_main))
    T, N = cfg.rollout_steps, cfg.num_envs
    stop = contextlib.ExitStack()  # SIGTERM stops the run like Ctrl-C until the `finally` below
    if is_main:
        stop.enter_context(stop_on_sigterm())
    try:
        if eval_envs is not None and start_iter == 0:
            row = {"iteration": 0, "env_steps": env_steps, "seconds": time.perf_counter() - t0,
                   **evaluate_chain(policy, eval_envs, cfg.eval_episodes, eval_seed, image_keys, cfg.act_steps)}
            evals.append((0, row["eval/success_rate"]))
            log(row)
        obs, _ = envs.reset(seed=cfg.seed + 7919 * start_iter + 1_000_003 * ranks.rank)
        ep_steps = np.zeros(N, int)
        ep_return = np.zeros(N)  # undiscounted, unscaled return of the episodes in flight
        while iteration < cfg.iterations:
            # --- 1. rollout -----------------------------------------------------------------------------------
            buf_images = {k: [] for k in image_keys}
            buf_prop, buf_chain, buf_logp, buf_value, buf_reward, buf_done = [], [], [], [], [], []
            finished, successes, lengths, returns_done, new_steps = 0, 0, [], [], 0
            policy.eval()
            for _ in range(T):
                images, proprio = to_torch_obs(obs, image_keys)
                with torch.no_grad():
                    cond = policy.encode(images, proprio)
                    chain, logp = policy.sample_with_log_prob(cond, gen, cfg.logprob_reduce)
                    value = critic(images, proprio)
                actions = policy.actions(chain)[:, : cfg.act_steps].numpy()
                next_obs, reward, term, trunc, info = envs.step(actions)
                done = term | trunc
                steps_now = _per_env(info, "env_steps", done)
                new_steps += int(steps_now.sum())
                ep_steps += steps_now
                reward = np.asarray(reward, np.float64)
                ep_return += reward
                scaled = scaler(reward, done) if cfg.reward_scaling else reward.copy()
                if trunc.any():  # bootstrap the time limit with the value of the last observation
                    idx = np.flatnonzero(trunc & ~term)
                    if idx.size:
                        finals = [info["final_obs"][i] for i in idx]
                        f_obs = {k: np.stack([f[k] for f in finals]) for k in finals[0]}
                        with torch.no_grad():
                            scaled[idx] += cfg.gamma * critic(*to_torch_obs(f_obs, image_keys)).numpy()
                for i in np.flatnonzero(done):
                    finished += 1
                    successes += int(term[i])
                    lengths.append(int(ep_steps[i]))
                    returns_done.append(float(ep_return[i]))
                    ep_steps[i], ep_return[i] = 0, 0.0
                for k in image_keys:
                    buf_images[k].append(images[k])
                buf_prop.append(proprio)
                buf_chain.append(chain)
                buf_logp.append(logp)
                buf_value.append(value.numpy())
                buf_reward.append(scaled)
                buf_done.append(done.astype(np.float64))
                obs = next_obs
            with torch.no_grad():
                last_value = critic(*to_torch_obs(obs, image_keys)).numpy()

            # --- 2. advantages --------------------------------------------------------------------------------
            values = np.stack(buf_value)
            adv, returns = gae(np.stack(buf_reward), values, np.stack(buf_done), last_value, cfg.gamma, cfg.gae_lambda)
            batch = {"images": {k: torch.stack(v).flatten(0, 1) for k, v in buf_images.items()},
                     "proprio": torch.stack(buf_prop).flatten(0, 1), "chains": torch.stack(buf_chain).flatten(0, 1),
                     "logp": torch.stack(buf_logp).flatten(0, 1), "advantages": torch.from_numpy(adv).flatten(),
                     "returns": torch.from_numpy(returns).flatten()}

            # --- 3. update ------------------------------------------------------------------------------------
            bc_coef = linear(cfg.bc_coef_start, cfg.bc_coef_end, iteration, cfg.bc_decay_iters)
            policy.train()
            logs = ppo_update(policy, critic, reference, batch, cfg, optimizers, bc_coef,
                              update_actor=iteration >= cfg.critic_warmup_iters, generator=gen, learner=learner, ranks=ranks)
            # rollout figures over every rank's environments
            new_steps, finished, successes, length_sum, return_sum = ranks.sum(
                [new_steps, finished, successes, sum(lengths), sum(returns_done)])
            env_steps += int(new_steps)
            finished, successes = int(finished), int(successes)
            iteration += 1
            y, var = returns.ravel(), returns.var()
            with torch.no_grad():
                std_mean = float(policy.noise.log_std(policy.encode(*to_torch_obs(obs, image_keys)), 0).exp().mean())
            row = {"iteration": iteration, "env_steps": env_steps, "seconds": time.perf_counter() - t0, "bc_coef": bc_coef,
                   "rollout/episodes": finished, "rollout/success_rate": successes / finished if finished else "",
                   "rollout/return": return_sum / finished if finished else "",  # unscaled, with shaping
                   "rollout/episode_steps": length_sum / finished if finished else "", "std_mean": std_mean,
                   "explained_variance": float(1 - np.var(y - values.ravel()) / var) if var > 0 else "", **logs}
            # --- 4. evaluation, logs, checkpoint ----------------------------------------------------------------
            if eval_envs is not None and (iteration % cfg.eval_every == 0 or iteration == cfg.iterations):
                policy.eval()
                row.update(evaluate_chain(policy, eval_envs, cfg.eval_episodes, eval_seed, image_keys, cfg.act_steps))
                evals.append((iteration, row["eval/success_rate"]))
            log(row)
            bar.update(1)
            bar.set_postfix(success=f"{row['rollout/success_rate']:.2f}" if finished else "-",
                            kl=f"{logs.get('approx_kl', 0):.4f}", steps=env_steps)
            if iteration % cfg.checkpoint_every == 0 or iteration == cfg.iterations:
                checkpoint(iteration, time.perf_counter() - t0)
                if is_main:
                    plot_finetune(out / "log.csv", out / "curves.png", f"{cfg.task} fine-tuning, K={cfg.chain_steps}")
    except KeyboardInterrupt:
        interrupted = True
        if iteration > start_iter:  # before the first iteration there is nothing new to save
            with signals_ignored():
                checkpoint(iteration, time.perf_counter() - t0)
    finally:
        stop.close()
        bar.close()
        if csv_file is not None:
            csv_file.close()
        envs.close()
        if eval_envs is not None:
            eval_envs.close()
    if is_main:
        plot_finetune(out / "log.csv", out / "curves.png", f"{cfg.task} fine-tuning, K={cfg.chain_steps}")
    if interrupted:
        print(f"\ninterrupted at iteration {iteration}: checkpoint saved to {last}; continue with --resume", file=sys.stderr)
        raise KeyboardInterrupt
    summary.update(iterations=iteration, env_steps=env_steps, seconds=time.perf_counter() - t0, evaluations=evals)
    if ranks.distributed:
        digest = ranks.check_same_weights(policy, critic)
        summary.update(ranks=ranks.world, weights=digest)
        if is_main:
            print(f"{ranks.world} ranks in step at iteration {iteration}: weights {digest} on every rank", flush=True)
        ranks.close()
    if cfg.export != "none" and is_main:
        from dm1_ros.policy.export import export_bundle

        bundle = Path(cfg.export) if cfg.export else out / "bundle"
        training = {"checkpoint": str(last), **provenance, "iterations": iteration, "env_steps": env_steps}
        # deployed the way it was fine-tuned: whole chunks open loop when every rollout decision ran its whole chunk
        execution = "chunk" if cfg.act_steps >= policy.actor.config.chunk else "latest"
        manifest = export_bundle(copy.deepcopy(policy.actor).eval(), bundle, steps=cfg.chain_steps,
                                 control_rate_hz=cfg.control_rate_hz, training=training, execution=execution,
                                 overwrite=force or bundle.parent == out)  # the run's own bundle, or --force
        summary.update(bundle=str(bundle), model_id=manifest.model_id)
    if not math.isfinite(summary["seconds"]):
        summary["seconds"] = None
    return summary
