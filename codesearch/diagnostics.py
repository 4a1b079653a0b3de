"""Batch-assignment diagnostics: L^Global, L^Train(pi), their gap and in-batch hardness.

For fixed embeddings, L^Global (every one of the N codes is a candidate) minus L^Train(pi) (only
the codes of the anchor's batch, plus any mined extra codes) is >= 0, and Tail Batch Sampling
(arXiv 2210.12874, docs/method.md) picks pi to make it small. Two commands use this:

- ``codesearch embed``: query and code embeddings of one split (row i = pair i) to an .npz;
- ``codesearch batches``: one epoch of a sampler's batches computed from such a file, with the
  losses, the gap, the hardness and the time the assignment took, as one JSON object.

The trainer calls ``assignment_diagnostics`` once per epoch. The plain losses count every
candidate; given the pairs' text keys, the same losses are also computed with the training
loss's false-negative mask (``*_masked``: a candidate sharing the anchor's query or code text is
left out, in L^Global and L^Train alike, so that gap is >= 0 too), with the number of anchors
the mask leaves without negatives, or with fewer than half of their in-batch negatives.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from codesearch.config import add_sampler_arguments
from codesearch.errors import UserError
from codesearch.loss import batch_loss, false_negative_mask, global_losses
from codesearch.outputs import check_output_file
from codesearch.samplers.base import Batch

# --- pure functions -------------------------------------------------------------------------


def _as_batches(batches: Sequence[Batch | np.ndarray | Sequence[int]]) -> list[Batch]:
    """Batch objects from Batch objects or plain lists of anchor indices."""
    return [b if isinstance(b, Batch) else Batch(np.asarray(b, dtype=np.int64)) for b in batches]


def _extras(batch: Batch) -> np.ndarray:
    if batch.extra_codes is None:
        return np.empty(0, dtype=np.int64)
    return np.asarray(batch.extra_codes, dtype=np.int64)


def batch_loss_with_extras(
    queries: np.ndarray,
    codes: np.ndarray,
    batches: Sequence[Batch | np.ndarray],
    scale: float = 20.0,
) -> float:
    """L^Train where each batch's candidates are its anchors' codes and its ``extra_codes``:
    mean over every anchor of -log softmax_{j in B + E}(s <q_i, c_j>)[i], in float64.

    Equals ``loss.batch_loss`` when no batch has extras (and then simply calls it).
    """
    batches = _as_batches(batches)
    if all(len(_extras(b)) == 0 for b in batches):
        return batch_loss(queries, codes, [b.anchors for b in batches], scale)
    q_all = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))  # (N, d)
    c_all = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32))  # (N, d)
    if q_all.dim() != 2 or q_all.shape != c_all.shape or not scale > 0:
        raise ValueError(
            f"queries and codes must both be (N, d) and scale > 0; got "
            f"{tuple(q_all.shape)}, {tuple(c_all.shape)}, scale {scale}"
        )
    total, count = 0.0, 0
    for batch in batches:
        anchors = torch.from_numpy(np.asarray(batch.anchors, dtype=np.int64))  # (k,)
        if not len(anchors):
            continue
        candidates = torch.cat([anchors, torch.from_numpy(_extras(batch))])  # (k + e,)
        logits = (scale * q_all[anchors] @ c_all[candidates].T).double()  # (k, k + e)
        positive = torch.diagonal(logits[:, : len(anchors)])  # (k,)
        total += float((torch.logsumexp(logits, dim=1) - positive).sum())
        count += len(anchors)
    if count == 0:
        raise ValueError("batches hold no anchors")
    return total / count


def batch_hardness(
    queries: np.ndarray, codes: np.ndarray, batches: Sequence[Batch | np.ndarray]
) -> float:
    """Mean similarity <q_i, c_j> over every in-batch negative (j in the batch's anchors and
    extras, j != i), pooled over all batches of the epoch (each (i, j) pair weighs the same)."""
    total, count = 0.0, 0
    for batch in _as_batches(batches):
        anchors = np.asarray(batch.anchors, dtype=np.int64)
        candidates = np.concatenate([anchors, _extras(batch)])
        sims = queries[anchors].astype(np.float64) @ codes[candidates].astype(np.float64).T
        k = len(anchors)
        total += float(sims.sum() - np.trace(sims[:, :k]))  # (k, k + e) minus the positives
        count += k * len(candidates) - k
    return total / count if count else float("nan")


def masked_batch_stats(
    queries: np.ndarray,
    codes: np.ndarray,
    batches: Sequence[Batch | np.ndarray],
    query_keys: np.ndarray,
    code_keys: np.ndarray,
    scale: float = 20.0,
) -> dict:
    """What the training loss sees of an assignment after its false-negative mask
    (``loss.false_negative_mask`` on the text keys, extras compared by code and query):
    ``l_train_masked`` (float64 mean over anchors), ``anchors_no_negatives`` (anchors whose
    every in-batch negative is masked: their loss is 0) and ``anchors_under_half_negatives``
    (fewer than half of their k + e - 1 negatives left)."""
    q_all = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))  # (N, d)
    c_all = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float32))  # (N, d)
    qk, ck = torch.as_tensor(np.asarray(query_keys)), torch.as_tensor(np.asarray(code_keys))
    total, count, none_left, under_half = 0.0, 0, 0, 0
    for batch in _as_batches(batches):
        anchors = torch.from_numpy(np.asarray(batch.anchors, dtype=np.int64))  # (k,)
        extras = torch.from_numpy(_extras(batch))  # (e,)
        k = len(anchors)
        if not k:
            continue
        candidates = torch.cat([anchors, extras])  # (k + e,)
        mask = false_negative_mask(qk[anchors], ck[anchors], ck[extras], qk[extras])  # (k, k+e)
        mask[torch.arange(k), torch.arange(k)] = False  # the positive always counts
        logits = (scale * q_all[anchors] @ c_all[candidates].T).double()  # (k, k + e)
        logits = logits.masked_fill(mask, float("-inf"))
        total += float((torch.logsumexp(logits, dim=1) - torch.diagonal(logits[:, :k])).sum())
        negatives = len(candidates) - 1 - mask.sum(dim=1)  # (k,) negatives left per anchor
        none_left += int((negatives == 0).sum())
        under_half += int((2 * negatives < len(candidates) - 1).sum())
        count += k
    if count == 0:
        raise ValueError("batches hold no anchors")
    return {
        "l_train_masked": total / count,
        "anchors_no_negatives": none_left,
        "anchors_under_half_negatives": under_half,
    }


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
    anchors_no_negatives, anchors_under_half_negatives} (``masked_batch_stats``).

    Cost: L^Global is O(N^2 d) (blockwise, memory O(block^2)); the rest is O(N k d).
    """
    l_global, l_global_masked = global_losses(
        queries, codes, scale, query_keys=query_keys, code_keys=code_keys
    )
    l_train = batch_loss_with_extras(queries, codes, batches, scale)
    out = {
        "l_global": l_global,
        "l_train": l_train,
        "gap": l_global - l_train,
        "hardness": batch_hardness(queries, codes, batches),
    }
    if query_keys is not None and code_keys is not None:
        masked = masked_batch_stats(queries, codes, batches, query_keys, code_keys, scale)
        out.update(
            l_global_masked=l_global_masked,
            l_train_masked=masked["l_train_masked"],
            gap_masked=l_global_masked - masked["l_train_masked"],
            anchors_no_negatives=masked["anchors_no_negatives"],
            anchors_under_half_negatives=masked["anchors_under_half_negatives"],
        )
    return out


# --- codesearch embed -----------------------------------------------------------------------


def add_embed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="minilm",
        help="training run directory, 'minilm', a hub id or a local model path",
    )
    parser.add_argument("--data", required=True, help="prepared data directory")
    parser.add_argument("--language", required=True)
    parser.add_argument("--split", default="train", help="train | valid | test | codebase")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument(
        "--max-pairs",
        type=int,
        default=None,
        help="the same deterministic subset `train --max-train-pairs` uses",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of that subset (train's seed)")
    parser.add_argument("--batch-size", type=int, default=128, help="encoding batch size")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let Transformers import Python code shipped with the model "
        "(only for models whose code you have read)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_embed(args: argparse.Namespace) -> int:
    from codesearch.data.prepared import load_records
    from codesearch.data.schema import normalize_language
    from codesearch.evaluate import embed_records, models_for_languages
    from codesearch.model import load_model
    from codesearch.train import _text_keys, subsample

    if args.max_pairs is not None and args.max_pairs < 1:
        raise UserError(f"--max-pairs must be >= 1, got {args.max_pairs}")
    check_output_file(args.out, "embeddings file")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    language = normalize_language(args.language)
    records = subsample(load_records(args.data, language, args.split), args.max_pairs, args.seed)
    if not records:
        raise UserError(f"{args.data}/{language}/{args.split}.jsonl: no records to embed")
    name = models_for_languages(args.model, [language])[language]
    model, tokenizer = load_model(name, trust_remote_code=args.trust_remote_code)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    start = time.perf_counter()
    with torch.inference_mode():
        queries = embed_records(model, tokenizer, records, "query", args.batch_size, not args.quiet)
        codes = embed_records(model, tokenizer, records, "code", args.batch_size, not args.quiet)
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as handle:  # a file handle: np.savez would append '.npz' to a name
        np.savez(
            handle,
            queries=queries.astype(np.float32),
            codes=codes.astype(np.float32),
            ids=np.array([r.id for r in records]),
            query_keys=_text_keys([r.query for r in records]),
            code_keys=_text_keys([r.code for r in records]),
            meta=np.array(
                json.dumps(
                    {
                        "model": name,
                        "data": str(args.data),
                        "language": language,
                        "split": args.split,
                        "max_pairs": args.max_pairs,
                        "seed": args.seed,
                    }
                )
            ),
        )
    os.replace(tmp, out)
    print(f"wrote {out}: {len(records):,} pairs x {queries.shape[1]} dims ({seconds:.1f} s)")
    return 0


# --- codesearch batches ---------------------------------------------------------------------


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """queries, codes (float32, L2-normalised rows) and the text keys when the file has them."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such embeddings file (write one with `codesearch embed`)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in ("queries", "codes") if k not in arrays]
    if missing:
        raise UserError(
            f"{path}: has no {' or '.join(missing)} array (it has: "
            f"{', '.join(arrays) or 'nothing'})"
        )
    q, c = arrays["queries"], arrays["codes"]
    if q.ndim != 2 or q.shape != c.shape or q.shape[0] == 0:
        raise UserError(
            f"{path}: queries and codes must both be (N, d) with N > 0; got {q.shape} and {c.shape}"
        )
    out = {}
    for key, x in (("queries", q), ("codes", c)):
        x = x.astype(np.float32)
        out[key] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    for key in ("query_keys", "code_keys"):
        if key in arrays:
            if arrays[key].shape != (q.shape[0],):
                raise UserError(
                    f"{path}: {key} has shape {arrays[key].shape}, expected ({q.shape[0]},)"
                )
            out[key] = arrays[key].astype(np.int64)
    return out


def add_batches_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embeddings", required=True, help=".npz from `codesearch embed`")
    parser.add_argument("--sampler", default="random", help="random | tbs | hardneg")
    parser.add_argument("--batch-size", type=int, required=True, help="the global batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=20.0, help="logit scale (1/temperature)")
    parser.add_argument("--out", default=None, help="write the batches (row indices) as JSON")
    add_sampler_arguments(parser.add_argument_group("sampler options (tbs_*, hardneg_*)"))


def cmd_batches(args: argparse.Namespace) -> int:
    from codesearch.config import SamplerConfig, sampler_overrides
    from codesearch.samplers import sampler_class

    cls = sampler_class(args.sampler)
    if args.out:
        check_output_file(args.out, "batches file")
    data = load_embeddings(args.embeddings)
    queries, codes = data["queries"], data["codes"]
    n = len(queries)
    if not 1 <= args.batch_size <= n:
        raise UserError(
            f"--batch-size {args.batch_size} must be between 1 and the number of "
            f"pairs ({n}) in {args.embeddings}"
        )
    if not args.scale > 0:
        raise UserError(f"--scale must be > 0, got {args.scale}")
    flags = {k.removeprefix("sampler."): v for k, v in sampler_overrides(args).items()}
    options = SamplerConfig(name=args.sampler, **flags).options_for(args.sampler)
    sampler = cls(n, args.batch_size, seed=args.seed, **options)  # UserError on a bad option
    if "code_keys" in data and "query_keys" in data:
        sampler.set_text_keys(data["query_keys"], data["code_keys"])
    start = time.perf_counter()
    sampler.set_epoch(0)
    sampler.prepare(lambda: (queries, codes))
    batches = sampler.batches()
    seconds = time.perf_counter() - start
    result = {
        "sampler": args.sampler,
        "n": n,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "n_batches": len(batches),
        "scale": args.scale,
        **assignment_diagnostics(
            queries, codes, batches, args.scale, data.get("query_keys"), data.get("code_keys")
        ),
        "seconds": seconds,
        "timings": getattr(sampler, "last_timings", None),
    }
    if any(b.extra_codes is not None for b in batches):
        result["extras_per_batch"] = float(np.mean([len(_extras(b)) for b in batches]))
    if args.out:
        out = {
            "sampler": args.sampler,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "batches": [np.asarray(b.anchors).tolist() for b in batches],
        }
        if "extras_per_batch" in result:
            out["extras"] = [_extras(b).tolist() for b in batches]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out), encoding="utf-8")
    print(json.dumps(result))
    return 0
