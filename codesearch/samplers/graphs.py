"""Similarity graphs between training pairs, for Tail Batch Sampling (arXiv 2210.12874).

S = X @ Y.T is the query-by-code similarity of N pairs (unit-norm embeddings); it is never held
whole for large N, only (block_size, COL_TILE) tiles of it in reused buffers. Two graphs:

- ``threshold_graph``: A_ij = 1 where S_ij > tau, with tau the q-quantile of S's N^2 entries
  (``quantile_threshold``: exact up to ``exact_limit`` entries, else estimated from random
  (i, j) pairs). The paper's graph; O(N^2 d) time, O(N^2 (1 - q)) edges.
- ``knn_graph``: query i is linked to its top-m codes (``knn.topk_neighbors``: blockwise exact
  search, or a faiss IVF index over 8-bit codes). Our scalable extension: O(N m) edges.

Steps 2-6 of docs/method.md ("The TBS assignment"), in the order ``tbs.tbs_batches`` runs them:
tau (``quantile_threshold``), the graph A (``threshold_graph`` or ``knn_graph``), no edges
between same-text pairs (``drop_same_text_edges``), pi = reverse Cuthill-McKee order of A + A^T
(``rcm_order``); then ``graph_density``, how much structure A gives a batching.

Both return a scipy CSR array (N, N) of int8 ones in the pairs' own labels, row i holding
the codes j linked to query i. The diagonal (a query's own code, S_ii, usually the largest
entry of its row) is never an edge: a pair always shares its batch with itself, so the edge
says nothing about the assignment. tau is still the quantile of all N^2 entries, diagonal
included, as the paper computes it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import reverse_cuthill_mckee

from codesearch.loss import same_text
from codesearch.samplers.knn import COL_TILE, Tiles, as_embeddings, topk_neighbors

EXACT_QUANTILE_LIMIT = 2**24  # up to this many entries of S, tau is the exact quantile
THRESHOLD_SAMPLES = 1_000_000  # random entries that estimate tau beyond that


def quantile_threshold(
    queries: np.ndarray,
    codes: np.ndarray,
    quantile: float = 0.999,
    *,
    exact_limit: int | None = None,
    samples: int | None = None,
    seed: int = 0,
) -> tuple[float, bool]:
    """tau = the ``quantile`` of the N^2 entries of S (linear interpolation, as numpy and
    ``torch.quantile``). Exact when N^2 <= ``exact_limit``; otherwise estimated from ``samples``
    uniform random (i, j) pairs (1M samples: the tail mass above tau is 1 - q to within about
    3% at q = 0.999). Both default to the module's constants. Returns (tau, exact)."""
    exact_limit = EXACT_QUANTILE_LIMIT if exact_limit is None else exact_limit
    samples = THRESHOLD_SAMPLES if samples is None else samples
    q, c = as_embeddings(queries, codes)
    n = q.shape[0]
    if n * n <= exact_limit:
        s = torch.from_numpy(q) @ torch.from_numpy(c).T  # (N, N)
        return float(np.quantile(s.numpy().ravel(), quantile)), True
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    rng = np.random.default_rng(seed)
    values = np.empty(samples, dtype=np.float32)
    for start in range(0, samples, 65536):
        m = min(65536, samples - start)
        i, j = rng.integers(n, size=m), rng.integers(n, size=m)
        values[start : start + m] = np.einsum("ij,ij->i", q[i], c[j])
    return float(np.quantile(values, quantile)), False


def threshold_graph(
    queries: np.ndarray,
    codes: np.ndarray,
    tau: float,
    block_size: int = 2048,
    device: str | torch.device = "cpu",
) -> sp.csr_array:
    """A_ij = 1 where S_ij > tau (i != j), built tile by tile over query rows on ``device``
    (the training device: on a GPU the tiles stay there and only the edges move to the
    host); memory is the tile buffers plus the edges, never N^2."""
    q, c = (torch.from_numpy(x).to(device) for x in as_embeddings(queries, codes))
    n = q.shape[0]
    tiles = Tiles(min(block_size, n), min(COL_TILE, n), device)
    rows, cols = [], []
    for r0 in range(0, n, block_size):
        qb = q[r0 : r0 + block_size]  # (b, d)
        for c0 in range(0, n, COL_TILE):
            hits = torch.nonzero(
                tiles.above(tiles.scores(qb, c[c0 : c0 + COL_TILE]), tau)
            )  # (e, 2)
            r, k = hits[:, 0] + r0, hits[:, 1] + c0
            off_diagonal = r != k
            rows.append(r[off_diagonal].to(torch.int32).cpu().numpy())
            cols.append(k[off_diagonal].to(torch.int32).cpu().numpy())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))


def knn_graph(
    queries: np.ndarray,
    codes: np.ndarray,
    m: int = 16,
    backend: str = "auto",
    block_size: int = 2048,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> sp.csr_array:
    """A_ij = 1 for the top-``m`` codes j != i of query i (searched as top m + 1, own code
    dropped, or the last one where the own code was not found; exact search on ``device``)."""
    q, c = as_embeddings(queries, codes)
    n = q.shape[0]
    k = min(m + 1, n)
    _, found = topk_neighbors(q, c, k, backend, block_size, seed, device)  # (N, k)
    rows = np.broadcast_to(np.arange(n)[:, None], found.shape)
    keep = (found >= 0) & (found != rows)
    keep &= np.cumsum(keep, axis=1) <= m
    return sp.csr_array(
        (
            np.ones(int(keep.sum()), dtype=np.int8),
            (rows[keep].astype(np.int32), found[keep].astype(np.int32)),
        ),
        shape=(n, n),
    )


def drop_same_text_edges(
    adjacency: sp.sparray, query_keys: np.ndarray, code_keys: np.ndarray
) -> tuple[sp.csr_array, int]:
    """A without the edges (i, j) whose pairs share their query text or their code text
    (``query_keys`` / ``code_keys``: (N,) int64 text hashes; ``loss.same_text``, the rule of
    the loss's mask), so the edge would bring no usable negative into a batch.
    Returns (A', number of edges dropped)."""
    graph = sp.coo_array(adjacency)
    query_keys, code_keys = np.asarray(query_keys), np.asarray(code_keys)
    if query_keys.shape != (graph.shape[0],) or code_keys.shape != (graph.shape[0],):
        raise ValueError(
            f"text keys must be ({graph.shape[0]},); got {query_keys.shape} and {code_keys.shape}"
        )
    same = same_text(
        query_keys[graph.row], code_keys[graph.row], query_keys[graph.col], code_keys[graph.col]
    )
    kept = sp.csr_array(
        (graph.data[~same], (graph.row[~same], graph.col[~same])), shape=graph.shape
    )
    return kept, int(same.sum())


def rcm_order(adjacency: sp.sparray, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Reverse Cuthill-McKee order of adjacency + adjacency.T after a random relabelling
    (step 6 of docs/method.md). Returns (pi as pair indices, {symmetric_edges, isolated})."""
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
