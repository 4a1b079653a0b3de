"""Ranking and metric core: hand-computed ranks, ties, blocking, protocols, bench smoke run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codesearch import metrics
from codesearch.errors import UserError
from codesearch.metrics import (
    csn1000_chunks,
    csn1000_ranks,
    gold_ranks,
    mrr,
    ndcg_at,
    recall_at,
    summarize,
)

REPO = Path(__file__).resolve().parents[1]

# Integer-valued embeddings: every dot product is exact in float32, so ties are real ties.
CANDIDATES = np.array([[1, 0], [0, 1], [1, 1], [2, 0], [1, 0]], dtype=np.float32)
QUERIES = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [1, 0]], dtype=np.float32)


def reference_ranks(queries: np.ndarray, candidates: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Unblocked pessimistic ranks, one query at a time, in float64."""
    scores = queries.astype(np.float64) @ candidates.astype(np.float64).T
    return np.array([(row >= row[g]).sum() for row, g in zip(scores, gold, strict=True)])


def test_gold_ranks_by_hand_with_ties():
    # Scores per query (rows) against the 5 candidates:
    #   q0 ( 1,0): [ 1, 0, 1, 2, 1]  gold 0 -> 1 higher (c3) + 2 ties (c2, c4) -> rank 4
    #   q1 ( 0,1): [ 0, 1, 1, 0, 0]  gold 1 -> tie with c2                     -> rank 2
    #   q2 ( 1,1): [ 1, 1, 2, 2, 1]  gold 3 -> tie with c2                     -> rank 2
    #   q3 (-1,0): [-1, 0,-1,-2,-1]  gold 1 -> unique best                     -> rank 1
    #   q4 ( 1,0): [ 1, 0, 1, 2, 1]  gold 3 -> unique best                     -> rank 1
    gold = np.array([0, 1, 3, 1, 3])
    ranks = gold_ranks(QUERIES, CANDIDATES, gold)
    assert ranks.dtype == np.int64
    assert ranks.tolist() == [4, 2, 2, 1, 1]


def test_optimistic_ties_rank_the_gold_ahead_of_its_ties():
    # the same scores as above: q0 has 1 higher + 2 ties -> 2; q1, q2 tie once -> 1
    gold = np.array([0, 1, 3, 1, 3])
    ranks = gold_ranks(QUERIES, CANDIDATES, gold, block_size=2, ties="optimistic")
    assert ranks.tolist() == [2, 1, 1, 1, 1]
    same = np.ones((6, 3), dtype=np.float32)
    assert gold_ranks(same[:4], same, np.array([0, 2, 4, 5]), ties="optimistic").tolist() == [1] * 4
    with pytest.raises(ValueError, match="ties must be"):
        gold_ranks(QUERIES, CANDIDATES, gold, ties="random")


def test_ties_are_pessimistic_for_identical_embeddings():
    # A collapsed encoder: every score ties, so every gold ranks last, never first.
    same = np.ones((6, 3), dtype=np.float32)
    ranks = gold_ranks(same[:4], same, np.array([0, 2, 4, 5]))
    assert ranks.tolist() == [6, 6, 6, 6]
    assert mrr(ranks) == pytest.approx(1 / 6)


@pytest.mark.parametrize("block_size", [1, 3, 7, 36, 37, 1000])
def test_blocked_equals_unblocked(block_size):
    rng = np.random.default_rng(1)
    # Small integers give many exact ties; duplicated candidates tie with the gold.
    candidates = rng.integers(-3, 4, size=(53, 5)).astype(np.float32)
    candidates[40:] = candidates[:13]
    queries = rng.integers(-3, 4, size=(37, 5)).astype(np.float32)
    gold = rng.integers(0, 53, size=37)
    expected = reference_ranks(queries, candidates, gold)
    assert len(set(expected.tolist())) > 5  # not a degenerate case
    np.testing.assert_array_equal(gold_ranks(queries, candidates, gold, block_size), expected)


def test_blocked_equals_unblocked_on_float_data():
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((101, 16)).astype(np.float32)
    candidates = rng.standard_normal((203, 16)).astype(np.float32)
    gold = rng.integers(0, 203, size=101)
    full = gold_ranks(queries, candidates, gold, block_size=4096)
    np.testing.assert_array_equal(gold_ranks(queries, candidates, gold, block_size=9), full)
    # float32 vs float64 scores only disagree on near-ties; random data has none this close.
    np.testing.assert_array_equal(full, reference_ranks(queries, candidates, gold))


def test_counts_split_over_column_spans(monkeypatch):
    # Candidate sets past 2**24 are counted in column spans; shrink the span to exercise it.
    monkeypatch.setattr(metrics, "_EXACT_FLOAT32_COUNT", 2)
    gold = np.array([0, 1, 3, 1, 3])
    assert gold_ranks(QUERIES, CANDIDATES, gold, block_size=2).tolist() == [4, 2, 2, 1, 1]


def test_gold_ranks_empty_queries():
    out = gold_ranks(np.zeros((0, 2), np.float32), CANDIDATES, np.zeros(0, np.int64))
    assert out.shape == (0,) and out.dtype == np.int64


@pytest.mark.parametrize(
    "queries, candidates, gold, block_size, message",
    [
        (QUERIES[0], CANDIDATES, np.array([0]), 8, "2-dimensional"),
        (QUERIES, CANDIDATES[:, :1], np.zeros(5, int), 8, "dimension"),
        (QUERIES, CANDIDATES, np.zeros(4, int), 8, "shape"),
        (QUERIES, CANDIDATES, np.zeros(5), 8, "integer"),
        (QUERIES, CANDIDATES, np.array([0, 1, 2, 3, 5]), 8, r"\[0, 5\)"),
        (QUERIES, CANDIDATES, np.array([0, 1, 2, 3, -1]), 8, r"\[0, 5\)"),
        (QUERIES, CANDIDATES, np.zeros(5, int), 0, "block_size"),
        (np.full((5, 2), np.nan, np.float32), CANDIDATES, np.zeros(5, int), 8, "NaN"),
    ],
)
def test_gold_ranks_rejects_bad_input(queries, candidates, gold, block_size, message):
    with pytest.raises(ValueError, match=message):
        gold_ranks(queries, candidates, gold, block_size=block_size)


def test_mrr_cutoff():
    ranks = np.array([1, 2, 4, 1001])
    assert mrr(ranks) == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)
    assert mrr(ranks, cutoff=None) == pytest.approx((1 + 0.5 + 0.25 + 1 / 1001) / 4)
    assert mrr(ranks, cutoff=2) == pytest.approx((1 + 0.5) / 4)
    assert mrr(np.array([1000])) == pytest.approx(1 / 1000)  # rank == cutoff still counts


def test_recall_and_ndcg_by_hand():
    ranks = np.array([1, 3, 5, 10, 11])
    assert recall_at(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at(ranks, 5) == pytest.approx(3 / 5)
    assert recall_at(ranks, 10) == pytest.approx(4 / 5)
    # gains: 1/log2(2) = 1, 1/log2(4) = 0.5, 1/log2(6), 1/log2(11), rank 11 > 10 -> 0
    expected = (1 + 0.5 + 1 / math.log2(6) + 1 / math.log2(11) + 0) / 5
    assert ndcg_at(ranks) == pytest.approx(expected)
    assert ndcg_at(ranks, k=3) == pytest.approx(1.5 / 5)


def test_summarize():
    summary = summarize(np.array([1, 2, 20, 2000]))
    assert summary == pytest.approx(
        {
            "mrr": (1 + 0.5 + 0.05 + 0) / 4,
            "recall@1": 0.25,
            "recall@5": 0.5,
            "recall@10": 0.5,
            "ndcg@10": (1 + 1 / math.log2(3)) / 4,
            "n_queries": 4,
        }
    )
    assert isinstance(summary["n_queries"], int)
    assert summarize(np.array([2000]), mrr_cutoff=None)["mrr"] == pytest.approx(1 / 2000)


@pytest.mark.parametrize(
    "bad", [np.array([], dtype=np.int64), np.array([1, 0]), np.array([[1, 2]])]
)
def test_metrics_reject_bad_ranks(bad):
    for fn in (mrr, lambda r: recall_at(r, 1), ndcg_at, summarize):
        with pytest.raises(ValueError, match="ranks"):
            fn(bad)


def test_csn1000_chunks_match_codesearchnet_shuffle():
    # CodeSearchNet model_test.py: np.random.seed(0); np.random.shuffle(idxs); chunked(1000).
    legacy = np.arange(2500)
    np.random.seed(0)
    np.random.shuffle(legacy)
    chunks = csn1000_chunks(2500)
    assert [len(c) for c in chunks] == [1000, 1000]  # the partial chunk of 500 is dropped
    np.testing.assert_array_equal(np.concatenate(chunks), legacy[:2000])


def test_csn1000_chunks_deterministic_and_disjoint():
    a = csn1000_chunks(1037, seed=3, chunk_size=100)
    b = csn1000_chunks(1037, seed=3, chunk_size=100)
    assert len(a) == 10 and all(len(c) == 100 for c in a)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    kept = np.concatenate(a)
    assert len(np.unique(kept)) == 1000 and kept.min() >= 0 and kept.max() < 1037
    other = np.concatenate(csn1000_chunks(1037, seed=4, chunk_size=100))
    assert not np.array_equal(kept, other)
    assert csn1000_chunks(999) == []
    assert len(csn1000_chunks(1000)) == 1


@pytest.mark.parametrize("n, size, message", [(10, 0, "chunk_size"), (-1, 10, "n_queries")])
def test_csn1000_chunks_rejects_bad_arguments(n, size, message):
    with pytest.raises(ValueError, match=message):
        csn1000_chunks(n, chunk_size=size)


def test_csn1000_ranks_rank_within_chunk_only():
    rng = np.random.default_rng(5)
    codes = rng.standard_normal((250, 8)).astype(np.float32)
    queries = codes + 0.8 * rng.standard_normal((250, 8)).astype(np.float32)
    idx, ranks = csn1000_ranks(queries, codes, seed=1, chunk_size=60)
    chunks = csn1000_chunks(250, seed=1, chunk_size=60)
    np.testing.assert_array_equal(idx, np.concatenate(chunks))
    assert len(idx) == 240 and ranks.max() <= 60
    expected = np.concatenate(
        [reference_ranks(queries[c], codes[c], np.arange(60)) for c in chunks]
    )
    np.testing.assert_array_equal(ranks, expected)
    # Against all 250 codes some golds rank worse than within their chunk of 60.
    overall = reference_ranks(queries, codes, np.arange(250))[idx]
    assert (overall >= ranks).all() and (overall > ranks).any()


def test_csn1000_ranks_errors():
    codes = np.eye(4, dtype=np.float32)
    with pytest.raises(UserError, match="smaller chunk size"):
        csn1000_ranks(codes, codes, chunk_size=5)
    with pytest.raises(ValueError, match="aligned pairs"):
        csn1000_ranks(codes[:3], codes, chunk_size=2)


@pytest.mark.slow
def test_bench_tiny_runs(tmp_path):
    out = tmp_path / "ranking.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_ranking.py"),
            "--tiny",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["config"]["queries"] == 300 and result["config"]["candidates"] == 900
    assert result["agreement"] == {"n_queries": 300, "n_within_top_k": 300, "n_mismatch": 0}
    assert result["ours"]["seconds"] > 0 and result["sentence_transformers"]["seconds"] > 0
    assert 0 < result["metrics"]["mrr"] <= 1
