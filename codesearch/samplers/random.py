"""Random batches: a fresh permutation each epoch (the UniXcoder / GraphCodeBERT recipe).

Guarantee: each pair is an anchor exactly once per epoch; batches of ``batch_size`` (the last
may be smaller, or merged into the one before when under ``min_last``). Cost: O(N).
"""

from __future__ import annotations

from codesearch.samplers.base import Batch, BatchSampler, EmbedFn, chunk, epoch_rng


class RandomSampler(BatchSampler):
    name = "random"

    def compute_batches(self, epoch: int, embed: EmbedFn | None = None) -> list[Batch]:
        order = epoch_rng(self.seed, epoch).permutation(self.n)
        return [Batch(b) for b in chunk(order, self.batch_size, self.min_last)]
