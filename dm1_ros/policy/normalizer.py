"""Min-max normalization to [-1, 1]; statistics are buffers, so they travel with the model (checkpoint and ONNX)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

MIN_RANGE = 1e-4  # a constant dimension maps to 0 instead of dividing by ~0


class MinMaxNormalizer(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("low", -torch.ones(dim))
        self.register_buffer("high", torch.ones(dim))

    @torch.no_grad()
    def fit(self, data: np.ndarray | torch.Tensor) -> "MinMaxNormalizer":
        """data: (N, D) or (N, ..., D); statistics per last dimension."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32).reshape(-1, self.low.numel())
        if not torch.isfinite(x).all():
            raise ValueError("cannot fit normalization: data contains NaN or Inf")
        low, high = x.min(0).values, x.max(0).values
        flat = (high - low) < MIN_RANGE
        low = torch.where(flat, low - 1.0, low)
        high = torch.where(flat, high + 1.0, high)
        self.low.copy_(low)
        self.high.copy_(high)
        return self

    # One multiply-add each way; the exported graph folds scale and offset into constants.
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        scale = 2.0 / (self.high - self.low)
        return x * scale + (-1.0 - self.low * scale)

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        half_range = (self.high - self.low) * 0.5
        return y * half_range + (self.low + half_range)

