"""The batch sampler interface: global batches of dataset indices, one epoch at a time.

A sampler yields the *global* batch (the contrastive batch, docs/method.md); with several
processes each one takes its own slice (``local_slice``), so the loss sees the same batch
however many processes run it. Batches depend only on (seed, epoch, and whatever the sampler
computed at epoch start and keeps in its state), so a resumed run replays them exactly.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

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


def batches_per_epoch(n: int, batch_size: int, min_last: int = 1) -> int:
    """len(chunk(range(n), batch_size, min_last)) without building it: ceil(n / batch_size),
    less one when the last batch is merged into the one before."""
    count = -(-n // batch_size)
    last = n - (count - 1) * batch_size
    return count - 1 if count > 1 and last < min_last else count


def batches_digest(batches: list[Batch]) -> str:
    """A 64-bit hex digest of one epoch's global batches (anchors and extra codes, in order):
    the trainer checks that every process computed the same ones."""
    digest = hashlib.blake2b(digest_size=8)
    for batch in batches:
        digest.update(np.asarray(batch.anchors, dtype=np.int64).tobytes() + b"|")
        if batch.extra_codes is not None:
            digest.update(np.asarray(batch.extra_codes, dtype=np.int64).tobytes())
        digest.update(b";")
    return digest.hexdigest()


def batch_extras(
    anchors: np.ndarray, per_anchor: np.ndarray, code_keys: np.ndarray | None
) -> np.ndarray:
    """A batch's extra codes from (n, l) per-anchor candidates (-1 = none): its anchors'
    candidates in anchor order, one per code text (``code_keys``; the index itself without
    keys), minus any whose code text is an anchor's own."""
    candidates = per_anchor[anchors].ravel()
    candidates = candidates[candidates >= 0]
    if code_keys is not None:
        key, anchor_keys = code_keys[candidates], code_keys[anchors]
    else:
        key, anchor_keys = candidates, anchors
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)  # first occurrence, in anchor order
    candidates, key = candidates[first], key[first]
    return candidates[~np.isin(key, anchor_keys)].astype(np.int64)


def local_slice(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This process's contiguous slice of a global batch (sizes differ by at most one)."""
    return np.array_split(batch, world_size)[rank]


class BatchSampler(ABC):
    """Yields global batches for one epoch at a time.

    Contract: ``set_epoch(e)`` then ``prepare(embed)`` (which may call ``embed`` to get
    embeddings of the whole training set) before iterating; ``len(sampler)`` equals the
    number of batches it yields; ``state_dict`` holds what cannot be recomputed from the seed.

    What the trainer asks of every sampler, declared here: ``Options`` (the dataclass of its
    config keys ``sampler.<name>_<field>``, or None), ``wants_cached_embeddings`` (whether
    ``embed()`` may return last epoch's embeddings from the training passes instead of a fresh
    pass), ``needs_embeddings()``, ``timings`` (seconds of each step of the last
    ``prepare``, embedding excluded; empty when nothing was computed), ``graph_stats`` (the
    density of the similarity graph behind the batches, ``graphs.graph_density``; empty
    for samplers without one) and ``density_warning()`` (a line to show once, or None).
    """

    name = "base"
    Options: ClassVar[type | None] = None

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        min_last: int = 1,
        options: object = None,
        device: str = "cpu",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n < batch_size:
            raise ValueError(f"batch size {batch_size} is larger than the data ({n} pairs)")
        if self.Options is not None and options is None:
            options = self.Options()
        if self.Options is not None and not isinstance(options, self.Options):
            raise TypeError(f"{self.name} sampler options must be {self.Options.__name__}")
        self.n, self.batch_size, self.seed, self.min_last = n, batch_size, seed, min_last
        self.options = options
        self.device = device  # where the similarity search runs: the training device
        self.epoch = 0
        self.timings: dict[str, float] = {}
        self.graph_stats: dict = {}
        self.query_keys: np.ndarray | None = None
        self.code_keys: np.ndarray | None = None
        self._batches: list[Batch] | None = None

    @classmethod
    def check_epochs(cls, options: object, epochs: int) -> None:
        """ValueError when ``options`` cannot work over ``epochs`` epochs (checked with the
        whole run config, before any work); by default every option works."""
        return None

    @property
    def wants_cached_embeddings(self) -> bool:
        return False

    def needs_embeddings(self) -> bool:
        """Whether ``prepare`` for the current epoch will call ``embed()``."""
        return False

    def density_warning(self) -> str | None:
        """A line to show once when the batches are close to random for lack of graph
        edges; None for samplers without a graph."""
        return None

    def set_text_keys(self, query_keys: np.ndarray, code_keys: np.ndarray) -> None:
        """Stable int64 hashes of each pair's query and code text (``data.training_data.text_keys``;
        equal text, equal key); samplers that exclude same-text pairs use them."""
        query_keys, code_keys = np.asarray(query_keys), np.asarray(code_keys)
        if query_keys.shape != (self.n,) or code_keys.shape != (self.n,):
            raise ValueError(
                f"text keys must both have shape ({self.n},); got "
                f"{query_keys.shape} and {code_keys.shape}"
            )
        self.query_keys, self.code_keys = query_keys.astype(np.int64), code_keys.astype(np.int64)

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
        """Known without embeddings: every sampler cuts N anchors into batches (``chunk``)."""
        return batches_per_epoch(self.n, self.batch_size, self.min_last)

    def state_dict(self) -> dict:
        return {"name": self.name, "epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(
                f"checkpoint sampler is '{state.get('name')}', this run uses '{self.name}'"
            )
        self.seed = state["seed"]
        self.set_epoch(state["epoch"])
