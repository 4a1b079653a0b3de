"""Benchmark: blocked gold ranks (codesearch.metrics.gold_ranks) against
sentence-transformers ``util.semantic_search(top_k=1000)`` on the same random clustered
embeddings (docs/benchmarks.md: 15k queries x 45k candidates, d = 384; target < 10 s).

Each method runs in its own fresh process, so its peak memory is measured without the other's
allocator leftovers: peak = ru_maxrss after the call minus the resident size just before it
(embeddings already loaded). Encoding is excluded. The parent checks that both give the same
rank for every gold found in the top 1000, and writes JSON to ``--out``.

    PYTHONPATH=. python benchmarks/bench_ranking.py            # full size, about a minute
    PYTHONPATH=. python benchmarks/bench_ranking.py --tiny     # 300 x 900, for tests
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOP_K = 1000


def clustered_embeddings(
    n_queries: int,
    n_candidates: int,
    dim: int,
    n_clusters: int,
    seed: int,
    spread: float = 1.0,
    query_noise: float = 8.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm candidates around random cluster centres; each query is a noisy copy of its
    gold candidate, so its cluster mates are hard distractors (at full size the defaults give
    MRR around 0.2 with some golds beyond rank 1000). Returns (queries, candidates, gold)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    members = rng.integers(n_clusters, size=n_candidates)
    candidates = centres[members] + spread * rng.standard_normal(
        (n_candidates, dim), dtype=np.float32
    )
    gold = rng.choice(n_candidates, size=n_queries, replace=False)
    noise = rng.standard_normal((n_queries, dim), dtype=np.float32)
    queries = candidates[gold] + query_noise * noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    return queries, candidates, gold.astype(np.int64)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(method: str, data_path: str, ranks_path: str, block_size: int) -> dict:
    """Run one method on the saved embeddings; save its gold ranks (0 = not in the top k)."""
    import torch

    from codesearch.metrics import gold_ranks

    if method == "st":
        from sentence_transformers import util  # slow import, only where it is used
    data = np.load(data_path)
    queries, candidates, gold = data["queries"], data["candidates"], data["gold"]
    before = _rss_mb()
    start = time.perf_counter()
    if method == "ours":
        ranks = gold_ranks(queries, candidates, gold, block_size=block_size)
        seconds = time.perf_counter() - start
    else:
        hits = util.semantic_search(
            torch.from_numpy(queries),
            torch.from_numpy(candidates),
            top_k=TOP_K,
            score_function=util.dot_score,
        )
        seconds = time.perf_counter() - start
        ranks = np.zeros(len(gold), dtype=np.int64)
        for i, (query_hits, target) in enumerate(zip(hits, gold.tolist(), strict=True)):
            ids = [hit["corpus_id"] for hit in query_hits]
            if target in ids:
                ranks[i] = ids.index(target) + 1
    np.save(ranks_path, ranks)
    return {
        "seconds": round(seconds, 3),
        "peak_extra_mb": round(_peak_mb() - before, 1),
        "torch_threads": torch.get_num_threads(),
    }


def run_worker(method: str, data_path: Path, ranks_path: Path, block_size: int) -> dict:
    import codesearch

    env = dict(os.environ)
    # The worker must import the same codesearch as this process.
    package_root = str(Path(codesearch.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        method,
        "--data",
        str(data_path),
        "--ranks",
        str(ranks_path),
        "--block-size",
        str(block_size),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="300 queries x 900 candidates")
    parser.add_argument("--queries", type=int, default=15000)
    parser.add_argument("--candidates", type=int, default=45000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/bench/ranking.json")
    parser.add_argument("--worker", choices=["ours", "st"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.ranks, args.block_size)))
        return 0
    if args.tiny:
        args.queries, args.candidates, args.clusters = 300, 900, 30

    from codesearch.metrics import summarize

    queries, candidates, gold = clustered_embeddings(
        args.queries, args.candidates, args.dim, args.clusters, args.seed
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "embeddings.npz"
        np.savez(data_path, queries=queries, candidates=candidates, gold=gold)
        timings, ranks = {}, {}
        for method in ("ours", "st"):
            ranks_path = Path(tmp) / f"{method}.npy"
            timings[method] = run_worker(method, data_path, ranks_path, args.block_size)
            ranks[method] = np.load(ranks_path)

    ours, st = ranks["ours"], ranks["st"]
    within = ours <= TOP_K
    mismatch = (within != (st > 0)) | (within & (ours != st))
    result = {
        "config": {
            "queries": args.queries,
            "candidates": args.candidates,
            "dim": args.dim,
            "clusters": args.clusters,
            "block_size": args.block_size,
            "seed": args.seed,
            "top_k": TOP_K,
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "ours": timings["ours"],
        "sentence_transformers": timings["st"],
        "speedup": round(timings["st"]["seconds"] / max(timings["ours"]["seconds"], 1e-9), 2),
        "agreement": {
            "n_queries": int(len(ours)),
            "n_within_top_k": int(within.sum()),
            "n_mismatch": int(mismatch.sum()),
        },
        "metrics": summarize(ours),
    }
    from codesearch.data.prepared import write_json_atomic

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(json.dumps(result, indent=2))
    return 1 if result["agreement"]["n_mismatch"] else 0


if __name__ == "__main__":
    sys.exit(main())
