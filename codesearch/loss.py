"""InfoNCE with in-batch (and cross-process) negatives, and the L^Global / L^Train diagnostics.

For anchor i of a batch B: `-log softmax_{j in B}(s * <q_i, c_j>)[i]` with unit-norm embeddings
and scale s (20 in UniXcoder, temperature 0.05). L^Global scores every one of the N codes;
L^Train(pi) is the loss the batch assignment pi lets training see, and for fixed embeddings
L^Global - L^Train(pi) >= 0 (Tail Batch Sampling, arXiv 2210.12874, docs/method.md).

Everything here is a pure function of embeddings; the model never computes its loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

# (row_offset, local_sizes, extra_sizes) -> bool (B_local, sum(local_sizes) + sum(extra_sizes))
MaskFn = Callable[[int, list[int], list[int]], torch.Tensor]


def _float(x: torch.Tensor) -> torch.Tensor:
    """Half-precision embeddings are scored in float32 (logits at scale 20 need the bits)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_pairs(
    q: torch.Tensor, c: torch.Tensor, extra: torch.Tensor | None, scale: float
) -> None:
    if q.dim() != 2 or q.shape != c.shape:
        raise ValueError(f"q and c must both be (B, d); got {tuple(q.shape)} and {tuple(c.shape)}")
    if extra is not None and (extra.dim() != 2 or extra.shape[1] != q.shape[1]):
        raise ValueError(f"extra_codes must be (E, {q.shape[1]}); got {tuple(extra.shape)}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0; got {scale}")


def _apply_mask(
    logits: torch.Tensor, mask: torch.Tensor | None, labels: torch.Tensor
) -> torch.Tensor:
    """-inf where `mask` is True, except at each row's positive (which is always kept)."""
    if mask is None:
        return logits
    if mask.shape != logits.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"false_negative_mask must be a bool tensor of shape {tuple(logits.shape)}; "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    mask = mask.clone()
    mask[torch.arange(len(labels)), labels] = False
    return logits.masked_fill(mask.to(logits.device), float("-inf"))


def info_nce(
    q: torch.Tensor,
    c: torch.Tensor,
    scale: float = 20.0,
    extra_codes: torch.Tensor | None = None,
    symmetric: bool = False,
    false_negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean InfoNCE of one batch: query i's positive is code i, the other codes of the batch and
    the `extra_codes` (e.g. mined hard negatives) are its negatives.

    q, c: (B, d) unit-norm; extra_codes: (E, d). `false_negative_mask` (B, B+E), True = drop that
    candidate for that anchor (same code text as the positive, or same query as the anchor); the
    diagonal positive is never dropped. `symmetric` averages in the code->query direction (each
    code's positive is query i among the B queries; the extras are not anchors).
    """
    _check_pairs(q, c, extra_codes, scale)
    q, c = _float(q), _float(c)
    candidates = c if extra_codes is None else torch.cat([c, _float(extra_codes)])  # (B+E, d)
    labels = torch.arange(q.shape[0], device=q.device)  # (B,)
    logits = scale * q @ candidates.T  # (B, B+E)
    logits = _apply_mask(logits, false_negative_mask, labels)
    loss = F.cross_entropy(logits, labels)
    if not symmetric:
        return loss
    logits_cq = scale * c @ q.T  # (B, B): row j = code j against every query
    mask_cq = None if false_negative_mask is None else false_negative_mask[:, : q.shape[0]].T
    loss_cq = F.cross_entropy(_apply_mask(logits_cq, mask_cq, labels), labels)
    return (loss + loss_cq) / 2


def false_negative_mask(
    query_keys: torch.Tensor,
    code_keys: torch.Tensor,
    extra_code_keys: torch.Tensor | None = None,
    extra_query_keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, B+E) bool mask for `info_nce` from integer keys of the texts (e.g. hashes of the
    normalised query and code): candidate j is masked for anchor i when its code equals i's code
    or its query equals i's query. Extras are compared by code key, and by query key if given."""
    same = (code_keys[:, None] == code_keys[None, :]) | (query_keys[:, None] == query_keys[None, :])
    if extra_code_keys is None:
        return same  # (B, B)
    extra = code_keys[:, None] == extra_code_keys[None, :]  # (B, E)
    if extra_query_keys is not None:
        extra |= query_keys[:, None] == extra_query_keys[None, :]
    return torch.cat([same, extra], dim=1)  # (B, B+E)


# --- global batch across processes --------------------------------------------------------------


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_counts(counts: Sequence[int], device: torch.device | str = "cpu") -> list[list[int]]:
    """All-gather a few integers per process: result[r] = process r's `counts`."""
    _, world = _rank_world()
    local = torch.tensor(list(counts), dtype=torch.long, device=device)  # (k,)
    if world == 1:
        return [local.tolist()]
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local)
    return [p.tolist() for p in parts]


def _all_gather_rows(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Every process's rows (no gradient); all_gather needs equal shapes, so pad to the largest."""
    if max(sizes) == 0:  # every process agrees on sizes, so all skip the collective together
        return [x[:0] for _ in sizes]
    padded = x.new_zeros((max(sizes), *x.shape[1:]))  # (max_r B_r, ...)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return [p[:n] for p, n in zip(parts, sizes, strict=True)]


class _GatherWithGrad(torch.autograd.Function):
    """Gather rows; backward sums every process's gradient for this process's rows (all_reduce,
    which every backend has, then this process's slice)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        rank, _ = _rank_world()
        ctx.start, ctx.stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
        parts = _all_gather_rows(x, sizes)
        parts[rank] = x  # this process's rows are exactly its input
        return torch.cat(parts)  # (sum B_r, ...)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()  # (sum B_r, ...)
        dist.all_reduce(grad)  # sum over processes of d(loss_r)/d(gathered)
        return grad[ctx.start : ctx.stop], None


def gather_with_grad(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate every process's `x` (rows may differ in number) in rank order; gradient flows
    back to each process's own rows from every process's loss. Identity without distribution.
    `sizes` (rows per process) saves a collective when the caller already knows them."""
    _, world = _rank_world()
    if world == 1:
        return x
    if sizes is None:
        sizes = [n for (n,) in gather_counts([x.shape[0]], x.device)]
    return _GatherWithGrad.apply(x, sizes)


def global_info_nce(
    q_local: torch.Tensor,
    c_local: torch.Tensor,
    scale: float = 20.0,
    extra_local: torch.Tensor | None = None,
    symmetric: bool = False,
    false_negative_mask_fn: MaskFn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE over the global batch: this process's B_r queries against all N = sum_r B_r codes
    of every process, followed by every process's extra codes (labels offset by the rows of the
    lower ranks). Returns (loss to backward, global mean loss detached for logging).

    Scaling: the target is the gradient of L = (1/N) sum_i l_i over the global batch. The gather
    sends every process's gradient w.r.t. codes (and queries) back to the process that encoded
    them, so process r's parameter gradient is d(sum_r' loss_r')/d(its own embeddings). Summed over
    processes that is the full gradient of sum_r loss_r; DDP then divides by the world size W.
    Hence loss_r = (W / N) * sum_{i in r} l_i: the local mean when every B_r = N / W, and correct
    for uneven last batches too. Without distribution (W = 1) this is exactly `info_nce`.

    `false_negative_mask_fn(row_offset, local_sizes, extra_sizes)` returns this process's rows
    (B_r, N + E) of the mask (columns: all codes in rank order, then all extras in rank order);
    see `gathered_key_mask_fn`. With `symmetric`, its (B_r, N) block is also used for the
    code->query direction, so it must be symmetric (duplicate-text masks are).
    """
    extra = extra_local if extra_local is not None else q_local.new_zeros((0, q_local.shape[1]))
    _check_pairs(q_local, c_local, extra, scale)
    rank, world = _rank_world()
    b, e = q_local.shape[0], extra.shape[0]
    counts = gather_counts([b, e], q_local.device)
    sizes, extra_sizes = [n for n, _ in counts], [m for _, m in counts]
    packed = torch.cat([q_local, c_local, extra])  # (2 B_r + E_r, d): one collective for all three
    gathered = gather_with_grad(packed, [2 * n + m for n, m in counts])  # (2N + E, d)
    queries, codes, extras, start = [], [], [], 0
    for n, m in counts:
        queries.append(gathered[start : start + n])
        codes.append(gathered[start + n : start + 2 * n])
        extras.append(gathered[start + 2 * n : start + 2 * n + m])
        start += 2 * n + m
    all_q = _float(torch.cat(queries))  # (N, d)
    candidates = _float(torch.cat(codes + extras))  # (N + E, d)
    q, c = _float(q_local), _float(c_local)
    total = sum(sizes)

    offset = sum(sizes[:rank])
    labels = offset + torch.arange(b, device=q.device)  # (B_r,)
    mask = None
    if false_negative_mask_fn is not None:
        mask = false_negative_mask_fn(offset, sizes, extra_sizes)  # (B_r, N + E)
    logits = scale * q @ candidates.T  # (B_r, N + E)
    loss_sum = F.cross_entropy(_apply_mask(logits, mask, labels), labels, reduction="sum")
    if symmetric:
        logits_cq = scale * c @ all_q.T  # (B_r, N): this process's codes against every query
        mask_cq = None if mask is None else mask[:, :total]
        loss_cq = F.cross_entropy(_apply_mask(logits_cq, mask_cq, labels), labels, reduction="sum")
        loss_sum = (loss_sum + loss_cq) / 2

    mean = loss_sum.detach().clone()
    if world > 1:
        dist.all_reduce(mean)
    return loss_sum * (world / total), mean / total


def gathered_key_mask_fn(
    query_keys: torch.Tensor,
    code_keys: torch.Tensor,
    extra_code_keys: torch.Tensor | None = None,
    extra_query_keys: torch.Tensor | None = None,
) -> MaskFn:
    """A `false_negative_mask_fn` from this process's integer text keys: gathers every process's
    keys (no gradient) and applies `false_negative_mask` to this process's rows."""
    b = query_keys.shape[0]
    if extra_code_keys is None:
        extra_code_keys = code_keys.new_zeros((0,))
    _, world = _rank_world()

    def gather(keys: torch.Tensor) -> torch.Tensor:
        if world == 1:
            return keys
        sizes = [n for (n,) in gather_counts([keys.shape[0]], keys.device)]
        return torch.cat(_all_gather_rows(keys, sizes))

    all_q, all_c, all_e = gather(query_keys), gather(code_keys), gather(extra_code_keys)
    all_eq = None if extra_query_keys is None else gather(extra_query_keys)

    def fn(offset: int, sizes: list[int], extra_sizes: list[int]) -> torch.Tensor:
        rows = slice(offset, offset + b)
        same = (all_c[rows, None] == all_c[None, :]) | (all_q[rows, None] == all_q[None, :])
        extra = all_c[rows, None] == all_e[None, :]  # (B_r, E)
        if all_eq is not None:
            extra |= all_q[rows, None] == all_eq[None, :]
        return torch.cat([same, extra], dim=1)  # (B_r, N + E)

    return fn


# --- diagnostics: L^Global and L^Train for fixed embeddings -------------------------------------


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
    loss masks are left out, as ``false_negative_mask`` does: code j != i is dropped for query i
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
                same = (qk[rows, None] == qk[None, cols]) | (ck[rows, None] == ck[None, cols])
                same &= rows[:, None] != cols[None, :]  # the positive always counts
                lse_masked = torch.logaddexp(
                    lse_masked, torch.logsumexp(logits.masked_fill_(same, float("-inf")), dim=1)
                )
        positive = (scale * (q * c_all[start : start + block_size]).sum(dim=1)).double()  # (b,)
        total += (lse - positive).sum()
        total_masked += (lse_masked - positive).sum()
    return float(total / n), float(total_masked / n) if masked else None


def batch_loss(queries: Any, codes: Any, batches: Sequence[Any], scale: float = 20.0) -> float:
    """L^Train of a batch assignment: mean over every anchor of the batches of its in-batch
    InfoNCE (negatives = the other codes of its batch), accumulated in float64."""
    q_all, c_all = _as_tensor(queries), _as_tensor(codes)
    _check_embeddings(q_all, c_all, scale)
    by_size: dict[int, list[np.ndarray]] = {}
    for batch in batches:
        idx = np.asarray(batch, dtype=np.int64)
        if idx.size:
            by_size.setdefault(idx.size, []).append(idx)
    total, count = torch.zeros((), dtype=torch.float64), 0
    for group in by_size.values():  # batches of one size are scored together
        for start in range(0, len(group), 256):
            idx = torch.from_numpy(np.stack(group[start : start + 256]))  # (m, k)
            logits = (scale * q_all[idx] @ c_all[idx].transpose(1, 2)).double()  # (m, k, k)
            positive = torch.diagonal(logits, dim1=1, dim2=2)  # (m, k)
            total += (torch.logsumexp(logits, dim=2) - positive).sum()
            count += idx.numel()
    if count == 0:
        raise ValueError("batches hold no anchors")
    return float(total / count)
