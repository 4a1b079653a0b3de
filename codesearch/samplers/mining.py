"""Hard negative mining: each query's nearest codes with the current model, minus the codes
the loss would not count as negatives (``samplers.hardneg``'s exclusions).

Never among a query's neighbours: its own code, a code with the same text, or a code whose text
is paired anywhere in the data with this query's text (so no code of a pair with the same
query); repeated code texts count once, at their best rank. The search is ``knn.topk_neighbors``,
deepened for the rows that the exclusions leave short.
"""

from __future__ import annotations

import numpy as np

from codesearch.samplers.knn import topk_neighbors


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """(p, k) bool: True where a row's key has not appeared earlier in that row."""
    order = np.argsort(keys, axis=1, kind="stable")  # equal keys keep their rank order
    ordered = np.take_along_axis(keys, order, axis=1)
    start = np.ones(keys.shape, dtype=bool)  # first entry of a run of equal keys
    start[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty(keys.shape, dtype=bool)
    np.put_along_axis(first, order, start, axis=1)
    return first


def pair_hash(code_keys: np.ndarray, query_keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash of (code text, query text) key pairs (wrapping arithmetic)."""
    mixed = code_keys.astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return mixed ^ query_keys.astype(np.int64).view(np.uint64)


class ExcludedPairs:
    """The pairs' text keys, and every (code text, query text) pair that occurs in the data."""

    def __init__(self, query_keys: np.ndarray, code_keys: np.ndarray):
        self.query_keys, self.code_keys = query_keys, code_keys
        self.pairs = np.unique(pair_hash(code_keys, query_keys))  # sorted

    def keep(self, anchors: np.ndarray, found: np.ndarray) -> np.ndarray:
        """(p, k) bool: False for a found code whose text is paired with the anchor's query text
        somewhere in the data (this covers the positive's own text and every pair with the same
        query), and for a repeat of a code text already found higher in the row."""
        safe = np.where(found >= 0, found, anchors[:, None])
        codes = self.code_keys[safe]  # (p, k)
        query = np.broadcast_to(self.query_keys[anchors][:, None], codes.shape)
        asked = pair_hash(codes, query)
        at = np.minimum(np.searchsorted(self.pairs, asked), len(self.pairs) - 1)
        return (self.pairs[at] != asked) & first_occurrence(codes)


def surviving(
    anchors: np.ndarray, found: np.ndarray, depth: int, excluded: ExcludedPairs | None
) -> tuple[np.ndarray, np.ndarray]:
    """Ranked neighbour rows without the excluded candidates: ((p, depth) table rows, -1 where
    none; (p,) surviving count)."""
    keep = (found >= 0) & (found != anchors[:, None])  # (p, k)
    if excluded is not None:
        keep &= excluded.keep(anchors, found)
    order = np.argsort(~keep, axis=1, kind="stable")  # survivors first, in rank order
    ranked = np.take_along_axis(found, order, axis=1)
    count = keep.sum(axis=1)
    rows = np.full((len(anchors), depth), -1, dtype=np.int64)
    width = min(depth, ranked.shape[1])
    rows[:, :width] = ranked[:, :width]
    rows[np.arange(depth)[None, :] >= count[:, None]] = -1
    return rows, count


def neighbour_table(
    queries: np.ndarray,
    codes: np.ndarray,
    depth: int,
    excluded: ExcludedPairs | None,
    backend: str = "auto",
    block_size: int = 2048,
    margin: int = 8,
    seed: int = 0,
    device="cpu",
) -> np.ndarray:
    """(n, depth) int64: each query's top ``depth`` surviving codes, best first, -1 where
    fewer survive. Searches ``depth + margin`` deep, then twice as deep for the rows the
    exclusions left short (unless the search ran dry). Exact search runs on ``device``."""
    n = len(queries)
    table = np.full((n, depth), -1, dtype=np.int64)
    pending = np.arange(n)
    k = min(n, depth + margin)
    while pending.size:
        _, found = topk_neighbors(queries[pending], codes, k, backend, block_size, seed, device)
        found = np.asarray(found, dtype=np.int64)  # (p, k), -1 where faiss found fewer
        rows, count = surviving(pending, found, depth, excluded)
        table[pending] = rows
        if k >= n:
            break
        pending = pending[(count < depth) & (found[:, -1] >= 0)]
        k = min(n, 2 * k)
    return table
