"""Contrastive training of the dual encoder under Accelerate, with a pluggable batch sampler.

Reads top to bottom in Accelerate's order: ``train`` checks the run (``codesearch.run_dir``)
and builds the Accelerator; ``setup_task`` builds a task (``codesearch.task``: data, model,
sampler, optimiser), calls ``accelerator.prepare`` and resumes from the checkpoint; ``train_task`` loops ``run_epoch`` (sampler -> this process's slice -> encoder ->
global-batch InfoNCE -> step) and ``end_epoch`` (validate, keep the best model, save_state).
The sampler yields *global* batches (docs/method.md), so one process or several see the same
batches and the same loss. Checkpoints (``codesearch.checkpoint``) are atomic; a resumed run
replays the remaining batches of the interrupted epoch exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm import tqdm

from codesearch.checkpoint import load_checkpoint, save_best
from codesearch.config import RunConfig, check_run_config
from codesearch.data.prepared import write_json_atomic
from codesearch.diagnostics import epoch_diagnostics
from codesearch.distributed import check_processes_agree
from codesearch.encode import collate, validation_metric, validation_scores
from codesearch.epoch_embeddings import EpochStartEmbeddings
from codesearch.errors import UserError
from codesearch.loss import info_nce
from codesearch.precision import resolve_training_precision, warn_if_emulated
from codesearch.run_dir import check_run, locked_run_dir, tracker_config, write_run_info
from codesearch.samplers import Batch, batches_digest
from codesearch.st_layout import point_to_sentence_transformer
from codesearch.task import Task, build_task


class Interrupted(Exception):
    """SIGTERM arrived; a checkpoint was written before raising."""


def train(
    config: RunConfig, out_dir: str | Path, resume: bool = False, progress: bool | None = None
) -> dict:
    """Train one model per language (or one joint model); returns a summary per task. The
    run directory is locked while this process trains in it (main process only). Progress
    bars: ``progress``, by default only when stderr is a terminal (a log file gets the
    epoch lines, not bars)."""
    out_dir = Path(out_dir)
    if progress is None:
        progress = sys.stderr.isatty()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    if not progress:  # Transformers' own bars (loading weights, writing shards) too
        transformers.utils.logging.disable_progress_bar()
    try:
        if int(os.environ.get("RANK", "0")) != 0:  # set by accelerate launch / torchrun
            return _train(config, out_dir, resume, progress)
        with locked_run_dir(out_dir):
            return _train(config, out_dir, resume, progress)
    finally:
        if bars:  # the caller's setting back (a notebook, the tests)
            transformers.utils.logging.enable_progress_bar()


def _train(config: RunConfig, out_dir: Path, resume: bool, progress: bool) -> dict:
    check_run_config(config)
    tasks, resumed_with = check_run(config, out_dir, resume)
    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    precision, precision_source = resolve_training_precision(
        config.train.mixed_precision, device_type
    )
    # Accelerate keeps one precision per process; a process may train several runs with
    # different precisions (a notebook, the tests), so forget the last one's (the process
    # group, PartialState, is kept).
    AcceleratorState._reset_state()
    # Without a GPU, Accelerate forms a multi-process (gloo) group only when told cpu=True;
    # otherwise `accelerate launch --multi_gpu` / torchrun on CPU give N independent runs.
    accelerator = Accelerator(
        cpu=device_type == "cpu",
        mixed_precision=precision,
        log_with="tensorboard" if config.train.tensorboard else None,
        project_dir=str(out_dir),
    )
    if accelerator.is_main_process:
        warn_if_emulated(precision, device_type)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(out_dir, config, accelerator, resumed_with, precision_source)
    if config.train.tensorboard:
        accelerator.init_trackers("codesearch", config=tracker_config(config))
    accelerator.wait_for_everyone()
    summary = {}
    for name, languages in tasks.items():
        if accelerator.is_main_process:
            (out_dir / name).mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        summary[name] = train_task(accelerator, config, out_dir / name, languages, resume, progress)
    if accelerator.is_main_process:
        models = {name: f"{name}/best" for name in tasks}
        write_json_atomic(out_dir / "run.json", {"models": models, "summary": summary})
        if len(models) == 1:  # SentenceTransformer(run directory) loads its one model
            point_to_sentence_transformer(out_dir, next(iter(models.values())))
    accelerator.wait_for_everyone()  # destroying the group while a rank still works can hang
    accelerator.end_training()
    return summary


def setup_task(
    accelerator: Accelerator, config: RunConfig, task_dir: Path, languages: list[str], resume: bool
) -> Task:
    """One task built (``task.build_task``), prepared, then resumed from its checkpoint when
    there is one."""
    task = build_task(accelerator, config, task_dir, languages)
    accelerator.free_memory()  # forget the previous task's model and optimiser
    model, optimizer = task.model, task.optimizer
    task.model, task.optimizer = accelerator.prepare(model, optimizer)
    ckpt_dir = task_dir / "checkpoint"
    if resume and (ckpt_dir / "trainer_state.json").is_file():
        task.state = load_checkpoint(
            accelerator, ckpt_dir, model, task.sampler, task.scheduler, task.cache
        )
        task.state.finished = task.done()  # more epochs on resume reopen a finished task
        task.log.keep_until(task.state.global_step, task.state.epoch)
        if accelerator.is_main_process:
            where = f"epoch {task.state.epoch}, step {task.state.global_step}"
            print(f"resumed {task_dir.name} at {where}", file=sys.stderr)
    return task


def train_task(
    accelerator: Accelerator,
    config: RunConfig,
    task_dir: Path,
    languages: list[str],
    resume: bool,
    progress: bool = True,
) -> dict:
    """Train one model (one language, or all languages jointly) into ``task_dir``."""
    task = setup_task(accelerator, config, task_dir, languages, resume)
    task.progress = progress and accelerator.is_main_process
    state = task.state
    if state.finished:
        return dataclasses.asdict(state)
    stop = {"signal": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(signal=True))
    try:
        task.model.train()
        bar = tqdm(
            total=task.total_steps,
            initial=state.global_step,
            desc=f"train {task_dir.name}",
            unit="step",
            disable=not task.progress,
        )
        while not task.done():
            end_epoch(task, run_epoch(task, bar, stop))
        bar.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return dataclasses.asdict(state)


def run_epoch(task: Task, bar: tqdm, stop: dict) -> dict:
    """The sampler's batches for this epoch (checked equal in every process), the diagnostics
    of that assignment, then one step per batch; returns the epoch's record so far."""
    config, sampler, state, data = task.config, task.sampler, task.state, task.data
    epoch_start = time.perf_counter()
    sampler.set_epoch(state.epoch)
    embeddings = EpochStartEmbeddings(
        lambda: task.embed(data.query_ids, data.code_ids, progress=task.progress),
        task.cache.complete if task.cache is not None else None,
        sampler.wants_cached_embeddings,
    )
    sampler_start = time.perf_counter()
    sampler.prepare(embeddings.for_sampler)  # called only when this epoch needs them
    sampler_seconds = time.perf_counter() - sampler_start
    warning = sampler.density_warning()
    if warning and task.accelerator.is_main_process:
        tqdm.write(warning, file=sys.stderr)
    digest = batches_digest(sampler.batches())
    check_processes_agree(
        digest, f"{task.task_dir.name} epoch {state.epoch}", task.accelerator.device
    )
    main = task.accelerator.is_main_process
    diagnostics = epoch_diagnostics(config, embeddings, sampler.batches(), data, main)
    pass_seconds = time.perf_counter() - sampler_start - sampler_seconds
    losses = []
    for step, batch in enumerate(sampler):
        if step < state.step_in_epoch:
            continue  # replaying a resumed epoch: these batches were trained
        step_start = time.perf_counter()
        loss = train_step(task, batch)
        losses.append(loss)
        state.step_in_epoch, state.global_step = step + 1, state.global_step + 1
        bar.update()
        bar.set_postfix(loss=f"{loss:.4f}")
        if state.global_step % config.train.log_every == 0:
            speed = len(batch.anchors) / (time.perf_counter() - step_start)
            row = dict(epoch=state.epoch, step=state.global_step, loss=loss)
            lr = task.scheduler.get_last_lr()[0]
            task.log.write(task=task.task_dir.name, **row, lr=lr, pairs_per_s=speed)
        if stop["signal"]:
            task.checkpoint()
            raise Interrupted(
                f"{task.task_dir}: SIGTERM; checkpoint saved at step "
                f"{state.global_step}; continue with --resume"
            )
        if config.train.save_every and state.global_step % config.train.save_every == 0:
            task.checkpoint()
        if state.global_step >= task.total_steps:
            break
    if task.cache is not None:
        task.cache.finish_epoch(task.accelerator)
    # wall time of the epoch's training work: sampler included, diagnostics excluded
    epoch_seconds = time.perf_counter() - epoch_start - pass_seconds
    return {
        "epoch_seconds": epoch_seconds,
        "sampler_seconds": sampler_seconds,
        "sampler_timings": sampler.timings,
        "sampler_graph": sampler.graph_stats,
        "diagnostics_seconds": pass_seconds,
        "batches_digest": digest,
        **diagnostics,
        "train_loss": float(np.mean(losses)) if losses else None,
        "pairs_per_s": len(losses) * config.train.batch_size / max(epoch_seconds, 1e-9),
    }


def end_epoch(task: Task, record: dict) -> None:
    """Validation (MRR, or Spearman for scored sentence pairs), the best model so far, the
    epoch's metrics row, the checkpoint."""
    state = task.state
    valid = validation_scores(task.valid, task.embed)
    score = float(np.mean(list(valid.values()))) if valid else float("nan")
    best_dir = task.task_dir / "best"
    if score > state.best_mrr or not best_dir.exists():  # best_mrr: the best validation score
        state.best_mrr, state.best_epoch = score, state.epoch
        save_best(task.accelerator, task.model, best_dir)
    speed = record.pop("pairs_per_s")  # last, as the step rows have it
    key = f"valid_{validation_metric(task.valid)}"
    record.update({key: score, f"{key}_per_language": valid, "pairs_per_s": speed})
    task.log.write(
        task=task.task_dir.name, event="epoch", epoch=state.epoch, step=state.global_step, **record
    )
    if task.accelerator.is_main_process:
        loss = record["train_loss"] if record["train_loss"] is not None else float("nan")
        tqdm.write(
            f"{task.task_dir.name} epoch {state.epoch}: loss {loss:.4f}, {key.replace('_', ' ')} "
            f"{score:.4f}, {record['epoch_seconds']:.1f} s",
            file=sys.stderr,
        )
    state.epoch, state.step_in_epoch = state.epoch + 1, 0
    state.finished = task.done()
    task.checkpoint()


def train_step(task: Task, batch: Batch) -> float:
    """One optimiser step on this process's slice of a global batch; returns the global mean
    loss. With a cache, the anchors' query and code embeddings of this pass are kept."""
    accelerator, config = task.accelerator, task.config
    rank, world = accelerator.process_index, accelerator.num_processes
    inputs = collate(task.data, batch, rank, world, accelerator.device)
    mine = inputs.anchors
    with accelerator.autocast():
        q, c_all = task.model(  # (b, d), (b + e_r, d)
            *inputs.query, *inputs.code, length_chunks=config.train.length_chunks
        )
        extra_codes = c_all[len(mine) :] if inputs.has_extras else None
        scale, symmetric = config.model.scale, config.train.symmetric_loss
        loss = info_nce(q, c_all[: len(mine)], scale, extra_codes, symmetric, inputs.mask)
    # the global mean, the same in every process, so that all of them stop together
    global_loss = float(accelerator.reduce(loss.detach(), reduction="mean"))
    if not math.isfinite(global_loss):
        raise UserError(
            f"{task.task_dir}: the loss of step {task.state.global_step + 1} is {global_loss} "
            f"(model.scale {config.model.scale}, train.lr {config.train.lr}, precision "
            f"{accelerator.mixed_precision}); stopped before that step's update, the last "
            "checkpoint is kept"
        )
    if task.cache is not None:
        task.cache.record(mine, q, c_all[: len(mine)])
    accelerator.backward(loss)
    if config.train.grad_clip and config.train.grad_clip > 0:
        accelerator.clip_grad_norm_(task.model.parameters(), config.train.grad_clip)
    task.optimizer.step()
    task.scheduler.step()
    task.optimizer.zero_grad(set_to_none=True)
    return global_loss
