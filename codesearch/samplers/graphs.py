"""Similarity graphs between training pairs, for Tail Batch Sampling (arXiv 2210.12874).

S = X @ Y.T is the query-by-code similarity of N pairs (unit-norm embeddings); it is never held
whole for large N, only (block_size, COL_TILE) tiles of it in reused buffers. Two graphs:

- ``threshold_graph``: A_ij = 1 where S_ij > tau, with tau the q-quantile of S's N^2 entries
  (``quantile_threshold``: exact up to ``exact_limit`` entries, else estimated from random
  (i, j) pairs). The paper's graph; O(N^2 d) time, O(N^2 (1 - q)) edges.
- ``knn_graph``: query i is linked to its top-m codes (``knn.topk_neighbors``: blockwise exact
  search, or a faiss IVF index over 8-bit codes). Our scalable extension: O(N m) edges.

``ordering.tbs_permutation`` builds one of them, drops same-text edges, and orders the pairs by
reverse Cuthill-McKee: the ordering pi that ``samplers.tbs`` cuts into batches.

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

from codesearch.samplers.knn import COL_TILE, Tiles, as_embeddings, topk_neighbors

EXACT_QUANTILE_LIMIT = 2**24  # up to this many entries of S, tau is the exact quantile
THRESHOLD_SAMPLES = 1_000_000  # random entries that estimate tau beyond that


def quantile_threshold(
    queries: np.ndarray,
    codes: np.ndarray,
    quantile: float = 0.999,
    *,
    exact_limit: int = EXACT_QUANTILE_LIMIT,
    samples: int = THRESHOLD_SAMPLES,
    seed: int = 0,
) -> tuple[float, bool]:
    """tau = the ``quantile`` of the N^2 entries of S (linear interpolation, as numpy and
    ``torch.quantile``). Exact when N^2 <= ``exact_limit``; otherwise estimated from ``samples``
    uniform random (i, j) pairs (1M samples: the tail mass above tau is 1 - q to within about
    3% at q = 0.999). Returns (tau, exact)."""
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
    (``query_keys`` / ``code_keys``: (N,) int64 text hashes). The loss masks such a candidate
    (``loss.false_negative_mask``), so the edge brings no usable negative into a batch.
    Returns (A', number of edges dropped)."""
    graph = sp.coo_array(adjacency)
    query_keys, code_keys = np.asarray(query_keys), np.asarray(code_keys)
    if query_keys.shape != (graph.shape[0],) or code_keys.shape != (graph.shape[0],):
        raise ValueError(
            f"text keys must be ({graph.shape[0]},); got {query_keys.shape} and {code_keys.shape}"
        )
    same = (query_keys[graph.row] == query_keys[graph.col]) | (
        code_keys[graph.row] == code_keys[graph.col]
    )
    kept = sp.csr_array(
        (graph.data[~same], (graph.row[~same], graph.col[~same])), shape=graph.shape
    )
    return kept, int(same.sum())
