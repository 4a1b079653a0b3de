"""Random batches: a fresh permutation each epoch (the UniXcoder / GraphCodeBERT recipe).

Guarantee: each pair is an anchor exactly once per epoch; batches of ``batch_size`` (the last
may be smaller, or merged into the one before when under ``min_last``). Cost: O(N).
"""

from __future__ import annotations

from codesearch.samplers.base import Batch, BatchSampler, EmbedFn, chunk, epoch_rng


def random_batches(
    n: int, batch_size: int, seed: int, epoch: int, min_last: int = 1
) -> list[Batch]:
    """One epoch of random batches: chunks of a permutation drawn from (seed, epoch)."""
    order = epoch_rng(seed, epoch).permutation(n)
    return [Batch(b) for b in chunk(order, batch_size, min_last)]


class RandomSampler(BatchSampler):
    name = "random"

    def compute_batches(self, epoch: int, embed: EmbedFn | None = None) -> list[Batch]:
        return random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
