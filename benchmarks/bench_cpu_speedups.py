"""Benchmark: the CPU speedups of the local profile, each against its baseline in the same run
(docs/benchmarks.md, docs/precision.md).

- ``encode``: MiniLM encoding of a language's test split (queries at length 64, codes at 128,
  length-sorted batches of 128) in float32 and under bfloat16 autocast, the two alternating per
  repetition; texts/s of each, their ratio, and how far the codebase ranks move: MRR of both,
  the share of queries whose gold rank is the same, and the largest rank change.
- ``train``: MiniLM training steps (batch 32 of the same pairs, InfoNCE at scale 20, AdamW),
  per precision, from the same weights, the variants alternating per repetition: torch's
  dropout (the baseline), ``codesearch.fast_dropout``, and fast dropout with each batch side
  encoded in 8 length-sorted chunks (``train.length_chunks: 8``); pairs/s and the ratios to
  the baseline.

bf16 runs only where the CPU executes it natively (``codesearch.precision``): emulated on an
AVX2-only CPU it is 15-40x slower and says nothing about the profile, which uses fp32 there.
``--precisions fp32 bf16`` forces both.

    PYTHONPATH=. python benchmarks/bench_cpu_speedups.py            # about 4 minutes
    PYTHONPATH=. python benchmarks/bench_cpu_speedups.py --tiny --data DIR --language python
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from codesearch import metrics  # noqa: E402
from codesearch.config import RunConfig  # noqa: E402
from codesearch.data.prepared import load_records  # noqa: E402
from codesearch.data.training_data import tokenize_lengths  # noqa: E402
from codesearch.encode import encode_ids, pad_batch, precision_context  # noqa: E402
from codesearch.model import load_model  # noqa: E402
from codesearch.precision import cpu_has_native_bf16, machine_info  # noqa: E402
from codesearch.task import choose_dropout  # noqa: E402

# (name, fast dropout, length chunks): the baseline first
TRAIN_VARIANTS = (
    ("baseline", False, 1),
    ("fast_dropout", True, 1),
    ("fast_dropout_chunks8", True, 8),
)


def token_ids(tokenizer, records) -> tuple[list[list[int]], list[list[int]]]:
    """Queries at length 64 and codes at 128, as the local profile's MiniLM group."""
    return (
        tokenize_lengths(tokenizer, [r.query for r in records], 64),
        tokenize_lengths(tokenizer, [r.code for r in records], 128),
    )


def bench_encode(model, tokenizer, records, repeats: int, precisions: list[str]) -> dict:
    queries, codes = token_ids(tokenizer, records)
    pad = tokenizer.pad_token_id
    seconds: dict[str, list[float]] = {p: [] for p in precisions}
    ranks = {}
    model.eval()
    for rep in range(repeats):
        for precision in precisions if rep % 2 == 0 else precisions[::-1]:
            start = time.perf_counter()
            with torch.inference_mode(), precision_context("cpu", precision):
                q = encode_ids(model.encode_queries, queries, pad)
                c = encode_ids(model.encode_codes, codes, pad)
            seconds[precision].append(time.perf_counter() - start)
            ranks[precision] = metrics.gold_ranks(q, c, np.arange(len(records)))
    texts = 2 * len(records)
    rate = {p: texts / statistics.median(s) for p, s in seconds.items()}
    out = {
        "queries": len(records),
        "texts_per_s": rate,
        "mrr": {p: metrics.mrr(r) for p, r in ranks.items()},
        "seconds": seconds,
    }
    if "bf16" in ranks and "fp32" in ranks:
        moved = np.abs(ranks["bf16"] - ranks["fp32"])
        out.update(
            bf16_over_fp32=rate["bf16"] / rate["fp32"],
            same_rank_share=float((moved == 0).mean()),
            max_rank_change=int(moved.max()),
        )
    return out


def bench_train(model, tokenizer, records, steps: int, repeats: int, precision: str) -> dict:
    queries, codes = token_ids(tokenizer, records)
    pad = tokenizer.pad_token_id
    fast = copy.deepcopy(model)
    choose_dropout(fast, RunConfig(), "cpu")  # as the trainer does (train.cpu_dropout: fast)
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in TRAIN_VARIANTS}
    for rep in range(repeats):
        order = TRAIN_VARIANTS[rep % 3 :] + TRAIN_VARIANTS[: rep % 3]  # rotate ABC, BCA, CAB
        for name, fast_dropout, chunks in order:
            net = copy.deepcopy(fast if fast_dropout else model).train()
            optimizer = torch.optim.AdamW(net.parameters(), lr=2e-5, fused=True)
            start = None
            for step in range(steps + 1):  # step 0 is untimed
                if step == 1:
                    start = time.perf_counter()
                rows = slice(32 * step, 32 * step + 32)
                q, c = pad_batch(queries[rows], pad, "cpu"), pad_batch(codes[rows], pad, "cpu")
                with precision_context("cpu", precision):
                    qe, ce = net(*q, *c, length_chunks=chunks)
                    logits = 20.0 * qe @ ce.T
                loss = torch.nn.functional.cross_entropy(logits.float(), torch.arange(32))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            seconds[name].append(time.perf_counter() - start)
    rate = {n: 32 * steps / statistics.median(s) for n, s in seconds.items()}
    return {
        "precision": precision,
        "steps": steps,
        "pairs_per_s": rate,
        "over_baseline": {n: rate[n] / rate["baseline"] for n in rate},
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/local")
    parser.add_argument("--language", default="ruby")
    parser.add_argument("--queries", type=int, default=None, help="first N test pairs (all)")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/bench/cpu_speedups.json")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=("fp32", "bf16"),
        default=None,
        help="default: fp32, and bf16 where the CPU executes it natively",
    )
    parser.add_argument("--tiny", action="store_true", help="one timed step (for tests)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.steps = 1
    torch.set_num_threads(args.threads)
    precisions = args.precisions or (["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"])
    model, tokenizer = load_model("minilm", max_query_length=64, max_code_length=128)
    test = load_records(args.data, args.language, "test")[: args.queries]
    train = load_records(args.data, args.language, "train")[: 32 * (args.steps + 1)]
    if len(train) < 32 * (args.steps + 1):
        raise SystemExit(f"{args.data}/{args.language}: needs {32 * (args.steps + 1)} train pairs")
    report = {
        "benchmark": "cpu_speedups",
        "language": args.language,
        "threads": args.threads,
        "machine": machine_info("+".join(precisions), "cpu"),
        "load_average": {"before": list(os.getloadavg())},
        "encode": bench_encode(model, tokenizer, test, args.repeats, precisions),
        "train": {
            p: bench_train(model, tokenizer, train, args.steps, args.repeats, p) for p in precisions
        },
    }
    report["load_average"]["after"] = list(os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    e = report["encode"]
    rates = ", ".join(f"{p} {r:.0f}" for p, r in e["texts_per_s"].items())
    line = f"encode {e['queries']} queries: {rates} texts/s"
    if "bf16_over_fp32" in e:
        line += (
            f"; bf16 {e['bf16_over_fp32']:.2f}x fp32, MRR {100 * e['mrr']['fp32']:.2f} fp32, "
            f"{100 * e['mrr']['bf16']:.2f} bf16; same rank {100 * e['same_rank_share']:.1f}%, "
            f"largest change {e['max_rank_change']}"
        )
    print(line)
    for precision, t in report["train"].items():
        print(
            f"train {precision}: "
            + ", ".join(
                f"{n} {t['pairs_per_s'][n]:.1f} pairs/s (x{t['over_baseline'][n]:.2f})"
                for n in t["pairs_per_s"]
            )
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
