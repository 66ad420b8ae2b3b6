"""PPO pieces, each a plain function or a small class: GAE, the clipped objective, running reward scaling, schedules."""
from __future__ import annotations

import numpy as np
import torch


def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: np.ndarray, gamma: float,
        lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over a (T, N) rollout of N environments.

    dones[t] = 1 when the episode ended at step t (terminated; a truncation's bootstrap value is already folded into
    its reward), values[t] = V(s_t), last_value = V(s_T). -> (advantages (T, N), returns = advantages + values)."""
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in reversed(range(steps)):
        next_value = last_value if t == steps - 1 else values[t + 1]
        live = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
    return adv.astype(np.float32), (adv + values).astype(np.float32)


def ppo_actor_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, clip: float) -> tuple[torch.Tensor, dict]:
    """Clipped surrogate (to minimize) + diagnostics: approx KL (the k3 estimator) and clip fraction."""
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1).abs() > clip).float().mean()
        mean_ratio = ratio.mean()
    return loss, {"approx_kl": float(approx_kl), "clipfrac": float(clipfrac), "ratio": float(mean_ratio)}


class RunningMeanStd:
    """Running mean and variance (parallel algorithm of Chan et al.)."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).ravel()
        if x.size == 0:
            return
        b_mean, b_var, b_count = x.mean(), x.var(), x.size
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean += delta * b_count / total
        self.var = (self.var * self.count + b_var * b_count + delta ** 2 * self.count * b_count / total) / total
        self.count = total

    def state(self) -> dict:
        return {"mean": float(self.mean), "var": float(self.var), "count": float(self.count)}  # plain floats: weights-only loads

    def load(self, state: dict) -> None:
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


class RewardScaler:
    """Running reward scaling (as in DPPO/ReinFlow): rewards are divided by the running standard deviation of the
    discounted return, so the critic's targets stay O(1) whatever the reward's size and the horizon."""

    def __init__(self, num_envs: int, gamma: float, epsilon: float = 1e-8, min_std: float = 1e-2):
        self.gamma, self.epsilon, self.min_std = gamma, epsilon, min_std  # min_std: no 1e4x blow-up after all-zero returns
        self.returns = np.zeros(num_envs)
        self.stats = RunningMeanStd()

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        self.stats.update(self.returns)
        self.returns = np.where(dones, 0.0, self.returns)
        return rewards / max(np.sqrt(self.stats.var + self.epsilon), self.min_std)

    def state(self) -> dict:
        return {"returns": self.returns.tolist(), **self.stats.state()}

    def load(self, state: dict) -> None:
        self.returns = np.asarray(state["returns"], np.float64)
        self.stats.load(state)


def linear(start: float, end: float, iteration: int, over: int) -> float:
    """start -> end linearly over `over` iterations, then end (over <= 0: end from the start)."""
    if over <= 0:
        return end
    return start + (end - start) * min(iteration / over, 1.0)
