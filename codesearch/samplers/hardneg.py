"""Random batches plus mined hard negative codes: the baseline Tail Batch Sampling is set against.

Hard negative mining (docs/method.md; in the manner of ANCE, Xiong et al., ICLR 2021): with the
current model each pair's query is searched against every code, and l = ``negatives`` of its
nearest codes join its batch as extra negatives. Each epoch's batches contain:
- anchors: exactly ``RandomSampler``'s batches with the same seed (every pair an anchor once);
- ``extra_codes``: for each anchor, l codes drawn uniformly without replacement
  (``epoch_rng(seed, epoch, 1)``) from its neighbour ranks ``lo:hi`` (``ranks``, 1-based,
  counted among the codes that survive the exclusions; a window narrower than l is widened to
  ``lo:lo+l-1``; an anchor with fewer survivors gets fewer). Never among a query's neighbours:
  its own code, a code with the same text, or a code whose text is paired anywhere in the data
  with this query's text; repeated code texts count once, at their best rank. A batch's extras
  are deduplicated and hold no anchor nor a copy of an anchor's code (an extra may still copy a
  *different* anchor's positive: the trainer's key mask drops it for that anchor).
Without text keys (``set_text_keys``) only the positive itself is excluded.

Cost: at each refresh (every ``every`` epochs) an embedding pass and a top-(hi + margin)
search (``knn.topk_neighbors``: exact blockwise O(N^2 d), or faiss), then about (1 + l) times
the code-tower work of random batches. The neighbour table (N x depth indices, about 38 MB of
JSON at N = 250k, hi = 20) is in ``state_dict``, so a resumed run replays the same batches
without embedding; every process mines the same table (faiss is seeded with the sampler's seed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from codesearch.errors import check_choice, check_number
from codesearch.samplers.base import (
    Batch,
    BatchSampler,
    EmbedFn,
    batch_extras,
    chunk,
    epoch_rng,
)


def parse_ranks(text: str) -> tuple[int, int]:
    """'lo:hi' (1-based, inclusive, 1 <= lo <= hi) -> (lo, hi)."""
    lo, sep, hi = str(text).partition(":")
    try:
        bounds = (int(lo), int(hi)) if sep else None
    except ValueError:
        bounds = None
    if bounds is None or not 1 <= bounds[0] <= bounds[1]:
        raise ValueError(f"sampler.hardneg_ranks must be 'lo:hi' with 1 <= lo <= hi, got '{text}'")
    return bounds


@dataclass
class HardNegativeOptions:
    """The config keys ``sampler.hardneg_<field>`` (flags ``--hardneg-<field>``), checked once
    here; ``legacy`` names the key's earlier name, still read (saved runs, profiles)."""

    negatives: int = field(default=1, metadata={"legacy": "l"})  # mined negatives per anchor
    # rank window lo:hi (1-based, inclusive) to sample negatives from
    ranks: str = field(default="1:1", metadata={"legacy": "range"})
    every: int = 1  # refresh the neighbour table every E epochs
    backend: str = "auto"  # auto | exact | faiss

    def __post_init__(self) -> None:
        check_number("sampler.hardneg_negatives", self.negatives, low=1)
        check_number("sampler.hardneg_every", self.every, low=1)
        check_choice("sampler.hardneg_backend", self.backend, ("auto", "exact", "faiss"))
        parse_ranks(self.ranks)


class HardNegativeSampler(BatchSampler):
    name = "hardneg"
    Options = HardNegativeOptions
    block_size = 2048  # query rows per block of the exact search
    margin = 8  # neighbours searched beyond the depth, for the exclusions

    def __init__(
        self, n, batch_size, seed=0, min_last=1, options: HardNegativeOptions = None, device="cpu"
    ):
        super().__init__(n, batch_size, seed, min_last, options, device)
        self.lo, hi = parse_ranks(self.options.ranks)
        self.depth = max(hi, self.lo + self.options.negatives - 1)  # neighbours kept per anchor
        self.table: np.ndarray | None = None  # (n, depth) int64 neighbour indices, -1 = none
        self.table_epoch: int | None = None

    def mine(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(n, depth) neighbour table: each query's top surviving codes, best first."""
        from codesearch.samplers.mining import ExcludedPairs, neighbour_table

        excluded = (
            None if self.code_keys is None else ExcludedPairs(self.query_keys, self.code_keys)
        )
        backend, block, margin = self.options.backend, self.block_size, self.margin
        return neighbour_table(
            queries, codes, self.depth, excluded, backend, block, margin, self.seed, self.device
        )

    # --- batches --------------------------------------------------------------------------

    def _refreshes(self, epoch: int) -> bool:
        return self.table is None or (epoch % self.options.every == 0 and self.table_epoch != epoch)

    def needs_embeddings(self) -> bool:
        return self._batches is None and self._refreshes(self.epoch)

    def compute_batches(self, epoch: int, embed: EmbedFn | None) -> list[Batch]:
        timings = {"embed": 0.0, "mining": 0.0}
        if self._refreshes(epoch):
            if embed is None:
                raise ValueError(
                    "the hardneg sampler mines with the model's embeddings: "
                    "call prepare(embed) with an embed function"
                )
            start = time.perf_counter()
            queries, codes = embed()
            timings["embed"] = time.perf_counter() - start
            if queries.shape[0] != self.n or codes.shape != queries.shape:
                raise ValueError(
                    f"embed() must return two ({self.n}, d) arrays; got "
                    f"{queries.shape} and {codes.shape}"
                )
            start = time.perf_counter()
            self.table, self.table_epoch = self.mine(queries, codes), epoch
            timings["mining"] = time.perf_counter() - start
        start = time.perf_counter()
        mined = self.sample(epoch)
        order = epoch_rng(self.seed, epoch).permutation(self.n)  # RandomSampler's anchors
        batches = [
            Batch(a, batch_extras(a, mined, self.code_keys))
            for a in chunk(order, self.batch_size, self.min_last)
        ]
        timings["sampling"] = time.perf_counter() - start
        timings["total"] = timings["mining"] + timings["sampling"]  # embedding excluded, as tbs
        self.timings = timings
        return batches

    def sample(self, epoch: int) -> np.ndarray:
        """(n, l) this epoch's negatives per anchor from the rank window, -1 where none."""
        window = self.table[:, self.lo - 1 :]  # (n, w)
        available = window >= 0
        draw = epoch_rng(self.seed, epoch, 1).random(window.shape)
        draw[~available] = np.inf
        pick = np.argsort(draw, axis=1, kind="stable")[:, : self.options.negatives]  # (n, l)
        mined = np.take_along_axis(window, pick, axis=1)
        mined[~np.take_along_axis(available, pick, axis=1)] = -1
        return mined

    # --- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        table = None
        if self.table is not None:
            table = [row[row >= 0].tolist() for row in self.table]
        return {
            **super().state_dict(),
            "n": self.n,
            "depth": self.depth,
            "table_epoch": self.table_epoch,
            "table": table,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state.get("n", self.n) != self.n:
            raise ValueError(
                f"checkpoint hardneg sampler has {state['n']} pairs, this run has {self.n}"
            )
        self._batches = None
        self.table, self.table_epoch = None, None
        if state.get("table") is not None and state.get("depth", 0) >= self.depth:
            table = np.full((self.n, self.depth), -1, dtype=np.int64)
            for i, row in enumerate(state["table"]):
                row = row[: self.depth]
                table[i, : len(row)] = row
            self.table, self.table_epoch = table, state["table_epoch"]
