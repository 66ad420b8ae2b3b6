"""Policy checkpoints: config + weights (+ EMA weights, + optimizer state for resuming) in one torch file."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch

from dm1_ros.configuration import ConfigError, from_dict, to_dict
from dm1_ros.errors import Dm1Error
from dm1_ros.policy.config import PolicyConfig
from dm1_ros.policy.model import GenerativePolicy

CHECKPOINT_FORMAT = "dm1_ros.policy/1"


class CheckpointError(Dm1Error, RuntimeError):
    pass


def save_checkpoint(path: str | Path, policy: GenerativePolicy, ema: GenerativePolicy | None = None, **extra) -> Path:
    """Atomic: written to a temporary file, then renamed, so an interrupted save never destroys the last one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": to_dict(policy.config),
        "state_dict": policy.state_dict(),
        "ema_state_dict": ema.state_dict() if ema is not None else None,
        **extra,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
    except BaseException:  # Ctrl-C or a full disk: drop the partial file, keep the previous checkpoint
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The payload of a checkpoint file, read with torch's weights-only unpickler: tensors and plain Python types
    only, so a crafted file cannot run code (`dm1 export`, `dm1 eval`, `dm1 train --resume`, `dm1 finetune --init`
    all read through here). Raises CheckpointError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        culprit = re.search(r"(?i)unsupported GLOBAL [\w.]+", str(exc))
        if culprit is None:  # not a pickle stream torch wrote (garbage, truncation): unreadable, not hostile
            raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
        raise CheckpointError(f"{path} holds objects other than tensors and plain values, refused (loading them could "
                              f"run code; a dm1_ros checkpoint never needs them): {culprit.group(0)}") from None
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {got!r} is not {CHECKPOINT_FORMAT!r}")
    return payload


def load_checkpoint(path: str | Path, use_ema: bool = True) -> tuple[GenerativePolicy, dict]:
    """-> (policy in eval mode with EMA weights when present, the whole payload)."""
    payload = read_checkpoint(path)
    try:
        config = from_dict(PolicyConfig, payload["config"])
    except (ConfigError, ValueError) as exc:
        raise CheckpointError(f"{path}: its policy config is invalid: {exc}") from None
    policy = GenerativePolicy(config)
    state = payload["ema_state_dict"] if use_ema and payload.get("ema_state_dict") else payload["state_dict"]
    load_state_strict(policy, state, str(path))
    return policy.eval(), payload


def load_state_strict(policy: GenerativePolicy, state: dict, source: str) -> None:
    """load_state_dict with a message that names the first mismatching tensor."""
    own = policy.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        detail = (
            f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
            else f"{shapes[0][0]} has shape {shapes[0][1]}, this architecture needs {shapes[0][2]}"
        )
        raise CheckpointError(f"{source} was saved from another architecture: {detail}")
    policy.load_state_dict(state)
