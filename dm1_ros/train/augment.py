"""Image augmentation for training only (never at evaluation: a pitfall of the released code, SPEC §1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, H, W, C) uint8 -> same shape: pad by `pad` (edge replicate), crop back at a random offset per sample."""
    if pad <= 0:
        return images
    b, h, w, c = images.shape
    x = F.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None]).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
    x = x.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(b, 1, 1, w).expand(b, c, h, w)
    x = x.gather(3, cols)
    return x.to(images.dtype).permute(0, 2, 3, 1).contiguous()
