"""The fine-tuning recipe (`dm1 finetune --config config/finetune/*.yaml`): one strict dataclass, YAML-loadable."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dm1_ros.configuration import ConfigError


@dataclass
class FinetuneConfig:
    """PPO over the stochastic MeanFlow chain with BC to the frozen pre-trained policy (SPEC §4).

    Defaults are DMPO/ReinFlow's (clip 0.01, target KL 0.01, GAE 0.95, gamma 0.999, value 0.5, entropy 0.01,
    grad-norm 25, std in [0.05, 0.12]) with rollout sizes for a 2-core CPU."""

    init: str = ""  # pre-trained checkpoint (dm1 train's last.pt); `--init` overrides; the frozen BC reference too
    out_dir: str = "runs/finetune"  # last.pt, log.csv, curves.png, bundle/
    task: Literal["lift", "can", "square"] = "lift"
    # --- environments ---
    num_envs: int = 2  # parallel robosuite environments
    asynchronous: bool = True  # gymnasium AsyncVectorEnv (one subprocess each); false: SyncVectorEnv in-process
    shaping_weight: float = 0.0  # potential-based dense shaping on top of the sparse success reward (envs.EnvSpec)
    act_steps: int = 4  # actions of each sampled chunk executed open loop per decision (1 .. chunk)
    max_steps: int = 0  # episode limit in simulator steps (0: the task's default)
    # --- schedule ---
    iterations: int = 50  # PPO iterations (rollout + update)
    rollout_steps: int = 64  # decisions per environment per iteration
    critic_warmup_iters: int = 2  # first iterations update only the critic (the actor is frozen)
    # --- the stochastic chain ---
    chain_steps: int = 1  # K: network evaluations per action chunk (1 = the one-step sampler)
    std_min: float = 0.05  # bounds of the learned exploration std (normalized action units)
    std_max: float = 0.12
    init_std: float = 0.08
    logprob_reduce: Literal["mean", "sum"] = "mean"  # mean: log-prob / (K * D), as the released code
    # --- PPO ---
    gamma: float = 0.999
    gae_lambda: float = 0.95
    clip: float = 0.01
    target_kl: float = 0.01  # stop the actor's epochs once the approximate KL exceeds this (0: never)
    update_epochs: int = 10
    minibatch_size: int = 64
    actor_lr: float = 1e-5
    noise_lr: float = 1e-4
    critic_lr: float = 1e-3
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    grad_clip: float = 25.0
    norm_advantages: bool = True  # batch-normalized advantages
    reward_scaling: bool = True  # divide rewards by the running std of the discounted return
    critic_hidden: int = 256
    critic_layers: int = 2
    # --- BC regularization to the frozen pre-trained policy: coef * || a_ref(o) - a_theta(o) ||^2, same noise ---
    bc_coef_start: float = 0.05
    bc_coef_end: float = 0.05
    bc_decay_iters: int = 0  # linear start -> end over these iterations (0: bc_coef_end throughout)
    # --- evaluation, logs, checkpoints ---
    eval_every: int = 5  # deterministic-chain evaluation every N iterations (and at 0 and the end); 0: off
    eval_episodes: int = 10  # on fixed seeds, the same at every evaluation
    checkpoint_every: int = 1
    seed: int = 0
    threads: int = 0  # torch intra-op threads in the learner (0: torch's default)
    control_rate_hz: float = 20.0
    export: str = ""  # bundle written at the end ('' : OUT_DIR/bundle; 'none': no export)

    def __post_init__(self):
        for name in ("num_envs", "act_steps", "iterations", "rollout_steps", "chain_steps", "update_epochs",
                     "minibatch_size", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.std_min <= self.init_std <= self.std_max:
            raise ConfigError(f"need 0 < std_min <= init_std <= std_max, got {self.std_min}, {self.init_std}, {self.std_max}")
        if not 0 < self.clip < 1:
            raise ConfigError(f"clip must lie in (0, 1), got {self.clip}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if min(self.bc_coef_start, self.bc_coef_end) < 0:
            raise ConfigError("bc_coef_start and bc_coef_end must be >= 0")
        for name in ("actor_lr", "noise_lr", "critic_lr", "control_rate_hz", "critic_hidden", "critic_layers"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("shaping_weight", "max_steps", "critic_warmup_iters", "target_kl", "value_coef", "entropy_coef",
                     "grad_clip", "bc_decay_iters", "eval_every", "eval_episodes", "threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
