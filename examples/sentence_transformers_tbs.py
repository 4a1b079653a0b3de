"""Tail Batch Sampling inside the sentence-transformers trainer: fine-tune all-MiniLM-L6-v2 on
(docstring, code) pairs with MultipleNegativesRankingLoss and TBS batches.

    .venv/bin/python examples/sentence_transformers_tbs.py [--epochs 2] [--out runs/st-tbs]

The pairs are the Ruby training pairs of the small cleaned-CodeXGLUE fixture that ships with the
repository (experiments/fixtures/codexglue-tiny); any dataset with a query and a document column
works the same way. The batch sampler is `codesearch.st_batch_sampler.TBSBatchSampler`: before
each epoch it embeds both columns with the model being trained and orders the rows by TBS
(docs/method.md), so each batch holds similar pairs, whose in-batch negatives are hard.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from codesearch.model import resolve_model_name
from codesearch.samplers import TBSOptions
from codesearch.st_batch_sampler import TBSBatchSampler

FIXTURE = Path(__file__).resolve().parents[1] / "experiments" / "fixtures" / "codexglue-tiny"


def load_pairs(language: str = "ruby", limit: int = 300) -> Dataset:
    with gzip.open(FIXTURE / language / "train.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle][:limit]
    return Dataset.from_dict(
        {
            "query": [" ".join(r["docstring_tokens"]) for r in rows],
            "code": [r["original_string"] for r in rows],
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=48)
    parser.add_argument("--out", default="runs/st-tbs")
    args = parser.parse_args(argv)

    model = SentenceTransformer(resolve_model_name("minilm"), device="cpu")
    model.max_seq_length = args.max_seq_length
    dataset = load_pairs(limit=args.pairs)
    options = TBSOptions(quantile=0.99, start_epoch=0)  # pretrained: TBS from the first epoch
    training_args = SentenceTransformerTrainingArguments(
        output_dir=args.out,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=2e-5,
        batch_sampler=TBSBatchSampler.factory(model, options=options),
        save_strategy="no",
        report_to="none",
        logging_steps=5,
        seed=1,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model, scale=20.0),
    )
    trainer.train()
    model.save(args.out)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
