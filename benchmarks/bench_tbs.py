"""Benchmark: time and peak memory of the TBS permutation (codesearch.samplers.tbs) on synthetic
clustered embeddings, d = 384 (DESIGN.md section 5; target: the knn graph at N = 250,000 in
under 60 s and 4 GB on 2 threads). ``cpu_seconds`` (all threads) tells how much of a slow wall
time was other processes' load: at most ``threads`` times the wall time.

Each (N, cluster size, graph) runs in a fresh subprocess that loads the saved embeddings and
calls ``tbs_permutation`` once. Reported per run: the wall time and its steps; the child's
peak RSS right after the permutation (``peak_rss_mb``, embeddings and imports included) and at
its end (``process_peak_rss_mb``, which also covers the quality checks that follow); the
resident size before the call (``base_rss_mb``). Peaks are the child's VmHWM: its
``ru_maxrss`` (getrusage, RUSAGE_CHILDREN or os.wait4) is useless here, because Linux carries
the parent's high-water mark across fork and exec, so every child would report at least the
parent's resident size (the embeddings and the loss computations). Then, after timing: the bandwidth of
A + A.T before and after the ordering, the share of graph edges inside a cluster, the share of
same-cluster pairs inside a batch (TBS vs random batches), for knn the recall of the graph's
rows against exact search on 1000 queries, and for N <= --gap-max the loss gap
L^Global - L^Train at scale 20 for TBS and for random batches.

Synthetic data: cluster centres and per-pair latents ~ N(0, I/d) (latent = centre + spread *
noise), query and code = latent + 0.5 * noise, normalised: a pair's cosine is about 0.9,
cluster mates about 0.45, strangers 0 +- 0.05. ``--cluster-sizes 0`` means N/100.

    PYTHONPATH=. python benchmarks/bench_tbs.py --sizes 250000 --graph knn
    PYTHONPATH=. python benchmarks/bench_tbs.py --sizes 50000 --graph quantile,knn \\
        --cluster-sizes 0,25
    PYTHONPATH=. python benchmarks/bench_tbs.py --tiny      # seconds, for tests
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def clustered_pairs(n: int, dim: int, cluster_size: int, seed: int, spread: float = 1.0,
                    noise: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm (queries, codes, cluster labels) of ``n`` pairs in clusters of about
    ``cluster_size`` (module docstring)."""
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // cluster_size)
    scale = 1 / np.sqrt(dim)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32) * scale
    labels = rng.integers(n_clusters, size=n)
    queries = np.empty((n, dim), dtype=np.float32)
    codes = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):  # in pieces, to keep the parent's memory small
        part = slice(start, start + 65536)
        m = len(labels[part])
        latent = centres[labels[part]] + spread * scale * rng.standard_normal((m, dim),
                                                                              dtype=np.float32)
        queries[part] = latent + noise * scale * rng.standard_normal((m, dim), dtype=np.float32)
        codes[part] = latent + noise * scale * rng.standard_normal((m, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    return queries, codes, labels


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """This process's own peak RSS since exec (VmHWM), in MiB."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def same_cluster_share(batches: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean over batches of the share of ordered pairs (i != j) from one cluster."""
    shares = []
    for batch in batches:
        if len(batch) > 1:
            same = labels[batch][:, None] == labels[batch][None, :]
            shares.append((same.sum() - len(batch)) / (len(batch) * (len(batch) - 1)))
    return float(np.mean(shares))


def edges_in_cluster(adjacency, labels: np.ndarray) -> float:
    """Share of the graph's edges that join two pairs of one cluster (rows in pieces)."""
    inside, indptr = 0, adjacency.indptr
    for row in range(0, adjacency.shape[0], 8192):
        stop = min(row + 8192, adjacency.shape[0])
        rows = np.repeat(np.arange(row, stop), np.diff(indptr[row:stop + 1]))
        inside += int(np.count_nonzero(labels[rows] == labels[adjacency.indices[
            indptr[row]:indptr[stop]]]))
    return inside / max(adjacency.nnz, 1)


def worker(data_path: str, options_path: str, result_path: str) -> None:
    """One timed ``tbs_permutation`` call, then quality checks; writes JSON to result_path."""
    import torch

    options = json.loads(Path(options_path).read_text())
    torch.set_num_threads(options.pop("threads"))
    from codesearch.samplers.graphs import bandwidth, topk_neighbors
    from codesearch.samplers.tbs import tbs_permutation

    data = np.load(data_path)
    queries, codes, labels = data["queries"], data["codes"], data["labels"]
    base = _rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    order, info = tbs_permutation(queries, codes, keep_graph=True, **options)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _peak_mb()
    adjacency = info.pop("adjacency")
    result = {"seconds": seconds, "cpu_seconds": cpu_seconds, "base_rss_mb": base, "peak_rss_mb": peak, **info,
              "bandwidth_before": bandwidth(adjacency),
              "bandwidth_after": bandwidth(adjacency, order),
              "edges_in_cluster": edges_in_cluster(adjacency, labels)}
    if options["graph"] == "knn":
        sample = np.random.default_rng(0).choice(len(queries), 1000, replace=False)
        _, exact = topk_neighbors(queries[sample], codes, options["knn"] + 1, backend="exact")
        recalls = []
        for row, found in zip(sample, exact, strict=True):
            truth = [j for j in found if j != row][:options["knn"]]
            got = adjacency.indices[adjacency.indptr[row]:adjacency.indptr[row + 1]]
            recalls.append(len(set(truth) & set(got.tolist())) / len(truth))
        result["knn_recall"] = float(np.mean(recalls))
    result["process_peak_rss_mb"] = _peak_mb()
    np.save(Path(result_path).with_suffix(".npy"), order)
    Path(result_path).write_text(json.dumps(result))


def run_one(data_path: Path, options: dict, work: Path) -> dict:
    """Run a worker in a fresh process and read back its result."""
    options_path, result_path = work / "options.json", work / "result.json"
    options_path.write_text(json.dumps(options))
    result_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": str(options["threads"])}
    proc = subprocess.run([sys.executable, __file__, "--worker", str(data_path),
                           str(options_path), str(result_path)], env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed with status {proc.returncode}: {options}")
    result = json.loads(result_path.read_text())
    result["order"] = np.load(result_path.with_suffix(".npy"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000,250000", help="comma-separated N")
    parser.add_argument("--graph", default="knn", help="quantile, knn or both: quantile,knn")
    parser.add_argument("--cluster-sizes", default="0",
                        help="comma-separated cluster sizes; 0 means N/100")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--quantile", type=float, default=0.999)
    parser.add_argument("--knn", type=int, default=16)
    parser.add_argument("--knn-backend", default="auto")
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gap-max", type=int, default=50000,
                        help="compute the loss gap (O(N^2 d)) up to this N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/bench/tbs.json")
    parser.add_argument("--tiny", action="store_true", help="N = 1500, d = 32: a smoke test")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.tiny:
        # at N = 1500 the 0.999 tail is mostly the N positives S_ii: use a fatter tail
        args.sizes, args.graph, args.cluster_sizes, args.dim = "1500", "quantile,knn", "25", 32
        args.quantile, args.knn = 0.99, 8

    import torch

    from codesearch import loss
    from codesearch.samplers.base import chunk

    torch.set_num_threads(args.threads)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in [int(s) for s in args.sizes.split(",")]:
            for cluster_size in [int(s) for s in args.cluster_sizes.split(",")]:
                size = cluster_size or max(1, n // 100)
                queries, codes, labels = clustered_pairs(n, args.dim, size, args.seed)
                data_path = work / "data.npz"
                np.savez(data_path, queries=queries, codes=codes, labels=labels)
                random_batches = chunk(np.random.default_rng(args.seed).permutation(n),
                                       args.batch_size)
                global_loss = None
                if n <= args.gap_max:
                    global_loss = loss.global_loss(queries, codes, 20.0)
                for graph in args.graph.split(","):
                    options = {"graph": graph, "quantile": args.quantile, "knn": args.knn,
                               "knn_backend": args.knn_backend, "block_size": args.block_size,
                               "seed": args.seed, "threads": args.threads}
                    load = os.getloadavg()[0]
                    result = run_one(data_path, options, work)
                    batches = chunk(result.pop("order"), args.batch_size)
                    result.update(
                        n=n, dim=args.dim, cluster_size=size, threads=args.threads,
                        load_before=load, knn_backend_requested=args.knn_backend,
                        same_cluster_tbs=same_cluster_share(batches, labels),
                        same_cluster_random=same_cluster_share(random_batches, labels))
                    if global_loss is not None:
                        result["gap_tbs"] = global_loss - loss.batch_loss(
                            queries, codes, batches, 20.0)
                        result["gap_random"] = global_loss - loss.batch_loss(
                            queries, codes, random_batches, 20.0)
                    runs.append(result)
                    print(json.dumps(result), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__},
        "args": {k: v for k, v in vars(args).items() if k != "worker"}, "runs": runs},
        indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
