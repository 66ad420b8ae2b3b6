"""A conditional 2-D multimodal task small enough to train in seconds: the one-step question in miniature.

Condition c in [-1, 1]; the action is a point drawn from four Gaussian modes on the unit circle whose
arrangement rotates with c (angle 2 pi k / 4 + c pi / 4). A sampler that averages modes lands in the middle,
where there is no data; this is what one-step flow matching does and what one-step MeanFlow must not do.

    policy = train_toy("meanflow", steps=1500)
    sw = evaluate_toy(policy, sampling_steps=1)      # sliced Wasserstein distance to the true distribution
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dm1_ros.policy.config import HeadConfig, LowDimConfig, MethodConfig, PolicyConfig
from dm1_ros.policy.model import GenerativePolicy

MODES = 4
RADIUS = 1.0
MODE_STD = 0.08


def sample_toy(cond: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """cond (N,) in [-1, 1] -> actions (N, 2)."""
    k = rng.integers(0, MODES, size=cond.shape[0])
    angle = 2 * math.pi * k / MODES + cond * math.pi / 4
    centre = RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return (centre + MODE_STD * rng.standard_normal(centre.shape)).astype(np.float32)


def toy_config(method: str, hidden: int = 256) -> PolicyConfig:
    return PolicyConfig(
        image_keys=[],
        proprio_keys=["condition"],
        proprio_dims=[1],
        action_dim=2,
        chunk=1,
        encoder="mlp",
        lowdim=LowDimConfig(hidden=64, layers=2, out_dim=32),
        head=HeadConfig(hidden=hidden, blocks=2),
        method=MethodConfig(name=method),
    )


@dataclass
class ToyTrainArgs:
    method: str = "meanflow"  # meanflow | flow_matching
    steps: int = 1500  # optimizer steps
    batch: int = 256
    lr: float = 1e-3
    seed: int = 0


def train_toy(method: str = "meanflow", steps: int = 1500, batch: int = 256, lr: float = 1e-3, seed: int = 0,
              log_every: int = 0) -> GenerativePolicy:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    policy = GenerativePolicy(toy_config(method))
    fit_cond = rng.uniform(-1, 1, 4096).astype(np.float32)
    policy.proprio_normalizer.fit(fit_cond[:, None])
    policy.action_normalizer.fit(sample_toy(fit_cond, rng))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        cond = rng.uniform(-1, 1, batch).astype(np.float32)
        actions = sample_toy(cond, rng)
        loss, logs = policy.compute_loss(
            {"proprio": torch.from_numpy(cond[:, None]), "actions": torch.from_numpy(actions[:, None, :])}, generator
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log_every and step % log_every == 0:
            print(f"{method} step {step}: {logs}")
    return policy.eval()


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, projections: int = 128, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between equal-size point sets (N, D)."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((x.shape[1], projections))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    px, py = np.sort(x @ dirs, axis=0), np.sort(y @ dirs, axis=0)
    return float(np.sqrt(np.mean((px - py) ** 2)))


def toy_samples(policy: GenerativePolicy, cond: float, n: int, sampling_steps: int, seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    c = torch.full((n, 1), float(cond))
    return policy.select_action({}, c, steps=sampling_steps, generator=generator)[:, 0].numpy()


def evaluate_toy(policy: GenerativePolicy, sampling_steps: int, conditions: int = 8, n: int = 1024, seed: int = 123) -> float:
    """Mean sliced Wasserstein distance to the true conditional distribution over a grid of conditions."""
    rng = np.random.default_rng(seed)
    scores = []
    for i, c in enumerate(np.linspace(-0.9, 0.9, conditions)):
        truth = sample_toy(np.full(n, c, np.float32), rng)
        scores.append(sliced_wasserstein(toy_samples(policy, c, n, sampling_steps, seed + i), truth, seed=seed + i))
    return float(np.mean(scores))
