"""Benchmark: cost of each batch sampler against N, and the loss gap it leaves.

For each N, on synthetic clustered embeddings (d = 384) and on real MiniLM embeddings of the
offline corpus, one epoch's assignment of every method, each in a fresh child process:

- ``random``: ``RandomSampler`` (a permutation, O(N));
- ``hardneg``: ``HardNegativeSampler`` with negatives = 1: mining (top-(1 + margin) search,
  faiss by default, ``--hardneg-backend``) plus sampling, on the given embeddings (the
  embedding pass, which every sampler but random and tbs-cached pays, is not timed here: see
  bench_epoch.py);
- ``tbs_quantile``: TBS with the paper's 0.999-quantile graph (O(N^2 d));
- ``tbs_knn_exact`` / ``tbs_knn_faiss``: TBS with the top-16 graph by blockwise exact search
  (O(N^2 d)) or a faiss IVF index.

Per run: wall and CPU seconds of the call and its steps (the samplers' ``timings``); the
child's peak RSS (VmHWM: ``ru_maxrss`` is useless here, Linux carries the parent's high-water
mark across fork and exec) and its resident size before the call (``base_rss_mb``: the
embeddings and imports), so ``extra_mb`` is what the sampler itself added. Then, untimed, in
the parent: the loss gap L^Global - L^Train of the assignment at scale 20 (as
``assignment_diagnostics``); exact up to ``--gap-exact-max`` (20,000) pairs; above it, as
L^Global is O(N^2 d) (about 3 minutes at 50k here), both losses are averaged over the same
``--gap-rows`` (5,000) random anchors (every code still a candidate of L^Global; each
anchor's own batch for L^Train), which the JSON says (``gap_mode``, ``gap_stderr``). For
synthetic data also the share of same-cluster pairs in a batch; for the faiss graph its recall
against exact search on 1000 queries.

Methods whose cost is quadratic stop at a size cap (``--max-n``; by default 50,000 for
``tbs_quantile`` and ``tbs_knn_exact``: at 1M each would take hours on 2 cores); the skip is
recorded, and ``fits`` holds per method the least-squares exponent b of seconds = a N^b over
the sizes that ran, from which summary.py extrapolates the skipped sizes.

Real data (``--real N``): the first N training pairs across the six languages of ``--data``
(N / 6 per language, ``train.subsample`` with seed 0, as ``--max-train-pairs``), embedded with
MiniLM at query length 64 and code length 128 under precision auto: bf16 autocast where the
CPU executes it natively (about 100 texts/s on a 2-core CPU with native bf16, so 10k pairs take about 3-4
minutes), fp32 elsewhere; cached as .npz under ``--cache-dir`` and
reused while the data's hash and the settings match.

    PYTHONPATH=. python benchmarks/bench_samplers.py            # defaults: about 15-20 min
    PYTHONPATH=. python benchmarks/bench_samplers.py --sizes 1000000 --methods tbs_knn_faiss \\
        --real 0 --out results/bench/samplers_1m.json
    PYTHONPATH=. python benchmarks/bench_samplers.py --tiny --out /tmp/s.json   # seconds
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
METHODS = ("random", "hardneg", "tbs_quantile", "tbs_knn_exact", "tbs_knn_faiss")
TBS_GRAPHS = {
    "tbs_quantile": ("quantile", "auto"),
    "tbs_knn_exact": ("knn", "exact"),
    "tbs_knn_faiss": ("knn", "faiss"),
}
DEFAULT_MAX_N = {"tbs_quantile": 50_000, "tbs_knn_exact": 50_000}  # O(N^2 d) methods
SCALE = 20.0


# --- data -------------------------------------------------------------------------------------


def clustered_pairs(
    n: int, dim: int, cluster_size: int, seed: int, spread: float = 1.0, noise: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm (queries, codes, cluster labels) of ``n`` pairs in clusters of about
    ``cluster_size``: cluster centres and per-pair latents ~ N(0, I/d) (latent = centre +
    spread * noise), query and code = latent + 0.5 * noise. A pair's cosine is about 0.9,
    cluster mates about 0.45, strangers 0 +- 0.05."""
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
        latent = centres[labels[part]] + spread * scale * rng.standard_normal(
            (m, dim), dtype=np.float32
        )
        queries[part] = latent + noise * scale * rng.standard_normal((m, dim), dtype=np.float32)
        codes[part] = latent + noise * scale * rng.standard_normal((m, dim), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    return queries, codes, labels


def real_pairs(
    data: str,
    n: int,
    cache_dir: str,
    query_length: int = 64,
    code_length: int = 128,
    batch_size: int = 64,
) -> tuple[Path, dict]:
    """An .npz of MiniLM embeddings (queries, codes, query_keys, code_keys, languages) of the
    first ``n`` training pairs across the languages of ``data`` (module docstring); computed
    once and cached. Returns (path, meta)."""
    import torch

    from codesearch.data.prepared import load_manifest, load_records
    from codesearch.data.training_data import subsample, text_keys, tokenize_lengths
    from codesearch.encode import encode_ids, precision_context
    from codesearch.errors import UserError
    from codesearch.model import load_model
    from codesearch.precision import resolve_encoding_precision

    manifest = load_manifest(data)
    languages = list(manifest["counts"])
    meta = {
        "data": str(data),
        "data_hash": manifest.get("data_hash"),
        "n": n,
        "model": "minilm",
        "max_query_length": query_length,
        "max_code_length": code_length,
        "languages": languages,
    }
    path = Path(cache_dir) / f"real_minilm_{n}_q{query_length}_c{code_length}.npz"
    if path.is_file():
        with np.load(path) as saved:
            cached = json.loads(str(saved["meta"]))
        if all(cached.get(k) == v for k, v in meta.items()):
            return path, cached
    shares = [n // len(languages) + (i < n % len(languages)) for i in range(len(languages))]
    records, language_of = [], []
    for i, (language, share) in enumerate(zip(languages, shares, strict=True)):
        chosen = subsample(load_records(data, language, "train"), share, 0)
        records += chosen
        language_of += [i] * len(chosen)
    if len(records) < n:
        raise UserError(f"{data}: has {len(records)} training pairs for --real {n}")
    model, tokenizer = load_model(
        "minilm", max_query_length=query_length, max_code_length=code_length
    )
    model.eval()
    precision = resolve_encoding_precision("auto", "cpu")  # bf16 only where native
    start = time.perf_counter()
    with torch.inference_mode(), precision_context("cpu", precision):
        embedded = []
        for side, fn, length in (
            ("query", model.encode_queries, query_length),
            ("code", model.encode_codes, code_length),
        ):
            texts = [r.query if side == "query" else r.code for r in records]
            ids = tokenize_lengths(tokenizer, texts, length)
            x = encode_ids(
                fn,
                ids,
                tokenizer.pad_token_id,
                batch_size,
                "cpu",
                progress=True,
                desc=f"embed {side}",
            )
            embedded.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    seconds = time.perf_counter() - start
    meta.update(
        embed_seconds=seconds,
        texts_per_s=2 * len(records) / seconds,
        precision=precision,
        threads=torch.get_num_threads(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(
            handle,
            queries=embedded[0].astype(np.float32),
            codes=embedded[1].astype(np.float32),
            query_keys=text_keys([r.query for r in records]),
            code_keys=text_keys([r.code for r in records]),
            languages=np.array(language_of),
            meta=np.array(json.dumps(meta)),
        )
    os.replace(tmp, path)
    return path, meta


# --- measures -----------------------------------------------------------------------------------


def fit_exponent(sizes: list[float], seconds: list[float]) -> dict | None:
    """Least squares of log(seconds) on log(N): seconds ~= coefficient * N ** exponent.
    None with fewer than two distinct sizes."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.asarray(seconds, dtype=float)
    if len(np.unique(x)) < 2 or np.any(y <= 0):
        return None
    exponent, intercept = np.polyfit(x, np.log(y), 1)
    return {
        "exponent": float(exponent),
        "coefficient": float(np.exp(intercept)),
        "sizes": [int(s) for s in sizes],
    }


def extrapolate(fit: dict, n: int) -> float:
    return fit["coefficient"] * n ** fit["exponent"]


def same_cluster_share(anchor_batches: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean over batches of the share of ordered anchor pairs (i != j) from one cluster."""
    shares = []
    for batch in anchor_batches:
        if len(batch) > 1:
            same = labels[batch][:, None] == labels[batch][None, :]
            shares.append((same.sum() - len(batch)) / (len(batch) * (len(batch) - 1)))
    return float(np.mean(shares))


def row_global_losses(
    queries: np.ndarray,
    codes: np.ndarray,
    rows: np.ndarray,
    scale: float = SCALE,
    block: int = 2048,
    cols: int = 16384,
) -> np.ndarray:
    """-log softmax over all N codes of each listed row's positive (float64 accumulation)."""
    import torch

    c_all = torch.from_numpy(codes)
    out = np.empty(len(rows))
    for r0 in range(0, len(rows), block):
        idx = rows[r0 : r0 + block]
        q = torch.from_numpy(queries[idx])  # (b, d)
        lse = torch.full((len(idx),), float("-inf"), dtype=torch.float64)
        for c0 in range(0, len(codes), cols):
            logits = scale * (q @ c_all[c0 : c0 + cols].T)  # (b, w) float32, |logit| <= scale
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1).double())
        positive = scale * (q.double() * torch.from_numpy(codes[idx]).double()).sum(dim=1)
        out[r0 : r0 + len(idx)] = (lse - positive).numpy()
    return out


def row_train_losses(
    queries: np.ndarray, codes: np.ndarray, batches: list, rows: np.ndarray, scale: float = SCALE
) -> np.ndarray:
    """Each listed row's in-batch InfoNCE loss: candidates are its batch's anchors' codes and
    the batch's extra codes (as ``diagnostics.batch_loss``)."""
    wanted = np.zeros(len(queries), dtype=bool)
    wanted[rows] = True
    loss_of = np.full(len(queries), np.nan)
    for batch in batches:
        anchors = np.asarray(batch.anchors, dtype=np.int64)
        mine = np.flatnonzero(wanted[anchors])
        if not len(mine):
            continue
        extras = batch.extra_codes if batch.extra_codes is not None else np.empty(0, np.int64)
        candidates = np.concatenate([anchors, np.asarray(extras, dtype=np.int64)])
        logits = scale * (
            queries[anchors[mine]].astype(np.float64) @ codes[candidates].astype(np.float64).T
        )  # (m, k + e)
        top = logits.max(axis=1)
        lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        loss_of[anchors[mine]] = lse - logits[np.arange(len(mine)), mine]
    return loss_of[rows]


def gap_measures(
    queries: np.ndarray,
    codes: np.ndarray,
    assignments: dict[str, list],
    exact_max: int,
    sample_rows: int,
    seed: int,
) -> dict:
    """{l_global, gap_mode, rows, per_method: {name: {l_train, gap}}}: exact (every anchor,
    ``diagnostics``) up to ``exact_max`` pairs, else on ``sample_rows`` random anchors."""
    from codesearch.diagnostics import batch_loss, global_loss

    n = len(queries)
    out: dict = {"per_method": {}}
    start = time.perf_counter()
    if n <= exact_max:
        out.update(gap_mode="exact", rows=n, l_global=global_loss(queries, codes, SCALE))
        for name, batches in assignments.items():
            l_train = batch_loss(queries, codes, batches, SCALE)
            out["per_method"][name] = {"l_train": l_train, "gap": out["l_global"] - l_train}
    else:
        rows = np.sort(np.random.default_rng(seed).choice(n, min(sample_rows, n), replace=False))
        glob = row_global_losses(queries, codes, rows)
        out.update(
            gap_mode=f"sampled: {len(rows)} random anchors, all N codes",
            rows=len(rows),
            l_global=float(glob.mean()),
        )
        for name, batches in assignments.items():
            train = row_train_losses(queries, codes, batches, rows)
            out["per_method"][name] = {
                "l_train": float(train.mean()),
                "gap": float((glob - train).mean()),
                "gap_stderr": float((glob - train).std() / len(rows) ** 0.5),
            }
    out["seconds"] = time.perf_counter() - start
    return out


# --- the timed child ----------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """This process's own peak RSS since exec (VmHWM), in MiB."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def worker(data_path: str, options_path: str, result_path: str) -> None:
    """One timed assignment of one method; writes its batches (.npz) and a JSON result."""
    import torch

    options = json.loads(Path(options_path).read_text())
    torch.set_num_threads(options["threads"])
    from codesearch.samplers import Batch, HardNegativeOptions, HardNegativeSampler, RandomSampler
    from codesearch.samplers.knn import topk_neighbors
    from codesearch.samplers.tbs import TBSOptions, tbs_batches

    with np.load(data_path) as data:
        queries, codes = data["queries"], data["codes"]
        keys = (data["query_keys"], data["code_keys"]) if "code_keys" in data.files else None
    method, n, b, seed = options["method"], len(queries), options["batch_size"], options["seed"]
    sampler, adjacency, info = None, None, {}
    if method == "hardneg":
        hardneg = HardNegativeOptions(negatives=1, backend=options["hardneg_backend"])
        sampler = HardNegativeSampler(n, b, seed, options=hardneg, device=options["device"])
        if keys is not None:
            sampler.set_text_keys(*keys)  # once per training task, not per epoch: untimed
    base = _rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "random":
        batches = RandomSampler(n, b, seed).compute_batches(0)
        timings = {}
    elif method == "hardneg":
        sampler.prepare(lambda: (queries, codes))
        batches, timings = sampler.batches(), dict(sampler.timings)
    else:  # exactly TBSSampler.compute_batches, keeping the graph for the recall check
        graph, backend = TBS_GRAPHS[method]
        tbs = TBSOptions(
            quantile=options["quantile"],
            graph=graph,
            knn=options["knn"],
            knn_backend=backend,
            same_text_edges="keep",
        )
        batches, info = tbs_batches(
            queries, codes, batch_size=b, options=tbs, seed=seed, device=options["device"]
        )
        info.pop("permutation")
        timings = info.pop("timings")
        adjacency = info.pop("adjacency")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _peak_mb()
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "base_rss_mb": base,
        "peak_rss_mb": peak,
        "extra_mb": peak - base,
        "timings": timings,
        **{
            k: v
            for k, v in info.items()
            if k in ("edges", "symmetric_edges", "isolated", "tau", "tau_exact", "backend")
        },
    }
    if method == "tbs_knn_faiss":  # recall of the graph's rows against exact search
        sample = np.random.default_rng(0).choice(n, min(1000, n), replace=False)
        k = min(options["knn"] + 1, n)
        _, exact = topk_neighbors(queries[sample], codes, k, backend="exact")
        recalls = []
        for row, found in zip(sample, exact, strict=True):
            truth = [j for j in found if j != row][: options["knn"]]
            got = adjacency.indices[adjacency.indptr[row] : adjacency.indptr[row + 1]]
            recalls.append(len(set(truth) & set(got.tolist())) / max(len(truth), 1))
        result["knn_recall"] = float(np.mean(recalls))
    if method.startswith("tbs"):
        batches = [Batch(a) for a in batches]
    anchors = [np.asarray(x.anchors, dtype=np.int64) for x in batches]
    extras = [
        np.asarray([] if x.extra_codes is None else x.extra_codes, dtype=np.int64) for x in batches
    ]
    np.savez(
        Path(result_path).with_suffix(".npz"),
        anchors=np.concatenate(anchors),
        anchor_sizes=[len(a) for a in anchors],
        extras=np.concatenate(extras),
        extra_sizes=[len(e) for e in extras],
    )
    Path(result_path).write_text(json.dumps(result))


def run_method(data_path: Path, options: dict, work: Path) -> tuple[dict, list]:
    """Run one method in a fresh process; (its result, its batches as Batch objects)."""
    from codesearch.samplers.base import Batch

    options_path, result_path = work / "options.json", work / "result.json"
    options_path.write_text(json.dumps(options))
    result_path.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": str(options["threads"]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            str(data_path),
            str(options_path),
            str(result_path),
        ],
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker failed with status {proc.returncode}: {options}")
    result = json.loads(result_path.read_text())
    with np.load(result_path.with_suffix(".npz")) as saved:
        anchors = np.split(saved["anchors"], np.cumsum(saved["anchor_sizes"])[:-1])
        extras = np.split(saved["extras"], np.cumsum(saved["extra_sizes"])[:-1])
    batches = [Batch(a, e if len(e) else None) for a, e in zip(anchors, extras, strict=True)]
    return result, batches


# --- driver -----------------------------------------------------------------------------------


def run_dataset(
    name: str,
    data_path: Path,
    labels: np.ndarray | None,
    args: argparse.Namespace,
    max_n: dict[str, int],
    work: Path,
) -> list[dict]:
    """Every method on one saved set of embeddings; the gap each leaves."""
    with np.load(data_path) as data:
        n, dim = data["queries"].shape
    runs, assignments = [], {}
    for method in args.methods:
        entry = {"dataset": name, "method": method, "n": int(n), "dim": int(dim)}
        if n > max_n.get(method, n):
            entry["skipped"] = (
                f"N above this method's cap of {max_n[method]:,} (quadratic "
                f"cost); extrapolated from the fitted exponent in summary.md"
            )
            runs.append(entry)
            continue
        options = {
            "method": method,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "threads": args.threads,
            "quantile": args.quantile,
            "knn": args.knn,
            "hardneg_backend": args.hardneg_backend,
            "device": args.device,
        }
        entry["load_before"] = os.getloadavg()[0]
        result, batches = run_method(data_path, options, work)
        entry.update(result)
        if labels is not None:
            entry["same_cluster"] = same_cluster_share([b.anchors for b in batches], labels)
        assignments[method] = batches
        runs.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "timings"}), flush=True)
    if assignments and (args.gap_max is None or n <= args.gap_max):
        with np.load(data_path) as data:
            gaps = gap_measures(
                data["queries"],
                data["codes"],
                assignments,
                args.gap_exact_max,
                args.gap_rows,
                args.seed,
            )
        for entry in runs:
            if entry["method"] in gaps["per_method"]:
                entry.update(
                    l_global=gaps["l_global"],
                    gap_mode=gaps["gap_mode"],
                    gap_rows=gaps["rows"],
                    **gaps["per_method"][entry["method"]],
                )
        print(
            f"{name} N={n}: gaps ({gaps['gap_mode']}, {gaps['seconds']:.0f} s) "
            + ", ".join(f"{k} {v['gap']:.4f}" for k, v in gaps["per_method"].items()),
            flush=True,
        )
    return runs


def fits_for(runs: list[dict]) -> dict:
    """{dataset: {method: fit}} over the sizes each method ran at."""
    out: dict = {}
    for dataset in sorted({r["dataset"] for r in runs}):
        for method in METHODS:
            done = [
                r
                for r in runs
                if r["dataset"] == dataset and r["method"] == method and "seconds" in r
            ]
            fit = fit_exponent([r["n"] for r in done], [r["seconds"] for r in done])
            if fit is not None:
                out.setdefault(dataset, {})[method] = fit
    return out


def parse_max_n(text: str) -> dict[str, int]:
    """'tbs_quantile=50000,tbs_knn_exact=50000' -> dict (DEFAULT_MAX_N overridden)."""
    out = dict(DEFAULT_MAX_N)
    for item in filter(None, (s.strip() for s in text.split(","))):
        method, sep, value = item.partition("=")
        if not sep or method not in METHODS or not value.isdigit():
            raise SystemExit(f"--max-n: expected method=N with a method of {METHODS}, got '{item}'")
        out[method] = int(value)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10000,50000,250000,1000000",
        help="comma-separated N of synthetic pairs ('' for none)",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--max-n",
        default="",
        help=f"method=N caps, e.g. tbs_quantile=250000 (defaults {DEFAULT_MAX_N})",
    )
    parser.add_argument(
        "--real",
        type=int,
        default=None,
        help="N real MiniLM pairs of --data (0: none; default 10000, tiny 0)",
    )
    parser.add_argument("--data", default="data/local")
    parser.add_argument("--cache-dir", default=".cache/bench")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--cluster-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--quantile", type=float, default=0.999)
    parser.add_argument("--knn", type=int, default=16)
    parser.add_argument("--hardneg-backend", default="faiss", choices=("exact", "faiss"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the similarity tiles and exact top-k run, e.g. cuda (the training device)",
    )
    parser.add_argument(
        "--gap-exact-max",
        type=int,
        default=20000,
        help="exact L^Global up to this N, sampled anchors above",
    )
    parser.add_argument("--gap-rows", type=int, default=5000)
    parser.add_argument("--gap-max", type=int, default=None, help="no gap above this N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/bench/samplers.json")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="N = 1500 and 3000, d = 32: a smoke test (real data only if --real)",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        # at N = 1500 the 0.999 tail is mostly the N positives S_ii: use a fatter tail
        args.sizes, args.dim, args.cluster_size, args.quantile, args.knn = (
            "1500,3000",
            32,
            25,
            0.99,
            8,
        )
        args.gap_exact_max, args.gap_rows = 2000, 500  # exercise the sampled gap too
    if args.real is None:
        args.real = 0 if args.tiny else 10000
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    args.size_list = [int(s) for s in args.sizes.split(",") if s]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    import torch

    from codesearch.data.prepared import load_manifest
    from codesearch.errors import UserError

    torch.set_num_threads(args.threads)  # the real embedding pass and the gaps, here
    max_n = parse_max_n(args.max_n)
    if args.real:
        try:  # fail now, not after the synthetic sizes
            load_manifest(args.data)
        except UserError as error:
            raise SystemExit(
                f"bench_samplers: {error} (build it with `make data`, or pass --real 0)"
            ) from None
    started, load_before = time.perf_counter(), list(os.getloadavg())
    runs, real_meta = [], None
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_path = work / "data.npz"
        for n in args.size_list:
            queries, codes, labels = clustered_pairs(n, args.dim, args.cluster_size, args.seed)
            with open(data_path, "wb") as handle:
                np.savez(handle, queries=queries, codes=codes)
            del queries, codes  # the parent holds no copy while the child is measured
            runs += run_dataset("synthetic", data_path, labels, args, max_n, work)
        if args.real:
            real_path, real_meta = real_pairs(args.data, args.real, args.cache_dir)
            runs += run_dataset("real", real_path, None, args, max_n, work)
    fits = fits_for(runs)
    for dataset, per_method in fits.items():
        for method, fit in per_method.items():
            print(f"{dataset} {method}: seconds ~ N^{fit['exponent']:.2f}", flush=True)
    result = {
        "benchmark": "samplers",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "config": {k: v for k, v in vars(args).items() if k not in ("worker", "size_list")},
        "max_n": max_n,
        "real": real_meta,
        "load_average": {"before": load_before, "after": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - started,
        "runs": runs,
        "fits": fits,
    }
    from codesearch.data.prepared import write_json_atomic

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
