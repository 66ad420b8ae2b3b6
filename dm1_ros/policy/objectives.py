"""Training objectives (SPEC §1). Convention of the released code: data at t=0, noise at t=1.

    z_t = (1 - t) a + t eps,   v = eps - a
    MeanFlow:        u(z_t, r, t) ~= v - (t - r) du/dt,  du/dt = v . d_z u + d_t u   (JVP, tangents (v, 0, 1))
    flow matching:   v(z_t, t)    ~= v                    (the same network called with r = t)
"""
from __future__ import annotations

from typing import Callable

import torch

from dm1_ros.policy.config import MethodConfig

# velocity_fn(z, r, t) -> (u, aux features); z (B, Ta*Da), r and t (B,)
VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


def sample_times(batch: int, cfg: MethodConfig, generator: torch.Generator | None = None, device=None):
    """Logit-normal (r, t) with r <= t; r = t on a fraction flow_ratio of the batch."""
    normal = torch.randn(2, batch, generator=generator, device=device) * cfg.time_std + cfg.time_mean
    s = torch.sigmoid(normal)
    t, r = s.max(0).values, s.min(0).values
    equal = torch.rand(batch, generator=generator, device=device) < cfg.flow_ratio
    return torch.where(equal, t, r), t


def meanflow_dudt(velocity_fn: VelocityFn, z, r, t, v):
    """Primal u (with autograd graph), total derivative du/dt along the flow, and the aux features.

    Forward-mode JVP with tangents (v, 0, 1): one pass through the velocity head; the encoder that made the
    condition sits outside velocity_fn, so it runs once and is never differentiated forward.
    """
    return torch.func.jvp(velocity_fn, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)), has_aux=True)


def _weighted(err: torch.Tensor, cfg: MethodConfig) -> torch.Tensor:
    """err (B,) per-sample squared error -> scalar, with optional adaptive weighting 1/(err + c)^p."""
    if cfg.adaptive_power > 0:
        w = 1.0 / (err.detach() + cfg.adaptive_c) ** cfg.adaptive_power
        return (w * err).mean()
    return err.mean()


def meanflow_loss(velocity_fn: VelocityFn, a: torch.Tensor, cfg: MethodConfig, generator=None,
                  guide_fn: VelocityFn | None = None):
    """a: (B, Ta*Da) normalized actions -> (loss, aux features, logs). guide_fn: the velocity the guided target
    mixes in (cfg.guidance; MP1: the conditional model itself, CFG: the model under the null condition)."""
    eps = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    r, t = sample_times(a.shape[0], cfg, generator, a.device)
    r, t = r.to(a.dtype), t.to(a.dtype)
    z = (1 - t[:, None]) * a + t[:, None] * eps
    v = eps - a
    if cfg.guidance.kind != "none":
        w = cfg.guidance.scale
        with torch.no_grad():
            v = w * v + (1 - w) * (guide_fn or velocity_fn)(z, t, t)[0]
    u, dudt, aux = meanflow_dudt(velocity_fn, z, r, t, v)
    target = (v - (t - r)[:, None] * dudt).detach()
    err = (u - target).pow(2).mean(-1)
    loss = _weighted(err, cfg)
    return loss, aux, {"loss/meanflow": float(err.mean().detach())}


def flow_matching_loss(velocity_fn: VelocityFn, a: torch.Tensor, cfg: MethodConfig, generator=None):
    eps = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
    _, t = sample_times(a.shape[0], cfg, generator, a.device)
    t = t.to(a.dtype)
    z = (1 - t[:, None]) * a + t[:, None] * eps
    v = eps - a
    u, aux = velocity_fn(z, t, t)
    err = (u - v).pow(2).mean(-1)
    return _weighted(err, cfg), aux, {"loss/flow_matching": float(err.mean().detach())}


def time_grid(steps: int) -> list[float]:
    """The sampler's time grid t_k = 1 - k / steps, k = 0 .. steps."""
    return [1.0 - k / steps for k in range(steps + 1)]


def sample_step(velocity_fn: VelocityFn, z: torch.Tensor, t: float, t_next: float, method: str) -> torch.Tensor:
    """One sampler step from time t to t_next < t. MeanFlow jumps with the average velocity u(z, r=t_next, t);
    flow matching takes an Euler step with the instantaneous one u(z, t, t)."""
    # (1,)-shaped times are shared by the batch; the network broadcasts them.
    t_ = torch.full((1,), t, dtype=z.dtype, device=z.device)
    t_next_ = torch.full((1,), t_next, dtype=z.dtype, device=z.device)
    u, _ = velocity_fn(z, t_next_ if method == "meanflow" else t_, t_)
    dt = t - t_next
    return z - u if dt == 1.0 else z - dt * u


def sample(velocity_fn: VelocityFn, noise: torch.Tensor, steps: int, method: str) -> torch.Tensor:
    """Noise (B, Ta*Da) at t=1 -> sample at t=0 in `steps` sample_step()s. With steps=1 MeanFlow is
    a = eps - u(eps, 0, 1)."""
    z = noise
    times = time_grid(steps)
    for k in range(steps):
        z = sample_step(velocity_fn, z, times[k], times[k + 1], method)
    return z
