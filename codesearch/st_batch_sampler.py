"""Tail Batch Sampling as a batch sampler for the sentence-transformers trainer.

``SentenceTransformerTrainingArguments(batch_sampler=TBSBatchSampler.factory(model))`` makes
every epoch's batches those of ``codesearch.samplers.TBSSampler`` (arXiv 2210.12874;
docs/method.md): before each epoch the dataset's anchor and positive columns are embedded with
the model being trained (``encode_query`` / ``encode_document``, unit norm, no gradient), and
the rows are ordered by ``samplers.tbs.tbs_batches`` and cut into batches, with the same options
(``TBSOptions``: quantile or knn graph, same-text edges, start epoch, every) and the same batches
for the same seed, epoch and embeddings as ``codesearch train --sampler tbs``. Epochs before
``start_epoch`` are random batches. Works with any loss that takes in-batch negatives
(``MultipleNegativesRankingLoss``, its cached variant).

Guarantee: every row is in exactly one batch per epoch (the last, smaller batch is dropped
with ``drop_last``); ``len`` is exact before any embedding. Cost per TBS epoch: one no-grad
pass over both columns and the graph (``make bench`` measures it).

Only training gets TBS batches: the trainer asks the same ``batch_sampler`` for its evaluation
and test dataloaders, and those get sequential batches (an evaluation loss over TBS batches
would cost an embedding pass per evaluation and measure another loss than the one reported).
The factory pickles without the model, so ``training_args.bin`` stays small and records the
TBS options; the model card gets the tag ``tail-batch-sampling``. When most rows have no edge
in the TBS graph, one warning (logger ``codesearch.st_batch_sampler``) says how many and
which quantile would connect them. ``TBSOptions(embeddings="cached")`` is refused: the trainer's
forward passes are not recorded here, so every TBS epoch embeds afresh.

Several processes: under Accelerate's default (``split_batches=False``) each process draws
whole batches of this sampler in turn (process 0 batches 0, 2, ...; process 1 batches 1, 3,
...), and every process embeds the whole dataset at each TBS epoch (the same model and data
give every process the same batches). Each process's contrastive batch is then one whole TBS
batch, as ``batch_size`` says, not a shard of one.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler
from torch.utils.data import SequentialSampler

from codesearch.data.training_data import text_keys
from codesearch.samplers.base import batches_per_epoch
from codesearch.samplers.tbs import TBSOptions, TBSSampler

logger = logging.getLogger(__name__)
EVALUATION_LOADERS = ("get_eval_dataloader", "get_test_dataloader")  # transformers.Trainer's


def building_evaluation_loader(depth: int = 12) -> bool:
    """Whether the trainer is building an evaluation or test dataloader: one of
    ``transformers.Trainer``'s public ``get_eval_dataloader`` / ``get_test_dataloader`` is on
    the call stack (the trainer asks one ``batch_sampler`` for every dataloader and does not
    say which)."""
    frame = sys._getframe(1)
    for _ in range(depth):
        if frame is None:
            return False
        if frame.f_code.co_name in EVALUATION_LOADERS:
            return True
        frame = frame.f_back
    return False


class TBSBatchSamplerFactory:
    """The ``batch_sampler`` callable of ``TBSBatchSampler.factory``: TBS batches for the
    training dataset, sequential batches for evaluation and test datasets. Pickles without
    the model (``training_args.bin``); its repr names the sampler and options."""

    def __init__(self, sampler_class: type, model, **kwargs):
        self.sampler_class, self.model, self.kwargs = sampler_class, model, kwargs

    def __call__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator=None,
        seed: int = 0,
    ):
        if building_evaluation_loader():
            return DefaultBatchSampler(
                SequentialSampler(dataset),
                batch_size=batch_size,
                drop_last=drop_last,
                valid_label_columns=valid_label_columns,
                generator=generator,
                seed=seed,
            )
        card = getattr(self.model, "model_card_data", None)
        if card is not None and hasattr(card, "add_tags"):
            card.add_tags("tail-batch-sampling")
        return self.sampler_class(
            dataset,
            batch_size,
            drop_last,
            valid_label_columns,
            generator,
            seed,
            model=self.model,
            **self.kwargs,
        )

    def __getstate__(self) -> dict:
        options = self.kwargs.get("options") or TBSOptions()
        kwargs = {**self.kwargs, "options": dataclasses.asdict(options)}
        return {"sampler_class": self.sampler_class, "model": None, "kwargs": kwargs}

    def __setstate__(self, state: dict) -> None:
        kwargs = dict(state["kwargs"])
        kwargs["options"] = TBSOptions(**kwargs["options"])
        self.sampler_class, self.model, self.kwargs = state["sampler_class"], None, kwargs

    def __repr__(self) -> str:
        options = self.kwargs.get("options") or TBSOptions()
        return f"{self.sampler_class.__name__}({options})"


class TBSBatchSampler(DefaultBatchSampler):
    """TBS batches of a sentence-transformers training dataset (module docstring).

    ``model``: the SentenceTransformer being trained; ``options``: ``TBSOptions``;
    ``columns``: the (query, document) columns, default the dataset's first two;
    ``encode_batch_size``: rows per encoding batch of the epoch-start pass. The trainer passes
    the rest (use ``factory`` to bind the model and options)."""

    def __init__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator=None,
        seed: int = 0,
        *,
        model,
        options: TBSOptions | None = None,
        columns: tuple[str, str] | None = None,
        encode_batch_size: int = 64,
    ):
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        self.model, self.encode_batch_size = model, encode_batch_size
        self.columns = tuple(columns or dataset.column_names[:2])
        missing = [c for c in self.columns if c not in dataset.column_names]
        if len(self.columns) != 2 or missing:
            raise ValueError(
                f"TBSBatchSampler needs a query and a document column; got {self.columns} "
                f"(the dataset has {dataset.column_names})"
            )
        self.queries, self.documents = (list(dataset[c]) for c in self.columns)
        for column, values in zip(self.columns, (self.queries, self.documents), strict=True):
            wrong = next((v for v in values if not isinstance(v, str)), None)
            if wrong is not None:
                raise ValueError(
                    f"TBSBatchSampler embeds the column '{column}' as text, but it holds "
                    f"{type(wrong).__name__} values ({wrong!r:.40}); pass columns=(query, "
                    "document) naming two string columns"
                )
        options = options or TBSOptions()
        if options.embeddings == "cached":
            raise ValueError(
                "TBSBatchSampler embeds the dataset afresh at each TBS epoch (the trainer's "
                "forward passes are not recorded); use TBSOptions(embeddings='fresh')"
            )
        # the similarity search runs where the model does (a GPU's tiles, as in codesearch train)
        self.sampler = TBSSampler(len(dataset), batch_size, seed, 1, options, str(model.device))
        self.sampler.set_text_keys(text_keys(self.queries), text_keys(self.documents))

    @classmethod
    def factory(cls, model, **kwargs) -> TBSBatchSamplerFactory:
        """The callable for ``SentenceTransformerTrainingArguments(batch_sampler=...)``:
        this class for the training dataset, sequential batches for evaluation."""
        return TBSBatchSamplerFactory(cls, model, **kwargs)

    def embed(self) -> tuple[np.ndarray, np.ndarray]:
        """(queries, documents), (N, d) float32 unit norm, with the model as it is now."""
        training = self.model.training
        kwargs = {
            "batch_size": self.encode_batch_size,
            "convert_to_numpy": True,
            "normalize_embeddings": True,
            "show_progress_bar": False,
        }
        q = self.model.encode_query(self.queries, **kwargs)
        d = self.model.encode_document(self.documents, **kwargs)
        self.model.train(training)
        return np.asarray(q, dtype=np.float32), np.asarray(d, dtype=np.float32)

    def batches(self) -> list[list[int]]:
        """This epoch's batches (``set_epoch`` first): embeds when the epoch recomputes pi."""
        self.sampler.set_epoch(self.epoch)
        self.sampler.prepare(self.embed)
        warning = self.sampler.density_warning()
        if warning:
            logger.warning(warning)
        out = [b.anchors.tolist() for b in self.sampler.batches()]
        return [b for b in out if len(b) == self.batch_size] if self.drop_last else out

    def __iter__(self):
        yield from self.batches()

    def __len__(self) -> int:
        n = len(self.queries)
        return n // self.batch_size if self.drop_last else batches_per_epoch(n, self.batch_size)
