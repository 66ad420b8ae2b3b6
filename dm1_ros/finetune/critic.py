"""Value function with its own encoder (SPEC §4): the actor's encoder is not shared, so value regression cannot
disturb the features the pre-trained sampler relies on.

Low-dim policies: the critic normalizes the state with the policy's (fixed) statistics and runs an MLP.
Image policies: a fresh ViTEncoder from the policy's networks (same architecture as the actor's) + the MLP.
"""
from __future__ import annotations

import torch
from torch import nn

from dm1_ros.policy.config import PolicyConfig
from dm1_ros.policy.networks import Activation, LowDimEncoder, ViTEncoder
from dm1_ros.policy.normalizer import MinMaxNormalizer


class Critic(nn.Module):
    def __init__(self, config: PolicyConfig, proprio_normalizer: MinMaxNormalizer, hidden: int = 256, layers: int = 2):
        super().__init__()
        p = config.proprio_dim
        self.proprio_normalizer = MinMaxNormalizer(p)
        self.proprio_normalizer.load_state_dict(proprio_normalizer.state_dict())
        if config.encoder == "vit":
            self.image_encoders = nn.ModuleDict({k: ViTEncoder(config.vision, tuple(config.image_size), p) for k in config.image_keys})
            self.state_encoder = None
            feat = sum(e.out_dim for e in self.image_encoders.values()) + p
        else:
            self.image_encoders = nn.ModuleDict()
            self.state_encoder = LowDimEncoder(config.lowdim, p)
            feat = self.state_encoder.out_dim + p
        mlp, d = [], feat
        for _ in range(layers):
            mlp += [nn.Linear(d, hidden), Activation()]
            d = hidden
        mlp.append(nn.Linear(d, 1))
        self.mlp = nn.Sequential(*mlp)

    def forward(self, images: dict[str, torch.Tensor], proprio: torch.Tensor) -> torch.Tensor:
        """-> V(o) (B,)."""
        prop = self.proprio_normalizer.normalize(proprio).clamp(-3.0, 3.0)
        if self.state_encoder is not None:
            feats = [self.state_encoder(prop)]
        else:
            feats = [enc(images[k], prop)[0] for k, enc in self.image_encoders.items()]
        return self.mlp(torch.cat([*feats, prop], dim=-1)).squeeze(-1)
