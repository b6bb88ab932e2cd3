"""Batches sliced from in-memory tensors: no per-image work, no DataLoader."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class TensorBatches:
    """Batches sliced from in-memory tensors.

    Each epoch draws its order from (seed, epoch), so the order does not depend on the global RNG
    and a run resumed mid-epoch sees the same batches. Under DDP each process takes a disjoint
    shard; training shards are cut to equal length so every process steps the same number of
    times, evaluation shards are not cut, so every image is evaluated exactly once.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
        self.epoch = -1  # the epoch being served; each new pass over the data starts the next
        self.batches_done = 0  # batches served in that epoch (saved in checkpoints)
        self.resume_at: int | None = None

    def shard(self) -> Tensor:
        count = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(count, generator=generator)
        else:
            order = torch.arange(count)
        if self.equal_shards:
            order = order[: count - count % self.world_size]
        return order[self.rank :: self.world_size].to(self.images.device)

    def __len__(self) -> int:
        shard_size = len(self.labels) // self.world_size
        if not self.equal_shards and self.rank < len(self.labels) % self.world_size:
            shard_size += 1
        return math.ceil(shard_size / self.batch_size)

    def __iter__(self):
        # A pass starts a new epoch, even if the last one was left early (a sanity check, a batch
        # limit), unless a checkpoint's position was just loaded and lies inside its epoch.
        if self.resume_at is not None and self.resume_at < len(self):
            self.batches_done = self.resume_at
        else:
            self.epoch, self.batches_done = self.epoch + 1, 0
        self.resume_at = None
        indices = self.shard()
        for start in range(self.batches_done * self.batch_size, len(indices), self.batch_size):
            batch = indices[start : start + self.batch_size]
            self.batches_done += 1
            yield self.images[batch], self.labels[batch]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.resume_at = state["epoch"], state["batches_done"]
