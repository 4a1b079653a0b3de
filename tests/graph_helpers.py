"""Graph measures that only the tests use (the package does not need them)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


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
