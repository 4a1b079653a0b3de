"""Tail Batch Sampling (TBS, "Global Contrastive Batch Sampling", arXiv 2210.12874).

Puts mutually similar (hard) pairs in the same batch, to shrink the gap L^Global - L^Train(pi)
(docs/method.md). At the start of an epoch, from embeddings of all N pairs (queries X, codes Y,
unit norm, from the current model):

1. S = X @ Y.T, never held whole (``graphs.py`` works in tiles);
2. tau = the ``quantile`` (0.999) of S's entries, exact for small N, else from 1M sampled entries;
3. A_ij = 1 where S_ij > tau (``graph="quantile"``, the paper's), or where code j is one of the
   top-``knn`` codes of query i (``graph="knn"``, our scalable extension, by exact blockwise
   search or a faiss IVF index); never the diagonal (a pair's own code);
4. with ``same_text_edges="drop"`` (default), edges between two pairs with the same query text
   or the same code text are removed: the loss masks those candidates, so such an edge would
   fill a batch with negatives that do not count (``graphs.drop_same_text_edges``);
5. pi = reverse Cuthill-McKee order of A + A.T, so pairs i and j are linked when query i is
   close to code j or query j to code i (scipy's ``symmetric_mode=False`` builds the same
   A + A.T internally; we build it ourselves to relabel it first, see 6);
6. the nodes are relabelled by a random permutation (seeded by seed and epoch) before RCM,
   because RCM breaks ties and orders components and edgeless pairs by label, and the data's
   order (CodeSearchNet files are grouped by repository) should not choose them. Pairs with
   no edge therefore end up in random batches at the end of pi;
7. batches = consecutive chunks of pi of ``batch_size`` (``chunk``), their order shuffled each
   epoch (``shuffle_batches``) so that neighbouring batches of pi do not follow each other.

Epochs before ``start_epoch`` use random batches, exactly those of ``RandomSampler`` with the
same seed: a model trained from scratch has meaningless embeddings at epoch 0, and a graph
built from them groups pairs at random while looking hard (docs/method.md). ``every=E``
recomputes pi only every E epochs from ``start_epoch`` on.

Guarantee: every pair is an anchor exactly once per epoch; batches depend only on (seed, epoch,
embeddings, text keys). Cost per recomputation: one embedding pass (the trainer's, or none
with cached embeddings), O(N^2 d) for the quantile graph or one faiss index for the knn graph,
and O(edges) for RCM; ``make bench`` measures them. The tail at q holds (1 - q) N^2 entries,
i.e. (1 - q) N edges per pair on average, so the graph's density grows with N at a fixed q.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from codesearch.errors import UserError
from codesearch.samplers.base import Batch, BatchSampler, EmbedFn, chunk, epoch_rng
from codesearch.samplers.graphs import (
    EXACT_QUANTILE_LIMIT,
    KNN_BACKENDS,
    THRESHOLD_SAMPLES,
    as_embeddings,
    drop_same_text_edges,
    knn_graph,
    quantile_threshold,
    resolve_backend,
    threshold_graph,
)
from codesearch.samplers.random import random_batches

GRAPHS = ("quantile", "knn")
EMBEDDINGS = ("fresh", "cached")
SAME_TEXT_EDGES = ("drop", "keep")


def check_options(quantile: float, graph: str, knn: int, knn_backend: str, block_size: int) -> None:
    """UserError for a bad TBS option (they come from the command line or a profile)."""
    if graph not in GRAPHS:
        raise UserError(f"tbs graph must be one of {', '.join(GRAPHS)}, got '{graph}'")
    if not 0.0 < quantile < 1.0:
        raise UserError(f"tbs quantile must be in (0, 1), got {quantile}")
    if knn < 1:
        raise UserError(f"tbs knn must be >= 1, got {knn}")
    if knn_backend not in KNN_BACKENDS:
        raise UserError(
            f"tbs knn_backend must be one of {', '.join(KNN_BACKENDS)}, got '{knn_backend}'"
        )
    if block_size < 1:
        raise UserError(f"tbs block_size must be >= 1, got {block_size}")


def rcm_order(adjacency: sp.sparray, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Reverse Cuthill-McKee order of adjacency + adjacency.T after a random relabelling
    (step 5 above). Returns (pi as pair indices, {symmetric_edges, isolated})."""
    n = adjacency.shape[0]
    relabel = np.random.default_rng(seed).permutation(n)  # new label a is pair relabel[a]
    inverse = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
    inverse[relabel] = np.arange(n)
    graph = sp.csr_array(adjacency)[relabel]  # rows in the new labels
    graph.indices = inverse[graph.indices]  # columns too
    graph.has_sorted_indices = False
    graph = (graph + graph.T).tocsr()  # A + A.T, int8 entries 1 or 2
    graph.sort_indices()
    order = reverse_cuthill_mckee(graph, symmetric_mode=True)
    stats = {
        "symmetric_edges": int(graph.nnz),
        "isolated": int(np.count_nonzero(np.diff(graph.indptr) == 0)),
    }
    return relabel[order], stats


def tbs_permutation(
    queries: np.ndarray,
    codes: np.ndarray,
    quantile: float = 0.999,
    graph: str = "quantile",
    knn: int = 16,
    knn_backend: str = "auto",
    block_size: int = 2048,
    seed: int = 0,
    *,
    exact_limit: int = EXACT_QUANTILE_LIMIT,
    threshold_samples: int = THRESHOLD_SAMPLES,
    keep_graph: bool = False,
    text_keys: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict]:
    """The TBS ordering pi (N,) int64 of pairs, from (N, d) unit-norm query and code embeddings.

    ``text_keys`` = (query_keys, code_keys), (N,) int64 hashes of the texts: when given, edges
    between pairs with the same query or the same code text are dropped before RCM (step 4).

    Returns (pi, info): info holds graph, n, edges (of A, diagonal and dropped edges excluded),
    same_text_edges_dropped, symmetric_edges,
    isolated (pairs without an edge), tau and tau_exact (quantile graph), backend (knn graph),
    timings in seconds (threshold, graph, rcm), and with ``keep_graph`` the adjacency A (CSR,
    the pairs' own labels). ``seed`` picks the threshold sample, the faiss training sample and
    the RCM relabelling."""
    check_options(quantile, graph, knn, knn_backend, block_size)
    q, c = as_embeddings(queries, codes)
    n = q.shape[0]
    info: dict = {"graph": graph, "n": n}
    timings = {"threshold": 0.0}
    start = time.perf_counter()
    if graph == "quantile":
        tau, exact = quantile_threshold(
            q, c, quantile, exact_limit=exact_limit, samples=threshold_samples, seed=seed
        )
        info.update(quantile=quantile, tau=tau, tau_exact=exact)
        timings["threshold"] = time.perf_counter() - start
        start = time.perf_counter()
        adjacency = threshold_graph(q, c, tau, block_size)
    else:
        backend = resolve_backend(knn_backend, n)
        info.update(knn=knn, backend=backend)
        adjacency = knn_graph(q, c, knn, backend, block_size, seed)
    info["same_text_edges_dropped"] = 0
    if text_keys is not None:
        adjacency, info["same_text_edges_dropped"] = drop_same_text_edges(adjacency, *text_keys)
    timings["graph"] = time.perf_counter() - start
    start = time.perf_counter()
    order, stats = rcm_order(adjacency, seed)
    timings["rcm"] = time.perf_counter() - start
    info.update(edges=int(adjacency.nnz), **stats, timings=timings)
    if keep_graph:
        info["adjacency"] = adjacency
    return order, info


def permutation_seed(seed: int, epoch: int) -> int:
    """The ``seed`` of ``tbs_permutation`` for a run seed and the epoch that computes pi."""
    return int(epoch_rng(seed, epoch, stream=1).integers(2**31))


def batches_from_permutation(
    order: np.ndarray,
    batch_size: int,
    min_last: int = 1,
    shuffle_batches: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> list[np.ndarray]:
    """Consecutive chunks of ``order``; their order shuffled by ``epoch_rng(seed, epoch)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = chunk(np.asarray(order, dtype=np.int64), batch_size, min_last)
    if shuffle_batches:
        batches = [batches[i] for i in epoch_rng(seed, epoch).permutation(len(batches))]
    return batches


def tbs_batches(
    queries: np.ndarray,
    codes: np.ndarray,
    batch_size: int,
    *,
    min_last: int = 1,
    shuffle_batches: bool = True,
    seed: int = 0,
    epoch: int = 0,
    same_text_edges: str = "drop",
    text_keys: tuple[np.ndarray, np.ndarray] | None = None,
    **options,
) -> list[np.ndarray]:
    """One epoch's TBS batches for fixed embeddings: exactly what ``TBSSampler`` with this
    seed (and ``start_epoch`` <= ``epoch``) yields at ``epoch`` when its ``embed()`` returns
    these embeddings and its text keys are ``text_keys``. ``options`` are those of
    ``tbs_permutation`` (quantile, graph, knn, knn_backend, block_size)."""
    keys = _keys_for(same_text_edges, text_keys)
    order, _ = tbs_permutation(
        queries, codes, seed=permutation_seed(seed, epoch), text_keys=keys, **options
    )
    return batches_from_permutation(order, batch_size, min_last, shuffle_batches, seed, epoch)


def _keys_for(same_text_edges: str, text_keys: tuple | None) -> tuple | None:
    """The text keys ``tbs_permutation`` drops edges by: None with "keep"."""
    if same_text_edges not in SAME_TEXT_EDGES:
        raise UserError(
            f"tbs same_text_edges must be one of {', '.join(SAME_TEXT_EDGES)}, "
            f"got '{same_text_edges}'"
        )
    if same_text_edges == "keep":
        return None
    if text_keys is None:
        raise UserError(
            "tbs same_text_edges=drop needs the query and code text keys of the "
            "pairs (embeddings written by `codesearch embed` have them); pass "
            "same_text_edges=keep to build the graph without them"
        )
    return text_keys


class TBSSampler(BatchSampler):
    """Batches of similar pairs from the TBS ordering (module docstring).

    ``prepare(embed)`` calls ``embed()`` when this epoch recomputes pi (epoch >= start_epoch
    and (epoch - start_epoch) % every == 0, or no pi yet) and not otherwise; epochs before
    ``start_epoch`` are random batches. ``set_text_keys`` must come before the first TBS epoch
    when ``same_text_edges`` is "drop". ``embeddings`` (fresh | cached) is read by the trainer, which
    decides what ``embed()`` returns. After each ``prepare``, ``last_timings`` holds the seconds
    of each step (threshold, graph, rcm, chunk, total; embedding excluded) and
    ``last_graph_edges`` the edges of the graph behind the current pi.
    """

    name = "tbs"

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        min_last: int = 1,
        *,
        quantile: float = 0.999,
        graph: str = "quantile",
        knn: int = 16,
        knn_backend: str = "auto",
        shuffle_batches: bool = True,
        embeddings: str = "fresh",
        every: int = 1,
        block_size: int = 2048,
        start_epoch: int = 0,
        same_text_edges: str = "drop",
    ):
        super().__init__(n, batch_size, seed, min_last)
        check_options(quantile, graph, knn, knn_backend, block_size)
        if start_epoch < 0:
            raise UserError(f"tbs start_epoch must be >= 0, got {start_epoch}")
        _keys_for(same_text_edges, (None, None))  # checks the value
        self.start_epoch, self.same_text_edges = start_epoch, same_text_edges
        self._text_keys: tuple[np.ndarray, np.ndarray] | None = None
        if embeddings not in EMBEDDINGS:
            raise UserError(
                f"tbs embeddings must be one of {', '.join(EMBEDDINGS)}, got '{embeddings}'"
            )
        if every < 1:
            raise UserError(f"tbs every must be >= 1, got {every}")
        self.options = {
            "quantile": quantile,
            "graph": graph,
            "knn": knn,
            "knn_backend": knn_backend,
            "block_size": block_size,
        }
        self.shuffle_batches, self.embeddings, self.every = shuffle_batches, embeddings, every
        self._permutation: np.ndarray | None = None
        self._permutation_epoch: int | None = None
        self.last_timings: dict[str, float] = {}
        self.last_graph_edges: int | None = None
        self.last_info: dict = {}

    def set_text_keys(self, query_keys: np.ndarray, code_keys: np.ndarray) -> None:
        self._text_keys = (np.asarray(query_keys), np.asarray(code_keys))

    def _recomputes(self, epoch: int) -> bool:
        if epoch < self.start_epoch:
            return False
        if self._permutation is None:
            return True
        return (epoch - self.start_epoch) % self.every == 0 and self._permutation_epoch != epoch

    def needs_embeddings(self) -> bool:
        """Whether ``prepare`` for the current epoch will call ``embed()``."""
        return self._batches is None and self._recomputes(self.epoch)

    def compute_batches(self, epoch: int, embed: EmbedFn | None) -> list[Batch]:
        if epoch < self.start_epoch:
            self.last_timings, self.last_info = {}, {"random_epoch": True}
            return random_batches(self.n, self.batch_size, self.seed, epoch, self.min_last)
        timings: dict[str, float] = {}
        if self._recomputes(epoch):
            if embed is None:
                raise ValueError(
                    "the tbs sampler needs embeddings at the start of this epoch: "
                    "call prepare(embed) before iterating"
                )
            queries, codes = embed()
            if len(queries) != self.n:
                raise ValueError(f"embed() returned {len(queries)} pairs, the sampler has {self.n}")
            order, info = tbs_permutation(
                queries,
                codes,
                seed=permutation_seed(self.seed, epoch),
                text_keys=_keys_for(self.same_text_edges, self._text_keys),
                **self.options,
            )
            self._permutation, self._permutation_epoch = order, epoch
            timings.update(info.pop("timings"))
            self.last_graph_edges, self.last_info = info["edges"], info
        start = time.perf_counter()
        batches = batches_from_permutation(
            self._permutation,
            self.batch_size,
            self.min_last,
            self.shuffle_batches,
            self.seed,
            epoch,
        )
        timings["chunk"] = time.perf_counter() - start
        timings["total"] = sum(timings.values())
        self.last_timings = timings
        return [Batch(b) for b in batches]

    def __len__(self) -> int:
        """Known without embeddings: ceil(N / batch_size), less one if the last is merged."""
        count = -(-self.n // self.batch_size)
        last = self.n - (count - 1) * self.batch_size
        return count - 1 if count > 1 and last < self.min_last else count

    def state_dict(self) -> dict:
        """Adds what cannot be recomputed without embeddings: this epoch's batches and the
        last computed pi (reused while ``every`` > 1), as lists of ints (JSON)."""
        state = super().state_dict()
        state.update(
            n=self.n,
            batches=None if self._batches is None else [b.anchors.tolist() for b in self._batches],
            permutation=None if self._permutation is None else self._permutation.tolist(),
            permutation_epoch=self._permutation_epoch,
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
        if batches is not None:
            self._batches = [Batch(np.asarray(b, dtype=np.int64)) for b in batches]
