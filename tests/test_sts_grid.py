"""The sts protocol through the grid: the zero-shot reference (profile key, driver, report), the
Spearman report with genre rows and paired tests, the bootstrap over pairs, experiments/sts.yaml.

The grid test stubs the cells' commands (``reproduce.cells._run_logged``): training writes a
finished run with one epoch row, evaluation writes what ``codesearch evaluate --protocol sts``
writes, with cosines = gold + noise whose size depends on the arm and seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from test_sts_eval import GENRES, sts_pairs

from codesearch import reproduce
from codesearch.cli import main as cli_main
from codesearch.data.prepared import PreparedWriter, load_manifest, load_records
from codesearch.data.schema import SENTENCE_LANGUAGE, PairRecord
from codesearch.errors import UserError
from codesearch.report import write_report
from codesearch.significance import compare_over_seeds, holm, paired_spearman_bootstrap
from codesearch.sts_eval import spearman_x100, sts_summary

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
NOISE = {"random": 1.5, "hardneg": 1.2, "tbs": 0.9, "zero-shot": 2.5}  # cosine = gold + noise
SEEDS = [1, 2, 3]

PROFILE = """\
name: tiny-sts
data:
  path: {data}
protocol: sts
groups:
  nbow:
    languages: [english]
    samplers: [random, hardneg, tbs]
    seeds: [1, 2, 3]
    zero_shot: true
    jobs: 2
    threads: 1
    config:
      model: {{encoder: nbow, max_query_length: 32, max_code_length: 48}}
      train: {{epochs: 1, batch_size: 16, lr: 0.01, mixed_precision: "no"}}
"""


@pytest.fixture(scope="module")
def sts_dir(tmp_path_factory) -> Path:
    """A scored prepared directory: 60 pairs in each split, genres news, captions, forum."""
    out = tmp_path_factory.mktemp("sts-grid") / "data"
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
    return out


def arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def fake_commands(data: Path, commands: list[list[str]]):
    """A stand-in for ``cells._run_logged``: writes what train and evaluate would."""
    records = load_records(data, SENTENCE_LANGUAGE, "test")
    gold = np.array([r.score for r in records])
    machine = {"precision": "fp32", "cpu_model": "test CPU", "cpu_capability": "AVX2"}
    machine.update(device="cpu", cpu_native_bf16=False, threads=1)

    def run(command, log_path, env, children) -> float:
        commands.append(command)
        Path(log_path).write_text("$ " + " ".join(command) + "\n")
        if command[3] == "train":
            out, seed = Path(arg(command, "--out")), int(arg(command, "--seed"))
            sampler = arg(command, "--sampler")
            (out / SENTENCE_LANGUAGE).mkdir(parents=True)
            summary = {SENTENCE_LANGUAGE: {"finished": True}}
            (out / "run.json").write_text(json.dumps({"summary": summary, "models": {}}))
            row = {
                "task": SENTENCE_LANGUAGE,
                "event": "epoch",
                "epoch": 0,
                "epoch_seconds": 10.0 + seed,
                "sampler_seconds": 1.0,
                "diag_gap": 0.5,
                "diag_gap_masked": 0.6,
                "diag_anchors_no_negatives": 0,
                "diag_anchors_under_half_negatives": 1,
                "valid_spearman": 0.5 + 0.1 * SEEDS.index(seed) - NOISE[sampler] / 10,
            }
            (out / SENTENCE_LANGUAGE / "metrics.jsonl").write_text(json.dumps(row) + "\n")
            return 2.0
        model = arg(command, "--model")
        arm, seed = ("zero-shot", 0) if model == "minilm" else Path(model).name.split("-seed")
        rng = np.random.default_rng(int(seed) * 10 + list(NOISE).index(arm))
        cosines = gold + NOISE[arm] * rng.normal(size=gold.size)
        row = {
            **sts_summary(records, cosines),
            "pair_ids": [r.id for r in records],
            "cosines": cosines.tolist(),
            "model": model,
            "seconds": 0.1,
        }
        result = {
            "protocol": "sts",
            "model": model,
            "data": str(data),
            "data_hash": load_manifest(data)["data_hash"],
            "split": "test",
            "machine": machine,
            "languages": {SENTENCE_LANGUAGE: row},
            "average": {"spearman": row["spearman"]},
        }
        Path(arg(command, "--out")).write_text(json.dumps(result))
        return 1.0

    return run


@pytest.fixture(scope="module")
def sts_grid(sts_dir, tmp_path_factory):
    """The tiny sts grid run by the driver with stubbed commands: (results dir, commands)."""
    root = tmp_path_factory.mktemp("sts-run")
    profile = root / "tiny-sts.yaml"
    profile.write_text(PROFILE.format(data=sts_dir))
    commands: list[list[str]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reproduce.cells, "_run_logged", fake_commands(sts_dir, commands))
        reproduce.run_profile(profile, root / "runs", root / "results", progress=False)
    return root / "results", commands, profile


def cell_spearman(results: Path, cell: str, genre: str | None = None) -> float:
    row = json.loads((results / "cells" / f"{cell}.json").read_text())["languages"]["english"]
    return row["spearman"] if genre is None else row["genres"][genre]["spearman"]


def test_the_zero_shot_runs_once_with_the_group_lengths(sts_grid, sts_dir):
    results, commands, _ = sts_grid
    evaluations = [c for c in commands if c[3] == "evaluate"]
    zero = [c for c in evaluations if arg(c, "--model") == "minilm"]
    assert len(zero) == 1 and commands[0] is zero[0]  # once, before the cells
    assert len(evaluations) == 1 + 9 and sum(c[3] == "train" for c in commands) == 9
    (command,) = zero
    assert arg(command, "--protocol") == "sts" and arg(command, "--data") == str(sts_dir)
    assert (arg(command, "--max-query-length"), arg(command, "--max-code-length")) == ("32", "48")
    assert arg(command, "--languages") == "english"
    grid = json.loads((results / "grid.json").read_text())
    (reference,) = grid["references"]
    assert reference["id"] == "nbow__zero-shot" and reference["status"] == "done"
    assert reference["model"] == "minilm" and reference["eval_seconds"] == 1.0
    assert grid["groups"]["nbow"]["zero_shot"] is True
    assert (results / "cells" / "nbow__zero-shot.json").is_file()


def test_finished_grid_runs_nothing_again(sts_grid, monkeypatch):
    results, _, profile = sts_grid

    def nothing(command, *args):
        raise AssertionError(f"unexpected command {command}")

    monkeypatch.setattr(reproduce.cells, "_run_logged", nothing)
    runs = results.parent / "runs"
    grid = reproduce.run_profile(profile, runs, results, progress=False, report=False)
    assert grid["references"][0]["eval_seconds"] == 1.0  # kept from the first run


def test_sts_summary_numbers(sts_grid):
    results, _, _ = sts_grid
    summary = json.loads((results / "results.json").read_text())
    assert summary["metric"] == "spearman" and summary["split"] == "test"
    assert "mrr_cutoff" not in summary
    g = summary["groups"]["nbow"]
    per_seed = {
        arm: [cell_spearman(results, f"nbow__{arm}__seed{k}") for k in SEEDS]
        for arm in ("random", "hardneg", "tbs")
    }
    assert g["spearman"]["english"]["tbs"]["per_seed"] == pytest.approx(per_seed["tbs"])
    assert g["spearman"]["english"]["tbs"]["std"] == pytest.approx(np.std(per_seed["tbs"], ddof=1))
    news = [cell_spearman(results, f"nbow__random__seed{k}", "news") for k in SEEDS]
    assert g["genres"]["english"]["news"]["random"]["mean"] == pytest.approx(np.mean(news))
    assert list(g["genres"]["english"]) == sorted(GENRES)
    assert g["n_pairs"]["english"] == {"all": 60, "captions": 20, "forum": 20, "news": 20}
    zero = cell_spearman(results, "nbow__zero-shot")
    assert g["zero_shot"]["spearman"]["english"] == pytest.approx(zero)
    assert g["zero_shot"]["model"] == "minilm"

    # the paired t over seeds; one language, so Holm leaves its p as it is
    test = g["bootstrap"]["english"]["tbs-random"]
    expected = compare_over_seeds(
        {k: a - b for k, a, b in zip(SEEDS, per_seed["tbs"], per_seed["random"], strict=True)}
    )
    assert test["seeds"]["diff"] == pytest.approx(expected["diff"])
    assert test["seeds"]["p"] == pytest.approx(expected["p"]) == test["seeds"]["p_holm"]
    # per genre: Holm across the three genres of one comparison
    genre = {k: v["tbs-random"]["seeds"] for k, v in g["genre_tests"]["english"].items()}
    adjusted = holm({k: t["p"] for k, t in genre.items()})
    assert {k: t["p_holm"] for k, t in genre.items()} == pytest.approx(adjusted)
    assert set(g["bootstrap"]["english"]) == {"tbs-random", "tbs-hardneg"}  # no zero-shot
    # the bootstrap over pairs, on the gold scores read back from the data directory
    assert test["n"] == 60 and test["low"] <= test["diff"] <= test["high"]
    assert test["diff"] == pytest.approx(np.mean(per_seed["tbs"]) - np.mean(per_seed["random"]))
    assert g["no_pair_bootstrap"] is None
    assert g["valid"]["tbs"]["key"] == "valid_spearman"
    assert g["valid"]["tbs"]["valid"] == pytest.approx([100 * (0.6 - 0.09)])


def test_sts_report_says_spearman_with_genre_and_zero_shot_rows(sts_grid):
    results, _, _ = sts_grid
    text = (results / "report.md").read_text()
    assert "MRR" not in text
    assert "- metric: Spearman's rho of the cosine similarity against the gold score (sts " in text
    assert "| language | genre | pairs | zero-shot | random | hardneg | tbs |" in text
    zero = cell_spearman(results, "nbow__zero-shot")
    assert f"| english | **all** | 60 | {zero:.2f} | " in text
    for genre in GENRES:
        assert f"|  | {genre} | 20 | " in text
        assert f"| tbs − random | english | {genre} | " in text
    assert "| tbs − hardneg | english | **all** | " in text
    assert "zero-shot: `minilm` evaluated untrained, once" in text
    assert "Spearman x 100 on english (all test pairs): zero-shot " in text
    assert "Fine-tuned minus zero-shot Spearman (mean over seeds): random " in text
    assert "On english (all pairs), Spearman tbs − random: " in text
    assert "Test-set noise alone (bootstrap over the 60 test pairs) would" in text
    assert "| sampler | epoch 0 |" in text and "Validation Spearman x 100 per epoch" in text
    for name in ("spearman_nbow.png", "valid_nbow.png", "spearman_time_nbow.png"):
        assert f"(plots/{name})" in text
        assert (results / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def results_copy(results: Path, copy: Path, grid: dict) -> Path:
    """A results directory with ``results``' cells and the edited ``grid``."""
    (copy / "cells").mkdir(parents=True)
    (copy / "grid.json").write_text(json.dumps(grid))
    for path in (results / "cells").iterdir():
        (copy / "cells" / path.name).write_bytes(path.read_bytes())
    return copy


def test_without_the_data_the_report_leaves_out_the_pair_bootstrap(sts_grid, tmp_path):
    results, _, _ = sts_grid
    grid = json.loads((results / "grid.json").read_text())
    grid["data"] = str(tmp_path / "gone")
    copy = results_copy(results, tmp_path / "results", grid)
    summary = write_report(copy)
    g = summary["groups"]["nbow"]
    assert "no prepared data" in g["no_pair_bootstrap"]
    assert "low" not in g["bootstrap"]["english"]["tbs-random"]
    assert g["bootstrap"]["english"]["tbs-random"]["seeds"]["n"] == 3
    assert "No bootstrap over pairs: no prepared data" in (copy / "report.md").read_text()


def test_a_missing_zero_shot_is_listed(sts_grid, tmp_path):
    results, _, _ = sts_grid
    grid = json.loads((results / "grid.json").read_text())
    grid["references"][0]["status"] = "failed"
    copy = results_copy(results, tmp_path / "results", grid)
    summary = write_report(copy)
    assert {"id": "nbow__zero-shot", "status": "failed"} in summary["cells"]["missing"]
    text = (copy / "report.md").read_text()
    assert "| english | **all** | 60 | missing |" in text
    assert "- `nbow__zero-shot`: failed" in text


def test_published_spearman_sits_beside_the_random_baseline(sts_grid, tmp_path):
    results, _, _ = sts_grid
    grid = json.loads((results / "grid.json").read_text())
    grid["groups"]["nbow"]["published"] = {"source": "a paper", "spearman": {"english": 84.25}}
    copy = results_copy(results, tmp_path / "results", grid)
    summary = write_report(copy)
    random_mean = summary["groups"]["nbow"]["spearman"]["english"]["random"]["mean"]
    text = (copy / "report.md").read_text()
    assert "| language | genre | pairs | zero-shot | random | published | hardneg | tbs |" in text
    assert "| 84.25 |" in text and "published: a paper" in text
    assert f"published numbers (a paper): english {random_mean - 84.25:+.2f}" in text


def test_published_numbers_must_be_the_protocols_metric(tmp_path, sts_dir):
    spec = yaml.safe_load(PROFILE.format(data=sts_dir))
    spec["groups"]["nbow"]["published"] = {"source": "a paper", "mrr": {"english": 84.25}}
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        UserError, match=r"groups.nbow.published: the sts protocol reports spearman"
    ):
        reproduce.load_profile(profile)


# --- the bootstrap over pairs ------------------------------------------------------------------


def test_pair_bootstrap_equals_resampling_by_hand():
    rng = np.random.default_rng(5)
    n = 40
    gold = np.round(rng.uniform(0, 5, n), 0)  # many ties, as STS-B's scores have
    a = gold + rng.normal(0, 1, (2, n))
    b = gold + rng.normal(0, 2, (3, n))
    result = paired_spearman_bootstrap(gold, a, b, n_resamples=300, seed=7)
    full = np.mean([spearman_x100(x, gold) for x in a]) - np.mean(
        [spearman_x100(x, gold) for x in b]
    )
    assert result["diff"] == pytest.approx(full) and result["n"] == n
    draws = np.random.default_rng(7).integers(0, n, size=(300, n))  # the same draws
    diffs = []
    for idx in draws:
        mean_a = np.mean([stats.spearmanr(x[idx], gold[idx]).statistic for x in a])
        mean_b = np.mean([stats.spearmanr(x[idx], gold[idx]).statistic for x in b])
        diffs.append(100 * (mean_a - mean_b))
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert (result["low"], result["high"]) == pytest.approx((low, high))
    with pytest.raises(ValueError, match="arms"):
        paired_spearman_bootstrap(gold, a[:, :10], b)


# --- profiles ----------------------------------------------------------------------------------


def smoke_tree() -> dict:
    return yaml.safe_load((EXPERIMENTS / "smoke.yaml").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g.update(zero_shot="yes"), r"groups.nbow.zero_shot: expected true or false"),
        (
            lambda g: (
                g.update(zero_shot=True)
                or g["config"]["model"].update(encoder="transformer", pooling="cls")
            ),
            "zero_shot: `codesearch evaluate` builds an untrained model with mean pooling",
        ),
        (
            lambda g: (
                g.update(zero_shot=True)
                or g["config"]["model"].update(encoder="transformer", input_format="unixcoder")
            ),
            "input_format unixcoder",
        ),
    ],
)
def test_bad_zero_shot_keys_are_one_line_errors(tmp_path, change, message):
    tree = smoke_tree()
    change(tree["groups"]["nbow"])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(UserError, match=message):
        reproduce.load_profile(path)


def test_zero_shot_key_round_trips_through_grid_json(tmp_path):
    tree = smoke_tree()
    tree["groups"]["nbow"]["zero_shot"] = True
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(tree))
    group = reproduce.load_profile(path).groups["nbow"]
    assert group.zero_shot
    back = reproduce.Group.from_record(json.loads(json.dumps(group.record())))
    assert back.zero_shot
    plain = reproduce.load_profile(EXPERIMENTS / "smoke.yaml").groups["nbow"]
    assert not plain.zero_shot and "zero_shot" not in plain.record()


def test_sts_profile_validates_and_fits_its_budget(tmp_path, monkeypatch, capsys):
    profile = reproduce.load_profile(EXPERIMENTS / "sts.yaml")
    assert profile.protocol == "sts" and profile.data_path == "data/stsb"
    assert profile.prepare[1:] == ["-m", "codesearch", "prepare", "stsb", "--out", "data/stsb"]
    (group,) = profile.groups.values()
    assert group.languages == [SENTENCE_LANGUAGE] and group.zero_shot
    assert set(group.samplers) == {"random", "hardneg", "tbs"}
    config = reproduce.group_config(profile, "minilm", "tbs", group.seeds[0])
    assert config.model.model == "minilm" and config.model.towers == "shared"
    assert (config.model.max_query_length, config.model.max_code_length) == (64, 64)
    assert (config.train.epochs, config.train.batch_size, config.train.lr) == (1, 32, 2e-5)
    assert config.train.mixed_precision == "auto" and config.train.diagnostics == "fresh"
    tbs = config.sampler.options["tbs"]
    assert (tbs.start_epoch, tbs.same_text_edges) == (0, "drop")
    assert config.sampler.options["hardneg"].negatives == 1
    assert config.data.max_valid_queries is not None
    cells = reproduce.plan_cells(profile, tmp_path / "runs", tmp_path / "results")
    (zero,) = reproduce.plan_references(profile, tmp_path / "results")
    assert arg(zero.command, "--max-query-length") == "64" and arg(zero.command, "--model") == (
        "minilm"
    )
    assert len(cells) == 3 * len(group.seeds) and len(group.seeds) >= 3
    assert arg(reproduce.evaluate_command(profile, cells[0]), "--protocol") == "sts"
    monkeypatch.chdir(EXPERIMENTS.parent)
    assert cli_main(["reproduce", "sts", "--check"]) == 0
    out = capsys.readouterr().out
    assert "minilm__zero-shot: english (minilm, untrained)" in out
    assert f"sts: {len(cells)} cells and 1 zero-shot evaluation(s), valid" in out


@pytest.mark.slow
def test_a_real_sts_grid_through_the_command_line(sts_dir, tmp_path):
    """train and evaluate as the driver runs them: nbow on the fixture, one seed, two arms (the
    zero-shot command is the stubbed grid's: a real one would load MiniLM)."""
    tree = yaml.safe_load(PROFILE.format(data=sts_dir))
    group = tree["groups"]["nbow"]
    group.update(samplers=["random", "tbs"], seeds=[1])
    del group["zero_shot"]
    profile = tmp_path / "real.yaml"
    profile.write_text(yaml.safe_dump(tree))
    reproduce.run_profile(profile, tmp_path / "runs", tmp_path / "results", progress=False)
    text = (tmp_path / "results" / "report.md").read_text()
    assert "| english | **all** | 60 |" in text and "|  | news | 20 |" in text
    assert (
        "| tbs − random | english | **all** | +" in text
        or "| tbs − random | english | **all** | -" in text
    )
    summary = json.loads((tmp_path / "results" / "results.json").read_text())
    g = summary["groups"]["nbow"]
    assert -100 <= g["spearman"]["english"]["tbs"]["mean"] <= 100
    assert g["valid"]["tbs"]["key"] == "valid_spearman" and g["valid"]["tbs"]["epochs"] == [0]
    assert "zero_shot" not in g and "zero-shot" not in text


def test_a_code_search_group_shows_its_zero_shot_column(tmp_path):
    from test_report import make_results

    results = make_results(tmp_path)
    grid = json.loads((results / "grid.json").read_text())
    grid["groups"]["main"]["zero_shot"] = True
    grid["references"] = [{"id": "main__zero-shot", "group": "main", "status": "done"}]
    (results / "grid.json").write_text(json.dumps(grid))
    ids = ["q0", "q1", "q2", "q3"]
    languages = {
        "ruby": {"query_ids": ids, "ranks": [1, 2, 2000, 4]},  # MRR 43.75
        "go": {"query_ids": ids, "ranks": [1, 1, 1, 2]},  # MRR 87.5
    }
    zero = {"protocol": "codebase", "model": "minilm", "data_hash": "abc", "languages": languages}
    (results / "cells" / "main__zero-shot.json").write_text(json.dumps(zero))
    summary = write_report(results)
    assert summary["groups"]["main"]["zero_shot"]["mrr"] == {"ruby": 43.75, "go": 87.5}
    assert "tbs-zero-shot" not in str(summary["groups"]["main"]["bootstrap"])
    text = (results / "report.md").read_text()
    assert "| language | zero-shot | random | hardneg | tbs |" in text
    assert "| ruby | 43.75 | 53.12 ± 13.26 |" in text and "| **average** | 65.62 |" in text
