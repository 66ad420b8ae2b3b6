"""Networks (SPEC §3, §7): DMPO's light ViT with spatial-embedding pooling, DP3's point encoder, a low-dim MLP
encoder, time embeddings and the residual-MLP velocity head. About 1.78 M parameters for one 96x96 camera, 9-d proprio, Ta=4, Da=7.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dm1_ros.policy.config import HeadConfig, LowDimConfig, PointNetConfig, TimeEmbeddingConfig, VisionConfig


def mish(x: torch.Tensor) -> torch.Tensor:
    # Written out so forward-mode AD (the MeanFlow JVP) and every ONNX opset handle it.
    return x * torch.tanh(F.softplus(x))


ACTIVATIONS = {"mish": mish, "silu": F.silu}  # HeadConfig.activation


class Activation(nn.Module):
    """An activation of ACTIVATIONS by name: the head's is HeadConfig.activation, the other MLPs keep Mish."""

    def __init__(self, name: str = "mish"):
        super().__init__()
        self.name = name
        self.fn = ACTIVATIONS[name]

    def forward(self, x):
        return self.fn(x)


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
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, 2 * cfg.dim), Activation(), nn.Linear(2 * cfg.dim, cfg.dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(t))


class Attention(nn.Module):
    # Plain matmul attention: exports to any ONNX opset and runs as fast as SDPA at 121 tokens.
    def __init__(self, dim: int, heads: int, tokens: int):
        super().__init__()
        self.heads, self.dim, self.tokens = heads, dim, tokens
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Static sizes (batch -1) keep Shape/Gather nodes out of the ONNX graph; each costs ~10 us at batch 1.
        n, d, h = self.tokens, self.dim, self.heads
        q, k, v = self.qkv(x).reshape(-1, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax((q * (d // h) ** -0.5) @ k.transpose(-2, -1), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(-1, n, d))


class TransformerBlock(nn.Module):
    """Pre-LN: x + attn(LN x); x + MLP(LN x) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, tokens: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, tokens)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """(B, H, W, 3) uint8 image + (B, P) normalized proprio -> visual (B, pool_dim), tokens mean (B, C).

    The image is seen as uint8 / 255 - 0.5; that affine map is folded into the first convolution (exact: the stem
    has no padding), so the exported graph does it for free.

    Pooling ("spatial embedding"): each channel's token map plus the proprio -> Linear -> LN -> ReLU, then a learned
    weighted sum over channels.
    """

    def __init__(self, cfg: VisionConfig, image_size: tuple[int, int], proprio_dim: int):
        super().__init__()
        c = cfg.channels
        downsample = [nn.ReLU(), nn.Conv2d(c, c, 3, stride=2)] if cfg.stem_downsample else []
        self.stem = nn.Sequential(nn.Conv2d(3, c, cfg.stem_kernel, stride=cfg.stem_stride), *downsample)
        with torch.no_grad():
            h, w = self.stem(torch.zeros(1, 3, *image_size)).shape[-2:]
        self.num_tokens = h * w
        self.pos = nn.Parameter(torch.randn(1, self.num_tokens, c) * 0.02)
        self.blocks = nn.ModuleList([TransformerBlock(c, cfg.heads, cfg.mlp_ratio, self.num_tokens) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(c)
        self.pool_in = nn.Sequential(nn.Linear(self.num_tokens + proprio_dim, cfg.pool_dim), nn.LayerNorm(cfg.pool_dim), nn.ReLU())
        self.pool_weight = nn.Parameter(torch.randn(c, cfg.pool_dim) / math.sqrt(c))
        self.out_dim = cfg.pool_dim

        self.channels = c

    def forward(self, image: torch.Tensor, proprio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(torch.float32)  # (B, 3, H, W) in 0..255
        conv = self.stem[0]
        weight = conv.weight / 255.0
        bias = conv.bias - 0.5 * conv.weight.sum((1, 2, 3))
        x = F.conv2d(x, weight, bias, stride=conv.stride)
        if len(self.stem) > 1:
            x = self.stem[2](torch.relu(x))
        x = x.reshape(-1, self.channels, self.num_tokens).transpose(1, 2) + self.pos  # (B, N, C)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        # Linear over [channel's token map, proprio] split in two, so proprio is projected once, not per channel.
        lin = self.pool_in[0]
        w_tok, w_prop = lin.weight[:, : self.num_tokens], lin.weight[:, self.num_tokens :]
        h = x.transpose(1, 2) @ w_tok.T + (proprio @ w_prop.T + lin.bias)[:, None, :]  # (B, C, pool_dim)
        h = self.pool_in[2](self.pool_in[1](h))
        return (h * self.pool_weight).sum(1), x.mean(1)


class PointNetEncoder(nn.Module):
    """DP3: (B, N, 3) points -> feature (B, out_dim) and the max-pooled per-point features (B, hidden[-1])."""

    def __init__(self, cfg: PointNetConfig):
        super().__init__()
        layers, d = [], 3
        for width in cfg.hidden:
            layers += [nn.Linear(d, width), nn.LayerNorm(width), nn.ReLU()]
            d = width
        self.mlp = nn.Sequential(*layers)
        self.project = nn.Sequential(nn.Linear(d, cfg.out_dim), nn.LayerNorm(cfg.out_dim))
        self.out_dim = cfg.out_dim

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.mlp(points.to(torch.float32)).amax(dim=1)
        return self.project(pooled), pooled


class LowDimEncoder(nn.Module):
    """(B, P) normalized state -> (B, out_dim)."""

    def __init__(self, cfg: LowDimConfig, in_dim: int):
        super().__init__()
        layers, d = [], in_dim
        for _ in range(cfg.layers):
            layers += [nn.Linear(d, cfg.hidden), Activation()]
            d = cfg.hidden
        layers.append(nn.Linear(d, cfg.out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = cfg.out_dim

    def forward(self, state):
        return self.net(state)


class ResidualMLPHead(nn.Module):
    """[z (B, Ta*Da), t-emb (B or 1, 2 E), condition (B, C)] -> (B, Ta*Da); also the last hidden layer (B, hidden).

    The input layer is one Linear over the concatenation, applied piecewise: a time embedding shared by the batch
    (sampling) is then projected once and broadcast, and is a constant in the exported graph.
    """

    def __init__(self, cfg: HeadConfig, z_dim: int, time_dim: int, cond_dim: int, out_dim: int):
        super().__init__()
        self.splits = (z_dim, time_dim, cond_dim)
        self.inp = nn.Linear(z_dim + time_dim + cond_dim, cfg.hidden)
        self.blocks = nn.ModuleList(
            [nn.Sequential(Activation(cfg.activation), nn.Linear(cfg.hidden, cfg.hidden), Activation(cfg.activation),
                           nn.Linear(cfg.hidden, cfg.hidden)) for _ in range(cfg.blocks)]
        )
        self.activation = ACTIVATIONS[cfg.activation]
        self.out = nn.Linear(cfg.hidden, out_dim)

    def forward(self, z: torch.Tensor, temb: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w_z, w_t, w_c = self.inp.weight.split(self.splits, dim=1)
        h = z @ w_z.T + cond @ w_c.T + (temb @ w_t.T + self.inp.bias)
        for block in self.blocks:
            h = h + block(h)
        h = self.activation(h)
        return self.out(h), h
