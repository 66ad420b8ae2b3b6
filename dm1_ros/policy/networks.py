"""Networks (SPEC §3): DMPO's light ViT with spatial-embedding pooling, a low-dim MLP encoder, time embeddings
and the residual-MLP velocity head. About 1.78 M parameters for one 96x96 camera, 9-d proprio, Ta=4, Da=7.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dm1_ros.policy.config import HeadConfig, LowDimConfig, TimeEmbeddingConfig, VisionConfig


def mish(x: torch.Tensor) -> torch.Tensor:
    # Written out so forward-mode AD (the MeanFlow JVP) and every ONNX opset handle it.
    return x * torch.tanh(F.softplus(x))


class Mish(nn.Module):
    def forward(self, x):
        return mish(x)


class SinusoidalEmbedding(nn.Module):
    """t (B,) -> (B, dim); frequencies 1 ... 1/10000 times `scale`."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs * scale, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimeEmbedding(nn.Module):
    """sinusoidal dim -> Linear(2 dim) -> Mish -> Linear(dim)."""

    def __init__(self, cfg: TimeEmbeddingConfig):
        super().__init__()
        self.sinusoid = SinusoidalEmbedding(cfg.dim, cfg.scale)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 2 * cfg.dim), Mish(), nn.Linear(2 * cfg.dim, cfg.dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(t))


class Attention(nn.Module):
    # Plain matmul attention: exports to any ONNX opset and runs as fast as SDPA at 121 tokens.
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-LN: x + attn(LN x); x + MLP(LN x) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """(B, 3, H, W) image in [-0.5, 0.5] + (B, P) normalized proprio -> visual (B, pool_dim), tokens mean (B, C).

    Pooling ("spatial embedding"): each channel's token map plus the proprio -> Linear -> LN -> ReLU, then a learned
    weighted sum over channels.
    """

    def __init__(self, cfg: VisionConfig, image_size: tuple[int, int], proprio_dim: int):
        super().__init__()
        c = cfg.channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, c, cfg.stem_kernel, stride=cfg.stem_stride), nn.ReLU(), nn.Conv2d(c, c, 3, stride=2)
        )
        with torch.no_grad():
            h, w = self.stem(torch.zeros(1, 3, *image_size)).shape[-2:]
        self.num_tokens = h * w
        self.pos = nn.Parameter(torch.randn(1, self.num_tokens, c) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(c, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(c)
        self.pool_in = nn.Sequential(nn.Linear(self.num_tokens + proprio_dim, cfg.pool_dim), nn.LayerNorm(cfg.pool_dim), nn.ReLU())
        self.pool_weight = nn.Parameter(torch.randn(c, cfg.pool_dim) / math.sqrt(c))
        self.out_dim = cfg.pool_dim

    def forward(self, image: torch.Tensor, proprio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(image).flatten(2).transpose(1, 2) + self.pos  # (B, N, C)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        per_channel = x.transpose(1, 2)  # (B, C, N)
        prop = proprio[:, None, :].expand(-1, per_channel.shape[1], -1)
        h = self.pool_in(torch.cat([per_channel, prop], dim=-1))  # (B, C, pool_dim)
        return (h * self.pool_weight).sum(1), x.mean(1)


class LowDimEncoder(nn.Module):
    """(B, P) normalized state -> (B, out_dim)."""

    def __init__(self, cfg: LowDimConfig, in_dim: int):
        super().__init__()
        layers, d = [], in_dim
        for _ in range(cfg.layers):
            layers += [nn.Linear(d, cfg.hidden), Mish()]
            d = cfg.hidden
        layers.append(nn.Linear(d, cfg.out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = cfg.out_dim

    def forward(self, state):
        return self.net(state)


class ResidualMLPHead(nn.Module):
    """[z (B, Ta*Da), t-emb, r-emb, condition] -> (B, Ta*Da); also returns the last hidden layer (B, hidden)."""

    def __init__(self, cfg: HeadConfig, in_dim: int, out_dim: int):
        super().__init__()
        self.inp = nn.Linear(in_dim, cfg.hidden)
        self.blocks = nn.ModuleList(
            [nn.Sequential(Mish(), nn.Linear(cfg.hidden, cfg.hidden), Mish(), nn.Linear(cfg.hidden, cfg.hidden)) for _ in range(cfg.blocks)]
        )
        self.out = nn.Linear(cfg.hidden, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        h = mish(h)
        return self.out(h), h
