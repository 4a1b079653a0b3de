"""The batch sampler interface: global batches of dataset indices, one epoch at a time.

A sampler yields the *global* batch (the contrastive batch, docs/method.md); with several
processes each one takes its own slice (``local_slice``), so the loss sees the same batch
however many processes run it. Batches depend only on (seed, epoch, and whatever the sampler
computed at epoch start and keeps in its state), so a resumed run replays them exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# embed() -> (queries (N, d), codes (N, d)) float32, unit norm, row i = training pair i
EmbedFn = Callable[[], tuple[np.ndarray, np.ndarray]]


@dataclass
class Batch:
    """One global batch: anchor pair indices, plus extra candidate codes (hard negatives)."""

    anchors: np.ndarray  # (k,) int64 training pair indices
    extra_codes: np.ndarray | None = None  # (e,) int64 indices whose code joins as negatives


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, stream)."""
    return np.random.default_rng([seed, epoch, stream])


def chunk(order: np.ndarray, batch_size: int, min_last: int = 1) -> list[np.ndarray]:
    """Cut an ordering into consecutive batches of ``batch_size``; every index once.

    A last batch smaller than ``min_last`` (e.g. fewer anchors than processes) is merged into
    the one before it rather than dropped, so every pair is an anchor exactly once per epoch.
    """
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < min_last:
        last = batches.pop()  # pop first: `batches[-2] = ...pop()` would hit the wrong slot
        batches[-1] = np.concatenate([batches[-1], last])
    return batches


def local_slice(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This process's contiguous slice of a global batch (sizes differ by at most one)."""
    return np.array_split(batch, world_size)[rank]


class BatchSampler(ABC):
    """Yields global batches for one epoch at a time.

    Contract: ``set_epoch(e)`` then ``prepare(embed)`` (which may call ``embed`` to get
    embeddings of the whole training set) before iterating; ``len(sampler)`` equals the
    number of batches it yields; ``state_dict`` holds what cannot be recomputed from the seed.
    """

    name = "base"

    def __init__(self, n: int, batch_size: int, seed: int = 0, min_last: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n < batch_size:
            raise ValueError(f"batch size {batch_size} is larger than the data ({n} pairs)")
        self.n, self.batch_size, self.seed, self.min_last = n, batch_size, seed, min_last
        self.epoch = 0
        self._batches: list[Batch] | None = None

    def set_text_keys(self, query_keys: np.ndarray, code_keys: np.ndarray) -> None:
        """Stable int64 hashes of each pair's query and code text (hardneg uses them to
        exclude duplicates of the positive); samplers that do not need them ignore them."""
        return None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._batches = None
        self.epoch = epoch

    def prepare(self, embed: EmbedFn | None = None) -> None:
        """Compute this epoch's batches (idempotent)."""
        if self._batches is None:
            self._batches = self.compute_batches(self.epoch, embed)

    @abstractmethod
    def compute_batches(self, epoch: int, embed: EmbedFn | None) -> list[Batch]:
        """The batches of one epoch."""

    def batches(self) -> list[Batch]:
        self.prepare()
        return self._batches

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def state_dict(self) -> dict:
        return {"name": self.name, "epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"checkpoint sampler is '{state.get('name')}', this run uses '{self.name}'"
            )
        self.seed = state["seed"]
        self.set_epoch(state["epoch"])
