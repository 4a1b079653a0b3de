"""Batched no-grad encoding of many texts with one tower, optionally shared across processes.

Texts are sorted by length so each batch pads little, and the output keeps the input order.
With an Accelerator of several processes each process encodes a contiguous shard and every
process gets the whole matrix back.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from codesearch import metrics, sts_eval
from codesearch.data.training_data import TrainingData
from codesearch.loss import false_negative_mask
from codesearch.samplers.base import Batch, local_slice

PRECISIONS = ("fp32", "bf16")


def precision_context(device, precision: str = "fp32"):
    """No-grad encoding in float32 (``fp32``) or under bfloat16 autocast (``bf16``: on a CPU
    with AMX about 2.6x faster for MiniLM; docs/evaluation.md gives how far the ranks move)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def pad_batch(ids: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding to the longest sequence of the batch."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids.to(device), mask.to(device)


@dataclass
class LocalBatch:
    """This process's share of a global batch as model inputs, and the loss's global mask."""

    anchors: np.ndarray  # (b,) this process's anchor pair indices
    query: tuple[torch.Tensor, torch.Tensor]  # (b, Lq) ids and attention mask
    code: tuple[torch.Tensor, torch.Tensor]  # (b + e_r, Lc): its anchors' codes, then its extras
    has_extras: bool  # whether the global batch has extra codes
    mask: torch.Tensor  # (k, k + e) bool: the global batch's false-negative mask


def extra_rows(data: TrainingData, batch: Batch, rank: int, world: int) -> np.ndarray:
    """Process ``rank``'s extra candidate codes: its slice of the sampler's extras (pair
    indices), then its anchors' own negatives when the data has them (pair i's negative as
    N + i). Concatenated in rank order they are the global batch's extras, the order in which
    ``loss.info_nce`` gathers them."""
    extra = batch.extra_codes if batch.extra_codes is not None else np.empty(0, dtype=np.int64)
    rows = [local_slice(extra, rank, world)]
    if data.has_negatives:
        rows.append(len(data.code_ids) + local_slice(batch.anchors, rank, world))
    return np.concatenate(rows).astype(np.int64)


def extras_mask(data: TrainingData, anchors: np.ndarray, extras: np.ndarray) -> torch.Tensor:
    """(k, k + e) bool, the loss's false-negative mask (``loss.false_negative_mask``) of anchors
    against anchors and extras (``extra_rows``' numbering). A sampler's extra is another pair's
    code, dropped when it shares the anchor's query or code text; a pair's own negative is never
    a positive of a query, so only its text is compared with the anchor's code."""
    n, k = len(data.code_ids), len(anchors)
    qk, ck = torch.from_numpy(data.query_key), torch.from_numpy(data.code_key)
    is_pair = extras < n
    pairs = torch.from_numpy(extras[is_pair])
    mask = false_negative_mask(qk[anchors], ck[anchors], ck[pairs], qk[pairs])
    if is_pair.all():
        return mask
    nk = torch.from_numpy(data.negative_key)
    negatives = torch.from_numpy(extras[~is_pair] - n)
    extra_mask = torch.zeros((k, len(extras)), dtype=torch.bool)
    extra_mask[:, torch.from_numpy(is_pair)] = mask[:, k:]
    extra_mask[:, torch.from_numpy(~is_pair)] = false_negative_mask(
        qk[anchors], ck[anchors], nk[negatives]
    )[:, k:]
    return torch.cat([mask[:, :k], extra_mask], dim=1)


def collate(data: TrainingData, batch: Batch, rank: int, world: int, device) -> LocalBatch:
    """Process ``rank``'s slice of a global batch, padded. Every process knows the whole global
    batch, so each builds the same global mask (anchors in rank order; codes in rank order, then
    extras in rank order) and the loss takes its own rows."""
    anchors = batch.anchors
    mine = local_slice(anchors, rank, world)
    extras = np.concatenate([extra_rows(data, batch, r, world) for r in range(world)])
    n = len(data.code_ids)
    code_ids = [data.code_ids[i] for i in mine] + [
        data.code_ids[j] if j < n else data.negative_ids[j - n]
        for j in extra_rows(data, batch, rank, world)
    ]
    return LocalBatch(
        anchors=mine,
        query=pad_batch([data.query_ids[i] for i in mine], data.pad_id, device),
        code=pad_batch(code_ids, data.pad_id, device),
        has_extras=len(extras) > 0,
        mask=extras_mask(data, anchors, extras).to(device),
    )


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


def inference_device() -> str:
    """Where a model loaded to embed (not to train) runs: the GPU when there is one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_device(model) -> torch.device:
    """The device of a model's weights, where its embedding pass runs."""
    return next(model.parameters()).device


def embed_pairs(
    model,
    query_ids: list[list[int]],
    code_ids: list[list[int]],
    pad_id: int,
    batch_size: int = 128,
    *,
    accelerator=None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The one no-grad embedding pass: (queries (Nq, d), codes (Nc, d)) float32 of token ids
    with a DualEncoder's two towers (``encode_queries`` / ``encode_codes``).

    Without ``accelerator`` (evaluation, ``codesearch embed``, the batch view) it runs on the
    model's device (``model_device``) in the caller's mode and precision context. With the
    ``accelerator`` of a model being trained it is shared out across processes (every process
    gets all rows), under the accelerator's autocast, in eval mode, and leaves the model in
    train mode."""
    if accelerator is None:
        device = model_device(model)
        q = encode_ids(
            model.encode_queries, query_ids, pad_id, batch_size, device, progress, "encode query"
        )
        c = encode_ids(
            model.encode_codes, code_ids, pad_id, batch_size, device, progress, "encode code"
        )
        return q, c
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    show = progress and accelerator.is_main_process
    with torch.no_grad(), accelerator.autocast():
        q = encode_ids_distributed(
            unwrapped.encode_queries,
            query_ids,
            pad_id,
            accelerator,
            batch_size,
            show,
            "embed queries",
        )
        c = encode_ids_distributed(
            unwrapped.encode_codes, code_ids, pad_id, accelerator, batch_size, show, "embed codes"
        )
    unwrapped.train()
    return q, c


def validation_metric(valid: dict) -> str:
    """``spearman`` when the valid pairs carry gold scores (sentence pairs), else ``mrr``."""
    return "spearman" if any(gold is not None for *_, gold in valid.values()) else "mrr"


def validation_scores(valid: dict, embed) -> dict[str, float]:
    """Each language's validation score: MRR@1000 of its valid queries against its valid codes
    (codebase protocol), or for scored sentence pairs Spearman's rho (not x 100) of cosine
    against the gold score (sts protocol); ``valid``: language -> (query ids, code ids, gold or
    None); ``embed(query_ids, code_ids)`` -> (q, c)."""
    out = {}
    for language, (query_ids, code_ids, gold) in valid.items():
        q, c = embed(query_ids, code_ids)
        if gold is None:
            out[language] = metrics.mrr(metrics.gold_ranks(q, c, np.arange(len(query_ids))))
        else:
            out[language] = sts_eval.spearman_x100(sts_eval.cosines(q, c), gold) / 100
    return out
