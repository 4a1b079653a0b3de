"""InfoNCE with in-batch negatives over the global batch (every process's codes are negatives).

For anchor i of a batch B: `-log softmax_{j in B}(s * <q_i, c_j>)[i]` with unit-norm embeddings
and scale s (20 in UniXcoder, temperature 0.05; docs/method.md). With several processes the
batch is the *global* batch: each process encodes its slice, the embeddings are gathered with
their gradient, so one process or W processes compute the same loss and gradients.
The L^Global / L^Train diagnostics of a batch assignment are in ``codesearch.diagnostics``.

Everything here is a pure function of embeddings; the model never computes its loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from codesearch.distributed import gather_counts, gather_with_grad, rank_world


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
    mask = mask.clone()
    mask[torch.arange(len(labels)), labels] = False
    return logits.masked_fill(mask.to(logits.device), float("-inf"))


def same_text(query_keys, code_keys, other_query_keys, other_code_keys):
    """True where two pairs share their query text or their code text: elementwise, with
    broadcasting, over integer text keys (numpy arrays or tensors; ``data.training_data.text_keys``).
    The one same-text rule: the loss's mask, the TBS graph's dropped edges and the diagnostics
    use it. With ``other_query_keys`` None only the code texts are compared."""
    same = code_keys == other_code_keys
    if other_query_keys is not None:
        same = same | (query_keys == other_query_keys)
    return same


def false_negative_mask(
    query_keys: torch.Tensor,
    code_keys: torch.Tensor,
    extra_code_keys: torch.Tensor | None = None,
    extra_query_keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, B+E) bool mask for `info_nce` from integer keys of the texts (e.g. hashes of the
    normalised query and code): candidate j is masked for anchor i when its code equals i's code
    or its query equals i's query (``same_text``). Extras are compared by code key, and by query
    key if given."""
    q, c = query_keys[:, None], code_keys[:, None]  # (B, 1)
    same = same_text(q, c, query_keys[None, :], code_keys[None, :])  # (B, B)
    if extra_code_keys is None:
        return same
    extra_query = None if extra_query_keys is None else extra_query_keys[None, :]
    extra = same_text(q, c, extra_query, extra_code_keys[None, :])  # (B, E)
    return torch.cat([same, extra], dim=1)  # (B, B+E)


def info_nce(
    q: torch.Tensor,
    c: torch.Tensor,
    scale: float = 20.0,
    extra_codes: torch.Tensor | None = None,
    symmetric: bool = False,
    false_negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE over the global batch: this process's B_r queries against all N = sum_r B_r codes
    of every process, then every process's extra codes (e.g. mined hard negatives); query i's
    positive is its own code. In one process the global batch is (q, c) itself.

    q, c: (B_r, d) unit-norm; extra_codes: (E_r, d). ``false_negative_mask``: (N, N + E) bool
    over the global batch, the same in every process (rows: all anchors in rank order; columns:
    all codes in rank order, then all extras in rank order), True = drop that candidate for that
    anchor (``false_negative_mask``); the positive is never dropped. ``symmetric`` averages in
    the code->query direction (code j against the N queries, masked by the transpose; the extras
    are not anchors).

    Returns the loss to backward, loss_r = (W / N) sum_{i in r} l_i: the batch mean in one
    process, and the global mean is its average over the W processes. Why: the gather sends
    every process's gradient w.r.t. its embeddings back to the process that encoded them, so
    process r's parameter gradient is d(sum_r' loss_r')/d(its embeddings); DDP averages over
    W, which gives the gradient of (1/N) sum_i l_i, also for an uneven last batch.
    """
    extra = extra_codes if extra_codes is not None else q.new_zeros((0, q.shape[-1]))
    _check_pairs(q, c, extra, scale)
    rank, world = rank_world()
    b = q.shape[0]
    counts = gather_counts([b, extra.shape[0]], q.device)
    sizes = [n for n, _ in counts]
    packed = torch.cat([q, c, extra])  # (2 B_r + E_r, d): one collective for all three
    gathered = gather_with_grad(packed, [2 * n + m for n, m in counts])  # (2N + E, d)
    queries, codes, extras, start = [], [], [], 0
    for n, m in counts:
        queries.append(gathered[start : start + n])
        codes.append(gathered[start + n : start + 2 * n])
        extras.append(gathered[start + 2 * n : start + 2 * n + m])
        start += 2 * n + m
    all_q = _float(torch.cat(queries))  # (N, d)
    candidates = _float(torch.cat(codes + extras))  # (N + E, d)
    q, c = _float(q), _float(c)
    total, offset = sum(sizes), sum(sizes[:rank])
    mine = slice(offset, offset + b)
    if false_negative_mask is not None and (
        false_negative_mask.shape != (total, candidates.shape[0])
        or false_negative_mask.dtype != torch.bool
    ):
        raise ValueError(
            f"false_negative_mask must be a bool tensor of shape {(total, candidates.shape[0])}; "
            f"got {false_negative_mask.dtype} {tuple(false_negative_mask.shape)}"
        )
    labels = offset + torch.arange(b, device=q.device)  # (B_r,)
    mask = None if false_negative_mask is None else false_negative_mask[mine]  # (B_r, N + E)
    logits = scale * q @ candidates.T  # (B_r, N + E)
    loss_sum = F.cross_entropy(_apply_mask(logits, mask, labels), labels, reduction="sum")
    if symmetric:
        logits_cq = scale * c @ all_q.T  # (B_r, N): this process's codes against every query
        mask_cq = None if false_negative_mask is None else false_negative_mask[:total, mine].T
        loss_cq = F.cross_entropy(_apply_mask(logits_cq, mask_cq, labels), labels, reduction="sum")
        loss_sum = (loss_sum + loss_cq) / 2
    return loss_sum * (world / total)
