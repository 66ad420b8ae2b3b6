"""Dispersive regularization (Wang & He, arXiv 2506.09027; SPEC §2): contrastive losses with no positive pairs,
on intermediate features Z (B, D) of a batch. Lower is more spread out. Reference forms, no masking or clamping:
the released DM1/DMPO variants clamp similarities and lose their gradient once features are a few units apart.

Exactly identical features are a stationary point of every pairwise form (all differences are zero); training
never produces exact ties, and any jitter is enough for these losses to push features apart.
"""
from __future__ import annotations

import math

import torch

from dm1_ros.policy.config import DispersiveTerm


def _sq_dists(z: torch.Tensor) -> torch.Tensor:
    diff = z[:, None, :] - z[None, :, :]
    return (diff * diff).sum(-1)


def infonce_l2(z: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """log mean_{i,j} exp(-||z_i - z_j||^2 / (D tau)), diagonal included."""
    b, d = z.shape
    logits = -_sq_dists(z) / (d * tau)
    return torch.logsumexp(logits.reshape(-1), 0) - math.log(b * b)


def infonce_cosine(z: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """log mean_{i,j} exp(-(1 - cos(z_i, z_j)) / tau), diagonal included."""
    b = z.shape[0]
    zn = torch.nn.functional.normalize(z, dim=-1, eps=1e-8)
    logits = -(1.0 - zn @ zn.T) / tau
    return torch.logsumexp(logits.reshape(-1), 0) - math.log(b * b)


def hinge(z: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """mean_{i != j} max(0, margin - ||z_i - z_j||)^2."""
    b = z.shape[0]
    dist = torch.sqrt(_sq_dists(z) + 1e-12)
    off = ~torch.eye(b, dtype=torch.bool, device=z.device)
    return torch.clamp(margin - dist[off], min=0.0).pow(2).mean()


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Decorrelation: sum of squared off-diagonal covariances / D, plus mean (1 - variance)^2 on the diagonal."""
    b, d = z.shape
    zc = z - z.mean(0, keepdim=True)
    cov = zc.T @ zc / max(b - 1, 1)
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return off.pow(2).sum() / d + (1.0 - diag).pow(2).mean()


def dispersive_loss(term: DispersiveTerm, z: torch.Tensor) -> torch.Tensor:
    z = z.reshape(z.shape[0], -1)
    if term.kind == "infonce_l2":
        return infonce_l2(z, term.tau)
    if term.kind == "infonce_cosine":
        return infonce_cosine(z, term.tau)
    if term.kind == "hinge":
        return hinge(z, term.margin)
    if term.kind == "covariance":
        return covariance(z)
    raise ValueError(f"unknown dispersive loss kind {term.kind!r}")


def total_dispersive(terms: list[DispersiveTerm], features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum over the configured terms; each term logged as disp/<layer>/<kind>."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    logs: dict[str, float] = {}
    for term in terms:
        if term.layer not in features:
            raise KeyError(f"dispersive term on layer {term.layer!r}: the network exposes {sorted(features)}")
        value = dispersive_loss(term, features[term.layer])
        logs[f"disp/{term.layer}/{term.kind}"] = float(value.detach())
        total = total + term.weight * value
    return total, logs
