"""Pairs in memory for training: the deterministic subset, stable text keys, token ids.

The text keys are what every false-negative rule compares (the loss's mask, TBS's same-text
edges, hardneg's exclusions): two pairs share a query (or code) exactly when their keys are
equal. Token ids are unpadded; batches pad them (``encode.pad_batch``).

Pairs that carry a ``negative`` (supervised SimCSE's NLI triplets: a contradicted hypothesis)
keep it as a third text: each anchor's negative joins its batch as one more candidate code
(``encode.collate``), whatever the sampler. Either every training pair of a task has one or
none does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from codesearch.data.prepared import load_records
from codesearch.data.schema import PairRecord
from codesearch.errors import UserError


def text_keys(texts: list[str]) -> np.ndarray:
    """(N,) int64 stable hashes of the texts (equal text, equal key)."""
    # hash() of str is salted per process; a stable hash keeps processes in agreement
    digests = (hashlib.blake2b(t.encode(), digest_size=8).digest() for t in texts)
    return np.array([int.from_bytes(d, "little", signed=True) for d in digests], dtype=np.int64)


def subsample(records: list[PairRecord], limit: int | None, seed: int) -> list[PairRecord]:
    """A deterministic random subset of at most ``limit`` records, in file order."""
    if limit is None or len(records) <= limit:
        return records
    keep = np.sort(np.random.default_rng(seed).permutation(len(records))[:limit])
    return [records[i] for i in keep]


UNIXCODER_MODE = "<encoder-only>"  # UniXcoder's mode token for its encoder-only use


def tokenize_lengths(
    tokenizer, texts: list[str], max_length: int, input_format: str = "plain"
) -> list[list[int]]:
    """Token ids of each text, at most ``max_length`` of them, special tokens included.

    ``plain``: the tokenizer's own special tokens around the truncated text. ``unixcoder``:
    ``<s> <encoder-only> </s> TEXT </s>`` with the text's tokens cut to ``max_length - 4``, as
    UniXcoder's code-search run.py (microsoft/CodeBERT, UniXcoder/downstream-tasks/code-search)
    builds both its queries and its code (its padding is ours: per batch, masked)."""
    if input_format == "plain":
        encoded = tokenizer(texts, truncation=True, max_length=max_length, add_special_tokens=True)
        return encoded["input_ids"]
    head = [tokenizer.cls_token_id, tokenizer.convert_tokens_to_ids(UNIXCODER_MODE)]
    head.append(tokenizer.sep_token_id)
    body = tokenizer(texts, truncation=True, max_length=max_length - 4, add_special_tokens=False)
    return [head + ids + [tokenizer.sep_token_id] for ids in body["input_ids"]]


@dataclass
class TrainingData:
    """Training pairs of one task, pre-tokenised (padding happens per batch)."""

    records: list[PairRecord]
    query_ids: list[list[int]]
    code_ids: list[list[int]]
    query_key: np.ndarray  # (N,) int64 hash of the query text, for false-negative masking
    code_key: np.ndarray  # (N,) int64 hash of the code text
    pad_id: int  # the tokenizer's padding id
    negative_ids: list[list[int]] | None = None  # pair i's own hard negative (a code-side text)
    negative_key: np.ndarray | None = None  # (N,) int64 hash of the negative text

    @property
    def has_negatives(self) -> bool:
        return self.negative_ids is not None


def negative_texts(records: list[PairRecord], where: str) -> list[str] | None:
    """The pairs' ``negative`` texts when every pair has one, None when none has; a mix is an
    error naming ``where`` and how many pairs lack one."""
    missing = sum(r.negative is None for r in records)
    if missing == len(records):
        return None
    if missing:
        raise UserError(
            f"{where}: {len(records) - missing:,} of {len(records):,} training pairs have a "
            f"'negative' and {missing:,} do not; the trainer takes the column when every pair "
            "has it (prepare the data again, with or without negatives)"
        )
    return [r.negative for r in records]


def load_training_data(
    path: str,
    languages: list[str],
    tokenizer,
    max_pairs: int | None,
    seed: int,
    max_query_length: int,
    max_code_length: int,
    input_format: str = "plain",
) -> TrainingData:
    """The train split of ``languages`` (each subsampled to ``max_pairs`` with ``seed``)."""
    records: list[PairRecord] = []
    for language in languages:
        records += subsample(load_records(path, language, "train"), max_pairs, seed)
    if not records:
        raise UserError(f"{path}: no training pairs for {', '.join(languages)} (empty train.jsonl)")
    queries, codes = [r.query for r in records], [r.code for r in records]
    negatives = negative_texts(records, f"{path} ({', '.join(languages)}, train)")
    return TrainingData(
        records=records,
        query_ids=tokenize_lengths(tokenizer, queries, max_query_length, input_format),
        code_ids=tokenize_lengths(tokenizer, codes, max_code_length, input_format),
        query_key=text_keys(queries),
        code_key=text_keys(codes),
        pad_id=tokenizer.pad_token_id,
        negative_ids=None
        if negatives is None
        else tokenize_lengths(tokenizer, negatives, max_code_length, input_format),
        negative_key=None if negatives is None else text_keys(negatives),
    )


def load_validation(
    path: str,
    languages: list[str],
    tokenizer,
    max_queries: int | None,
    max_query_length: int,
    max_code_length: int,
    input_format: str = "plain",
) -> dict[str, tuple[list[list[int]], list[list[int]], np.ndarray | None]]:
    """Token ids (queries, codes) of each language's first ``max_queries`` valid pairs, and
    their gold scores when every pair has one (sentence pairs: validated by Spearman)."""
    out = {}
    for language in languages:
        records = load_records(path, language, "valid")[:max_queries]
        if records:
            scored = all(r.score is not None for r in records)
            out[language] = (
                tokenize_lengths(
                    tokenizer, [r.query for r in records], max_query_length, input_format
                ),
                tokenize_lengths(
                    tokenizer, [r.code for r in records], max_code_length, input_format
                ),
                np.array([r.score for r in records], dtype=np.float64) if scored else None,
            )
    return out
