"""The stochastic sampling chain (SPEC §4, ReinFlow-style): the pre-trained sampler with learned Gaussian noise.

    x_0 ~ N(0, I)
    mu_k = x_k - (t_k - t_{k+1}) * u_theta(x_k, r=t_{k+1}, t=t_k | obs)      t_k = 1 - k / K
    x_{k+1} ~ N(mu_k, sigma_k^2),  sigma_k = NoiseNet(obs, k) in [std_min, std_max]

K = 1 (the default) is one network evaluation: mu_0 = eps - u(eps, 0, 1), exactly the deployed one-step sampler,
plus exploration noise. Everything lives in the normalized action space (min-max to [-1, 1]); the executed action
is clamp(x_K, -1, 1) in robot units. Deployment drops the noise: the exported bundle is the actor's mean chain.

    log p(chain) = log N(x_0; 0, I) + sum_k log N(x_{k+1}; mu_k, sigma_k^2)

`log_prob(..., reduce="sum")` is that sum (the first term only with include_initial=True; it does not depend on the
parameters and cancels in PPO's ratio). `reduce="mean"` divides the transition terms by K * D, as the released
code does: the PPO ratio is then a per-dimension geometric mean, so clip 0.01 / target KL 0.01 are meaningful for a
28-d action chunk.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from dm1_ros.policy import objectives
from dm1_ros.policy.model import GenerativePolicy
from dm1_ros.policy.networks import mish

STD_MIN, STD_MAX = 0.05, 0.12
_LOG_2PI = math.log(2 * math.pi)


class NoiseNet(nn.Module):
    """(condition, chain step k) -> per-dimension std in [std_min, std_max]: a sigmoid bounds the log-std."""

    def __init__(self, cond_dim: int, out_dim: int, steps: int, hidden: int = 64, std_min: float = STD_MIN,
                 std_max: float = STD_MAX, init_std: float = 0.08):
        super().__init__()
        if not 0 < std_min <= init_std <= std_max:
            raise ValueError(f"need 0 < std_min <= init_std <= std_max, got {std_min}, {init_std}, {std_max}")
        self.log_min, self.log_max = math.log(std_min), math.log(std_max)
        self.inp = nn.Linear(cond_dim, hidden)
        self.step = nn.Embedding(steps, hidden)
        self.out = nn.Linear(hidden, out_dim)
        nn.init.zeros_(self.out.weight)  # starts at init_std everywhere, whatever the observation
        frac = (math.log(init_std) - self.log_min) / max(self.log_max - self.log_min, 1e-8)
        frac = min(max(frac, 1e-4), 1 - 1e-4)
        nn.init.constant_(self.out.bias, math.log(frac / (1 - frac)))

    def log_std(self, cond: torch.Tensor, k: int) -> torch.Tensor:
        h = mish(self.inp(cond) + self.step.weight[k])
        return self.log_min + (self.log_max - self.log_min) * torch.sigmoid(self.out(h))


class ChainPolicy(nn.Module):
    """Actor for PPO: a GenerativePolicy (gives the means) + a NoiseNet (gives the stds), K chain steps.

    The noise network sees the condition detached: exploration noise must not shape the observation encoder.
    """

    def __init__(self, actor: GenerativePolicy, steps: int = 1, std_min: float = STD_MIN, std_max: float = STD_MAX,
                 init_std: float = 0.08, noise_hidden: int = 64):
        super().__init__()
        if steps < 1:
            raise ValueError(f"chain steps must be >= 1, got {steps}")
        self.actor = actor
        self.steps = steps
        self.dim = actor.flat_dim
        self.noise = NoiseNet(actor.cond_dim, self.dim, steps, noise_hidden, std_min, std_max, init_std)
        self.times = objectives.time_grid(steps)

    def encode(self, images: dict, proprio: torch.Tensor) -> torch.Tensor:
        return self.actor.encode(images, proprio)[0]

    def mean_step(self, x: torch.Tensor, k: int, cond: torch.Tensor) -> torch.Tensor:
        """mu_k = x_k - (t_k - t_{k+1}) u(x_k, t_{k+1}, t_k): one step of the deterministic sampler (unclamped)."""
        velocity = lambda z, r, t: self.actor.velocity(z, r, t, cond)  # noqa: E731
        return objectives.sample_step(velocity, x, self.times[k], self.times[k + 1], self.actor.config.method.name)

    def mean_chain(self, cond: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise-free sampler from x_0 (B, D): what the exported bundle computes, before its clamp."""
        return mean_chain(self.actor, cond, x0, self.steps)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, generator: torch.Generator | None = None, deterministic: bool = False) -> torch.Tensor:
        """-> chain (B, K+1, D): x_0 ... x_K. deterministic: no exploration noise (x_0 is still random)."""
        return self._sample(cond, generator, deterministic)[0]

    @torch.no_grad()
    def sample_with_log_prob(self, cond: torch.Tensor, generator: torch.Generator | None = None,
                             reduce: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """-> (chain (B, K+1, D), log_prob(cond, chain, reduce)[0]) from the same network evaluations: a rollout
        needs both, and recomputing the means would run the velocity head twice per decision."""
        return self._sample(cond, generator, False, reduce)

    def _sample(self, cond, generator, deterministic, reduce="mean"):
        x = torch.randn(cond.shape[0], self.dim, generator=generator, dtype=cond.dtype, device=cond.device)
        chain, logp = [x], torch.zeros(cond.shape[0], dtype=cond.dtype, device=cond.device)
        for k in range(self.steps):
            mu = self.mean_step(x, k, cond)
            if deterministic:
                x = mu
            else:
                log_std = self.noise.log_std(cond, k)
                x = mu + log_std.exp() * torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
                logp = logp + _gaussian_log_prob(x, mu, log_std)
            chain.append(x)
        return torch.stack(chain, dim=1), self._reduce(logp, reduce)

    def _reduce(self, logp: torch.Tensor, reduce: str) -> torch.Tensor:
        if reduce == "mean":
            return logp / (self.steps * self.dim)
        if reduce != "sum":
            raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
        return logp

    def log_prob(self, cond: torch.Tensor, chain: torch.Tensor, reduce: str = "mean",
                 include_initial: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """chain (B, K+1, D) -> (log-probability (B,), entropy of the transition Gaussians (B,), per dimension).

        reduce="sum": the exact log-density; "mean": transition terms divided by K * D (used by PPO)."""
        logp = torch.zeros(chain.shape[0], dtype=chain.dtype, device=chain.device)
        log_std_sum = torch.zeros_like(logp)
        cond_noise = cond.detach()
        for k in range(self.steps):
            mu = self.mean_step(chain[:, k], k, cond)
            log_std = self.noise.log_std(cond_noise, k)
            logp = logp + _gaussian_log_prob(chain[:, k + 1], mu, log_std)
            log_std_sum = log_std_sum + log_std.sum(-1)
        n = self.steps * self.dim
        entropy = log_std_sum / n + 0.5 * (1.0 + _LOG_2PI)
        logp = self._reduce(logp, reduce)
        if include_initial:
            x0 = chain[:, 0]
            init = (-0.5 * x0.pow(2) - 0.5 * _LOG_2PI).sum(-1)
            logp = logp + (init / n if reduce == "mean" else init)
        return logp, entropy

    def actions(self, chain: torch.Tensor) -> torch.Tensor:
        """Last chain state -> (B, Ta, Da) actions in robot units (clamped to the normalized range first)."""
        a = chain[:, -1].clamp(-1.0, 1.0).reshape(-1, self.actor.config.chunk, self.actor.config.action_dim)
        return self.actor.action_normalizer.unnormalize(a)


def _gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, exp(log_std)^2), summed over the last dimension."""
    z = (x - mu) / log_std.exp()
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(-1)


def mean_chain(policy: GenerativePolicy, cond: torch.Tensor, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """A policy's noise-free K-step sampler from x_0 (B, D), unclamped (objectives.sample, as the bundle runs it)."""
    return objectives.sample(lambda z, r, t: policy.velocity(z, r, t, cond), x0, steps, policy.config.method.name)


def bc_loss(policy: ChainPolicy, reference: GenerativePolicy, images: dict, proprio: torch.Tensor,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """SPEC §4: || a_ref(o) - a_theta(o) ||^2 with both sampled deterministically from the same noise x_0.

    Mean over batch and the D action dimensions of the normalized chunks, before the [-1, 1] clamp (the clamp would
    cut the gradient where the gripper saturates). The reference is frozen: no gradient flows into it."""
    cond = policy.encode(images, proprio)
    x0 = torch.randn(cond.shape[0], policy.dim, generator=generator, dtype=cond.dtype, device=cond.device)
    with torch.no_grad():  # the reference's own mean chain, the same K
        target = mean_chain(reference, reference.encode(images, proprio)[0], x0, policy.steps)
    return (policy.mean_chain(cond, x0) - target).pow(2).mean()
