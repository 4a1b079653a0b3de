"""`codesearch embed` and `codesearch batches`: embeddings of a split to an .npz, and one
epoch of a sampler's batches computed from such a file with L^Global, L^Train, their gap and
the time the assignment took (``codesearch.diagnostics``), as one JSON object."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from codesearch.cli.train import add_sampler_arguments, sampler_overrides
from codesearch.config import ENCODING_PRECISIONS, RunConfig
from codesearch.config_sources import apply_overrides
from codesearch.errors import UserError
from codesearch.outputs import check_output_file, replacing_file


def add_parsers(sub: argparse._SubParsersAction) -> None:
    embed = sub.add_parser("embed", help="write query and code embeddings of a split (.npz)")
    add_embed_arguments(embed)
    embed.set_defaults(func=cmd_embed)
    batches = sub.add_parser(
        "batches",
        help="a sampler's batch assignment from embeddings, with L^Global, L^Train and their gap",
    )
    add_batches_arguments(batches)
    batches.set_defaults(func=cmd_batches)


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
        "--precision",
        default="auto",
        choices=ENCODING_PRECISIONS,
        metavar="PRECISION",
        help="auto (default: bf16 where the hardware executes it natively, else fp32) | fp32 "
        "| bf16 (bfloat16 autocast)",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let Transformers import Python code shipped with the model "
        "(only for models whose code you have read)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_embed(args: argparse.Namespace) -> int:
    import torch

    from codesearch.data.prepared import load_records
    from codesearch.data.schema import normalize_language
    from codesearch.data.training_data import subsample, text_keys
    from codesearch.encode import inference_device, model_device, precision_context
    from codesearch.evaluate import embed_records, models_for_languages
    from codesearch.model import load_model
    from codesearch.precision import machine_info, resolve_encoding_precision, warn_if_emulated

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
    model.to(inference_device()).eval()
    start = time.perf_counter()
    device = model_device(model)
    precision = resolve_encoding_precision(args.precision, device.type)
    warn_if_emulated(precision, device.type)
    with torch.inference_mode(), precision_context(device, precision):
        queries, codes = embed_records(
            model, tokenizer, records, records, args.batch_size, not args.quiet
        )
    seconds = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing_file(out) as tmp:
        with open(tmp, "wb") as handle:  # a file handle: np.savez would append '.npz' to a name
            np.savez(
                handle,
                queries=queries.astype(np.float32),
                codes=codes.astype(np.float32),
                ids=np.array([r.id for r in records]),
                query_keys=text_keys([r.query for r in records]),
                code_keys=text_keys([r.code for r in records]),
                meta=np.array(
                    json.dumps(
                        {
                            "model": name,
                            "data": str(args.data),
                            "language": language,
                            "split": args.split,
                            "max_pairs": args.max_pairs,
                            "seed": args.seed,
                            "precision": precision,
                            "machine": machine_info(precision, device.type),
                        }
                    )
                ),
            )
    print(f"wrote {out}: {len(records):,} pairs x {queries.shape[1]} dims ({seconds:.1f} s)")
    return 0


# --- codesearch batches ---------------------------------------------------------------------


def load_embeddings(path: str | Path) -> dict:
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
    parser.add_argument(
        "--device", default="cpu", help="where the similarity search runs, e.g. cuda"
    )
    add_sampler_arguments(parser.add_argument_group("sampler options (--tbs-*, --hardneg-*)"))


def cmd_batches(args: argparse.Namespace) -> int:
    from codesearch.diagnostics import assignment_diagnostics, extras_of
    from codesearch.samplers import sampler_class

    cls = sampler_class(args.sampler)
    if args.out:
        check_output_file(args.out, "batches file")
    data = load_embeddings(args.embeddings)
    queries, codes = data["queries"], data["codes"]
    n = len(queries)
    if not args.scale > 0:
        raise UserError(f"--scale must be > 0, got {args.scale}")
    flags = {"sampler.name": args.sampler, **sampler_overrides(args)}
    options = apply_overrides(RunConfig(), flags, "command line").sampler.options.get(args.sampler)
    try:
        sampler = cls(n, args.batch_size, seed=args.seed, options=options, device=args.device)
    except ValueError:  # BatchSampler's check of the batch size against the data
        raise UserError(
            f"--batch-size {args.batch_size} must be between 1 and the number of "
            f"pairs ({n}) in {args.embeddings}"
        ) from None
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
        "timings": sampler.timings,
    }
    if any(b.extra_codes is not None for b in batches):
        result["extras_per_batch"] = float(np.mean([len(extras_of(b)) for b in batches]))
    if args.out:
        out = {
            "sampler": args.sampler,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "batches": [np.asarray(b.anchors).tolist() for b in batches],
        }
        if "extras_per_batch" in result:
            out["extras"] = [extras_of(b).tolist() for b in batches]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out), encoding="utf-8")
    print(json.dumps(result))
    return 0
