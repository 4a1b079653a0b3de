"""One training task (a language, or all languages jointly) as the loop in ``codesearch.train``
sees it: its prepared model and optimiser, sampler, data, schedule, state and metrics log."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator

from codesearch.checkpoint import TrainerState, save_checkpoint
from codesearch.config import RunConfig
from codesearch.data.training_data import TrainingData
from codesearch.encode import embed_pairs
from codesearch.epoch_embeddings import TrainingPassEmbeddings
from codesearch.run_record import MetricsLog
from codesearch.samplers import BatchSampler


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
