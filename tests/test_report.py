"""codesearch.report on a hand-written results directory (grid.json, cells/, runs/)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from codesearch import report, significance
from codesearch.cli import main as cli_main
from codesearch.errors import UserError
from codesearch.metrics import reciprocal_ranks

LANGUAGES = ["ruby", "go"]
SAMPLERS = ["random", "hardneg", "tbs"]
QUERY_IDS = ["q0", "q1", "q2", "q3"]
# Ruby ranks per (sampler, seed); rank 2000 is past the MRR@1000 cutoff and scores 0.
# Every Go query has rank 1 in every cell (MRR 100).
RUBY_RANKS = {
    ("random", 0): [1, 2, 4, 2000],
    ("random", 1): [1, 1, 4, 4],  # MRR 43.75, 62.5
    ("hardneg", 0): [1, 2, 2, 4],
    ("hardneg", 1): [2, 2, 2, 2],  # MRR 56.25, 50
    ("tbs", 0): [1, 1, 2, 2],
    ("tbs", 1): [1, 1, 1, 2],  # MRR 75, 87.5
}
EPOCH_SECONDS = {"random": 10.0, "hardneg": 20.0, "tbs": 15.0}  # + seed
SAMPLER_SECONDS = {"random": 0.0, "hardneg": 5.0, "tbs": 2.0}
GAP = {"random": 1.0, "hardneg": 0.5, "tbs": 0.2}  # + 0.1 * epoch


def epoch_row(language: str, sampler: str, seed: int, epoch: int, **changes) -> dict:
    gap = GAP[sampler] + 0.1 * epoch
    return {
        "task": language,
        "event": "epoch",
        "epoch": epoch,
        "step": 10 * (epoch + 1),
        "epoch_seconds": EPOCH_SECONDS[sampler] + seed,
        "sampler_seconds": SAMPLER_SECONDS[sampler],
        "diagnostics_seconds": 0.3,
        "diag_l_global": 3.0,
        "diag_l_train": 3.0 - gap,
        "diag_gap": gap,
        "diag_l_global_masked": 3.2,
        "diag_l_train_masked": 3.0 - gap,
        "diag_gap_masked": gap + 0.2,
        "diag_anchors_no_negatives": seed,
        "diag_anchors_under_half_negatives": 2 * seed + epoch,
        "diag_hardness": 0.1,
        "train_loss": 1.0,
        "valid_mrr": 0.5,
        "pairs_per_s": 100.0,
        "sampler_graph": {}
        if sampler != "tbs"
        else {
            "edges_per_pair": 2.0 + seed,
            "isolated_pairs": 80,
            "isolated_share": 0.8,
            "neighbour_in_batch": 0.1 * (epoch + 1),
            "neighbour_in_random_batch": 0.01,
        },
        **changes,
    }


def make_results(root: Path, seeds=(0, 1), epochs: int = 2) -> Path:
    """results/local and runs/local under root, as the reproduce driver writes them."""
    results = root / "results" / "local"
    (results / "cells").mkdir(parents=True)
    cells = []
    for sampler in SAMPLERS:
        for seed in seeds:
            cell_id = f"main__{sampler}__seed{seed}"
            run_dir = f"runs/local/main/{sampler}-seed{seed}"  # relative to root
            languages = {}
            for language in LANGUAGES:
                ids = list(QUERY_IDS)
                ranks = RUBY_RANKS[sampler, seed] if language == "ruby" else [1, 1, 1, 1]
                if seed == 1:  # another query order: the report must align by id
                    ids, ranks = ids[::-1], ranks[::-1]
                languages[language] = {"mrr": 0.0, "n_queries": 4, "query_ids": ids, "ranks": ranks}
                rows = [epoch_row(language, sampler, seed, e) for e in range(epochs)]
                metrics = root / run_dir / language / "metrics.jsonl"
                metrics.parent.mkdir(parents=True)
                metrics.write_text(
                    "".join(
                        json.dumps(r) + "\n"
                        for r in [{"task": language, "epoch": 0, "step": 1, "loss": 2.0}, *rows]
                    )
                )
            (results / "cells" / f"{cell_id}.json").write_text(
                json.dumps(
                    {
                        "protocol": "codebase",
                        "data": "data/local",
                        "data_hash": "abc",
                        "languages": languages,
                    }
                )
            )
            cells.append(
                {
                    "id": cell_id,
                    "group": "main",
                    "sampler": sampler,
                    "seed": seed,
                    "languages": LANGUAGES,
                    "run_dir": run_dir,
                    "eval": f"results/local/cells/{cell_id}.json",
                    "status": "done",
                    "train_seconds": 1.0,
                    "eval_seconds": 1.0,
                }
            )
    grid = {
        "profile": "local",
        "description": "fake grid",
        "data": "data/local",
        "protocol": "codebase",
        "groups": {
            "main": {
                "model": "nbow",
                "encoder": "nbow",
                "languages": LANGUAGES,
                "samplers": SAMPLERS,
                "seeds": list(seeds),
                "config": {},
            }
        },
        "cells": cells,
        "wall_seconds": 120.0,
    }
    (results / "grid.json").write_text(json.dumps(grid))
    return results


def edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


@pytest.fixture
def results(tmp_path) -> Path:
    return make_results(tmp_path)


# --- statistics ---------------------------------------------------------------------------


def test_reciprocal_ranks_cut_at_1000():
    np.testing.assert_allclose(reciprocal_ranks([1, 4, 1000, 1001]), [1, 0.25, 0.001, 0])
    with pytest.raises(ValueError, match="1-based"):
        reciprocal_ranks([0, 1])


def test_bootstrap_two_queries_by_hand():
    # differences [0, 1]: the resampled mean is 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% percentiles are 0 and 1.
    result = significance.paired_bootstrap([0.0, 1.0], [0.0, 0.0])
    assert result == {"diff": 0.5, "low": 0.0, "high": 1.0, "n": 2}


def test_bootstrap_equal_differences_give_zero_width_and_same_seed_same_interval():
    rng = np.random.default_rng(1)
    a = rng.random(50)
    constant = significance.paired_bootstrap(a + 0.25, a)
    assert constant["high"] - constant["low"] == 0
    assert constant["low"] == pytest.approx(0.25)
    b = rng.random(50)
    assert significance.paired_bootstrap(a, b, seed=3) == significance.paired_bootstrap(
        a, b, seed=3
    )
    assert significance.paired_bootstrap(a, b, seed=3) != significance.paired_bootstrap(
        a, b, seed=4
    )


def test_bootstrap_chunks_do_not_change_the_distribution(monkeypatch):
    rng = np.random.default_rng(2)
    a, b = rng.random(300), rng.random(300)
    whole = significance.paired_bootstrap(a, b, n_resamples=2000)
    monkeypatch.setattr(significance, "_BOOTSTRAP_CHUNK_ELEMENTS", 300 * 7)  # 7 resamples a chunk
    chunked = significance.paired_bootstrap(a, b, n_resamples=2000)
    assert chunked["diff"] == whole["diff"]
    assert chunked["low"] == pytest.approx(whole["low"], abs=0.01)
    assert chunked["high"] == pytest.approx(whole["high"], abs=0.01)


def test_pairing_narrows_the_interval_for_correlated_samplers():
    rng = np.random.default_rng(0)
    n = 400
    b = rng.random(n)  # per-query difficulty dominates both samplers' scores
    a = b + 0.02 + rng.normal(0, 0.01, n)
    paired = significance.paired_bootstrap(a, b)
    unpaired = significance.paired_bootstrap(a, rng.permutation(b))  # pairing broken
    width = paired["high"] - paired["low"]
    # the normal approximation of each interval: 2 * 1.96 * sd / sqrt(n)
    assert width == pytest.approx(2 * 1.96 * np.std(a - b) / math.sqrt(n), rel=0.15)
    assert width < 0.1 * (unpaired["high"] - unpaired["low"])
    assert paired["low"] > 0 > unpaired["low"]


@pytest.mark.parametrize("a, b", [([1.0, 2.0], [1.0]), ([], []), ([[1.0]], [[1.0]])])
def test_bootstrap_rejects_bad_input(a, b):
    with pytest.raises(ValueError):
        significance.paired_bootstrap(a, b)


# --- summary ------------------------------------------------------------------------------


def test_summary_numbers_by_hand(results):
    summary = report.summarize_grid(report.load_grid(results), results)
    group = summary["groups"]["main"]
    ruby = group["mrr"]["ruby"]
    assert ruby["random"]["per_seed"] == [43.75, 62.5]
    assert ruby["random"]["mean"] == pytest.approx(53.125)
    assert ruby["random"]["std"] == pytest.approx(18.75 / math.sqrt(2))  # ddof=1
    assert ruby["hardneg"]["mean"] == pytest.approx(53.125)
    assert ruby["hardneg"]["std"] == pytest.approx(6.25 / math.sqrt(2))
    assert ruby["tbs"]["mean"] == pytest.approx(81.25)
    assert group["mrr"]["go"]["tbs"] == {
        "mean": 100.0,
        "std": 0.0,
        "n_seeds": 2,
        "per_seed": [100.0, 100.0],
        "seeds": [0, 1],
    }
    # the language average per seed, then mean and std over seeds: (43.75+100)/2, (62.5+100)/2
    assert group["average"]["random"]["mean"] == pytest.approx(76.5625)
    assert group["average"]["random"]["std"] == pytest.approx(9.375 / math.sqrt(2))

    # seeds averaged per query after aligning ids: random [1, .75, .25, .125] and
    # tbs [1, 1, .75, .5] (x100)
    interval = group["bootstrap"]["ruby"]["tbs-random"]
    expected = significance.paired_bootstrap(
        np.array([100, 100, 75, 50.0]), np.array([100, 75, 25, 12.5])
    )
    assert {k: interval[k] for k in expected} == expected
    assert interval["diff"] == pytest.approx(28.125)
    # per seed: tbs 75 - random 43.75 (seed 0), 87.5 - 62.5 (seed 1)
    seeds = interval["seeds"]
    assert seeds["per_seed"] == {0: pytest.approx(31.25), 1: pytest.approx(25.0)}
    # the paired t over (31.25, 25.0): mean 28.125, sd 6.25 / sqrt(2), t with 1 df
    half = stats.t.ppf(0.975, 1) * (6.25 / math.sqrt(2)) / math.sqrt(2)
    assert seeds["n"] == 2 and seeds["diff"] == pytest.approx(28.125)
    assert (seeds["low"], seeds["high"]) == pytest.approx((28.125 - half, 28.125 + half))
    assert seeds["p_sign_flip"] == pytest.approx(0.5) and not seeds["resolved"]
    assert seeds["p_holm"] == pytest.approx(seeds["p"])  # go's identical seeds have no p
    go = group["bootstrap"]["go"]["tbs-hardneg"]
    assert {k: go[k] for k in ("diff", "low", "high", "n")} == {
        "diff": 0.0,
        "low": 0.0,
        "high": 0.0,
        "n": 4,
    }
    assert go["seeds"]["low"] is None and go["seeds"]["p"] is None  # no seed variance
    assert not go["seeds"]["resolved"] and go["seeds"]["p_holm"] is None
    # the average over languages: go adds 0 for both seeds, so half of ruby's per-seed numbers
    average = group["bootstrap_average"]["tbs-random"]["seeds"]
    assert average["per_seed"] == {0: pytest.approx(15.625), 1: pytest.approx(12.5)}
    assert average["diff"] == pytest.approx(14.0625)

    # epoch time: per epoch, the mean over seeds (15, 16) summed over two languages
    tbs_time = group["epoch_time"]["tbs"]
    assert tbs_time["epochs"] == [0, 1] and tbs_time["seconds"] == [31.0, 31.0]
    assert tbs_time["sampler_seconds"] == [4.0, 4.0]
    assert tbs_time["per_language"]["ruby"] == [15.5, 15.5]
    assert tbs_time["overhead_vs_random"] == pytest.approx(124 / 84)
    assert group["epoch_time"]["random"]["overhead_vs_random"] == 1.0
    assert group["gap"]["random"]["diag_gap"] == pytest.approx([1.0, 1.1])
    assert group["gap"]["tbs"]["diag_l_train"] == pytest.approx([2.8, 2.7])
    assert group["gap"]["hardneg"]["per_language"]["go"] == pytest.approx([0.5, 0.6])

    assert summary["data_hash"] == "abc" and summary["profile"] == "local"
    assert summary["cells"] == {
        "done": [f"main__{s}__seed{k}" for s in SAMPLERS for k in (0, 1)],
        "missing": [],
    }
    assert set(summary["packages"]) >= {"torch", "transformers", "numpy", "codesearch"}


def test_write_report_files_and_every_cell(results):
    summary = report.write_report(results)
    written = json.loads((results / "results.json").read_text())
    assert written["groups"]["main"]["mrr"].keys() == set(LANGUAGES)
    for language in LANGUAGES:
        assert set(written["groups"]["main"]["mrr"][language]) == set(SAMPLERS)
    text = (results / "report.md").read_text()
    assert "# Sampler comparison: profile `local`" in text
    assert "| ruby | 53.12 ± 13.26 | 53.12 ± 4.42 | 81.25 ± 8.84 |" in text
    assert "| go | 100.00 ± 0.00 | 100.00 ± 0.00 | 100.00 ± 0.00 |" in text
    assert "| **average** | 76.56 ± 6.63 |" in text
    interval = summary["groups"]["main"]["bootstrap"]["ruby"]["tbs-random"]
    assert f"+28.12 [{interval['low']:+.2f}, {interval['high']:+.2f}]" in text
    assert "| tbs | 31.0 (4.0) | 31.0 (4.0) | 62.0 | 1.48 |" in text
    assert "| random | 1.000 / 1.200 | 1.100 / 1.300 |" in text
    # anchors without negatives: summed over the two languages, mean over seeds 0 and 1
    assert "| random | 1.0 / 2.0 | 1.0 / 4.0 |" in text
    assert "| tbs − random | **average** |" in text
    # the graph's density: edges per pair mean over seeds 0 and 1 (2 and 3); tbs only
    assert "| tbs | 2.5 / 80% / 10% (1%) | 2.5 / 80% / 20% (1%) |" in text
    assert "| random | 2." not in text
    assert summary["groups"]["main"]["gap"]["tbs"]["graph_edges_per_pair"] == [2.5, 2.5]
    assert (
        "paired t interval over 2 seeds of tbs − random excludes 0 in 0 of 2 (tbs higher: "
        "none; lower: none); the others are not resolved with 2 seeds"
    ) in text
    assert "| tbs − random | go | +0.00 (no interval: every seed the same) |" in text
    assert "Averaged over languages, tbs − random: +14.06 [-5.79, +33.92] (paired t" in text
    assert "not resolved with 2 seeds; with this seed-to-seed spread the design detects" in text
    assert "Test-set noise alone (queries) would separate tbs and random in 1 of 2" in text
    for name in ("mrr_main.png", "gap_main.png", "epoch_time_main.png", "mrr_time_main.png"):
        png = results / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert f"(plots/{name})" in text
    assert "(plots/" not in report.format_report(summary, images=False)  # e.g. in a notebook


def test_a_group_with_its_own_comparisons(results):
    edit_json(
        results / "grid.json",
        lambda grid: grid["groups"]["main"].update(compare=[["hardneg", "random"]]),
    )
    summary = report.write_report(results)
    group = summary["groups"]["main"]
    assert group["compare"] == [["hardneg", "random"]]
    assert set(group["bootstrap"]["ruby"]) == {"hardneg-random"}  # not tbs − random/hardneg
    text = (results / "report.md").read_text()
    assert "| hardneg − random | ruby |" in text and "tbs − random" not in text


def test_one_seed_one_epoch(tmp_path):
    results = make_results(tmp_path, seeds=(0,), epochs=1)
    summary = report.write_report(results)
    ruby = summary["groups"]["main"]["mrr"]["ruby"]
    assert ruby["random"] == {
        "mean": 43.75,
        "std": None,
        "n_seeds": 1,
        "per_seed": [43.75],
        "seeds": [0],
    }
    text = (results / "report.md").read_text()
    assert "| ruby | 43.75 | 56.25 | 75.00 |" in text and "| **average** | 71.88 |" in text
    assert "| random | 1.000 / 1.200 |" in text
    assert all(
        (results / "plots" / n).stat().st_size > 1000 for n in report.plot_names("main").values()
    )


def test_duplicated_epoch_rows_keep_the_last(results, tmp_path):
    metrics = tmp_path / "runs/local/main/tbs-seed0/ruby/metrics.jsonl"
    old = metrics.read_text()
    before_resume = json.dumps(epoch_row("ruby", "tbs", 0, 1, epoch_seconds=999.0))
    metrics.write_text(
        before_resume
        + "\n"
        + old
        + before_resume[:40]
        + "\n[1]\n"
        + json.dumps({"task": "ruby", "event": "epoch"})
        + "\n"
    )  # bad lines
    rows = report.read_epoch_rows(metrics)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["epoch_seconds"] == 15.0
    summary = report.summarize_grid(report.load_grid(results), results)
    assert summary["groups"]["main"]["epoch_time"]["tbs"]["seconds"] == [31.0, 31.0]


def test_cells_not_done_are_reported_missing(results):
    def fail_one(grid):
        grid["cells"][0]["status"] = "failed"
        grid["cells"].pop()  # tbs seed 1 was never listed

    edit_json(results / "grid.json", fail_one)
    (results / "cells" / "main__random__seed0.json").unlink()
    summary = report.write_report(results)
    assert summary["cells"]["missing"] == [
        {"id": "main__random__seed0", "status": "failed"},
        {"id": "main__tbs__seed1", "status": "absent"},
    ]
    assert summary["groups"]["main"]["mrr"]["ruby"]["random"]["n_seeds"] == 1
    text = (results / "report.md").read_text()
    assert "- `main__random__seed0`: failed" in text and "- `main__tbs__seed1`: absent" in text


def test_sampler_without_cells_shows_missing(results):
    edit_json(
        results / "grid.json",
        lambda g: g["cells"].__setitem__(
            slice(None), [c for c in g["cells"] if c["sampler"] != "hardneg"]
        ),
    )
    summary = report.write_report(results)
    assert summary["groups"]["main"]["mrr"]["ruby"]["hardneg"]["n_seeds"] == 0
    assert "tbs-hardneg" not in summary["groups"]["main"]["bootstrap"]["ruby"]
    assert (
        "| ruby | 53.12 ± 13.26 | missing | 81.25 ± 8.84 |" in (results / "report.md").read_text()
    )


def test_missing_run_directory_is_listed_not_fatal(results, tmp_path):
    for path in sorted((tmp_path / "runs/local/main/tbs-seed1").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    summary = report.write_report(results)
    assert len(summary["missing_metrics"]) == 2
    tbs_time = summary["groups"]["main"]["epoch_time"]["tbs"]
    assert tbs_time["seconds"] == [30.0, 30.0]
    assert tbs_time["overhead_vs_random"] == pytest.approx(60 / 40)  # seed 0 only
    assert "tbs-seed1/go/metrics.jsonl" in (results / "report.md").read_text()


# --- errors -------------------------------------------------------------------------------


def test_missing_cell_file_names_it(results):
    (results / "cells" / "main__tbs__seed1.json").unlink()
    with pytest.raises(UserError, match=r"main__tbs__seed1\.json: no such file"):
        report.load_grid(results)


def test_missing_or_malformed_grid(tmp_path, results):
    with pytest.raises(UserError, match=r"grid\.json: no such file"):
        report.load_grid(tmp_path)
    (results / "grid.json").write_text("{not json")
    with pytest.raises(UserError, match=r"grid\.json: malformed JSON"):
        report.load_grid(results)
    (results / "grid.json").write_text("[]")
    with pytest.raises(UserError, match="expected a JSON object"):
        report.load_grid(results)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g.pop("cells"), "needs a 'groups' object and a 'cells' list"),
        (lambda g: g["groups"]["main"].pop("samplers"), "group 'main' needs"),
        (lambda g: g["cells"][2].pop("sampler"), "cell 2 has no 'sampler'"),
        (lambda g: g["cells"][0].update(group="other"), "unknown group 'other'"),
    ],
)
def test_malformed_grid_fields(results, change, message):
    edit_json(results / "grid.json", change)
    with pytest.raises(UserError, match=message):
        report.load_grid(results)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r["languages"].pop("go"), "no results for language 'go'"),
        (lambda r: r["languages"]["ruby"]["ranks"].pop(), "equally long, non-empty"),
        (lambda r: r["languages"]["ruby"].update(query_ids=["a", "a", "b", "c"]), "duplicate"),
    ],
)
def test_malformed_cell_file_names_it(results, change, message):
    edit_json(results / "cells" / "main__hardneg__seed0.json", change)
    with pytest.raises(UserError, match=rf"main__hardneg__seed0\.json: .*{message}"):
        report.load_grid(results)


def test_mismatched_query_ids(results):
    edit_json(
        results / "cells" / "main__tbs__seed0.json",
        lambda r: r["languages"]["go"]["query_ids"].__setitem__(0, "other"),
    )
    with pytest.raises(UserError, match="go: cells .* different query sets"):
        report.summarize_grid(report.load_grid(results), results)


def test_cells_on_different_data(results):
    edit_json(results / "cells" / "main__tbs__seed0.json", lambda r: r.update(data_hash="xyz"))
    with pytest.raises(UserError, match="different data"):
        report.summarize_grid(report.load_grid(results), results)


def test_main_exit_codes(results, tmp_path, capsys):
    assert cli_main(["report", str(results)]) == 0
    module = subprocess.run(  # the old entry point is the same command
        [sys.executable, "-m", "codesearch.report", str(results)], capture_output=True, text=True
    )
    assert module.returncode == 0 and "wrote" in module.stdout
    assert (results / "report.md").is_file()
    assert cli_main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("codesearch: error:") and "grid.json" in err and "\n" not in err


def test_published_numbers_stand_beside_the_random_baseline(results):
    published = {"source": "UniXcoder (Guo et al., 2022)", "mrr": {"ruby": 74.0, "python": 72.0}}
    edit_json(results / "grid.json", lambda g: g["groups"]["main"].update(published=published))
    summary = report.write_report(results)
    text = (results / "report.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| language | random"))
    assert header.split(" | ")[:3] == ["| language", "random", "published"]
    ruby = next(line for line in text.splitlines() if line.startswith("| ruby |"))
    assert ruby.split(" | ")[2] == "74.0"
    # a language without a published number, and so the average, show a dash
    average = next(line for line in text.splitlines() if line.startswith("| **average** |"))
    assert average.split(" | ")[2] == "–"
    random_ruby = summary["groups"]["main"]["mrr"]["ruby"]["random"]["mean"]
    assert f"ruby {random_ruby - 74.0:+.2f}" in text and "published: UniXcoder" in text


def test_the_header_names_the_tokenizer_of_an_nbow_group(results):
    report.write_report(results)  # the fixture's group is nbow with the model "nbow"
    edit_json(results / "grid.json", lambda g: g["groups"]["main"].update(model="minilm"))
    report.write_report(results)
    text = (results / "report.md").read_text()
    assert "## Group `main` (encoder nbow from scratch, tokenizer of minilm)" in text
    assert "model minilm" not in text
    assert report.describe_model({"model": "minilm", "encoder": "transformer"}) == (
        "model minilm, encoder transformer"
    )


def test_an_arm_with_fewer_seeds_is_not_missing_the_others(results):
    def tbs_seed0_only(grid):
        grid["cells"] = [c for c in grid["cells"] if c["id"] != "main__tbs__seed1"]
        grid["groups"]["main"]["arms"] = {"tbs": {"sampler": "tbs", "set": {}, "seeds": [0]}}

    edit_json(results / "grid.json", tbs_seed0_only)
    summary = report.write_report(results)
    assert summary["cells"]["missing"] == []
    # tbs − random is on the one seed both have: no interval, and not resolved
    seeds = summary["groups"]["main"]["bootstrap"]["ruby"]["tbs-random"]["seeds"]
    assert seeds["n"] == 1 and seeds["low"] is None and not seeds["resolved"]
