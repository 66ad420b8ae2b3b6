"""Augmentation for training only (never at evaluation: a pitfall of the released code, SPEC §1): images shifted, an
object's pose perturbed."""
from __future__ import annotations

import math

import numpy as np
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


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) the cross-product matrix."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def object_pose_noise(proprio: torch.Tensor, keys: list[str], dims: list[int], position_std_m: float,
                      rotation_std_deg: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(..., D) raw proprio holding the robot's hand pose and robosuite's 14-d nut-assembly `object` state -> the same
    with the object's world pose perturbed (Gaussian position, rotation by a Gaussian axis-angle, each per axis) and
    its hand-relative pose recomputed from the perturbed one, as a pose read from cameras arrives at the policy
    (dm1_ros/policy/cascade.py). Why: a state policy trained on exact poses is brittle to a reader's error; one trained
    on poses with reading-sized error learns what to do given such a reading. Training only."""
    from dm1_ros.policy.cascade import matrix_from_quaternion, nut_object_state

    if position_std_m <= 0 and rotation_std_deg <= 0:
        return proprio
    offsets = dict(zip(keys, np.cumsum([0, *dims])[:-1].tolist()))
    at_pos, at_quat, at_obj = offsets["robot0_eef_pos"], offsets["robot0_eef_quat"], offsets["object"]
    flat = proprio.reshape(-1, proprio.shape[-1])
    obj = flat[:, at_obj:at_obj + 14]
    nut_pos = obj[:, 7:10] + position_std_m * torch.randn(len(flat), 3, generator=generator)
    turn = torch.linalg.matrix_exp(skew(math.radians(rotation_std_deg) * torch.randn(len(flat), 3, generator=generator)))
    nut_rotation = turn @ matrix_from_quaternion(obj[:, 10:14])
    state = nut_object_state(nut_pos, nut_rotation, flat[:, at_pos:at_pos + 3], flat[:, at_quat:at_quat + 4])
    out = flat.clone()
    out[:, at_obj:at_obj + 14] = state.to(flat.dtype)
    return out.reshape(proprio.shape)
