"""Contrastive training of the dual encoder under Accelerate, with a pluggable batch sampler.

Reads top to bottom in Accelerate's order: prepare, resume, loop (sampler -> this process's
slice -> encoder -> global-batch InfoNCE -> step), validate, save_state. The sampler yields
*global* batches (docs/method.md), so one process or several see the same batches and the
same loss. Checkpoints are atomic (written beside, then renamed) and hold the model, optimiser,
scheduler, every RNG (``accelerator.save_state``), the step and the sampler's state; a resumed
run replays the remaining batches of the interrupted epoch exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from codesearch import metrics
from codesearch.config import RunConfig, check_resume_config, check_run_config, load_run_config
from codesearch.data.prepared import (
    json_safe,
    load_manifest,
    load_records,
    verify_prepared,
    write_json_atomic,
    write_text_atomic,
)
from codesearch.data.schema import PairRecord, parse_languages
from codesearch.embedding_cache import EmbeddingCache
from codesearch.encode import encode_ids_distributed, pad_batch, tokenize_lengths
from codesearch.errors import UserError
from codesearch.loss import false_negative_mask, global_info_nce
from codesearch.model import DualEncoder, load_tokenizer
from codesearch.outputs import DirectoryLock, check_output_dir
from codesearch.samplers import Batch, chunk, local_slice, sampler_class
from codesearch.versions import package_versions


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was written before raising."""


@dataclass
class TrainerState:
    epoch: int = 0  # the epoch in progress (or next to start)
    step_in_epoch: int = 0  # batches of that epoch already trained
    global_step: int = 0
    best_mrr: float = -1.0
    best_epoch: int = -1
    finished: bool = False


@dataclass
class TrainingData:
    """Training pairs of one task, pre-tokenised (padding happens per batch)."""

    records: list[PairRecord]
    query_ids: list[list[int]]
    code_ids: list[list[int]]
    query_key: np.ndarray  # (N,) int64 hash of the query text, for false-negative masking
    code_key: np.ndarray  # (N,) int64 hash of the code text


def _text_keys(texts: list[str]) -> np.ndarray:
    # hash() of str is salted per process; a stable hash keeps processes in agreement
    return np.array(
        [
            int.from_bytes(
                hashlib.blake2b(t.encode(), digest_size=8).digest(), "little", signed=True
            )
            for t in texts
        ],
        dtype=np.int64,
    )


def subsample(records: list[PairRecord], limit: int | None, seed: int) -> list[PairRecord]:
    """A deterministic random subset of at most ``limit`` records, in file order."""
    if limit is None or len(records) <= limit:
        return records
    keep = np.sort(np.random.default_rng(seed).permutation(len(records))[:limit])
    return [records[i] for i in keep]


def load_training_data(config: RunConfig, languages: list[str], tokenizer) -> TrainingData:
    records: list[PairRecord] = []
    for language in languages:
        records += subsample(
            load_records(config.data.path, language, "train"),
            config.data.max_train_pairs,
            config.train.seed,
        )
    if not records:
        raise UserError(
            f"{config.data.path}: no training pairs for {', '.join(languages)} (empty train.jsonl)"
        )
    model_cfg = config.model
    return TrainingData(
        records=records,
        query_ids=tokenize_lengths(
            tokenizer, [r.query for r in records], model_cfg.max_query_length
        ),
        code_ids=tokenize_lengths(tokenizer, [r.code for r in records], model_cfg.max_code_length),
        query_key=_text_keys([r.query for r in records]),
        code_key=_text_keys([r.code for r in records]),
    )


def write_run_info(
    out_dir: Path, config: RunConfig, accelerator: Accelerator, resumed_with: dict | None = None
) -> None:
    """config.yaml and run_info.json; a resumption keeps the original run_info and appends
    its command, time and the config keys it changed (``resumed_with``) to ``resumes``."""
    manifest = load_manifest(config.data.path)
    write_text_atomic(out_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    if resumed_with is not None and (out_dir / "run_info.json").is_file():
        info = json.loads((out_dir / "run_info.json").read_text(encoding="utf-8"))
        info.setdefault("resumes", []).append(
            {
                "command": sys.argv,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "num_processes": accelerator.num_processes,
                "changed": resumed_with,
            }
        )
        write_json_atomic(out_dir / "run_info.json", info)
        return
    write_json_atomic(
        out_dir / "run_info.json",
        {
            "command": sys.argv,
            "seed": config.train.seed,
            "num_processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "mixed_precision": accelerator.mixed_precision,
            "packages": package_versions(),
            "data": {
                "path": config.data.path,
                "data_hash": manifest.get("data_hash"),
                "counts": manifest.get("counts"),
            },
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


class MetricsLog:
    """Append-only metrics JSONL, written by the main process only; numbers also go to
    Accelerate's trackers (TensorBoard) when an accelerator is given."""

    def __init__(self, path: Path, enabled: bool, accelerator: Accelerator | None = None):
        self.path, self.enabled, self.accelerator = path, enabled, accelerator

    def write(self, **row) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
        if self.accelerator is not None:
            numbers = {
                f"{row['task']}/{k}": v
                for k, v in row.items()
                if isinstance(v, (int, float)) and k not in ("step", "epoch")
            }
            self.accelerator.log(numbers, step=row["step"])


def save_checkpoint(
    accelerator: Accelerator,
    ckpt_dir: Path,
    state: TrainerState,
    sampler,
    scheduler,
    cache: EmbeddingCache | None = None,
) -> None:
    """Atomic checkpoint: everything goes to ``<dir>.tmp``, then one rename replaces ``dir``."""
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if cache is not None:
        cache.save(tmp, accelerator.process_index)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(
            tmp / "trainer_state.json",
            {
                "trainer": dataclasses.asdict(state),
                "sampler": sampler.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
        )
        old = ckpt_dir.with_name(ckpt_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if ckpt_dir.exists():
            os.replace(ckpt_dir, old)
        os.replace(tmp, ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(
    accelerator: Accelerator,
    ckpt_dir: Path,
    sampler,
    scheduler,
    cache: EmbeddingCache | None = None,
) -> TrainerState:
    """Restore a checkpoint; a truncated or corrupt one is a UserError naming it (checkpoints
    are written atomically, so this means the files were damaged afterwards)."""
    from safetensors import SafetensorError

    try:
        saved = json.loads((ckpt_dir / "trainer_state.json").read_text(encoding="utf-8"))
        state = TrainerState(**saved["trainer"])
        accelerator.load_state(str(ckpt_dir))
        if cache is not None:
            cache.load(ckpt_dir, accelerator.process_index)
        sampler.load_state_dict(saved["sampler"])
        scheduler.load_state_dict(saved["scheduler"])
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        EOFError,
        RuntimeError,
        SafetensorError,
    ) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{ckpt_dir}: unreadable checkpoint ({detail}); restore it, or remove "
            f"{ckpt_dir.parent} to train that task again"
        ) from None
    return state


def save_best(accelerator: Accelerator, model, best_dir: Path) -> None:
    """The best epoch's model as a loadable folder (safetensors), replaced atomically."""
    if accelerator.is_main_process:
        tmp = best_dir.with_name(best_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(tmp)
        shutil.rmtree(best_dir, ignore_errors=True)
        os.replace(tmp, best_dir)
    accelerator.wait_for_everyone()


def load_validation(
    config: RunConfig, languages: list[str], tokenizer
) -> dict[str, tuple[list[list[int]], list[list[int]]]]:
    """Tokenised (query ids, code ids) of each language's valid pairs, read once per task."""
    out = {}
    for language in languages:
        records = load_records(config.data.path, language, "valid")
        if config.data.max_valid_queries:
            records = records[: config.data.max_valid_queries]
        if records:
            out[language] = (
                tokenize_lengths(
                    tokenizer, [r.query for r in records], config.model.max_query_length
                ),
                tokenize_lengths(
                    tokenizer, [r.code for r in records], config.model.max_code_length
                ),
            )
    return out


def validation_mrr(
    accelerator: Accelerator, model, valid, pad_id: int, batch_size: int
) -> dict[str, float]:
    """MRR@1000 of valid queries against all valid codes, per language (codebase protocol)."""
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    out = {}
    with torch.no_grad(), accelerator.autocast():
        for language, (query_ids, code_ids) in valid.items():
            q = encode_ids_distributed(
                unwrapped.encode_queries, query_ids, pad_id, accelerator, batch_size
            )
            c = encode_ids_distributed(
                unwrapped.encode_codes, code_ids, pad_id, accelerator, batch_size
            )
            out[language] = metrics.mrr(metrics.gold_ranks(q, c, np.arange(len(query_ids))))
    unwrapped.train()
    return out


def embed_training_set(
    accelerator: Accelerator, model, data: TrainingData, pad: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """No-grad embeddings of every training pair, shared out across processes."""
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    with torch.no_grad(), accelerator.autocast():
        q = encode_ids_distributed(
            unwrapped.encode_queries,
            data.query_ids,
            pad,
            accelerator,
            batch_size,
            accelerator.is_main_process,
            "embed queries",
        )
        c = encode_ids_distributed(
            unwrapped.encode_codes,
            data.code_ids,
            pad,
            accelerator,
            batch_size,
            accelerator.is_main_process,
            "embed codes",
        )
    unwrapped.train()
    return q, c


def train_step(
    accelerator: Accelerator,
    model,
    optimizer,
    scheduler,
    data: TrainingData,
    batch: Batch,
    config: RunConfig,
    pad_id: int,
    cache: EmbeddingCache | None = None,
) -> float:
    """One optimiser step on this process's slice of a global batch; returns the global loss.

    With a ``cache``, the anchors' query and code embeddings of this forward pass are kept.
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    anchors = batch.anchors
    extra = batch.extra_codes if batch.extra_codes is not None else np.empty(0, dtype=np.int64)
    mine = local_slice(anchors, rank, world)
    my_extra = local_slice(extra, rank, world)
    device = accelerator.device
    q_ids, q_mask = pad_batch([data.query_ids[i] for i in mine], pad_id, device)
    code_rows = np.concatenate([mine, my_extra]).astype(np.int64)
    c_ids, c_mask = pad_batch([data.code_ids[i] for i in code_rows], pad_id, device)
    # Every process knows the whole global batch, so it builds the global false-negative mask
    # (codes in rank order, then extras in rank order) and hands the loss its own rows.
    mask = false_negative_mask(
        torch.from_numpy(data.query_key[anchors]),
        torch.from_numpy(data.code_key[anchors]),
        torch.from_numpy(data.code_key[extra]),
        torch.from_numpy(data.query_key[extra]),
    )

    def my_rows(offset: int, sizes: list[int], extra_sizes: list[int]) -> torch.Tensor:
        return mask[offset : offset + sizes[rank]].to(device)  # (b, k + e)

    with accelerator.autocast():
        q, c_all = model(q_ids, q_mask, c_ids, c_mask)  # (b, d), (b + e, d)
        loss, global_loss = global_info_nce(
            q,
            c_all[: len(mine)],
            scale=config.model.scale,
            extra_local=c_all[len(mine) :] if len(extra) else None,
            symmetric=config.train.symmetric_loss,
            false_negative_mask_fn=my_rows,
        )
    if cache is not None:
        cache.record(mine, q, c_all[: len(mine)])
    accelerator.backward(loss)
    if config.train.grad_clip and config.train.grad_clip > 0:
        accelerator.clip_grad_norm_(model.parameters(), config.train.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(global_loss)


def train_task(
    accelerator: Accelerator, config: RunConfig, task_dir: Path, languages: list[str], resume: bool
) -> dict:
    """Train one model (one language, or all languages jointly) into ``task_dir``."""
    main = accelerator.is_main_process
    set_seed(config.train.seed)
    tokenizer = load_tokenizer(config.model)
    model = DualEncoder(config.model, tokenizer=tokenizer)
    pad_id = tokenizer.pad_token_id
    data = load_training_data(config, languages, tokenizer)
    valid_data = load_validation(config, languages, tokenizer)
    n, batch_size = len(data.records), config.train.batch_size
    if batch_size > n:
        raise UserError(
            f"--batch-size {batch_size} is larger than the training data "
            f"({n} pairs of {', '.join(languages)})"
        )
    if batch_size < accelerator.num_processes:
        raise UserError(
            f"--batch-size {batch_size} is smaller than the number of processes "
            f"({accelerator.num_processes})"
        )
    sampler = sampler_class(config.sampler.name)(
        n,
        batch_size,
        seed=config.train.seed,
        min_last=accelerator.num_processes,
        **config.sampler.options_for(config.sampler.name),
    )
    steps_per_epoch = len(chunk(np.arange(n), batch_size, accelerator.num_processes))
    total_steps = config.train.epochs * steps_per_epoch
    if config.train.max_steps is not None:
        total_steps = min(total_steps, config.train.max_steps)

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.train.warmup_ratio * total_steps), max(total_steps, 1)
    )
    # The scheduler is not prepared: Accelerate would step it once per process per step, as it
    # assumes per-process batches; ours are global. Its state goes into trainer_state.json.
    accelerator.free_memory()  # forget the previous task's model and optimiser
    model, optimizer = accelerator.prepare(model, optimizer)

    sampler.set_text_keys(data.query_key, data.code_key)
    cached_mode = getattr(sampler, "embeddings", "fresh") == "cached"
    diagnostics_mode = resolve_diagnostics(config)
    cache = EmbeddingCache(n) if cached_mode or diagnostics_mode == "cached" else None

    ckpt_dir, best_dir = task_dir / "checkpoint", task_dir / "best"
    state = TrainerState()
    if resume and (ckpt_dir / "trainer_state.json").is_file():
        state = load_checkpoint(accelerator, ckpt_dir, sampler, scheduler, cache)
        # more epochs on resume (config.RESUMABLE_KEYS) reopen a finished task
        state.finished = state.epoch >= config.train.epochs or state.global_step >= total_steps
        if main:
            print(
                f"resumed {task_dir.name} at epoch {state.epoch}, step {state.global_step}",
                file=sys.stderr,
            )
    if state.finished:
        return dataclasses.asdict(state)
    log = MetricsLog(
        task_dir / "metrics.jsonl", main, accelerator if config.train.tensorboard else None
    )

    stop = {"signal": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(signal=True))
    try:
        model.train()
        bar = tqdm(
            total=total_steps,
            initial=state.global_step,
            disable=not main,
            desc=f"train {task_dir.name}",
            unit="step",
            dynamic_ncols=True,
        )
        while state.epoch < config.train.epochs and state.global_step < total_steps:
            epoch_start = time.perf_counter()
            sampler.set_epoch(state.epoch)
            embeddings = EpochEmbeddings(
                lambda: embed_training_set(
                    accelerator, model, data, pad_id, config.train.eval_batch_size
                ),
                cache.complete if cache is not None else None,
                cached_mode,
            )
            sampler_start = time.perf_counter()
            sampler.prepare(embeddings.for_sampler)  # called only when this epoch needs them
            sampler_seconds = time.perf_counter() - sampler_start
            digest = batches_digest(sampler.batches())
            check_processes_agree(accelerator, digest, f"{task_dir.name} epoch {state.epoch}")
            diagnostics = epoch_diagnostics(
                diagnostics_mode, sampler, embeddings, config, main, data
            )
            pass_seconds = time.perf_counter() - sampler_start - sampler_seconds
            losses = []
            for step, batch in enumerate(sampler):
                if step < state.step_in_epoch:
                    continue  # replaying a resumed epoch: these batches were trained
                step_start = time.perf_counter()
                loss = train_step(
                    accelerator, model, optimizer, scheduler, data, batch, config, pad_id, cache
                )
                losses.append(loss)
                state.step_in_epoch, state.global_step = step + 1, state.global_step + 1
                bar.update()
                bar.set_postfix(loss=f"{loss:.4f}")
                if state.global_step % config.train.log_every == 0:
                    log.write(
                        task=task_dir.name,
                        epoch=state.epoch,
                        step=state.global_step,
                        loss=loss,
                        lr=scheduler.get_last_lr()[0],
                        pairs_per_s=len(batch.anchors) / (time.perf_counter() - step_start),
                    )
                if stop["signal"]:
                    save_checkpoint(accelerator, ckpt_dir, state, sampler, scheduler, cache)
                    raise Interrupted(
                        f"{task_dir}: SIGTERM; checkpoint saved at step "
                        f"{state.global_step}; continue with --resume"
                    )
                if config.train.save_every and state.global_step % config.train.save_every == 0:
                    save_checkpoint(accelerator, ckpt_dir, state, sampler, scheduler, cache)
                if state.global_step >= total_steps:
                    break
            if cache is not None:
                cache.finish_epoch(accelerator)
            # wall time of the epoch's training work: sampler included, diagnostics excluded
            epoch_seconds = time.perf_counter() - epoch_start - pass_seconds
            valid = validation_mrr(
                accelerator, model, valid_data, pad_id, config.train.eval_batch_size
            )
            valid_mrr = float(np.mean(list(valid.values()))) if valid else float("nan")
            if valid_mrr > state.best_mrr or not best_dir.exists():
                state.best_mrr, state.best_epoch = valid_mrr, state.epoch
                save_best(accelerator, model, best_dir)
            log.write(
                task=task_dir.name,
                event="epoch",
                epoch=state.epoch,
                step=state.global_step,
                epoch_seconds=epoch_seconds,
                sampler_seconds=sampler_seconds,
                sampler_timings=getattr(sampler, "last_timings", None),
                diagnostics_seconds=pass_seconds,
                batches_digest=digest,
                **diagnostics,
                train_loss=float(np.mean(losses)) if losses else None,
                valid_mrr=valid_mrr,
                valid_mrr_per_language=valid,
                pairs_per_s=len(losses) * batch_size / max(epoch_seconds, 1e-9),
            )
            if main:
                tqdm.write(
                    f"{task_dir.name} epoch {state.epoch}: loss "
                    f"{np.mean(losses) if losses else float('nan'):.4f}, valid MRR "
                    f"{valid_mrr:.4f}, {epoch_seconds:.1f} s",
                    file=sys.stderr,
                )
            state.epoch, state.step_in_epoch = state.epoch + 1, 0
            state.finished = state.epoch >= config.train.epochs or state.global_step >= total_steps
            save_checkpoint(accelerator, ckpt_dir, state, sampler, scheduler, cache)
        bar.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return dataclasses.asdict(state)


def batches_digest(batches: list[Batch]) -> str:
    """A 64-bit hex digest of one epoch's global batches (anchors and extra codes, in order)."""
    digest = hashlib.blake2b(digest_size=8)
    for batch in batches:
        digest.update(np.asarray(batch.anchors, dtype=np.int64).tobytes() + b"|")
        if batch.extra_codes is not None:
            digest.update(np.asarray(batch.extra_codes, dtype=np.int64).tobytes())
        digest.update(b";")
    return digest.hexdigest()


def check_processes_agree(accelerator: Accelerator, digest: str, what: str) -> None:
    """Every process computes the epoch's batches itself (from the same gathered embeddings);
    the contrastive batch is only global if they agree, so compare their digests."""
    if accelerator.num_processes == 1:
        return
    value = torch.tensor(
        [int.from_bytes(bytes.fromhex(digest), "little", signed=True)], device=accelerator.device
    )
    digests = [int(v) for v in accelerator.gather(value).tolist()]
    if len(set(digests)) > 1:
        raise UserError(
            f"{what}: the {len(digests)} processes computed different batches "
            f"(digests {', '.join(_hex(d) for d in digests)}); "
            "their embeddings or library versions differ"
        )


def _hex(value: int) -> str:
    return (value % 2**64).to_bytes(8, "little").hex()


def resolve_diagnostics(config: RunConfig) -> str:
    """'auto': a fresh pass for the cheap nbow encoder, cached embeddings for transformers."""
    mode = config.train.diagnostics
    if mode == "auto":
        return "fresh" if config.model.encoder == "nbow" else "cached"
    return mode


class EpochEmbeddings:
    """Embeddings of the training set at an epoch start, computed at most once.

    The sampler gets last epoch's cached ones in cached mode (the first epoch has none, so it
    embeds with the initial model), else a fresh no-grad pass; diagnostics reuse whatever the
    sampler used.
    """

    def __init__(self, fresh_pass, cached, cached_mode: bool):
        self._fresh_pass, self.cached, self.cached_mode = fresh_pass, cached, cached_mode
        self.fresh = self.used = None

    def fresh_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        if self.fresh is None:
            self.fresh = self._fresh_pass()
        return self.fresh

    def for_sampler(self) -> tuple[np.ndarray, np.ndarray]:
        use_cache = self.cached_mode and self.cached is not None
        self.used = self.cached if use_cache else self.fresh_embeddings()
        return self.used


def epoch_diagnostics(
    mode: str,
    sampler,
    embeddings: EpochEmbeddings,
    config: RunConfig,
    main: bool,
    data: TrainingData,
) -> dict:
    """L^Global, L^Train of this epoch's assignment, their gap and in-batch hardness, without
    and with the loss's false-negative mask, and the anchors the mask leaves without negatives.

    Computed on the embeddings the sampler used when it used any, else on a fresh pass
    ('fresh') or last epoch's cached embeddings ('cached'; none in the first epoch).
    """
    if mode == "off":
        return {}
    chosen = embeddings.used
    if chosen is None:
        chosen = embeddings.fresh_embeddings() if mode == "fresh" else embeddings.cached
    if chosen is None or not main:
        return {}
    from codesearch.diagnostics import assignment_diagnostics

    queries, codes = chosen
    return {
        f"diag_{k}": v
        for k, v in assignment_diagnostics(
            queries, codes, sampler.batches(), config.model.scale, data.query_key, data.code_key
        ).items()
    }


def resolve_mixed_precision(value: str) -> str:
    if value == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "no"
    return value


def _train(config: RunConfig, out_dir: Path, resume: bool) -> dict:
    check_run_config(config)
    manifest = load_manifest(config.data.path)
    languages = parse_languages(config.data.languages)
    for language in languages:
        if language not in manifest["counts"]:
            raise UserError(
                f"{config.data.path}: has no language '{language}' "
                f"(it has: {', '.join(manifest['counts'])})"
            )
    if out_dir.is_dir() and any(p.name != ".lock" for p in out_dir.iterdir()) and not resume:
        if (out_dir / "config.yaml").is_file():
            raise UserError(
                f"{out_dir}: already holds a run; pass --resume to continue it or "
                f"choose another --out"
            )
    # The run records the manifest's data_hash: check that the files are what it describes.
    verify_prepared(config.data.path, languages)
    resumed_with = None
    if resume and (out_dir / "config.yaml").is_file():
        resumed_with = check_resume(out_dir, config, manifest)
    # Without a GPU, Accelerate forms a multi-process (gloo) group only when told cpu=True;
    # otherwise `accelerate launch --multi_gpu` / torchrun on CPU give N independent runs.
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=resolve_mixed_precision(config.train.mixed_precision),
        log_with="tensorboard" if config.train.tensorboard else None,
        project_dir=str(out_dir),
    )
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(out_dir, config, accelerator, resumed_with)
    if config.train.tensorboard:
        accelerator.init_trackers("codesearch", config=_flat(config.to_dict()))
    accelerator.wait_for_everyone()
    tasks = {"joint": languages} if config.data.joint else {lang: [lang] for lang in languages}
    summary = {}
    for task, task_languages in tasks.items():
        task_dir = out_dir / task
        if accelerator.is_main_process:
            task_dir.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        summary[task] = train_task(accelerator, config, task_dir, task_languages, resume)
    if accelerator.is_main_process:
        write_json_atomic(
            out_dir / "run.json",
            {"models": {task: f"{task}/best" for task in tasks}, "summary": summary},
        )
    accelerator.end_training()
    return summary


def train(config: RunConfig, out_dir: str | Path, resume: bool = False) -> dict:
    """Train one model per language (or one joint model); returns a summary per task. The
    run directory is locked while this process trains in it (main process only)."""
    out_dir = Path(out_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # set by accelerate launch / torchrun
        return _train(config, out_dir, resume)
    check_output_dir(out_dir, "run directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(out_dir, "run directory"):
        return _train(config, out_dir, resume)


def check_resume(out_dir: Path, config: RunConfig, manifest: dict) -> dict:
    """The config keys a resumption changes (UserError for those that would change the
    result; ``config.check_resume_config``); the data must still be the run's (data_hash),
    wherever it lives now."""
    changes = check_resume_config(load_run_config(out_dir), config, str(out_dir))
    info_path = out_dir / "run_info.json"
    if info_path.is_file():
        try:
            recorded = json.loads(info_path.read_text(encoding="utf-8"))["data"]["data_hash"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{info_path}: unreadable run record ({exc!r})") from None
        if recorded != manifest.get("data_hash"):
            raise UserError(
                f"{out_dir}: --resume with data {config.data.path} (data_hash "
                f"{manifest.get('data_hash')}), but the run trained on data_hash "
                f"{recorded}"
            )
    return changes


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = (
                value if isinstance(value, (int, float, str, bool)) else str(value)
            )
    return out
