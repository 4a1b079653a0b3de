"""Random batches: a fresh permutation each epoch (the UniXcoder / GraphCodeBERT recipe).

Guarantee: each pair is an anchor exactly once per epoch; batches of ``batch_size`` (the last
may be smaller, or merged into the one before when under ``min_last``). Cost: O(N).

With ``extra_codes`` = L > 0 each anchor also brings L codes drawn uniformly at random
(``epoch_rng(seed, epoch, 1)``) under hardneg's exclusions: never its own code, a code with the
same text, or a code whose text is paired anywhere in the data with this query's text; a
batch's extras are deduplicated by code text and hold no anchor's code (``batch_extras``). The
anchors are exactly those of L = 0. This is hardneg's batch shape and code-tower work without
the mining: ``hardneg - random(extra_codes=l)`` is the value of mining at equal training cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codesearch.errors import check_number
from codesearch.samplers.base import Batch, BatchSampler, EmbedFn, batch_extras, chunk, epoch_rng

MAX_DRAW_ROUNDS = 8  # rows still short after this many (wider) draws keep fewer extras


@dataclass
class RandomOptions:
    """The config key ``sampler.random_extra_codes`` (flag ``--random-extra-codes``)."""

    extra_codes: int = 0  # uniform extra negative codes per anchor (0: plain random batches)

    def __post_init__(self) -> None:
        check_number("sampler.random_extra_codes", self.extra_codes, low=0)


def random_batches(
    n: int, batch_size: int, seed: int, epoch: int, min_last: int = 1
) -> list[Batch]:
    """One epoch of random batches: chunks of a permutation drawn from (seed, epoch)."""
    order = epoch_rng(seed, epoch).permutation(n)
    return [Batch(b) for b in chunk(order, batch_size, min_last)]


def uniform_extras(
    n: int,
    count: int,
    rng: np.random.Generator,
    query_keys: np.ndarray | None = None,
    code_keys: np.ndarray | None = None,
) -> np.ndarray:
    """(n, count) int64: for each pair, ``count`` distinct codes drawn uniformly from the
    others, under hardneg's exclusions when text keys are given; -1 where fewer survive."""
    from codesearch.samplers.mining import ExcludedPairs, first_occurrence, surviving

    excluded = None if code_keys is None else ExcludedPairs(query_keys, code_keys)
    table = np.full((n, count), -1, dtype=np.int64)
    pending, width = np.arange(n), count + 4
    for _ in range(MAX_DRAW_ROUNDS):
        draws = rng.integers(0, n, size=(len(pending), width))  # (p, width)
        draws[~first_occurrence(draws)] = -1  # each code once per row
        rows, found = surviving(pending, draws, count, excluded)
        table[pending] = rows
        pending = pending[found < count]
        if not pending.size:
            break
        width *= 2
    return table


class RandomSampler(BatchSampler):
    name = "random"
    Options = RandomOptions

    def compute_batches(self, epoch: int, embed: EmbedFn | None = None) -> list[Batch]:
        batches = random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
        if not self.options.extra_codes:
            return batches
        rng = epoch_rng(self.seed, epoch, 1)
        extras = uniform_extras(
            self.n, self.options.extra_codes, rng, self.query_keys, self.code_keys
        )
        return [Batch(b.anchors, batch_extras(b.anchors, extras, self.code_keys)) for b in batches]
