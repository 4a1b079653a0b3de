"""The training set's embeddings at an epoch start, in two classes:

- ``TrainingPassEmbeddings``: what the training forward passes already produced ("cached"
  mode). During an epoch every training pair is an anchor exactly once, so the (detached) query
  and code embeddings of the anchors cover the whole training set by the epoch's end, at no
  extra forward work. They are stale by up to one epoch of updates: the trade the paper's cost
  argument allows. With several processes each one records its own rows and one sum-reduction
  joins them.
- ``EpochStartEmbeddings``: the ones an epoch start uses, those or a fresh no-grad pass,
  computed at most once; the sampler and ``diagnostics.epoch_diagnostics`` read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class TrainingPassEmbeddings:
    """The current epoch's anchor embeddings from the training passes, filled as anchors are
    seen, and ``complete``: (queries, codes) of the last epoch in which every pair was seen."""

    def __init__(self, n: int):
        self.n = n
        self.queries: np.ndarray | None = None  # (n, d) float32, filled as anchors are seen
        self.codes: np.ndarray | None = None
        self.seen = np.zeros(n, dtype=bool)
        self.complete: tuple[np.ndarray, np.ndarray] | None = None  # last finished epoch's

    def record(self, indices: np.ndarray, queries: torch.Tensor, codes: torch.Tensor) -> None:
        """Store this process's anchors' embeddings of one step."""
        q = queries.detach().float().cpu().numpy()
        c = codes.detach().float().cpu().numpy()
        if self.queries is None:
            self.queries = np.zeros((self.n, q.shape[1]), dtype=np.float32)
            self.codes = np.zeros((self.n, c.shape[1]), dtype=np.float32)
        self.queries[indices], self.codes[indices] = q, c
        self.seen[indices] = True

    def finish_epoch(self, accelerator) -> None:
        """Join the processes' rows; the result serves the next epoch's sampler."""
        if self.queries is None:
            return
        parts = [
            torch.from_numpy(x).to(accelerator.device)
            for x in (self.queries, self.codes, self.seen.astype(np.float32)[:, None])
        ]
        if accelerator.num_processes > 1:
            parts = [accelerator.reduce(p, reduction="sum") for p in parts]
        q, c, seen = (p.cpu().numpy() for p in parts)
        if seen.min() >= 1:  # every pair was an anchor (a run stopped by max_steps may not be)
            self.complete = (q, c)
        self.queries = self.codes = None
        self.seen[:] = False

    def save(self, directory: Path, rank: int) -> None:
        """This process's partial epoch and the last complete one (for an exact resume)."""
        if self.queries is not None:
            np.savez(
                directory / f"embedding_cache_{rank}.npz",
                queries=self.queries,
                codes=self.codes,
                seen=self.seen,
            )
        if self.complete is not None and rank == 0:
            np.savez(
                directory / "embedding_cache_complete.npz",
                queries=self.complete[0],
                codes=self.complete[1],
            )

    def load(self, directory: Path, rank: int) -> None:
        path = directory / f"embedding_cache_{rank}.npz"
        if path.is_file():
            with np.load(path) as saved:
                self.queries, self.codes = saved["queries"], saved["codes"]
                self.seen = saved["seen"]
        path = directory / "embedding_cache_complete.npz"
        if path.is_file():
            with np.load(path) as saved:
                self.complete = (saved["queries"], saved["codes"])


class EpochStartEmbeddings:
    """Embeddings of the training set at an epoch start, computed at most once.

    The sampler gets last epoch's cached ones in cached mode (the first epoch has none, so it
    embeds with the initial model), else a fresh no-grad pass; diagnostics reuse whatever the
    sampler used.
    """

    def __init__(self, fresh_pass, cached, cached_mode: bool):
        # fresh_pass() -> (queries, codes); cached: TrainingPassEmbeddings.complete or None
        self._fresh_pass, self.cached, self.cached_mode = fresh_pass, cached, cached_mode
        self.fresh = self.used = None

    def fresh_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if self.fresh is None:
            self.fresh = self._fresh_pass()
        return self.fresh

    def for_sampler(self) -> tuple[np.ndarray, np.ndarray]:
        use_cache = self.cached_mode and self.cached is not None
        self.used = self.cached if use_cache else self.fresh_embeddings()
        return self.used
