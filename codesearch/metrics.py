"""Ranking and retrieval metrics on embeddings (docs/evaluation.md). No file I/O.

Two protocols share these functions:

- codebase protocol (GraphCodeBERT / UniXcoder ``run.py``): every query is ranked against the
  whole candidate set; MRR scores ``1/rank`` when ``rank <= 1000`` and 0 otherwise
  (``gold_ranks`` + ``mrr(cutoff=1000)``).
- csn-1000 protocol (original CodeSearchNet ``model_test.py``): pairs shuffled with
  ``np.random.seed(0)``, cut into chunks of 1000, each query ranked among its chunk's codes,
  last partial chunk dropped (``csn1000_chunks`` + ``csn1000_ranks``).

Scores are dot products: L2-normalise the embeddings first to get cosine similarity.

Ties are pessimistic: a candidate whose score equals the gold's counts as ranked above it, so
``rank = #{candidates c : score(c) >= score(gold)}`` (the gold counts itself once). This is
CodeSearchNet's ``compute_ranks`` (``distances <= correct_elements``); UniXcoder's
``argsort`` orders ties arbitrarily. Pessimistic ties mean a degenerate encoder (all
embeddings equal) scores rank C, never rank 1.
"""

from __future__ import annotations

import numpy as np
import torch

from codesearch.errors import UserError

RECALL_KS = (1, 5, 10)
NDCG_K = 10
# A float32 sum of 0/1 values is exact while the count stays below 2**24.
_EXACT_FLOAT32_COUNT = 2**24


def _as_2d_float(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional (n, d), got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        # A NaN score compares false with everything and would silently improve ranks.
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def gold_ranks(
    queries: np.ndarray,
    candidates: np.ndarray,
    gold: np.ndarray,
    block_size: int = 4096,
    device: str = "cpu",
    ties: str = "pessimistic",
) -> np.ndarray:
    """1-based rank of each query's gold candidate under dot-product scores.

    ``ties``: ``pessimistic`` (ours, CodeSearchNet's: a candidate scoring the same as the gold
    ranks ahead of it) or ``optimistic`` (behind it). UniXcoder's run.py sorts with an unstable
    argsort, so its rank of a tied gold lies between the two (docs/evaluation.md).

    queries (Q, d), candidates (C, d), gold (Q,) index into candidates. Returns (Q,) int64.
    The (Q, C) score matrix is never built: queries go through in blocks of ``block_size``
    rows and the only large allocation is one reused (block_size, C) float32 buffer
    (4096 x 45k: 0.7 GB; 15k x 45k at d = 384 takes about 3 to 5 s on 2 cores). The gold
    score is read from the same matmul as the other scores, so an exact duplicate of the gold
    ties with it whatever the rounding. Runs on torch's intra-op threads
    (``torch.set_num_threads``), or on ``device``.
    """
    queries = _as_2d_float("queries", queries)
    candidates = _as_2d_float("candidates", candidates)
    gold = np.asarray(gold)
    n_queries, n_candidates = queries.shape[0], candidates.shape[0]
    if queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"queries have dimension {queries.shape[1]} but candidates have {candidates.shape[1]}"
        )
    if gold.shape != (n_queries,):
        raise ValueError(f"gold must have shape ({n_queries},), got {gold.shape}")
    if gold.size and not np.issubdtype(gold.dtype, np.integer):
        raise ValueError(f"gold must hold integer indices, got dtype {gold.dtype}")
    if gold.size and (gold.min() < 0 or gold.max() >= n_candidates):
        raise ValueError(
            f"gold indices must lie in [0, {n_candidates}), got [{gold.min()}, {gold.max()}]"
        )
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"ties must be pessimistic or optimistic, got {ties!r}")
    if n_queries == 0:
        return np.zeros(0, dtype=np.int64)

    dev = torch.device(device)
    q = torch.from_numpy(queries).to(dev)  # (Q, d)
    c_t = torch.from_numpy(candidates).to(dev).T  # (d, C)
    g = torch.from_numpy(gold.astype(np.int64)).to(dev)  # (Q,)
    ranks = torch.empty(n_queries, dtype=torch.int64, device=dev)
    rows = min(block_size, n_queries)
    buffer = torch.empty(rows, n_candidates, dtype=torch.float32, device=dev)
    with torch.inference_mode():
        for start in range(0, n_queries, rows):
            stop = min(start + rows, n_queries)
            scores = buffer[: stop - start]  # (b, C)
            torch.mm(q[start:stop], c_t, out=scores)
            gold_scores = scores.gather(1, g[start:stop, None])  # (b, 1)
            # In place: the buffer becomes a 0/1 float mask, no (b, C) bool or int64 copy.
            if ties == "pessimistic":
                scores.ge_(gold_scores)  # the gold itself counts: rank >= 1
            else:
                scores.gt_(gold_scores)
            counts = ranks[start:stop]  # (b,)
            counts.fill_(0 if ties == "pessimistic" else 1)
            for col in range(0, n_candidates, _EXACT_FLOAT32_COUNT):
                counts += scores[:, col : col + _EXACT_FLOAT32_COUNT].sum(dim=1).long()
    return ranks.cpu().numpy()


def _check_ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-d array, got shape {ranks.shape}")
    if (ranks < 1).any():
        raise ValueError("ranks are 1-based: every rank must be >= 1")
    return ranks


def reciprocal_ranks(ranks: np.ndarray, cutoff: int | None = 1000) -> np.ndarray:
    """Per-query ``1/rank``; a rank above ``cutoff`` scores 0 (UniXcoder run.py: MRR@1000)."""
    ranks = _check_ranks(ranks).astype(np.float64)
    reciprocal = 1.0 / ranks
    if cutoff is not None:
        reciprocal[ranks > cutoff] = 0.0
    return reciprocal


def mrr(ranks: np.ndarray, cutoff: int | None = 1000) -> float:
    """Mean reciprocal rank; a rank above ``cutoff`` scores 0 (UniXcoder run.py: MRR@1000)."""
    return float(reciprocal_ranks(ranks, cutoff).mean())


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries whose gold is in the top ``k``."""
    return float((_check_ranks(ranks) <= k).mean())


def ndcg_at(ranks: np.ndarray, k: int = NDCG_K) -> float:
    """nDCG@k with one relevant item per query: ``1/log2(rank + 1)`` if ``rank <= k`` else 0."""
    ranks = _check_ranks(ranks).astype(np.float64)
    gains = 1.0 / np.log2(ranks + 1.0)
    gains[ranks > k] = 0.0
    return float(gains.mean())


def summarize(ranks: np.ndarray, mrr_cutoff: int | None = 1000) -> dict:
    """The metrics reported per language: MRR@1000, recall@1/5/10, nDCG@10, query count."""
    ranks = _check_ranks(ranks)
    summary: dict = {"mrr": mrr(ranks, cutoff=mrr_cutoff)}
    for k in RECALL_KS:
        summary[f"recall@{k}"] = recall_at(ranks, k)
    summary[f"ndcg@{NDCG_K}"] = ndcg_at(ranks, NDCG_K)
    summary["n_queries"] = int(ranks.size)
    return summary


def csn1000_chunks(n_queries: int, seed: int = 0, chunk_size: int = 1000) -> list[np.ndarray]:
    """Index chunks of the CodeSearchNet protocol: shuffle ``arange(n)``, cut, drop the tail.

    The shuffle is ``np.random.RandomState(seed).shuffle``, the same permutation as
    CodeSearchNet's ``np.random.seed(0); np.random.shuffle(idxs)``, so with the same record
    order the chunks are the original ones. The last partial chunk is dropped; with
    ``n_queries < chunk_size`` the result is empty (CodeSearchNet then silently shrank the
    chunk; ``csn1000_ranks`` raises instead).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if n_queries < 0:
        raise ValueError(f"n_queries must be >= 0, got {n_queries}")
    order = np.arange(n_queries)
    np.random.RandomState(seed).shuffle(order)
    n_chunks = n_queries // chunk_size
    return [order[i * chunk_size : (i + 1) * chunk_size] for i in range(n_chunks)]


def csn1000_ranks(
    queries: np.ndarray,
    codes: np.ndarray,
    seed: int = 0,
    chunk_size: int = 1000,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Rank each query among its chunk's codes; pair i's code is its gold.

    Returns (indices of the ranked queries in chunk order, their 1-based ranks). Queries in
    the dropped partial chunk are not ranked. Note that CodeSearchNet's ``model_test.py``
    passes codes as the source of ``compute_ranks`` (it ranks queries per code); here, as in
    CodeBERT's "999 distractor codes", the query is the one ranked against codes.
    """
    queries = np.asarray(queries)
    codes = np.asarray(codes)
    if queries.shape[0] != codes.shape[0]:
        raise ValueError(
            f"{queries.shape[0]} queries but {codes.shape[0]} codes: csn-1000 needs aligned pairs"
        )
    chunks = csn1000_chunks(queries.shape[0], seed=seed, chunk_size=chunk_size)
    if not chunks:
        raise UserError(
            f"csn-1000 protocol: {queries.shape[0]} pairs make no full chunk of "
            f"{chunk_size}; use a smaller chunk size"
        )
    ranks = [
        gold_ranks(queries[idx], codes[idx], np.arange(len(idx)), device=device) for idx in chunks
    ]
    return np.concatenate(chunks), np.concatenate(ranks)
