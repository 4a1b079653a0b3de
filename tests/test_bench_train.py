"""benchmarks/bench_train.py: the tiny run writes the report's keys; pairs and argument checks.
No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_script

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


@pytest.mark.slow
def test_tiny_run_writes_every_key(tiny_data, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--data", str(tiny_data), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["config"]["tiny"] and result["config"]["batch_size"] == 4
    assert {"device", "torch_version", "threads"} <= set(result["environment"])
    assert result["environment"]["threads"] == 2
    assert len(result["load_average"]["before"]) == 3 and len(result["load_average"]["after"]) == 3
    block = result["precisions"]["fp32"]
    assert block["pairs_source"].startswith("prepared:")
    assert set(block["methods"]) == {"codesearch", "plain", "sentence_transformers"}
    for entry in block["methods"].values():
        assert entry["pairs_per_s"] > 0 and len(entry["repetitions"]) == 1
        assert len(entry["step_seconds"][0]) == 2  # the timed steps of the repetition
        assert entry["first_step_loss"] > 0 and entry["pairs_per_cpu_s"] > 0
        assert len(entry["step_cpu_seconds"][0]) == 2
    assert set(block["ratios"]) == {"codesearch/plain", "codesearch/sentence_transformers"}
    assert block["ratios"]["codesearch/plain"]["of_medians"] > 0
    assert set(block["cpu_ratios"]) == set(block["ratios"])
    assert block["torch_threads_during_timing"] == [2]
    assert len(block["load_average_per_repetition"]) == 1
    assert "| fp32 | codesearch |" in done.stdout


def test_synthetic_pairs_when_there_is_no_prepared_data(bench, tmp_path):
    pairs, source = bench.load_pairs(str(tmp_path / "missing"), "python", 40)
    assert source.startswith("synthetic:") and len(pairs) == 40
    query, code = pairs[0]
    assert query and code.startswith("def ") and query not in code  # docstring removed
    many = bench.synthetic_pairs(5000)  # more than the stdlib has: cycled, texts stay unique
    assert len(many) == 5000 and len({q for q, _ in many}) == 5000
    assert len({c for _, c in many}) < 5000


def test_too_few_prepared_pairs_falls_back_to_synthetic(bench, tiny_data):
    _, source = bench.load_pairs(str(tiny_data), "python", 10_000)
    assert source.startswith("synthetic:")


def test_no_documented_functions_is_an_error(bench, monkeypatch):
    monkeypatch.setattr(bench, "STDLIB_MODULES", ("no_such_module_here",))
    with pytest.raises(RuntimeError, match="no documented functions"):
        bench.synthetic_pairs(3)


def test_sentence_transformers_needs_equal_batches(bench):
    method = object.__new__(bench.SentenceTransformers)  # no model needed to reach the check
    with pytest.raises(ValueError, match="one size"):
        method.run([[0, 1], [2]])


def test_counts_must_be_positive(bench):
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])
    assert bench.parse_args(["--tiny"]).max_length == 16
