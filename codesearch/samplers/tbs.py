"""Tail Batch Sampling (TBS, "Global Contrastive Batch Sampling", arXiv 2210.12874).

Puts mutually similar (hard) pairs in the same batch, to shrink the gap L^Global - L^Train(pi).
Before each epoch, from embeddings of all N pairs with the current model (docs/method.md, "The
TBS assignment", which also says which steps are our decisions): the graph A of query-code
similarities above the ``quantile`` of S = X Y^T (``graph="quantile"``, the paper's) or of each
query's top-``knn`` codes (``graph="knn"``), without edges between same-text pairs
(``same_text_edges="drop"``); pi = reverse Cuthill-McKee order of A + A^T after a seeded
relabelling (``ordering.tbs_permutation``); batches = consecutive chunks of pi, their order
shuffled (``shuffle_batches``). Epochs before ``start_epoch`` are exactly ``RandomSampler``'s
batches (a warm start for encoders trained from scratch); ``every=E`` recomputes pi every E
epochs from ``start_epoch`` on.

Guarantee: every pair is an anchor exactly once per epoch; batches depend only on (seed, epoch,
embeddings, text keys). Cost per recomputation: one embedding pass (none with cached
embeddings), O(N^2 d) for the quantile graph or one faiss index for the knn graph, O(edges) for
RCM (``make bench`` measures them). The tail holds (1 - q) N edges per pair on average, so the
graph's density grows with N at a fixed q.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from codesearch.config import check_choice, check_number
from codesearch.samplers.base import Batch, BatchSampler, EmbedFn
from codesearch.samplers.random import random_batches


@dataclass
class TBSOptions:
    """TBS's config keys ``sampler.tbs_<field>`` (flags ``--tbs-<field>``), checked once here."""

    quantile: float = 0.999  # similarities above this quantile form the graph
    graph: str = "quantile"  # quantile (paper-exact) | knn (top-m codes per query)
    knn: int = 16  # m for the knn graph
    knn_backend: str = "auto"  # auto | exact | faiss
    shuffle_batches: bool = True  # shuffle the order of the batches each epoch
    embeddings: str = "fresh"  # fresh (no-grad pass at epoch start) | cached (last epoch's)
    every: int = 1  # recompute the assignment every E epochs
    block_size: int = 2048  # rows per block of the similarity computation
    start_epoch: int = 0  # epochs before this one use random batches (warm start)
    same_text_edges: str = "drop"  # drop | keep graph edges between same-text pairs

    def __post_init__(self) -> None:
        key = "sampler.tbs_"
        check_number(key + "quantile", self.quantile, 0, 1, low_open=True, high_open=True)
        check_choice(key + "graph", self.graph, ("quantile", "knn"))
        check_choice(key + "knn_backend", self.knn_backend, ("auto", "exact", "faiss"))
        check_choice(key + "embeddings", self.embeddings, ("fresh", "cached"))
        check_choice(key + "same_text_edges", self.same_text_edges, ("drop", "keep"))
        for name in ("knn", "every", "block_size"):
            check_number(key + name, getattr(self, name), low=1)
        check_number(key + "start_epoch", self.start_epoch, low=0)


class TBSSampler(BatchSampler):
    """Batches of similar pairs from the TBS ordering (module docstring).

    ``prepare(embed)`` calls ``embed()`` when this epoch recomputes pi (epoch >= start_epoch
    and (epoch - start_epoch) % every == 0, or no pi yet) and not otherwise; epochs before
    ``start_epoch`` are random batches. ``set_text_keys`` must come before the first TBS epoch
    when ``same_text_edges`` is "drop". After each ``prepare``, ``timings`` holds the seconds
    of each step (threshold, graph, rcm, chunk, total; embedding excluded) and ``last_info``
    the graph behind the current pi (``ordering.tbs_permutation``'s info).
    """

    name = "tbs"
    Options = TBSOptions

    def __init__(self, n, batch_size, seed=0, min_last=1, options: TBSOptions = None, device="cpu"):
        super().__init__(n, batch_size, seed, min_last, options, device)
        self._permutation: np.ndarray | None = None
        self._permutation_epoch: int | None = None
        self.last_info: dict = {}
        self._warned = False

    @classmethod
    def check_epochs(cls, options: TBSOptions, epochs: int) -> None:
        if options.start_epoch >= epochs:
            raise ValueError(
                f"sampler.tbs_start_epoch {options.start_epoch} leaves no TBS epoch in "
                f"train.epochs {epochs} (epochs before it use random batches); lower it or "
                "train more epochs"
            )

    @property
    def wants_cached_embeddings(self) -> bool:
        return self.options.embeddings == "cached"

    def _recomputes(self, epoch: int) -> bool:
        start = self.options.start_epoch
        if epoch < start:
            return False
        if self._permutation is None:
            return True
        return (epoch - start) % self.options.every == 0 and self._permutation_epoch != epoch

    def needs_embeddings(self) -> bool:
        return self._batches is None and self._recomputes(self.epoch)

    def compute_batches(self, epoch: int, embed: EmbedFn | None) -> list[Batch]:
        # the ordering needs torch and scipy: loaded when a TBS epoch runs, not when a config is
        # read (`codesearch --help` starts without them)
        from codesearch.samplers.ordering import (
            batches_from_permutation,
            graph_density,
            permutation_seed,
            tbs_order,
        )

        if epoch < self.options.start_epoch:
            self.timings, self.last_info, self.graph_stats = {}, {"random_epoch": True}, {}
            return random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
        timings: dict[str, float] = {}
        adjacency = None
        if self._recomputes(epoch):
            if embed is None:
                raise ValueError(
                    "the tbs sampler needs embeddings at the start of this epoch: "
                    "call prepare(embed) before iterating"
                )
            queries, codes = embed()
            if len(queries) != self.n:
                raise ValueError(f"embed() returned {len(queries)} pairs, the sampler has {self.n}")
            keys = None if self.query_keys is None else (self.query_keys, self.code_keys)
            seed_pi = permutation_seed(self.seed, epoch)
            order, info = tbs_order(
                queries, codes, self.options, seed_pi, keys, self.device, keep_graph=True
            )
            self._permutation, self._permutation_epoch = order, epoch
            timings.update(info.pop("timings"))
            adjacency = info.pop("adjacency")
            self.last_info = info
        start = time.perf_counter()
        batches = batches_from_permutation(
            self._permutation,
            self.batch_size,
            self.min_last,
            self.options.shuffle_batches,
            self.seed,
            epoch,
        )
        timings["chunk"] = time.perf_counter() - start
        timings["total"] = sum(timings.values())
        self.timings = timings
        if adjacency is not None:  # epochs that reuse pi keep its density (same batch members)
            random = random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
            random = [b.anchors for b in random]
            isolated = self.last_info["isolated"]
            self.graph_stats = graph_density(adjacency, isolated, batches, random)
        return [Batch(b) for b in batches]

    def density_warning(self) -> str | None:
        """Once per sampler: a line when most pairs have no edge in the TBS graph (their
        batches are as good as random), saying what would connect them."""
        stats = self.graph_stats
        if self._warned or not stats or stats["isolated_share"] <= 0.5:
            return None
        self._warned = True
        target = 16  # edges per pair to aim for: a batch then holds many of each pair's
        quantile = max(0.0, 1 - target / self.n)
        where = (
            f"quantile {self.options.quantile}"
            if self.options.graph == "quantile"
            else f"knn {self.options.knn}"
        )
        return (
            f"warning: tbs graph ({where}, {self.n} pairs): {stats['isolated_pairs']} pairs "
            f"({stats['isolated_share']:.0%}) have no edge, {stats['edges_per_pair']:.1f} edges "
            f"per pair, so most batches are close to random; sampler.tbs_quantile {quantile:.4g} "
            f"(about {target} edges per pair at this size) or sampler.tbs_graph knn connects "
            "every pair"
        )

    def state_dict(self) -> dict:
        """Adds what cannot be recomputed without embeddings: this epoch's batches and the
        last computed pi (reused while ``every`` > 1), as lists of ints (JSON)."""
        state = super().state_dict()
        state.update(
            n=self.n,
            batches=None if self._batches is None else [b.anchors.tolist() for b in self._batches],
            permutation=None if self._permutation is None else self._permutation.tolist(),
            permutation_epoch=self._permutation_epoch,
            graph_stats=self.graph_stats,
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state.get("n", self.n) != self.n:
            raise ValueError(
                f"checkpoint tbs sampler has {state['n']} pairs, this run has {self.n}"
            )
        permutation, batches = state.get("permutation"), state.get("batches")
        self._permutation = None if permutation is None else np.asarray(permutation, np.int64)
        self._permutation_epoch = state.get("permutation_epoch")
        self.graph_stats = dict(state.get("graph_stats") or {})
        if batches is not None:
            self._batches = [Batch(np.asarray(b, dtype=np.int64)) for b in batches]
