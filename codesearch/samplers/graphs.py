"""Similarity graphs between training pairs, for Tail Batch Sampling (arXiv 2210.12874).

S = X @ Y.T is the query-by-code similarity of N pairs (unit-norm embeddings); it is never held
whole for large N, only (block_size, COL_TILE) tiles of it in reused buffers. Two graphs:

- ``threshold_graph``: A_ij = 1 where S_ij > tau, with tau the q-quantile of S's N^2 entries
  (``quantile_threshold``: exact up to ``exact_limit`` entries, else estimated from random
  (i, j) pairs). The paper's graph; O(N^2 d) time, O(N^2 (1 - q)) edges.
- ``knn_graph``: query i is linked to its top-m codes (``topk_neighbors``: blockwise exact
  search, or a faiss IVF index over 8-bit codes). Our scalable extension: O(N m) edges.

Both return a scipy CSR array (N, N) of int8 ones in the pairs' own labels, row i holding
the codes j linked to query i. The diagonal (a query's own code, S_ii, usually the largest
entry of its row) is never an edge: a pair always shares its batch with itself, so the edge
says nothing about the assignment. tau is still the quantile of all N^2 entries, diagonal
included, as the paper computes it.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from codesearch.errors import UserError

COL_TILE = 16384  # codes per tile of S: a (2048, 16384) float32 tile is 128 MB
EXACT_QUANTILE_LIMIT = 2**24  # up to this many entries of S, tau is the exact quantile
THRESHOLD_SAMPLES = 1_000_000  # random entries that estimate tau beyond that
AUTO_FAISS_MIN = 30_000  # knn_backend "auto": exact search below this many pairs, faiss above
IVF_NPROBE = 16  # inverted lists visited per query (benchmarks/bench_samplers.py: knn_recall)
KNN_BACKENDS = ("auto", "exact", "faiss")


def as_embeddings(queries: object, codes: object) -> tuple[np.ndarray, np.ndarray]:
    """Both (N, d), N > 0, as C-contiguous float32 arrays (no copy when they already are)."""
    q = np.ascontiguousarray(np.asarray(queries), dtype=np.float32)
    c = np.ascontiguousarray(np.asarray(codes), dtype=np.float32)
    if q.ndim != 2 or q.shape != c.shape or q.shape[0] == 0:
        raise ValueError(
            f"queries and codes must both be (N, d) with N > 0; got {q.shape} and {c.shape}"
        )
    return q, c


class _Tiles:
    """Reused buffers for (rows, cols) tiles of S; each tile is a contiguous view."""

    def __init__(self, rows: int, cols: int):
        self.values = torch.empty(rows * cols)
        self.mask = torch.empty(rows * cols, dtype=torch.bool)

    def scores(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.values[: q.shape[0] * c.shape[0]].view(q.shape[0], c.shape[0])
        return torch.mm(q, c.T, out=out)  # (b, w)

    def above(self, scores: torch.Tensor, tau: float) -> torch.Tensor:
        out = self.mask[: scores.numel()].view(scores.shape)
        return torch.gt(scores, tau, out=out)  # (b, w)


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
    if not 0.0 < quantile < 1.0:
        raise UserError(f"tbs quantile must be in (0, 1), got {quantile}")
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
    queries: np.ndarray, codes: np.ndarray, tau: float, block_size: int = 2048
) -> sp.csr_array:
    """A_ij = 1 where S_ij > tau (i != j), built tile by tile over query rows; memory is the
    tile buffers plus the edges, never N^2."""
    if block_size < 1:
        raise UserError(f"tbs block_size must be >= 1, got {block_size}")
    q, c = (torch.from_numpy(x) for x in as_embeddings(queries, codes))
    n = q.shape[0]
    tiles = _Tiles(min(block_size, n), min(COL_TILE, n))
    rows, cols = [], []
    for r0 in range(0, n, block_size):
        qb = q[r0 : r0 + block_size]  # (b, d)
        for c0 in range(0, n, COL_TILE):
            hits = torch.nonzero(
                tiles.above(tiles.scores(qb, c[c0 : c0 + COL_TILE]), tau)
            )  # (e, 2)
            r, k = hits[:, 0] + r0, hits[:, 1] + c0
            off_diagonal = r != k
            rows.append(r[off_diagonal].to(torch.int32).numpy())
            cols.append(k[off_diagonal].to(torch.int32).numpy())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))


def _exact_topk(
    q: np.ndarray, c: np.ndarray, k: int, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise exact top-k: per tile of codes a topk, merged into the running best."""
    qt, ct = torch.from_numpy(q), torch.from_numpy(c)
    n, m = q.shape[0], c.shape[0]
    tiles = _Tiles(min(block_size, n), min(COL_TILE, m))
    scores = np.empty((n, k), dtype=np.float32)
    indices = np.empty((n, k), dtype=np.int64)
    for r0 in range(0, n, block_size):
        qb = qt[r0 : r0 + block_size]  # (b, d)
        best_v = best_i = None
        for c0 in range(0, m, COL_TILE):
            s = tiles.scores(qb, ct[c0 : c0 + COL_TILE])  # (b, w)
            v, i = torch.topk(s, min(k, s.shape[1]), dim=1)  # (b, k')
            i += c0
            if best_v is not None:
                v, pos = torch.topk(torch.cat([best_v, v], dim=1), k, dim=1)  # (b, k)
                i = torch.gather(torch.cat([best_i, i], dim=1), 1, pos)
            best_v, best_i = v, i
        scores[r0 : r0 + len(qb)], indices[r0 : r0 + len(qb)] = best_v.numpy(), best_i.numpy()
    return scores, indices


def _faiss_topk(q: np.ndarray, c: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k with a faiss IVF index over 8-bit scalar-quantised codes: about
    4 sqrt(N) lists (spherical k-means, 10 iterations, 40 codes per list), ``IVF_NPROBE``
    lists probed per query; the k found are then re-scored exactly and re-sorted.
    Deterministic for fixed inputs and seed (HNSW's parallel build is not, and every process
    must compute the same batches). IVF-Flat, IVF-SQ8 and HNSW were compared when this was
    chosen: SQ8 scans about 4x faster than Flat at nearly the same recall."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is in requirements.txt
        raise UserError(
            "knn_backend 'faiss' needs faiss-cpu (pip install faiss-cpu); or use knn_backend exact"
        ) from None
    faiss.omp_set_num_threads(torch.get_num_threads())
    n, d = c.shape
    nlist = max(1, min(int(4 * math.sqrt(n)), n // 40))
    index = faiss.IndexIVFScalarQuantizer(
        faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter, index.cp.seed, index.cp.spherical = 10, seed % 2**31, True
    rng = np.random.default_rng(seed)
    index.train(c[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))])
    index.add(c)
    index.nprobe = min(nlist, IVF_NPROBE)
    _, indices = index.search(q, k)  # (Nq, k) int64; -1 where the lists held fewer than k
    del index
    scores = np.empty(indices.shape, dtype=np.float32)
    for r0 in range(0, len(q), 4096):  # exact scores of the k found, best first
        found = indices[r0 : r0 + 4096]
        exact = np.einsum("bd,bkd->bk", q[r0 : r0 + 4096], c[np.maximum(found, 0)])
        exact[found < 0] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")
        scores[r0 : r0 + 4096] = np.take_along_axis(exact, order, 1)
        indices[r0 : r0 + 4096] = np.take_along_axis(found, order, 1)
    return scores, indices


def resolve_backend(backend: str, n: int) -> str:
    """``auto`` -> exact below ``AUTO_FAISS_MIN`` pairs (or without faiss), else faiss."""
    if backend not in KNN_BACKENDS:
        raise UserError(
            f"tbs knn_backend must be one of {', '.join(KNN_BACKENDS)}, got '{backend}'"
        )
    if backend != "auto":
        return backend
    if n < AUTO_FAISS_MIN:
        return "exact"
    try:
        import faiss  # noqa: F401
    except ImportError:  # pragma: no cover - faiss-cpu is in requirements.txt
        return "exact"
    return "faiss"


def topk_neighbors(
    queries: np.ndarray,
    codes: np.ndarray,
    k: int,
    backend: str = "auto",
    block_size: int = 2048,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes of highest inner product for each query: (scores (Nq, k) float32,
    indices (Nq, k) int64), best first. ``codes`` may have another length than ``queries``.
    The faiss backend is approximate and pads with index -1, score -inf, when it finds fewer
    than k. Nothing is excluded: a query's own code is among its neighbours."""
    q = np.ascontiguousarray(np.asarray(queries), dtype=np.float32)
    c = np.ascontiguousarray(np.asarray(codes), dtype=np.float32)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1] or len(q) == 0 or len(c) == 0:
        raise ValueError(
            f"queries (Nq, d) and codes (Nc, d) must be non-empty with the same d; "
            f"got {q.shape} and {c.shape}"
        )
    if not 1 <= k <= len(c):
        raise ValueError(f"k must be in [1, {len(c)}] (the number of codes), got {k}")
    if block_size < 1:
        raise UserError(f"tbs block_size must be >= 1, got {block_size}")
    if resolve_backend(backend, len(c)) == "faiss":
        return _faiss_topk(q, c, k, seed)
    return _exact_topk(q, c, k, block_size)


def knn_graph(
    queries: np.ndarray,
    codes: np.ndarray,
    m: int = 16,
    backend: str = "auto",
    block_size: int = 2048,
    seed: int = 0,
) -> sp.csr_array:
    """A_ij = 1 for the top-``m`` codes j != i of query i (searched as top m + 1, own code
    dropped, or the last one where the own code was not found)."""
    q, c = as_embeddings(queries, codes)
    n = q.shape[0]
    if m < 1:
        raise UserError(f"tbs knn must be >= 1, got {m}")
    k = min(m + 1, n)
    _, found = topk_neighbors(q, c, k, backend, block_size, seed)  # (N, k)
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


def bandwidth(graph: sp.sparray, order: np.ndarray | None = None) -> int:
    """max |pos(i) - pos(j)| over the edges (i, j), nodes placed in ``order`` (default: as
    labelled); the same for A and A + A.T. Reverse Cuthill-McKee minimises it. O(edges) time,
    rows taken a million edges at a time."""
    graph = sp.csr_array(graph)
    position = np.arange(graph.shape[0])
    if order is not None:
        position[np.asarray(order)] = np.arange(len(order))
    widest, row = 0, 0
    while row < graph.shape[0]:
        stop = int(np.searchsorted(graph.indptr, graph.indptr[row] + 2**20, side="right")) - 1
        stop = min(max(stop, row + 1), graph.shape[0])
        lo, hi = graph.indptr[row], graph.indptr[stop]
        if hi > lo:
            rows = np.repeat(np.arange(row, stop), np.diff(graph.indptr[row : stop + 1]))
            widest = max(widest, int(np.abs(position[rows] - position[graph.indices[lo:hi]]).max()))
        row = stop
    return widest
