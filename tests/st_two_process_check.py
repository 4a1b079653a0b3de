"""Run under `accelerate launch --multi_gpu --num_processes 2` (gloo, CPU) by
tests/test_st_batch_sampler.py: TBSBatchSampler inside the real SentenceTransformerTrainer with
two processes. Each process writes OUT/rank<k>.json: every TBS batch of the epoch (as its own
sampler computed them) and the batches its training dataloader hands it; then trains one epoch.

    accelerate launch ... tests/st_two_process_check.py TINY_BERT_DIR OUT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from codesearch.samplers import TBSOptions
from codesearch.st_batch_sampler import TBSBatchSampler

ROWS, BATCH = 64, 8


def main(bert: str, out: str) -> None:
    encoder = Transformer(bert, max_seq_length=16)
    model = SentenceTransformer(
        modules=[encoder, Pooling(encoder.get_embedding_dimension())], device="cpu"
    )
    words = "read write parse sort merge split join open close send".split()
    dataset = Dataset.from_dict(
        {
            "query": [f"{words[i % 10]} the {words[i // 10 % 10]} items {i}" for i in range(ROWS)],
            "code": [
                f"def {words[i % 10]}_{i}(x): return {words[i // 7 % 10]}(x)" for i in range(ROWS)
            ],
        }
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(out) / "trainer"),
        num_train_epochs=1,
        per_device_train_batch_size=BATCH,
        batch_sampler=TBSBatchSampler.factory(model, options=TBSOptions(quantile=0.9)),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=1,
        ddp_timeout=120,  # a stuck collective fails within the test's limit instead of hanging
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
    )
    loader = trainer.get_train_dataloader()
    shard = loader.batch_sampler  # Accelerate's BatchSamplerShard around the TBS sampler
    tbs = shard.batch_sampler
    mine = [list(map(int, b)) for b in shard]
    rank = trainer.accelerator.process_index
    record = {
        "processes": trainer.accelerator.num_processes,
        "all": [list(map(int, b)) for b in tbs.batches()],
        "mine": mine,
    }
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))
    trainer.train()
    (Path(out) / f"rank{rank}.trained").touch()
    trainer.accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip both destroy_process_group (which can hang, pytorch/pytorch#75097) and interpreter
    # teardown (gloo's threads can abort there): every rank has passed the barrier above.
    os._exit(0)
