"""Benchmark: wall time of one training epoch per batch sampler, as ratios to random
(target: tbs with cached embeddings at most 5% over random).

One fixed training configuration per encoder, ``codesearch.train.train`` run for each sampler: random,
tbs fresh (a no-grad embedding pass at the epoch start, then the graph and RCM), tbs cached
(last epoch's training forward passes: only the graph and RCM) and hardneg with l = 1 (a fresh
pass, a top-k search, and one mined code per anchor through the code tower). Two epochs; the
second is measured, so that tbs cached has its cache. ``epoch_seconds`` and
``sampler_seconds`` come from each run's ``metrics.jsonl`` epoch row: the epoch's training
steps plus the sampler's preparation (its embedding pass included), validation and the loss
diagnostics excluded (diagnostics are off, so random keeps no embedding cache).

Two configurations (each in its own child process, as Accelerate's precision is per process):

- ``minilm``: MiniLM, precision auto (bf16 where native), Ruby, 640 training pairs (20 steps),
  batch 32, query/code length 64/128, three repetitions: a real fine-tune, where the encoder dominates;
- ``nbow``: the neural-bag-of-words encoder, fp32, 8,000 Ruby training pairs, batch 32, five
  repetitions: a cheap encoder (a step is tens of milliseconds, mostly the dense gradient and
  AdamW update of the 30k x 256 token embeddings), so the sampler's share is larger.

Noise: the samplers alternate within each repetition (the order rotates), and the ratios are
given of medians and per repetition (paired). Besides wall time, each epoch's process CPU
time (``EpochCPUClock``) gives ``cpu_ratio``, which other jobs on the machine disturb far less.
``sampler_share`` is the sampler's seconds over random's epoch seconds (the overhead without
the noise of the training steps); ``step_ratio`` compares the training steps alone (TBS
batches of similar pairs may pad differently).

    PYTHONPATH=. python benchmarks/bench_epoch.py         # about 20 minutes on 2 idle cores
    PYTHONPATH=. python benchmarks/bench_epoch.py --configs nbow --repeats-nbow 3
    PYTHONPATH=. python benchmarks/bench_epoch.py --tiny --data DIR --out /tmp/e.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLERS = {  # name -> sampler config overrides
    "random": {"sampler.name": "random"},
    "tbs_fresh": {"sampler.name": "tbs", "sampler.tbs_embeddings": "fresh"},
    "tbs_cached": {"sampler.name": "tbs", "sampler.tbs_embeddings": "cached"},
    "hardneg": {"sampler.name": "hardneg", "sampler.hardneg_negatives": 1},
}
TARGET_RATIO = 1.05  # tbs cached epoch / random epoch


def configurations(args: argparse.Namespace) -> dict[str, dict]:
    """Per configuration: its repetitions and the config overrides every sampler shares."""
    common = {
        "data.path": args.data,
        "data.languages": [args.language],
        "model.max_query_length": 64,
        "model.max_code_length": 128,
        "train.epochs": 2,
        "train.batch_size": args.batch_size,
        "train.diagnostics": "off",
        "train.seed": 0,
        "data.max_valid_queries": args.valid_queries,
    }
    out = {
        "minilm": {
            "repeats": args.repeats_minilm,
            "overrides": {
                **common,
                "model.model": "minilm",
                "model.encoder": "transformer",
                "train.mixed_precision": "auto",  # bf16 where native (docs/precision.md)
                "train.lr": 2e-5,
                "data.max_train_pairs": args.minilm_pairs,
            },
        },
        "nbow": {
            "repeats": args.repeats_nbow,
            "overrides": {
                **common,
                "model.model": "minilm",
                "model.encoder": "nbow",
                "train.mixed_precision": "no",
                "train.lr": 1e-3,
                "data.max_train_pairs": args.nbow_pairs,
            },
        },
    }
    return {name: out[name] for name in args.configs}


def epoch_rows(run_dir: Path) -> list[dict]:
    """The epoch rows of a single-task run's metrics.jsonl."""
    (task,) = [p for p in run_dir.iterdir() if (p / "metrics.jsonl").is_file()]
    rows = [json.loads(line) for line in (task / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == "epoch"]


class EpochCPUClock:
    """Process CPU seconds (all threads) of each epoch, over the span of ``epoch_seconds``:
    from the sampler's ``set_epoch`` (the epoch's start in ``train_task``) to the call of
    ``validation_scores`` (right after ``epoch_seconds`` is taken; diagnostics are off). Other
    jobs on the machine inflate wall time far more than CPU time. Installed by wrapping those
    two functions in this benchmark process only."""

    def __init__(self):
        import codesearch.train as train_module
        from codesearch.samplers.base import BatchSampler

        self.seconds: list[float] = []
        self._start = 0.0
        set_epoch, validation = BatchSampler.set_epoch, train_module.validation_scores

        def timed_set_epoch(sampler, epoch: int) -> None:
            self._start = time.process_time()
            set_epoch(sampler, epoch)

        def timed_validation(*args, **kwargs):
            self.seconds.append(time.process_time() - self._start)
            return validation(*args, **kwargs)

        BatchSampler.set_epoch = timed_set_epoch
        train_module.validation_scores = timed_validation

    def take(self) -> list[float]:
        seconds, self.seconds = self.seconds, []
        return seconds


def run_config(name: str, spec: dict, work: Path) -> dict:
    """Every sampler, ``repeats`` times in a rotating order, in this process."""
    import torch

    from codesearch.config_sources import resolve_config
    from codesearch.train import train

    torch.set_num_threads(spec["threads"])
    clock = EpochCPUClock()
    runs = []
    names = list(SAMPLERS)
    for rep in range(spec["repeats"]):
        for sampler in names[rep % len(names) :] + names[: rep % len(names)]:
            config = resolve_config(None, {**spec["overrides"], **SAMPLERS[sampler]})
            out = work / f"{name}-{sampler}-{rep}"
            load = os.getloadavg()[0]
            start = time.perf_counter()
            train(config, out)
            wall = time.perf_counter() - start
            rows, cpu = epoch_rows(out), clock.take()
            last = rows[-1]
            runs.append(
                {
                    "sampler": sampler,
                    "repetition": rep,
                    "load_before": load,
                    "run_wall_seconds": wall,
                    "epochs": len(rows),
                    "epoch_seconds": last["epoch_seconds"],
                    "sampler_seconds": last["sampler_seconds"],
                    "step_seconds": last["epoch_seconds"] - last["sampler_seconds"],
                    "epoch_cpu_seconds": cpu[-1] if len(cpu) == len(rows) else None,
                    "sampler_timings": last.get("sampler_timings"),
                    "first_epoch_seconds": rows[0]["epoch_seconds"],
                    "train_loss": last.get("train_loss"),
                }
            )
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {
        "settings": spec["overrides"],
        "repeats": spec["repeats"],
        "runs": runs,
        "summary": summarize(runs),
        "n_train": count_pairs(spec["overrides"]),
    }


def count_pairs(overrides: dict) -> int:
    """Training pairs of a configuration (as the trainer selects them)."""
    from codesearch.data.prepared import load_records
    from codesearch.data.training_data import subsample

    return sum(
        len(
            subsample(
                load_records(overrides["data.path"], language, "train"),
                overrides["data.max_train_pairs"],
                overrides["train.seed"],
            )
        )
        for language in overrides["data.languages"]
    )


def summarize(runs: list[dict]) -> dict:
    """Per sampler: medians, and ratios to random (of medians and paired by repetition)."""
    by = {s: [r for r in runs if r["sampler"] == s] for s in SAMPLERS}
    by = {s: sorted(rs, key=lambda r: r["repetition"]) for s, rs in by.items() if rs}
    if "random" not in by:
        return {}
    base = {r["repetition"]: r for r in by["random"]}
    random_epoch = statistics.median(r["epoch_seconds"] for r in by["random"])
    random_steps = statistics.median(r["step_seconds"] for r in by["random"])
    out = {}
    for sampler, rs in by.items():
        epoch = statistics.median(r["epoch_seconds"] for r in rs)
        paired = [
            r["epoch_seconds"] / base[r["repetition"]]["epoch_seconds"]
            for r in rs
            if r["repetition"] in base
        ]
        sampler_seconds = statistics.median(r["sampler_seconds"] for r in rs)
        cpu = [r["epoch_cpu_seconds"] for r in rs]
        cpu_base = [r["epoch_cpu_seconds"] for r in by["random"]]
        cpu_ratio = None
        if None not in cpu and None not in cpu_base:
            cpu_ratio = statistics.median(cpu) / statistics.median(cpu_base)
        out[sampler] = {
            "epoch_seconds": epoch,
            "sampler_seconds": sampler_seconds,
            "epoch_cpu_seconds": None if None in cpu else statistics.median(cpu),
            "cpu_ratio": cpu_ratio,
            "step_seconds": statistics.median(r["step_seconds"] for r in rs),
            "ratio": epoch / random_epoch,
            "paired_ratios": paired,
            "paired_median": statistics.median(paired) if paired else None,
            "sampler_share": sampler_seconds / random_epoch,
            "step_ratio": statistics.median(r["step_seconds"] for r in rs) / random_steps,
        }
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/local")
    parser.add_argument("--language", default="ruby")
    parser.add_argument("--configs", default="nbow,minilm", help="minilm, nbow or both")
    parser.add_argument("--minilm-pairs", type=int, default=640)
    parser.add_argument("--nbow-pairs", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--valid-queries", type=int, default=200)
    parser.add_argument("--repeats-minilm", type=int, default=3)
    parser.add_argument("--repeats-nbow", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/bench/epoch_overhead.json")
    parser.add_argument(
        "--tiny", action="store_true", help="nbow only, 96 pairs, batch 8: for tests (pass --data)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # spec.json result.json
    args = parser.parse_args(argv)
    if args.tiny:
        args.configs, args.nbow_pairs, args.batch_size, args.valid_queries = "nbow", 96, 8, 16
        args.repeats_nbow = 1
    args.configs = [c for c in args.configs.split(",") if c]
    if not args.configs or set(args.configs) - {"minilm", "nbow"}:
        parser.error(f"--configs: expected minilm and/or nbow, got {args.configs}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        spec = json.loads(Path(args.child[0]).read_text())
        result = run_config(spec["name"], spec, Path(spec["work"]))
        Path(args.child[1]).write_text(json.dumps(result))
        return 0
    import torch

    from codesearch.data.prepared import load_manifest
    from codesearch.errors import UserError

    try:
        load_manifest(args.data)
    except UserError as error:
        raise SystemExit(f"bench_epoch: {error} (build it with `make data`)") from None
    started, load_before = time.perf_counter(), list(os.getloadavg())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in configurations(args).items():
            spec.update(name=name, work=tmp, threads=args.threads)
            spec_path, result_path = Path(tmp) / f"{name}.json", Path(tmp) / f"{name}.out.json"
            spec_path.write_text(json.dumps(spec))
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--child",
                    str(spec_path),
                    str(result_path),
                ],
                check=True,
                env=env,
            )
            results[name] = json.loads(result_path.read_text())
    targets = {}
    for name, block in results.items():
        cached = block["summary"].get("tbs_cached")
        if cached:
            targets[f"tbs_cached/random ({name})"] = {
                "ratio": cached["ratio"],
                "paired_median": cached["paired_median"],
                "cpu_ratio": cached["cpu_ratio"],
                "limit": TARGET_RATIO,
                "met": cached["ratio"] <= TARGET_RATIO,
            }
    result = {
        "benchmark": "epoch_overhead",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "config": {k: v for k, v in vars(args).items() if k != "child"},
        "load_average": {"before": load_before, "after": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - started,
        "configs": results,
        "targets": targets,
    }
    from codesearch.data.prepared import write_json_atomic

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, result)
    for name, block in results.items():
        for sampler, s in block["summary"].items():
            print(
                f"{name} {sampler}: {s['epoch_seconds']:.2f} s/epoch, x{s['ratio']:.3f} "
                f"random (CPU time x{s['cpu_ratio'] or float('nan'):.3f}), sampler "
                f"{s['sampler_seconds']:.2f} s"
            )
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
