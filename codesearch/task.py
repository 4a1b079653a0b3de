"""One training task (a language, or all languages jointly) as the loop in ``codesearch.train``
sees it: its model and optimiser, sampler, data, schedule, state and metrics log; and how they
are built from the run config (``build_task``; ``train.setup_task`` prepares and resumes)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_linear_schedule_with_warmup

from codesearch.checkpoint import TrainerState, save_checkpoint
from codesearch.config import RunConfig
from codesearch.data.training_data import TrainingData, load_training_data, load_validation
from codesearch.diagnostics import resolve_diagnostics
from codesearch.encode import embed_pairs
from codesearch.epoch_embeddings import TrainingPassEmbeddings
from codesearch.errors import UserError
from codesearch.fast_dropout import use_fast_dropout
from codesearch.model import DualEncoder, TransformerTower, load_tokenizer
from codesearch.run_dir import MetricsLog
from codesearch.samplers import BatchSampler, sampler_class


@dataclass
class Task:
    """What one task's loop reads and updates."""

    accelerator: Accelerator
    config: RunConfig
    task_dir: Path
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    sampler: BatchSampler
    data: TrainingData
    valid: dict  # language -> (query ids, code ids) of its validation pairs
    cache: (
        TrainingPassEmbeddings | None
    )  # the training passes' embeddings, when anything reads them
    log: MetricsLog
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None  # set once steps are known
    state: TrainerState = dataclasses.field(default_factory=TrainerState)
    progress: bool = True  # progress bars (the step bar and the embedding passes)

    @property
    def total_steps(self) -> int:
        """Epochs x batches per epoch, or ``train.max_steps`` when that is fewer."""
        steps = self.config.train.epochs * len(self.sampler)
        return min(steps, self.config.train.max_steps or steps)

    def done(self) -> bool:
        """Every epoch trained, or the step budget spent."""
        return self.state.epoch >= self.config.train.epochs or (
            self.state.global_step >= self.total_steps
        )

    def embed(self, query_ids: list, code_ids: list, progress: bool = False) -> tuple:
        """No-grad (queries, codes) embeddings of token ids with the model being trained."""
        batch_size = self.config.train.eval_batch_size
        pad = self.data.pad_id
        return embed_pairs(
            self.model,
            query_ids,
            code_ids,
            pad,
            batch_size,
            accelerator=self.accelerator,
            progress=progress,
        )

    def checkpoint(self) -> None:
        """An atomic checkpoint into ``task_dir/checkpoint``."""
        ckpt_dir = self.task_dir / "checkpoint"
        save_checkpoint(
            self.accelerator, ckpt_dir, self.state, self.sampler, self.scheduler, self.cache
        )


def choose_dropout(model: torch.nn.Module, config: RunConfig, device) -> int:
    """On a CPU with ``train.cpu_dropout: fast``, the transformer towers draw their dropout
    masks with ``codesearch.fast_dropout`` (1.47x the training pairs/s of MiniLM in bf16 on a
    2-core CPU, docs/benchmarks.md). Returns the number of dropout modules swapped."""
    if config.train.cpu_dropout != "fast" or torch.device(device).type != "cpu":
        return 0
    return sum(
        use_fast_dropout(tower.encoder)
        for tower in model.modules()
        if isinstance(tower, TransformerTower)
    )


def build_optimizer(model: torch.nn.Module, config: RunConfig, device) -> torch.optim.AdamW:
    """AdamW, fused on a CPU or CUDA device (one kernel over all parameters instead of a loop
    of tensor ops: the update of nbow's 7.8M-entry embedding drops from 50 to 11 ms per step on
    one CPU thread; the same update up to float rounding)."""
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],  # not the frozen poolers
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        fused=torch.device(device).type in ("cpu", "cuda"),
    )


def build_task(
    accelerator: Accelerator, config: RunConfig, task_dir: Path, languages: list[str]
) -> Task:
    """Data, model, sampler, optimiser and schedule of one task, not yet prepared: seeded
    first, so that the model's initial weights depend only on ``train.seed``."""
    set_seed(config.train.seed)
    tokenizer = load_tokenizer(config.model)
    model = DualEncoder(config.model, tokenizer=tokenizer)
    choose_dropout(model, config, accelerator.device)
    lengths = (
        config.model.max_query_length,
        config.model.max_code_length,
        config.model.input_format,
    )
    path = config.data.path
    data = load_training_data(
        path, languages, tokenizer, config.data.max_train_pairs, config.train.seed, *lengths
    )
    valid = load_validation(path, languages, tokenizer, config.data.max_valid_queries, *lengths)
    batch_size, world = config.train.batch_size, accelerator.num_processes
    if batch_size < world:
        raise UserError(
            f"--batch-size {batch_size} is smaller than the number of processes ({world})"
        )
    options = config.sampler.options.get(config.sampler.name)
    sampler = sampler_class(config.sampler.name)(
        len(data.records), batch_size, config.train.seed, world, options, accelerator.device
    )
    sampler.set_text_keys(data.query_key, data.code_key)
    optimizer = build_optimizer(model, config, accelerator.device)
    cached = sampler.wants_cached_embeddings or resolve_diagnostics(config) == "cached"
    cache = TrainingPassEmbeddings(len(data.records)) if cached else None
    tracker = accelerator if config.train.tensorboard else None
    log = MetricsLog(task_dir / "metrics.jsonl", accelerator.is_main_process, tracker)
    task = Task(accelerator, config, task_dir, model, optimizer, sampler, data, valid, cache, log)
    # The scheduler is not prepared: Accelerate would step it once per process per step, as it
    # assumes per-process batches; ours are global. Its state goes into trainer_state.json.
    warmup = int(config.train.warmup_ratio * task.total_steps)
    task.scheduler = get_linear_schedule_with_warmup(optimizer, warmup, max(task.total_steps, 1))
    return task
