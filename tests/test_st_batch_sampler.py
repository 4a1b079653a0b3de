"""TBS as a batch sampler of the sentence-transformers trainer, through the real trainer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)

from codesearch.diagnostics import assignment_diagnostics
from codesearch.model import resolve_model_name
from codesearch.samplers import TBSOptions
from codesearch.samplers.random import random_batches
from codesearch.st_batch_sampler import TBSBatchSampler

FIXTURE = Path(__file__).parents[1] / "experiments" / "fixtures" / "codexglue-tiny"
N, BATCH = 48, 8


@pytest.fixture(scope="module")
def pairs() -> Dataset:
    with gzip.open(FIXTURE / "python" / "train.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][:N]
    return Dataset.from_dict(
        {
            "query": [" ".join(r["docstring_tokens"]) for r in rows],
            "code": [r["original_string"] for r in rows],
        }
    )


class Recording(TBSBatchSampler):
    """Keeps every epoch's batches and the embeddings that built them."""

    made: list[Recording] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epochs: dict[int, list[list[int]]] = {}
        self.embedded: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        Recording.made.append(self)

    def embed(self):
        self.embedded[self.epoch] = super().embed()
        return self.embedded[self.epoch]

    def batches(self):
        self.epochs[self.epoch] = super().batches()
        return self.epochs[self.epoch]


def train(pairs: Dataset, tmp_path: Path, loss_class, options: TBSOptions) -> Recording:
    model = SentenceTransformer(resolve_model_name("minilm"), device="cpu")
    model.max_seq_length = 24
    Recording.made.clear()
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=2,
        per_device_train_batch_size=BATCH,
        batch_sampler=Recording.factory(model, options=options),
        save_strategy="no",
        report_to="none",
        seed=1,
    )
    loss = (
        loss_class(model)
        if loss_class is MultipleNegativesRankingLoss
        else loss_class(model, mini_batch_size=4)
    )
    SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs, loss=loss).train()
    (sampler,) = Recording.made
    return sampler


@pytest.mark.parametrize(
    "loss_class", [MultipleNegativesRankingLoss, CachedMultipleNegativesRankingLoss]
)
@pytest.mark.slow
def test_tbs_batches_in_the_trainer(pairs, tmp_path, loss_class):
    options = TBSOptions(quantile=0.9, start_epoch=0)
    sampler = train(pairs, tmp_path, loss_class, options)
    assert sorted(sampler.epochs) == [0, 1]  # set_epoch reached it each epoch
    for epoch, batches in sampler.epochs.items():
        assert sorted(i for b in batches for i in b) == list(range(N))  # every row once
        assert len(batches) == len(sampler) == N // BATCH
        assert all(len(b) == BATCH for b in batches)
        random = [b.anchors.tolist() for b in random_batches(N, BATCH, 1, epoch)]
        assert batches != random
        q, c = sampler.embedded[epoch]
        tbs_gap = assignment_diagnostics(q, c, batches)["gap"]
        random_gap = assignment_diagnostics(q, c, random)["gap"]
        assert tbs_gap < random_gap  # harder batches, on the embeddings that built them
    # the model was trained between the epochs: the second pass embedded other vectors
    assert not np.allclose(sampler.embedded[0][0], sampler.embedded[1][0])


def test_epochs_before_the_start_are_random_and_drop_last_keeps_len_exact(pairs):
    model = SentenceTransformer(resolve_model_name("minilm"), device="cpu")
    sampler = TBSBatchSampler(
        pairs.select(range(45)),
        BATCH,
        drop_last=True,
        seed=3,
        model=model,
        options=TBSOptions(start_epoch=1),
    )
    assert len(sampler) == 45 // BATCH == len(list(sampler))
    full = [b.anchors.tolist() for b in random_batches(45, BATCH, 3, 0)]
    assert list(sampler) == [b for b in full if len(b) == BATCH]
    keep_last = TBSBatchSampler(
        pairs.select(range(45)), BATCH, False, model=model, options=TBSOptions(start_epoch=1)
    )
    assert len(keep_last) == len(list(keep_last)) == 6
    with pytest.raises(ValueError, match="a query and a document column"):
        TBSBatchSampler(pairs, BATCH, False, model=model, columns=("query", "nope"))


def test_the_example_runs(tmp_path):
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "examples" / "sentence_transformers_tbs.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--epochs",
            "1",
            "--pairs",
            "64",
            "--out",
            str(tmp_path / "st"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "st" / "modules.json").is_file()


def test_only_training_gets_tbs_and_the_arguments_pickle_small(pairs, tmp_path):
    import pickle

    from codesearch.st_batch_sampler import TBSBatchSamplerFactory

    model = SentenceTransformer(resolve_model_name("minilm"), device="cpu")
    options = TBSOptions(quantile=0.9)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        batch_sampler=TBSBatchSampler.factory(model, options=options),
        report_to="none",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        eval_dataset=pairs.select(range(16)),
        loss=MultipleNegativesRankingLoss(model),
    )

    def sampler_of(loader):
        found = loader.batch_sampler
        return getattr(found, "batch_sampler", found)  # Accelerate's shard wrapper

    assert isinstance(sampler_of(trainer.get_train_dataloader()), TBSBatchSampler)
    evaluation = sampler_of(trainer.get_eval_dataloader())
    assert not isinstance(evaluation, TBSBatchSampler)
    assert list(evaluation) == [list(range(8)), list(range(8, 16))]  # sequential
    assert "tail-batch-sampling" in model.model_card_data.tags
    # training_args.bin: the factory pickles without the model and says what it was
    blob = pickle.dumps(args)
    assert len(blob) < 1_000_000
    restored = pickle.loads(blob).batch_sampler
    assert isinstance(restored, TBSBatchSamplerFactory) and restored.model is None
    assert restored.kwargs["options"] == options and "quantile=0.9" in repr(restored)


def test_a_bare_graph_warns_once_and_cached_embeddings_are_refused(pairs, caplog):
    model = SentenceTransformer(resolve_model_name("minilm"), device="cpu")
    sampler = TBSBatchSampler(pairs, BATCH, False, model=model, options=TBSOptions())
    with caplog.at_level("WARNING", logger="codesearch.st_batch_sampler"):
        list(sampler)
        sampler.set_epoch(1)
        list(sampler)
    warnings = [r.getMessage() for r in caplog.records if "tbs graph" in r.getMessage()]
    assert len(warnings) == 1 and "sampler.tbs_quantile" in warnings[0]
    with pytest.raises(ValueError, match="embeddings='fresh'"):
        TBSBatchSampler(pairs, BATCH, False, model=model, options=TBSOptions(embeddings="cached"))


@pytest.mark.slow
def test_two_processes_each_train_on_whole_tbs_batches(tmp_path):
    """Through the real trainer with two gloo processes: both compute the same TBS batches,
    and Accelerate's default hands each process whole batches in turn (as documented)."""
    import os
    import subprocess
    import sys

    from helpers import free_port
    from model_helpers import tiny_bert_dir

    port = free_port()
    script = Path(__file__).parent / "st_two_process_check.py"
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launcher += ["--num_processes", "2", "--num_cpu_threads_per_process", "1"]
    launcher += ["--main_process_port", str(port)]
    try:
        done = subprocess.run(
            [*launcher, str(script), str(tiny_bert_dir(tmp_path)), str(tmp_path)],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired as stuck:
        reached = sorted(p.name for p in tmp_path.glob("rank*"))
        log = stuck.stderr.decode(errors="replace") if isinstance(stuck.stderr, bytes) else ""
        pytest.fail(f"two processes did not finish in 300 s; reached {reached}:\n{log[-4000:]}")
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert all(r["processes"] == 2 for r in ranks)
    assert ranks[0]["all"] == ranks[1]["all"]  # every process computed the same batches
    batches = ranks[0]["all"]
    assert sorted(i for b in batches for i in b) == list(range(64))
    assert ranks[0]["mine"] == batches[0::2] and ranks[1]["mine"] == batches[1::2]
