"""Nearest codes of each query by inner product: exact blockwise search or a faiss index.

One module for the two samplers that search (``tbs`` with ``graph=knn`` builds its graph from
the neighbours, ``hardneg`` mines its negatives from them). S = X @ Y.T is computed in
(block_size, COL_TILE) tiles of reused buffers, never whole.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from codesearch.errors import UserError

COL_TILE = 16384  # codes per tile of S: a (2048, 16384) float32 tile is 128 MB
AUTO_FAISS_MIN = 30_000  # backend "auto": exact search below this many codes, faiss above
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


class Tiles:
    """Reused buffers for (rows, cols) tiles of S on ``device``; each tile is a contiguous view."""

    def __init__(self, rows: int, cols: int, device: str | torch.device = "cpu"):
        self.values = torch.empty(rows * cols, device=device)
        self.mask = torch.empty(rows * cols, dtype=torch.bool, device=device)

    def scores(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.values[: q.shape[0] * c.shape[0]].view(q.shape[0], c.shape[0])
        return torch.mm(q, c.T, out=out)  # (b, w)

    def above(self, scores: torch.Tensor, tau: float) -> torch.Tensor:
        out = self.mask[: scores.numel()].view(scores.shape)
        return torch.gt(scores, tau, out=out)  # (b, w)


def _exact_topk(
    q: np.ndarray, c: np.ndarray, k: int, block_size: int, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise exact top-k on ``device``: per tile of codes a topk, merged into the running
    best; only the (N, k) results come back to the host."""
    qt, ct = torch.from_numpy(q).to(device), torch.from_numpy(c).to(device)
    n, m = q.shape[0], c.shape[0]
    tiles = Tiles(min(block_size, n), min(COL_TILE, m), device)
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
        scores[r0 : r0 + len(qb)] = best_v.cpu().numpy()
        indices[r0 : r0 + len(qb)] = best_i.cpu().numpy()
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


def resolve_backend(backend: str, n: int, device: str | torch.device = "cpu") -> str:
    """``auto`` -> exact on a GPU, or below ``AUTO_FAISS_MIN`` pairs (or without faiss); else
    faiss (faiss-cpu: the index is built on the host)."""
    if backend not in KNN_BACKENDS:
        raise ValueError(f"knn backend must be one of {', '.join(KNN_BACKENDS)}, got '{backend}'")
    if backend != "auto":
        return backend
    if n < AUTO_FAISS_MIN or torch.device(device).type != "cpu":
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
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` codes of highest inner product for each query: (scores (Nq, k) float32,
    indices (Nq, k) int64), best first. ``codes`` may have another length than ``queries``.
    The faiss backend is approximate and pads with index -1, score -inf, when it finds fewer
    than k. Nothing is excluded: a query's own code is among its neighbours. The exact search
    runs on ``device`` (the training device: a GPU's tiles), faiss on the host."""
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
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if resolve_backend(backend, len(c), device) == "faiss":
        return _faiss_topk(q, c, k, seed)
    return _exact_topk(q, c, k, block_size, device)
