"""Run under `torchrun --nproc_per_node 2` (gloo, CPU) by tests/test_loss.py.

A tiny linear dual encoder wrapped in DDP; each rank holds a slice of one fixed global batch.
`info_nce` (given the whole global batch's false-negative mask in every rank) + backward must
give the loss (the average of the ranks' losses) and the (DDP-averaged) parameter gradients of a
single process computing `info_nce` on the whole batch. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from codesearch.loss import false_negative_mask, info_nce

DIM_IN, DIM_OUT = 6, 4


class TinyDual(nn.Module):
    """Separate linear towers; both run in one forward (as DualEncoder does)."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(DIM_IN, DIM_OUT)
        self.code = nn.Linear(DIM_IN, DIM_OUT)

    def forward(self, xq: torch.Tensor, xc: torch.Tensor, xe: torch.Tensor) -> tuple:
        norm = nn.functional.normalize
        return (
            norm(self.query(xq), dim=-1),
            norm(self.code(xc), dim=-1),
            norm(self.code(xe), dim=-1),
        )


def make_case(n: int, e: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    keys_q = torch.arange(n)
    keys_c = torch.arange(n)
    keys_c[n - 1] = keys_c[0]  # a duplicate code split across the two ranks
    keys_q[n - 2] = keys_q[1]  # a duplicate query split across the two ranks
    extra_keys = torch.arange(100, 100 + e)
    if e:
        extra_keys[0] = keys_c[2]  # a mined "negative" that is really rank 0's positive
    return {
        "xq": torch.randn(n, DIM_IN, generator=g, dtype=torch.float64),
        "xc": torch.randn(n, DIM_IN, generator=g, dtype=torch.float64),
        "xe": torch.randn(e, DIM_IN, generator=g, dtype=torch.float64),
        "kq": keys_q,
        "kc": keys_c,
        "ke": extra_keys,
    }


def reference(case: dict, split: list[int], extra_split: list[int], symmetric: bool, mask: bool):
    """One process, whole batch: loss and gradients of the global-batch mean loss."""
    torch.manual_seed(0)
    model = TinyDual().double()
    q, c, e = model(case["xq"], case["xc"], case["xe"])
    fn_mask = false_negative_mask(case["kq"], case["kc"], case["ke"]) if mask else None
    loss = info_nce(q, c, 20.0, extra_codes=e, symmetric=symmetric, false_negative_mask=fn_mask)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def distributed(case: dict, split: list[int], extra_split: list[int], symmetric: bool, mask: bool):
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(TinyDual().double())
    rows = slice(sum(split[:rank]), sum(split[: rank + 1]))
    extra_rows = slice(sum(extra_split[:rank]), sum(extra_split[: rank + 1]))
    q, c, e = model(case["xq"][rows], case["xc"][rows], case["xe"][extra_rows])
    # the whole global batch's mask, the same in every rank
    fn_mask = false_negative_mask(case["kq"], case["kc"], case["ke"]) if mask else None
    loss = info_nce(q, c, 20.0, extra_codes=e, symmetric=symmetric, false_negative_mask=fn_mask)
    loss.backward()
    mean = loss.detach().clone()
    dist.all_reduce(mean)
    mean /= dist.get_world_size()
    return mean, {k.removeprefix("module."): p.grad.clone() for k, p in model.named_parameters()}


def main() -> int:
    cases = [
        # (name, per-rank batch sizes, per-rank extra counts, symmetric, mask)
        ("even", [4, 4], [0, 0], False, False),
        ("even-symmetric-extras-masked", [4, 4], [2, 3], True, True),
        ("uneven-last-batch", [5, 2], [1, 0], False, True),
        ("uneven-symmetric-masked-no-extras", [3, 6], [0, 0], True, True),
    ]
    inputs = [
        make_case(sum(split), sum(extra_split), seed=i)
        for i, (_, split, extra_split, *_) in enumerate(cases)
    ]
    # the references first: info_nce is over the global batch once the process group exists
    references = [
        reference(case, split, extra_split, symmetric, mask)
        for case, (_, split, extra_split, symmetric, mask) in zip(inputs, cases, strict=True)
    ]
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    failures = []
    for case, (ref_loss, ref_grads), (name, split, extra_split, symmetric, mask) in zip(
        inputs, references, cases, strict=True
    ):
        loss, grads = distributed(case, split, extra_split, symmetric, mask)
        if not torch.allclose(loss, ref_loss, rtol=1e-5, atol=0):
            failures.append(f"{name}: loss {loss.item()} != {ref_loss.item()}")
        for key, ref in ref_grads.items():
            if not torch.allclose(grads[key], ref, rtol=1e-5, atol=1e-10):
                diff = (grads[key] - ref).abs().max().item()
                failures.append(f"{name}: gradient of {key} differs by {diff:.3g}")
    for line in failures:
        print(f"rank {rank}: {line}", file=sys.stderr)
    if not failures:
        print(f"rank {rank}: {len(cases)} cases match the single-process loss and gradients")
    dist.destroy_process_group()
    return 1 if failures else 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: gloo's worker threads can abort the process there
    # ("terminate called without an active exception", pytorch/pytorch#190489).
    os._exit(status)
