"""Batched no-grad encoding of many texts with one tower, optionally shared across processes.

Texts are sorted by length so each batch pads little, and the output keeps the input order.
With an Accelerator of several processes each process encodes a contiguous shard and every
process gets the whole matrix back.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm


def tokenize_lengths(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, truncated to ``max_length`` (special tokens included)."""
    return tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)[
        "input_ids"
    ]


def pad_batch(ids: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding to the longest sequence of the batch."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids.to(device), mask.to(device)


@torch.no_grad()
def encode_ids(
    encode_fn,
    ids: list[list[int]],
    pad_id: int,
    batch_size: int = 128,
    device="cpu",
    progress: bool = False,
    desc: str = "encode",
) -> np.ndarray:
    """Embed pre-tokenised sequences with ``encode_fn(input_ids, mask) -> (B, d)``; float32."""
    if not ids:
        raise ValueError("nothing to encode")
    order = np.argsort([len(x) for x in ids], kind="stable")
    chunks = []
    for start in tqdm(
        range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False, unit="batch"
    ):
        rows = order[start : start + batch_size]
        input_ids, mask = pad_batch([ids[i] for i in rows], pad_id, device)
        chunks.append(encode_fn(input_ids, mask).float().cpu())
    out = torch.cat(chunks).numpy()  # (n, d) in length order
    result = np.empty_like(out)
    result[order] = out
    return result


def encode_ids_distributed(
    encode_fn,
    ids: list[list[int]],
    pad_id: int,
    accelerator,
    batch_size: int = 128,
    progress: bool = False,
    desc: str = "encode",
) -> np.ndarray:
    """Like ``encode_ids`` but each process encodes one shard; all processes get all rows."""
    world, rank = accelerator.num_processes, accelerator.process_index
    if world == 1:
        return encode_ids(encode_fn, ids, pad_id, batch_size, accelerator.device, progress, desc)
    bounds = np.linspace(0, len(ids), world + 1).astype(int)
    shard = ids[bounds[rank] : bounds[rank + 1]]
    part = (
        encode_ids(
            encode_fn,
            shard,
            pad_id,
            batch_size,
            accelerator.device,
            progress and accelerator.is_main_process,
            desc,
        )
        if shard
        else None
    )
    width = int(max(np.diff(bounds)))
    dim = torch.tensor([part.shape[1] if part is not None else 0], device=accelerator.device)
    dim = int(accelerator.gather(dim).max())
    padded = torch.zeros((width, dim), dtype=torch.float32, device=accelerator.device)
    if part is not None:
        padded[: len(part)] = torch.from_numpy(part).to(accelerator.device)
    gathered = accelerator.gather(padded).cpu().numpy().reshape(world, width, dim)
    return np.concatenate([gathered[r, : bounds[r + 1] - bounds[r]] for r in range(world)])
