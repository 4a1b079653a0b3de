"""The TBS ordering pi and its batches for fixed embeddings (docs/method.md, "The TBS
assignment"): the similarity graph (``graphs``) without same-text edges, relabelled at random
and ordered by reverse Cuthill-McKee; batches are consecutive chunks of pi in shuffled order.
``TBSSampler`` runs exactly these functions at each epoch that recomputes pi.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import reverse_cuthill_mckee

from codesearch.errors import UserError
from codesearch.samplers.base import chunk, epoch_rng
from codesearch.samplers.graphs import (
    EXACT_QUANTILE_LIMIT,
    THRESHOLD_SAMPLES,
    drop_same_text_edges,
    knn_graph,
    quantile_threshold,
    threshold_graph,
)
from codesearch.samplers.knn import as_embeddings, resolve_backend
from codesearch.samplers.tbs import TBSOptions


def rcm_order(adjacency: sp.sparray, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Reverse Cuthill-McKee order of adjacency + adjacency.T after a random relabelling
    (steps 5 and 6 of ``samplers.tbs``). Returns (pi as pair indices, {symmetric_edges, isolated})."""
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
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, dict]:
    """The TBS ordering pi (N,) int64 of pairs, from (N, d) unit-norm query and code embeddings.

    ``text_keys`` = (query_keys, code_keys), (N,) int64 hashes of the texts: when given, edges
    between pairs with the same query or the same code text are dropped before RCM (step 4 of
    ``samplers.tbs``). The options are ``TBSOptions``' (validated there).

    The similarity tiles of the graph (and the exact top-k of the knn graph) run on ``device``,
    the training device, so only the edges reach the host for RCM; tau comes from the host
    (exact for small N, else from a sample of 10^6 entries, which costs little).

    Returns (pi, info): info holds graph, n, edges (of A, diagonal and dropped edges excluded),
    same_text_edges_dropped, symmetric_edges, isolated (pairs without an edge), tau and
    tau_exact (quantile graph), backend (knn graph), timings in seconds (threshold, graph,
    rcm), and with ``keep_graph`` the adjacency A (CSR, the pairs' own labels). ``seed`` picks
    the threshold sample, the faiss training sample and the RCM relabelling."""
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
        adjacency = threshold_graph(q, c, tau, block_size, device)
    else:
        backend = resolve_backend(knn_backend, n, device)
        info.update(knn=knn, backend=backend)
        adjacency = knn_graph(q, c, knn, backend, block_size, seed, device)
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


def neighbour_in_batch_share(adjacency: sp.sparray, batches: list[np.ndarray]) -> float:
    """The share of pairs with at least one graph neighbour (an edge of A either way) in
    their own batch: how far a batching is from ignoring the graph."""
    n = adjacency.shape[0]
    label = np.empty(n, dtype=np.int64)
    for index, anchors in enumerate(batches):
        label[np.asarray(anchors, dtype=np.int64)] = index
    edges = sp.coo_array(adjacency)  # no copy when it already is one (graph_density)
    rows, cols = edges.row, edges.col
    same = (label[rows] == label[cols]) & (rows != cols)
    has_neighbour = np.zeros(n, dtype=bool)
    has_neighbour[rows[same]] = True
    has_neighbour[cols[same]] = True
    return float(has_neighbour.mean())


def graph_density(
    adjacency: sp.sparray, isolated: int, batches: list[np.ndarray], random: list[np.ndarray]
) -> dict:
    """How much structure the TBS graph gives its batches: ``edges_per_pair`` (edges of A
    per pair; about (1 - quantile) N for the quantile graph), ``isolated_pairs`` and
    ``isolated_share`` (pairs without an edge either way: their place in pi, and so their
    batch, is arbitrary), and the share of pairs with a graph neighbour in their batch under
    TBS (``neighbour_in_batch``) and under this epoch's random order
    (``neighbour_in_random_batch``)."""
    n = adjacency.shape[0]
    adjacency = sp.coo_array(adjacency)  # converted once for both batchings
    return {
        "edges_per_pair": float(adjacency.nnz / n),
        "isolated_pairs": int(isolated),
        "isolated_share": float(isolated / n),
        "neighbour_in_batch": neighbour_in_batch_share(adjacency, batches),
        "neighbour_in_random_batch": neighbour_in_batch_share(adjacency, random),
    }


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


def tbs_order(
    queries,
    codes,
    options: TBSOptions,
    seed: int,
    text_keys,
    device: str | torch.device = "cpu",
    keep_graph: bool = False,
) -> tuple[np.ndarray, dict]:
    """pi and its info (``tbs_permutation``, on ``device``; with ``keep_graph`` the adjacency
    too) of (N, d) queries and codes under ``options``; ``text_keys`` (query keys, code keys)
    are required with ``same_text_edges="drop"``."""
    if options.same_text_edges == "keep":
        text_keys = None
    elif text_keys is None:
        raise UserError(
            "tbs same_text_edges=drop needs the query and code text keys of the pairs "
            "(embeddings written by `codesearch embed` have them); pass "
            "same_text_edges=keep to build the graph without them"
        )
    o = options
    graph = (o.quantile, o.graph, o.knn, o.knn_backend, o.block_size)
    return tbs_permutation(
        queries, codes, *graph, seed, text_keys=text_keys, device=device, keep_graph=keep_graph
    )


def tbs_batches(
    queries: np.ndarray,
    codes: np.ndarray,
    batch_size: int,
    options: TBSOptions | None = None,
    *,
    min_last: int = 1,
    seed: int = 0,
    epoch: int = 0,
    text_keys: tuple[np.ndarray, np.ndarray] | None = None,
    device: str | torch.device = "cpu",
) -> list[np.ndarray]:
    """One epoch's TBS batches for fixed embeddings: exactly what ``TBSSampler`` with these
    options and seed (and ``start_epoch`` <= ``epoch``) yields at ``epoch`` when its
    ``embed()`` returns these embeddings and its text keys are ``text_keys``."""
    options = options or TBSOptions()
    seed_pi = permutation_seed(seed, epoch)
    order, _ = tbs_order(queries, codes, options, seed_pi, text_keys, device)
    return batches_from_permutation(
        order, batch_size, min_last, options.shuffle_batches, seed, epoch
    )
