"""Data-parallel processes under torchrun, on PyTorch's own engine (DistributedDataParallel), for `dm1 train` and
`dm1 finetune`. One process without torchrun: world 1, every call below is a no-op and nothing is wrapped.

    ranks = Ranks.start("auto")                  # WORLD_SIZE / RANK / LOCAL_RANK from torchrun; gloo on CPU, nccl on GPU
    learner = ranks.wrap(module)                 # DDP: its forward's gradients are averaged over ranks in backward
    loss, logs = learner(batch)                  # call the wrapper, not the module, or nothing is averaged
    stop = ranks.mean(kl) > target_kl            # a decision every rank takes alike
    ranks.check_same_weights(policy)             # DistributedError if the ranks' weights differ
    ranks.close()

No rclpy here.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dm1_ros.errors import Dm1Error


class DistributedError(Dm1Error, RuntimeError):
    """The ranks disagree (weights that should be identical are not)."""


@dataclass
class Ranks:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def start(cls, device: str = "cpu") -> "Ranks":
        """Read torchrun's environment and join the process group. device: cpu, cuda, or auto (cuda when there is
        one); under torchrun each rank takes cuda:LOCAL_RANK."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        dev = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        if world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
        return cls(world, rank, local_rank, dev)

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """DDP around `module` (parameters broadcast from rank 0, gradients averaged in backward); `module` itself
        in one process. find_unused_parameters: some steps leave parameters out of the loss."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def _reduce(self, values, op) -> np.ndarray:
        t = torch.as_tensor(np.asarray(values, np.float64), device=self.device)
        if self.distributed:
            torch.distributed.all_reduce(t, op=op)
        return t.cpu().numpy()

    def sum(self, values) -> np.ndarray:
        """Elementwise sum over ranks (counts: episodes, environment steps)."""
        return self._reduce(values, torch.distributed.ReduceOp.SUM if self.distributed else None)

    def mean(self, value: float) -> float:
        """Mean over ranks of one number: the same value on every rank, for decisions all must take alike."""
        return float(self.sum([value])[0]) / self.world

    def check_same_weights(self, *modules: nn.Module) -> str:
        """The modules' weights hashed on each rank and compared; returns the digest, raises DistributedError naming
        the ranks that differ."""
        h = hashlib.sha256()
        for m in modules:
            for name, p in sorted(m.state_dict().items()):
                h.update(name.encode())
                h.update(p.detach().cpu().contiguous().numpy().tobytes())
        digest = h.hexdigest()[:16]
        if not self.distributed:
            return digest
        digests: list[str] = [""] * self.world
        torch.distributed.all_gather_object(digests, digest)
        if len(set(digests)) > 1:
            raise DistributedError("ranks hold different weights: " + ", ".join(f"rank {i} {d}" for i, d in enumerate(digests)))
        return digest

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every rank done with its peers before any tears its connections down
            torch.distributed.destroy_process_group()
