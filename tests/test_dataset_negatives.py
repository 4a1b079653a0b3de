"""Pairs with their own hard negative (supervised SimCSE's NLI triplets): each anchor's negative
joins the global batch as one more candidate code, after the sampler's extras, in one process or
several; the loss's mask drops a negative only where its text is the anchor's own code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codesearch.cli import main
from codesearch.data.prepared import PreparedWriter, load_manifest, load_records
from codesearch.data.schema import SENTENCE_LANGUAGE, PairRecord, make_id
from codesearch.data.training_data import TrainingData, negative_texts, text_keys
from codesearch.encode import collate, extra_rows
from codesearch.errors import UserError
from codesearch.loss import false_negative_mask
from codesearch.samplers import Batch

FIXTURES = Path(__file__).parent / "fixtures" / "sts"
SIMCSE_CSV = FIXTURES / "nli_for_simcse.csv"

# five triplets: anchors 0 and 1 share their premise; 2's negative is 3's positive
ANCHORS = ["a man sings", "a man sings", "a dog runs", "the sun sets", "rain falls"]
POSITIVES = ["someone sings", "a person sings", "an animal runs", "evening comes", "it rains"]
NEGATIVES = ["nobody sings", "the man is silent", "evening comes", "it is noon", "it is dry"]


def triplet_data(with_negatives: bool = True) -> TrainingData:
    """A TrainingData whose token ids are the row numbers: code i -> [i], negative i -> [100 + i]."""
    n = len(ANCHORS)
    return TrainingData(
        records=[],
        query_ids=[[i] for i in range(n)],
        code_ids=[[i] for i in range(n)],
        query_key=text_keys(ANCHORS),
        code_key=text_keys(POSITIVES),
        pad_id=0,
        negative_ids=[[100 + i] for i in range(n)] if with_negatives else None,
        negative_key=text_keys(NEGATIVES) if with_negatives else None,
    )


def code_rows(inputs) -> list[int]:
    ids, mask = inputs.code
    return [int(row[m.bool()][0]) for row, m in zip(ids, mask, strict=True)]


def test_negatives_follow_the_anchors_and_the_samplers_extras():
    data = triplet_data()
    batch = Batch(anchors=np.array([0, 1, 2, 3]), extra_codes=np.array([4]))
    inputs = collate(data, batch, rank=0, world=1, device="cpu")
    # the anchors' codes, the sampler's extra (pair 4's code), then the anchors' negatives
    assert code_rows(inputs) == [0, 1, 2, 3, 4, 100, 101, 102, 103]
    assert inputs.has_extras and inputs.mask.shape == (4, 9)
    expected = np.zeros((4, 9), dtype=bool)
    expected[[0, 1, 2, 3], [0, 1, 2, 3]] = True  # each anchor's own code
    expected[0, 1] = expected[1, 0] = True  # 0 and 1 share their query
    expected[3, 7] = True  # 2's negative is 3's positive text: not a negative of anchor 3
    # a negative is never dropped because its anchor shares a query: 1 keeps 0's negative
    assert (inputs.mask.numpy() == expected).all()


def test_across_processes_the_extras_are_gathered_in_rank_order():
    data = triplet_data()
    batch = Batch(anchors=np.array([0, 1, 2, 3]), extra_codes=np.array([4]))
    one = collate(data, batch, rank=0, world=1, device="cpu")
    ranks = [collate(data, batch, rank=r, world=2, device="cpu") for r in range(2)]
    assert all(torch.equal(r.mask[:, :4], one.mask[:, :4]) for r in ranks)
    assert torch.equal(ranks[0].mask, ranks[1].mask)
    # rank 0: anchors 0, 1, extra 4, negatives of 0, 1; rank 1: anchors 2, 3, negatives of 2, 3
    assert code_rows(ranks[0]) == [0, 1, 4, 100, 101]
    assert code_rows(ranks[1]) == [2, 3, 102, 103]
    gathered = [*extra_rows(data, batch, 0, 2), *extra_rows(data, batch, 1, 2)]
    assert gathered == [4, 5, 6, 7, 8]  # negative of pair i is numbered N + i
    column_of = {row: 4 + j for j, row in enumerate(gathered)}
    # the global mask of two processes is one process's mask with its extras reordered
    reordered = one.mask[:, [0, 1, 2, 3] + [column_of[r] for r in [4, 5, 6, 7, 8]]]
    assert torch.equal(ranks[0].mask, reordered)


def test_without_negatives_the_batch_is_what_it_was():
    data = triplet_data(with_negatives=False)
    batch = Batch(anchors=np.array([0, 2, 3]), extra_codes=np.array([1, 4]))
    inputs = collate(data, batch, rank=0, world=1, device="cpu")
    assert code_rows(inputs) == [0, 2, 3, 1, 4]
    qk, ck = torch.from_numpy(data.query_key), torch.from_numpy(data.code_key)
    a, e = torch.tensor([0, 2, 3]), torch.tensor([1, 4])
    assert torch.equal(inputs.mask, false_negative_mask(qk[a], ck[a], ck[e], qk[e]))
    plain = collate(data, Batch(anchors=np.array([0, 2])), rank=0, world=1, device="cpu")
    assert not plain.has_extras and plain.mask.shape == (2, 2)


def record(i: int, negative: str | None, query: str = "", code: str = "", **fields) -> PairRecord:
    return PairRecord(
        id=make_id(SENTENCE_LANGUAGE, "nli", str(i), fields.get("split", "train")),
        language=SENTENCE_LANGUAGE,
        repo="nli",
        path="fixture",
        func_name=str(i),
        query=query or f"anchor {i}",
        code=code or f"positive {i}",
        url="",
        split=fields.pop("split", "train"),
        negative=negative,
        **fields,
    )


def test_every_pair_has_a_negative_or_none():
    assert negative_texts([record(0, None), record(1, None)], "f") is None
    assert negative_texts([record(0, "no"), record(1, "not")], "f") == ["no", "not"]
    with pytest.raises(UserError, match=r"train.jsonl: 1 of 2 training pairs have a 'negative'"):
        negative_texts([record(0, "no"), record(1, None)], "train.jsonl")


def triplet_dir(root, with_negatives: bool):
    """A prepared sentence-pair directory: 24 triplets to train on, 12 scored pairs to
    validate on."""
    subjects = ["A man", "A woman", "A child", "The dog", "Two cats", "An old farmer"]
    verbs = ["is singing", "is running", "is eating", "is sleeping"]
    train, valid = [], []
    for i, (s, v) in enumerate((s, v) for s in subjects for v in verbs):
        other = verbs[(verbs.index(v) + 1) % len(verbs)]
        negative = f"{s} {other}." if with_negatives else None
        train.append(record(i, negative, f"{s} {v}.", f"{s} {v} now."))
        if i < 12:
            valid.append(record(i, None, f"{s} {v}.", f"{s} {other}.", split="valid", score=i % 5))
    with PreparedWriter(root) as writer:
        writer.write_split(SENTENCE_LANGUAGE, "train", train)
        writer.write_split(SENTENCE_LANGUAGE, "valid", valid)
        writer.finish(task="sentence-similarity", source="test fixture")
    return root


def first_step_loss(data, run) -> float:
    args = ["train", "--data", str(data), "--languages", "english", "--out", str(run)]
    args += [
        "--encoder",
        "nbow",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--set",
        "train.log_every=1",
    ]
    args += ["--sampler", "random", "--mixed-precision", "no", "--seed", "3", "--quiet"]
    assert main(args) == 0
    rows = [json.loads(x) for x in (run / "english" / "metrics.jsonl").read_text().splitlines()]
    return next(r["loss"] for r in rows if r.get("step") == 1 and "loss" in r)


def test_training_puts_the_negatives_in_the_loss(tmp_path):
    """Same seed, same model, same first batch: a softmax over more candidates has a larger
    loss, so the first step's loss grows exactly when the negatives reach the loss."""
    with_negatives = first_step_loss(triplet_dir(tmp_path / "with", True), tmp_path / "r1")
    without = first_step_loss(triplet_dir(tmp_path / "without", False), tmp_path / "r2")
    assert with_negatives > without + 1e-3


def test_prepare_nli_without_negatives(tmp_path):
    out = tmp_path / "out"
    argv = ["prepare", "nli", "--out", str(out), "--triplets", str(SIMCSE_CSV)]
    assert main([*argv, "--wheel", str(FIXTURES), "--no-negatives"]) == 0
    assert all(r.negative is None for r in load_records(out, SENTENCE_LANGUAGE, "train"))
    assert load_manifest(out)["config"]["negatives"] is False
