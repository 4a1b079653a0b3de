"""Tail Batch Sampling (TBS, "Global Contrastive Batch Sampling", arXiv 2210.12874).

Puts mutually similar (hard) pairs in the same batch, to shrink the gap L^Global - L^Train(pi).
Before each epoch, from embeddings of all N pairs with the current model, ``tbs_batches`` runs
the steps of docs/method.md ("The TBS assignment", numbered as there; it also says which steps
are our decisions): the graph A of query-code similarities above the ``quantile`` of S = X Y^T
(``graph="quantile"``, the paper's) or of each query's top-``knn`` codes (``graph="knn"``),
without edges between same-text pairs (``same_text_edges="drop"``); pi = reverse Cuthill-McKee
order of A + A^T after a seeded relabelling; batches = consecutive chunks of pi, their order
shuffled (``shuffle_batches``). Epochs before ``start_epoch`` are exactly ``RandomSampler``'s
batches (a warm start for encoders trained from scratch); ``every=E`` recomputes pi every E
epochs from ``start_epoch`` on.

The whole method is three files: this one (options, sampler, ``tbs_batches``), ``graphs``
(tau, the graphs, same-text edges, RCM) and ``knn`` (the exact or faiss top-k search).

Guarantee: every pair is an anchor exactly once per epoch; batches depend only on (seed, epoch,
embeddings, text keys). Cost per recomputation: one embedding pass (none with cached
embeddings), O(N^2 d) for the quantile graph or one faiss index for the knn graph, O(edges) for
RCM (``make bench`` measures them). The tail holds (1 - q) N edges per pair on average, so the
graph's density grows with N at a fixed q.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codesearch.errors import UserError, check_choice, check_number
from codesearch.samplers.base import Batch, BatchSampler, EmbedFn, chunk, epoch_rng
from codesearch.samplers.random import random_batches

if TYPE_CHECKING:
    import torch


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
    the graph behind the current pi (``tbs_batches``' info).
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
        if epoch < self.options.start_epoch:
            self.timings, self.last_info, self.graph_stats = {}, {"random_epoch": True}, {}
            return random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
        if not self._recomputes(epoch):  # the same batches as pi's last epoch, in a new order
            start = time.perf_counter()
            batches = batches_from_permutation(
                self._permutation,
                self.batch_size,
                min_last=self.min_last,
                shuffle_batches=self.options.shuffle_batches,
                seed=self.seed,
                epoch=epoch,
            )
            chunk_seconds = time.perf_counter() - start
            self.timings = {"chunk": chunk_seconds, "total": chunk_seconds}
            return [Batch(b) for b in batches]
        if embed is None:
            raise ValueError(
                "the tbs sampler needs embeddings at the start of this epoch: "
                "call prepare(embed) before iterating"
            )
        queries, codes = embed()
        if len(queries) != self.n:
            raise ValueError(f"embed() returned {len(queries)} pairs, the sampler has {self.n}")
        keys = None if self.query_keys is None else (self.query_keys, self.code_keys)
        batches, info = tbs_batches(
            queries,
            codes,
            batch_size=self.batch_size,
            options=self.options,
            seed=self.seed,
            epoch=epoch,
            min_last=self.min_last,
            text_keys=keys,
            device=self.device,
        )
        self._permutation, self._permutation_epoch = info.pop("permutation"), epoch
        adjacency = info.pop("adjacency")
        self.timings = info.pop("timings")
        self.timings["total"] = sum(self.timings.values())
        self.last_info = info
        # epochs that reuse pi keep its density (same batch members)
        from codesearch.samplers.graphs import graph_density  # scipy, as in tbs_batches

        random = random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
        random = [b.anchors for b in random]
        self.graph_stats = graph_density(adjacency, info["isolated"], batches, random)
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


# --- the method for fixed embeddings (steps numbered as in docs/method.md) ---------------------


def tbs_batches(
    queries: np.ndarray,
    codes: np.ndarray,
    *,
    batch_size: int,
    options: TBSOptions | None = None,
    seed: int = 0,
    epoch: int = 0,
    min_last: int = 1,
    text_keys: tuple[np.ndarray, np.ndarray] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[list[np.ndarray], dict]:
    """One epoch's TBS batches for fixed (N, d) unit-norm embeddings: exactly what
    ``TBSSampler`` with these options and seed (and ``start_epoch`` <= ``epoch``) yields at
    ``epoch`` when its ``embed()`` returns them and its text keys are ``text_keys`` ((query
    keys, code keys), (N,) int64 text hashes; required with ``same_text_edges="drop"``).

    The similarity work runs on ``device`` (the training device: only the edges reach the host).
    Returns (batches, info): info holds ``permutation`` (pi, (N,) int64), ``adjacency`` (A, CSR
    in the pairs' own labels), graph, n, edges (of A, diagonal and dropped edges excluded),
    same_text_edges_dropped, symmetric_edges, isolated (pairs without an edge), tau and
    tau_exact (quantile graph), backend (knn graph) and timings in seconds (threshold, graph,
    rcm, chunk)."""
    # torch and scipy: loaded on the first TBS epoch, not when a config is read
    from codesearch.samplers.graphs import (
        drop_same_text_edges,
        knn_graph,
        quantile_threshold,
        rcm_order,
        threshold_graph,
    )
    from codesearch.samplers.knn import as_embeddings, resolve_backend

    o = options or TBSOptions()
    if o.same_text_edges == "keep":
        text_keys = None
    elif text_keys is None:
        raise UserError(
            "tbs same_text_edges=drop needs the query and code text keys of the pairs "
            "(embeddings written by `codesearch embed` have them); pass "
            "same_text_edges=keep to build the graph without them"
        )
    # 1. the embeddings of all N pairs: the caller's (the sampler's ``embed()``)
    q, c = as_embeddings(queries, codes)
    n = q.shape[0]
    seed_pi = permutation_seed(seed, epoch)  # the tau sample, faiss's sample, the relabelling
    info: dict = {"graph": o.graph, "n": n}
    timings = {"threshold": 0.0}
    start = time.perf_counter()
    if o.graph == "quantile":
        # 2.-3. S = X Y^T in tiles; tau = its q-quantile
        tau, exact = quantile_threshold(q, c, o.quantile, seed=seed_pi)
        info.update(quantile=o.quantile, tau=tau, tau_exact=exact)
        timings["threshold"] = time.perf_counter() - start
        start = time.perf_counter()
        # 4. A_ij = 1 where S_ij > tau
        adjacency = threshold_graph(q, c, tau, o.block_size, device)
    else:
        # 2. and 4. A_ij = 1 for the top-m codes j of query i (no threshold)
        backend = resolve_backend(o.knn_backend, n, device)
        info.update(knn=o.knn, backend=backend)
        adjacency = knn_graph(q, c, o.knn, backend, o.block_size, seed_pi, device)
    # 5. no edges between pairs with the same query or code text
    info["same_text_edges_dropped"] = 0
    if text_keys is not None:
        adjacency, info["same_text_edges_dropped"] = drop_same_text_edges(adjacency, *text_keys)
    timings["graph"] = time.perf_counter() - start
    # 6. pi = reverse Cuthill-McKee order of A + A^T after a seeded relabelling
    start = time.perf_counter()
    permutation, stats = rcm_order(adjacency, seed_pi)
    timings["rcm"] = time.perf_counter() - start
    # 7. batches = consecutive chunks of pi, their order shuffled
    start = time.perf_counter()
    batches = batches_from_permutation(
        permutation,
        batch_size,
        min_last=min_last,
        shuffle_batches=o.shuffle_batches,
        seed=seed,
        epoch=epoch,
    )
    timings["chunk"] = time.perf_counter() - start
    info.update(edges=int(adjacency.nnz), **stats, timings=timings)
    info.update(permutation=permutation, adjacency=adjacency)
    return batches, info


def permutation_seed(seed: int, epoch: int) -> int:
    """The seed of steps 3-6 (tau's sample, faiss's training sample, the RCM relabelling) for
    a run seed and the epoch that computes pi."""
    return int(epoch_rng(seed, epoch, stream=1).integers(2**31))


def batches_from_permutation(
    order: np.ndarray,
    batch_size: int,
    *,
    min_last: int = 1,
    shuffle_batches: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> list[np.ndarray]:
    """Step 7: consecutive chunks of ``order``, their order shuffled by
    ``epoch_rng(seed, epoch)``; also each epoch between recomputations of pi."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = chunk(np.asarray(order, dtype=np.int64), batch_size, min_last)
    if shuffle_batches:
        batches = [batches[i] for i in epoch_rng(seed, epoch).permutation(len(batches))]
    return batches
