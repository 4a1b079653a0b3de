"""The global batch across processes: gathers that keep the gradient, and the check that every
process computed the same batches (torch.distributed directly, so one process needs no group).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from codesearch.errors import UserError


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_counts(counts: Sequence[int], device: torch.device | str = "cpu") -> list[list[int]]:
    """All-gather a few integers per process: result[r] = process r's `counts`."""
    _, world = rank_world()
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
        rank, _ = rank_world()
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
    _, world = rank_world()
    if world == 1:
        return x
    if sizes is None:
        sizes = [n for (n,) in gather_counts([x.shape[0]], x.device)]
    return _GatherWithGrad.apply(x, sizes)


def check_processes_agree(digest: str, what: str, device: torch.device | str = "cpu") -> None:
    """Every process computes the epoch's batches itself (from the same gathered embeddings);
    the contrastive batch is only global if they agree, so compare their digests (hex)."""
    value = int.from_bytes(bytes.fromhex(digest), "little", signed=True)
    digests = [d for (d,) in gather_counts([value], device)]
    if len(set(digests)) > 1:
        found = ", ".join((d % 2**64).to_bytes(8, "little").hex() for d in digests)
        raise UserError(
            f"{what}: the {len(digests)} processes computed different batches "
            f"(digests {found}); their embeddings or library versions differ"
        )
