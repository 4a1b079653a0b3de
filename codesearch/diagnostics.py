"""L^Global, L^Train(pi), their gap and in-batch hardness of a batch assignment, for fixed
embeddings.

For fixed unit-norm embeddings, L^Global (every one of the N codes is a candidate) minus
L^Train(pi) (only the codes of the anchor's batch, plus any mined extra codes) is >= 0, and Tail
Batch Sampling (arXiv 2210.12874, docs/method.md) picks pi to make it small. The plain losses
count every candidate; given the pairs' text keys the same losses are also computed with the
training loss's false-negative mask (``*_masked``: a candidate sharing the anchor's query or
code text is left out, in L^Global and L^Train alike, so that gap is >= 0 too), with the number
of anchors the mask leaves without negatives, or with fewer than half of their in-batch
negatives. The trainer logs ``assignment_diagnostics`` every epoch (``epoch_diagnostics``);
``codesearch batches`` prints it for a sampler's batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from codesearch.loss import same_text
from codesearch.samplers.base import Batch

if TYPE_CHECKING:
    from codesearch.config import RunConfig
    from codesearch.data.training_data import TrainingData
    from codesearch.epoch_embeddings import EpochStartEmbeddings


def _as_tensor(x: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach()
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _check_embeddings(queries: torch.Tensor, codes: torch.Tensor, scale: float) -> None:
    if queries.dim() != 2 or queries.shape != codes.shape or queries.shape[0] == 0:
        raise ValueError(
            f"queries and codes must both be (N, d) with N > 0; "
            f"got {tuple(queries.shape)} and {tuple(codes.shape)}"
        )
    if not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale}")


def global_loss(
    queries: Any,
    codes: Any,
    scale: float = 20.0,
    block_size: int = 4096,
    query_keys: Any = None,
    code_keys: Any = None,
) -> float:
    """L^Global = mean_i -log softmax over all N codes (s <q_i, c_j>)[i]; blockwise log-sum-exp in
    float64, memory O(block_size^2), never N^2.

    With ``query_keys`` and ``code_keys`` ((N,) integer text hashes) the candidates the training
    loss masks are left out (``loss.same_text``, as its mask): code j != i is dropped for query i
    when pair j has i's query text or i's code text."""
    plain, masked = global_losses(queries, codes, scale, block_size, query_keys, code_keys)
    return plain if masked is None else masked


def global_losses(
    queries: Any,
    codes: Any,
    scale: float = 20.0,
    block_size: int = 4096,
    query_keys: Any = None,
    code_keys: Any = None,
) -> tuple[float, float | None]:
    """(L^Global, L^Global with the false-negative mask, or None without keys) from one pass
    over the blocks of S (see ``global_loss``)."""
    q_all, c_all = _as_tensor(queries), _as_tensor(codes)
    _check_embeddings(q_all, c_all, scale)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1; got {block_size}")
    n = q_all.shape[0]
    masked = query_keys is not None and code_keys is not None
    if masked:
        qk, ck = torch.as_tensor(np.asarray(query_keys)), torch.as_tensor(np.asarray(code_keys))
        if qk.shape != (n,) or ck.shape != (n,):
            raise ValueError(
                f"query_keys and code_keys must be ({n},); got {tuple(qk.shape)} "
                f"and {tuple(ck.shape)}"
            )
    total = torch.zeros((), dtype=torch.float64)
    total_masked = torch.zeros((), dtype=torch.float64)
    for start in range(0, n, block_size):
        q = q_all[start : start + block_size]  # (b, d)
        rows = torch.arange(start, start + q.shape[0])  # (b,)
        lse = torch.full((q.shape[0],), float("-inf"), dtype=torch.float64)  # (b,)
        lse_masked = lse.clone()  # (b,)
        for col in range(0, n, block_size):
            logits = (scale * q @ c_all[col : col + block_size].T).double()  # (b, b')
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
            if masked:
                cols = torch.arange(col, col + logits.shape[1])  # (b',)
                same = same_text(qk[rows, None], ck[rows, None], qk[None, cols], ck[None, cols])
                same &= rows[:, None] != cols[None, :]  # the positive always counts
                lse_masked = torch.logaddexp(
                    lse_masked, torch.logsumexp(logits.masked_fill_(same, float("-inf")), dim=1)
                )
        positive = (scale * (q * c_all[start : start + block_size]).sum(dim=1)).double()  # (b,)
        total += (lse - positive).sum()
        total_masked += (lse_masked - positive).sum()
    return float(total / n), float(total_masked / n) if masked else None


def _as_batches(batches: Sequence[Batch | np.ndarray | Sequence[int]]) -> list[Batch]:
    """Batch objects from Batch objects or plain lists of anchor indices."""
    return [b if isinstance(b, Batch) else Batch(np.asarray(b, dtype=np.int64)) for b in batches]


def extras_of(batch: Batch) -> np.ndarray:
    """(e,) int64 the batch's extra codes (none: empty)."""
    if batch.extra_codes is None:
        return np.empty(0, dtype=np.int64)
    return np.asarray(batch.extra_codes, dtype=np.int64)


def train_losses(
    queries: Any,
    codes: Any,
    batches: Sequence[Batch | np.ndarray | Sequence[int]],
    scale: float = 20.0,
    query_keys: Any = None,
    code_keys: Any = None,
) -> dict:
    """What training sees of an assignment, in one pass over its batches: ``l_train`` (mean over
    every anchor of -log softmax_{j in B + E}(s <q_i, c_j>)[i], candidates = the batch's anchors'
    codes and its extra codes, float64) and ``hardness`` (mean <q_i, c_j> over every in-batch
    negative j != i, each (i, j) weighing the same). With the text keys also ``l_train_masked``
    (the loss's ``false_negative_mask``: extras compared by code and query),
    ``anchors_no_negatives`` (every negative masked: loss 0) and
    ``anchors_under_half_negatives`` (fewer than half of their k + e - 1 negatives left)."""
    q_all, c_all = _as_tensor(queries), _as_tensor(codes)
    _check_embeddings(q_all, c_all, scale)
    masked = query_keys is not None and code_keys is not None
    if masked:
        qk, ck = torch.as_tensor(np.asarray(query_keys)), torch.as_tensor(np.asarray(code_keys))
    by_shape: dict[tuple[int, int], list[np.ndarray]] = {}
    for batch in _as_batches(batches):
        anchors = np.asarray(batch.anchors, dtype=np.int64)
        if len(anchors):  # batches of one shape (k anchors, e extras) are scored together
            extras = extras_of(batch)
            by_shape.setdefault((len(anchors), len(extras)), []).append(
                np.concatenate([anchors, extras])
            )
    sums = dict.fromkeys(("loss", "masked", "sims", "pairs", "anchors", "none", "half"), 0.0)
    for (k, _), group in by_shape.items():
        for start in range(0, len(group), 256):
            idx = torch.from_numpy(np.stack(group[start : start + 256]))  # (m, k + e)
            anchors = idx[:, :k]  # (m, k)
            logits = (scale * q_all[anchors] @ c_all[idx].transpose(1, 2)).double()  # (m, k, k+e)
            positive = torch.diagonal(logits[:, :, :k], dim1=1, dim2=2)  # (m, k)
            sums["loss"] += float((torch.logsumexp(logits, dim=2) - positive).sum())
            sums["sims"] += float(logits.sum() - positive.sum()) / scale
            sums["pairs"] += anchors.numel() * (idx.shape[1] - 1)
            sums["anchors"] += anchors.numel()
            if masked:  # (m, k, k + e): candidate j shares anchor i's query or code text
                same = same_text(
                    qk[anchors][:, :, None],
                    ck[anchors][:, :, None],
                    qk[idx][:, None, :],
                    ck[idx][:, None, :],
                )
                same[:, torch.arange(k), torch.arange(k)] = False  # the positive always counts
                kept = logits.masked_fill(same, float("-inf"))
                sums["masked"] += float((torch.logsumexp(kept, dim=2) - positive).sum())
                negatives = idx.shape[1] - 1 - same.sum(dim=2)  # (m, k) negatives left
                sums["none"] += int((negatives == 0).sum())
                sums["half"] += int((2 * negatives < idx.shape[1] - 1).sum())
    if sums["anchors"] == 0:
        raise ValueError("batches hold no anchors")
    out = {
        "l_train": sums["loss"] / sums["anchors"],
        "hardness": sums["sims"] / sums["pairs"] if sums["pairs"] else float("nan"),
    }
    if masked:
        out.update(
            l_train_masked=sums["masked"] / sums["anchors"],
            anchors_no_negatives=int(sums["none"]),
            anchors_under_half_negatives=int(sums["half"]),
        )
    return out


def batch_loss(
    queries: Any, codes: Any, batches: Sequence[Batch | np.ndarray | Sequence[int]], scale=20.0
) -> float:
    """L^Train of a batch assignment (``train_losses``' ``l_train``)."""
    return train_losses(queries, codes, batches, scale)["l_train"]


def assignment_diagnostics(
    queries: np.ndarray,
    codes: np.ndarray,
    batches: Sequence[Batch | np.ndarray],
    scale: float = 20.0,
    query_keys: np.ndarray | None = None,
    code_keys: np.ndarray | None = None,
) -> dict:
    """{l_global, l_train, gap, hardness} of one epoch's batches (Batch objects, whose
    ``extra_codes`` join as candidates, or plain index arrays) for fixed unit-norm embeddings;
    with the text keys also {l_global_masked, l_train_masked, gap_masked,
    anchors_no_negatives, anchors_under_half_negatives} (``train_losses``).

    Cost: L^Global is O(N^2 d) (blockwise, memory O(block^2)); the rest is O(N k d).
    """
    l_global, l_global_masked = global_losses(
        queries, codes, scale, query_keys=query_keys, code_keys=code_keys
    )
    train = train_losses(queries, codes, batches, scale, query_keys, code_keys)
    out = {
        "l_global": l_global,
        "l_train": train["l_train"],
        "gap": l_global - train["l_train"],
        "hardness": train["hardness"],
    }
    if query_keys is not None and code_keys is not None:
        out.update(
            l_global_masked=l_global_masked,
            l_train_masked=train["l_train_masked"],
            gap_masked=l_global_masked - train["l_train_masked"],
            anchors_no_negatives=train["anchors_no_negatives"],
            anchors_under_half_negatives=train["anchors_under_half_negatives"],
        )
    return out


def resolve_diagnostics(config: RunConfig) -> str:
    """'auto': a fresh pass for the cheap nbow encoder, cached embeddings for transformers."""
    if config.train.diagnostics == "auto":
        return "fresh" if config.model.encoder == "nbow" else "cached"
    return config.train.diagnostics


def epoch_diagnostics(
    config: RunConfig,
    embeddings: EpochStartEmbeddings,
    batches: list,
    data: TrainingData,
    main: bool,
) -> dict:
    """``diag_*``: L^Global, L^Train of this epoch's assignment, their gap and in-batch hardness,
    without and with the loss's false-negative mask (``assignment_diagnostics``), on
    the embeddings the sampler used when it used any, else on a fresh pass ('fresh') or last
    epoch's cached embeddings ('cached'; none in the first epoch). Every process takes part in
    a fresh pass (it is shared out); only the ``main`` one computes the numbers."""
    mode = resolve_diagnostics(config)
    if mode == "off":
        return {}
    chosen = embeddings.used
    if chosen is None:
        chosen = embeddings.fresh_embeddings() if mode == "fresh" else embeddings.cached
    if chosen is None or not main:
        return {}
    scale, keys = config.model.scale, (data.query_key, data.code_key)
    found = assignment_diagnostics(*chosen, batches, scale, *keys)
    return {f"diag_{k}": v for k, v in found.items()}
