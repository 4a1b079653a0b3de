"""Semantic textual similarity (STS-B; Cer et al. 2017, SemEval-2017 Task 1): Spearman's rank
correlation x 100 between the cosine similarity of each pair's two embeddings and its gold score,
over all pairs of a split and per genre, as SentEval, SimCSE (Gao et al. 2021, arXiv 2104.08821,
"all" setting) and sentence-transformers' ``EmbeddingSimilarityEvaluator`` report it.

The first sentence goes through the query tower and the second through the code tower (one
shared tower for sentence models, so the order does not matter there); the results keep every
pair's id and cosine, so any other correlation can be recomputed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from codesearch.data.prepared import load_records
from codesearch.data.schema import PairRecord
from codesearch.errors import UserError


def spearman_x100(predicted: np.ndarray, gold: np.ndarray) -> float:
    """Spearman's rho x 100 (average ranks for ties); NaN when either side is constant."""
    if len(predicted) < 2:
        return float("nan")
    return float(100 * spearmanr(predicted, gold).statistic)


def scored_records(data: str | Path, language: str, split: str) -> list[PairRecord]:
    """A split's pairs, each with its gold ``score``; a UserError names the first without."""
    records = load_records(data, language, split)
    if not records:
        raise UserError(f"{data}/{language}/{split}.jsonl: no pairs to evaluate")
    unscored = [r.id for r in records if r.score is None]
    if unscored:
        raise UserError(
            f"{data}/{language}/{split}.jsonl: {len(unscored)} pairs have no 'score' (first: "
            f"{unscored[0]}); the sts protocol needs gold similarities (codesearch prepare stsb)"
        )
    return records


def cosines(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, d) arrays, in float64."""
    q = np.asarray(queries, dtype=np.float64)
    c = np.asarray(codes, dtype=np.float64)
    norms = np.linalg.norm(q, axis=1) * np.linalg.norm(c, axis=1)
    return (q * c).sum(axis=1) / np.maximum(norms, 1e-12)


def sts_summary(records: list[PairRecord], similarity: np.ndarray) -> dict:
    """Spearman x 100 overall and per genre (the records' ``repo``), with the pair counts."""
    gold = np.array([r.score for r in records], dtype=np.float64)
    genres = np.array([r.repo for r in records])
    per_genre = {
        genre: {
            "spearman": spearman_x100(similarity[genres == genre], gold[genres == genre]),
            "n_pairs": int((genres == genre).sum()),
        }
        for genre in sorted(set(genres.tolist()))
    }
    return {
        "spearman": spearman_x100(similarity, gold),
        "n_pairs": len(records),
        "genres": per_genre,
    }
