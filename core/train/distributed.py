"""Data parallelism over processes started by `torchrun` or `accelerate launch`.

Every process (rank) holds a full replica of the student. All ranks draw the same global
batch (same seed); each trains on its share, and gradients are averaged with all_reduce
before the optimizer step, so the replicas stay identical. Rank 0 alone writes metrics,
checkpoints, predictions and the model. NCCL between GPUs, gloo on CPU.

With WORLD_SIZE unset (the usual single process), every method is a no-op.
"""

from __future__ import annotations

import os

STOP_CODES = {None: 0, "cancelled": 1, "paused": 2}


class Replicas:
    def __init__(self, device_type: str):
        import torch.distributed as dist

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.started_here = False
        self.comm_device = "cpu"  # NCCL needs its tensors on the GPU
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
            self.started_here = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, device):
        import torch

        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        self.comm_device = device
        return device

    def shard(self, batch: list[int]) -> list[int]:
        """This rank's share of a global batch (interleaved, so length-sorted batches split evenly)."""
        return batch[self.rank::self.world]

    def average_gradients(self, model) -> None:
        if self.world == 1:
            return
        import torch
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:  # a parameter unused on one rank must still join the reduction
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world
        for grad, averaged in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(averaged)

    def agree(self, reason: str | None) -> str | None:
        """Rank 0's stop decision, on every rank."""
        if self.world == 1:
            return reason
        import torch
        import torch.distributed as dist

        code = torch.tensor([STOP_CODES.get(reason, 1) if self.main else 0], device=self.comm_device)
        dist.broadcast(code, 0)
        return {v: k for k, v in STOP_CODES.items()}[int(code.item())]

    def in_sync(self, model) -> bool:
        """True when every rank holds the same weights (checked at the end of a run)."""
        if self.world == 1:
            return True
        import torch
        import torch.distributed as dist

        total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
        sums = [torch.zeros(1, dtype=torch.float64, device=total.device) for _ in range(self.world)]
        dist.all_gather(sums, total)
        return all(torch.equal(s, sums[0]) for s in sums)

    def close(self) -> None:
        if self.started_here:
            import torch.distributed as dist

            dist.destroy_process_group()
