"""The `make reproduce` driver: profiles validate, the grid runs end to end through the CLI,
finished cells are skipped, interrupted ones resume, failures are reported by cell."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import write_tiny_profile

from codesearch import reproduce
from codesearch.cli import main as cli_main
from codesearch.data.schema import LANGUAGES
from codesearch.errors import UserError

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_tiny_grid_end_to_end(tiny_results):
    grid = json.loads((tiny_results / "grid.json").read_text())
    assert [c["status"] for c in grid["cells"]] == ["done"] * 3
    assert {c["sampler"] for c in grid["cells"]} == {"random", "hardneg", "tbs"}
    for cell in grid["cells"]:
        result = json.loads(Path(cell["eval"]).read_text())
        assert result["languages"]["python"]["n_queries"] == 24
        run = json.loads((Path(cell["run_dir"]) / "run.json").read_text())
        assert run["summary"]["python"]["finished"]
        config = yaml.safe_load((Path(cell["run_dir"]) / "config.yaml").read_text())
        assert config["sampler"]["name"] == cell["sampler"] and config["train"]["seed"] == 0
        assert config["model"]["encoder"] == "nbow" and config["train"]["batch_size"] == 16
        assert cell["train_seconds"] > 0 and cell["eval_seconds"] > 0
        assert "$ " in Path(cell["log"]).read_text()  # the commands are logged
    report = (tiny_results / "report.md").read_text()
    summary = json.loads((tiny_results / "results.json").read_text())
    for sampler in ("random", "hardneg", "tbs"):
        assert summary["groups"]["nbow"]["mrr"]["python"][sampler]["n_seeds"] == 1
    assert "| python |" in report and "tbs − random" in report
    assert (tiny_results / "plots" / "mrr_nbow.png").stat().st_size > 0
    # every cell says which precision and machine trained and evaluated it
    machines = summary["machines"]
    assert sum(machines["training"].values()) == sum(machines["evaluation"].values()) == 3
    line = next(iter(machines["training"]))
    assert line.endswith("thread") and "machine not recorded" not in line
    assert f"- trained: {line} (3 cells)" in report
    assert f"- training: {line} (3 cells)" in report  # and in the group's section


def copy_results(tiny_results: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the tiny grid (runs and results); run_profile rewrites its paths."""
    root = tiny_results.parents[1]
    shutil.copytree(root / "runs", tmp_path / "runs")
    shutil.copytree(root / "results", tmp_path / "results")
    return tmp_path / "runs" / "tiny", tmp_path / "results" / "tiny"


def forbid_training(monkeypatch):
    def no_training(command, *args, **kwargs):
        raise AssertionError(f"unexpected command: {command}")

    monkeypatch.setattr(reproduce.cells, "_run_logged", no_training)


def test_finished_cells_are_skipped(tiny_results, tiny_data, tmp_path, monkeypatch):
    runs, results = copy_results(tiny_results, tmp_path)
    profile = write_tiny_profile(tmp_path / "tiny.yaml", tiny_data)
    forbid_training(monkeypatch)
    grid = reproduce.run_profile(profile, runs, results, progress=False)
    assert [c["status"] for c in grid["cells"]] == ["done"] * 3
    assert all(c["train_seconds"] > 0 for c in grid["cells"])  # kept from the first run


def test_a_trained_cell_without_evaluation_is_only_evaluated(
    tiny_results, tiny_data, tmp_path, monkeypatch
):
    runs, results = copy_results(tiny_results, tmp_path)
    (results / "cells" / "nbow__tbs__seed0.json").unlink()
    profile = write_tiny_profile(tmp_path / "tiny.yaml", tiny_data)
    commands = []
    monkeypatch.setattr(
        reproduce.cells, "_run_logged", lambda command, *args: commands.append(command) or 1.5
    )
    grid = reproduce.run_profile(profile, runs, results, progress=False, report=False)
    assert len(commands) == 1 and commands[0][2:4] == ["codesearch", "evaluate"]
    cell = next(c for c in grid["cells"] if c["sampler"] == "tbs")
    assert cell["status"] == "done" and cell["train_seconds"] == 0
    assert cell["eval_seconds"] == 1.5


def test_an_unfinished_run_resumes(tiny_results, tiny_data, tmp_path):
    runs, results = copy_results(tiny_results, tmp_path)
    profile = reproduce.load_profile(write_tiny_profile(tmp_path / "tiny.yaml", tiny_data))
    cells = reproduce.plan_cells(profile, runs, results)
    cell = cells[0]
    assert reproduce.train_finished(cell)
    assert reproduce.train_command(profile, cell)[-1] == "--resume"  # the run dir holds a run
    run = json.loads((cell.run_dir / "run.json").read_text())
    run["summary"]["python"]["finished"] = False
    (cell.run_dir / "run.json").write_text(json.dumps(run))
    assert not reproduce.train_finished(cell)
    fresh = reproduce.plan_cells(profile, tmp_path / "elsewhere", results)[0]
    assert "--resume" not in reproduce.train_command(profile, fresh)
    command = reproduce.train_command(profile, fresh)
    assert command[:3] == [sys.executable, "-m", "codesearch"]
    assert command[command.index("--sampler") + 1] == "random"
    assert command[command.index("--languages") + 1] == "python"


def test_a_failing_cell_is_reported_and_the_others_run(tiny_data, tmp_path):
    profile = tmp_path / "fails.yaml"
    text = Path(write_tiny_profile(profile, tiny_data)).read_text()
    # a batch larger than the training data: `codesearch train` exits 2 with a one-line error
    profile.write_text(
        text.replace("samplers: [random, hardneg, tbs]", "samplers: [random]").replace(
            "batch_size: 16", "batch_size: 4096"
        )
    )
    with pytest.raises(UserError, match=r"1 cell\(s\) failed: nbow__random__seed0"):
        reproduce.run_profile(profile, tmp_path / "runs", tmp_path / "results", progress=False)
    grid = json.loads((tmp_path / "results" / "grid.json").read_text())
    assert grid["cells"][0]["status"] == "failed"
    log = (tmp_path / "results" / "logs" / "nbow__random__seed0.log").read_text()
    assert "batch" in log and "error" in log
    assert "nbow__random__seed0" in (tmp_path / "results" / "report.md").read_text()  # missing


SHIPPED_PROFILES = sorted(path.stem for path in EXPERIMENTS.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED_PROFILES)
def test_shipped_profiles_validate(name):
    profile = reproduce.load_profile(EXPERIMENTS / f"{name}.yaml")
    cells = reproduce.plan_cells(profile, Path("runs") / name, Path("results") / name)
    assert cells and profile.name == name
    for cell in cells:
        config = reproduce.group_config(profile, cell.group, cell.sampler, cell.seed)
        assert config.sampler.name == cell.sampler_name and config.train.seed == cell.seed


def test_ablation_profile_has_the_arms_its_docs_describe():
    profile = reproduce.load_profile(EXPERIMENTS / "ablation.yaml")
    nbow, minilm = profile.groups["nbow"], profile.groups["minilm"]
    assert nbow.languages == list(LANGUAGES) and nbow.seeds == [1, 2, 3]
    assert nbow.config["train"]["epochs"] == 2 and nbow.config["train"]["batch_size"] == 128
    # the original local nbow group, whose TBS result the ablation explains
    assert nbow.config["data"] == {"max_train_pairs": 10000, "max_valid_queries": 2000}
    arms = {
        label: reproduce.group_config(profile, "nbow", label, 1).sampler for label in nbow.samplers
    }
    assert arms["random"].name == "random"
    assert [
        (a.options["tbs"].start_epoch, a.options["tbs"].same_text_edges, a.options["tbs"].graph)
        for label, a in arms.items()
        if label != "random"
    ] == [
        (0, "keep", "quantile"),
        (1, "keep", "quantile"),
        (1, "drop", "quantile"),
        (1, "drop", "knn"),
    ]
    assert len(minilm.languages) >= 2 and len(minilm.seeds) >= 3
    arms = {
        label: reproduce.group_config(profile, "minilm", label, 1).sampler
        for label in minilm.samplers
    }
    assert sorted(
        (a.name, a.options["tbs"].start_epoch, a.options["tbs"].same_text_edges)
        for a in arms.values()
    ) == [
        ("random", 0, "drop"),
        ("tbs", 0, "drop"),
        ("tbs", 0, "keep"),
    ]


def test_evidence_profile_has_eight_seeds_for_the_headline_and_three_for_the_rest(tmp_path):
    profile = reproduce.load_profile(EXPERIMENTS / "evidence.yaml")
    group = profile.groups["minilm"]
    assert len(group.languages) >= 2
    cells = reproduce.plan_cells(profile, tmp_path / "runs", tmp_path / "results")
    seeds = {}
    for cell in cells:
        seeds.setdefault(cell.sampler, []).append(cell.seed)
    assert len(seeds["random"]) >= 8 and seeds["tbs"] == seeds["random"]
    assert all(len(s) >= 3 for s in seeds.values())
    config = {
        label: reproduce.group_config(profile, "minilm", label, 1) for label in group.samplers
    }
    assert config["random-extra1"].sampler.options["random"].extra_codes == 1
    assert config["hardneg"].sampler.options["hardneg"].negatives == 1
    assert config["tbs-2ep"].train.epochs == 2 and config["tbs"].train.epochs == 1
    assert config["tbs-2ep"].sampler.options["tbs"].every == 1  # pi recomputed each epoch
    assert config["tbs-2ep"].sampler.options["tbs"].embeddings == "fresh"
    assert [config[f"tbs-q{q}"].sampler.options["tbs"].quantile for q in ("0.99", "0.98")] == [
        0.99,
        0.98,
    ]
    assert ["hardneg", "random-extra1"] in group.compare
    assert ["tbs-2ep", "random-2ep"] in group.compare
    # a slice keeps each arm's own seeds
    sliced = reproduce.slice_profile(profile, seeds=[5])
    assert sliced.groups["minilm"].samplers == ["random", "tbs"]


@pytest.mark.slow
def test_an_arm_runs_its_sampler_with_its_own_keys(tiny_data, tmp_path):
    profile = tmp_path / "arms.yaml"
    tree = yaml.safe_load(Path(write_tiny_profile(profile, tiny_data)).read_text())
    tree["groups"]["nbow"]["samplers"] = [
        "random",
        {
            "label": "tbs-warm",
            "sampler": "tbs",
            "set": {"sampler.tbs_start_epoch": 1, "sampler.tbs_quantile": 0.95},
        },
    ]
    tree["groups"]["nbow"]["config"]["train"]["epochs"] = 2
    profile.write_text(yaml.safe_dump(tree))
    reproduce.run_profile(profile, tmp_path / "runs", tmp_path / "results", progress=False)
    saved = yaml.safe_load(
        (tmp_path / "runs" / "nbow" / "tbs-warm-seed0" / "config.yaml").read_text()
    )
    assert saved["sampler"]["name"] == "tbs" and saved["sampler"]["tbs_start_epoch"] == 1
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert "tbs-warm-random" in results["groups"]["nbow"]["bootstrap"]["python"]
    assert "tbs-warm − random" in (tmp_path / "results" / "report.md").read_text()


def test_local_profile_covers_the_grid_the_readme_describes():
    """The headline: a pretrained fine-tune over >= 3 languages x 3 samplers x >= 3 seeds
    (800 training pairs per cell and 1,000 test pairs: what fits 60 minutes on an AVX2-only
    CPU in fp32); and an nbow row for every language."""
    profile = reproduce.load_profile(EXPERIMENTS / "local.yaml")
    assert list(profile.groups)[0] == "minilm"  # runs and reports first
    minilm = profile.groups["minilm"]
    assert len(minilm.languages) >= 3 and len(minilm.seeds) >= 3
    assert set(minilm.samplers) == {"random", "hardneg", "tbs"}
    config = reproduce.group_config(profile, "minilm", "tbs", 1)
    assert config.model.model == "minilm" and config.model.encoder == "transformer"
    assert config.data.max_train_pairs >= 800
    assert minilm.evaluate == ["--max-test-pairs", "1000"]
    assert config.train.mixed_precision == "auto" and config.train.length_chunks > 1
    nbow = profile.groups["nbow"]
    assert nbow.languages == list(LANGUAGES) and len(nbow.seeds) >= 2
    assert set(nbow.samplers) == {"random", "hardneg", "tbs"}
    assert reproduce.group_config(profile, "nbow", "tbs", 1).model.encoder == "nbow"


@pytest.mark.parametrize("name", SHIPPED_PROFILES)
def test_no_profile_forces_bf16(name):
    """bf16 is emulated 15-40x slower on an AVX2-only CPU: profiles say auto (or fp32)."""
    profile = reproduce.load_profile(EXPERIMENTS / f"{name}.yaml")
    for group, spec in profile.groups.items():
        assert "bf16" not in spec.evaluate, group
        for sampler in spec.samplers:
            config = reproduce.group_config(profile, group, sampler, spec.seeds[0])
            assert config.train.mixed_precision in ("auto", "no"), (group, sampler)


def test_groups_of_one_parallelism_share_a_pool():
    """The next group's cells fill the slot the previous group's last cell leaves free."""

    def cell(group, jobs, threads):
        return reproduce.Cell(group, "random", 1, [], *[Path("x")] * 4, jobs, threads, [])

    cells = [cell("a", 2, 1), cell("a", 2, 1), cell("b", 2, 1), cell("c", 1, 2), cell("d", 2, 1)]
    pools = reproduce.shared_pools(cells)
    assert [[c.group for c in pool] for pool in pools] == [["a", "a", "b"], ["c"], ["d"]]


def test_gpu_profile_is_the_full_corpus():
    profile = reproduce.load_profile(EXPERIMENTS / "gpu.yaml")
    (group,) = profile.groups.values()
    assert group.languages == list(LANGUAGES) and group.seeds == [1, 2, 3]
    assert set(group.samplers) == {"random", "hardneg", "tbs"}
    config = reproduce.group_config(profile, "minilm", "tbs", 1)
    assert config.data.max_train_pairs is None and config.train.epochs >= 3
    assert config.model.model == "minilm"


def test_paper_profile_is_the_unixcoder_recipe():
    profile = reproduce.load_profile(EXPERIMENTS / "paper.yaml")
    config = reproduce.group_config(profile, "unixcoder", "tbs", 1)
    assert config.model.model == "microsoft/unixcoder-base"
    assert (config.train.batch_size, config.train.lr, config.train.epochs) == (64, 2e-5, 10)
    assert (config.model.max_code_length, config.model.max_query_length) == (256, 128)
    assert config.model.pooling == "mean" and config.model.scale == 20.0
    assert config.train.grad_clip == 1.0 and config.data.max_valid_queries is None
    # the venv's accelerate ("python" is this interpreter), whatever the PATH
    assert profile.launcher[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert config.model.input_format == "unixcoder"  # <s> <encoder-only> </s> TEXT </s>
    assert "--text-from tokens" in " ".join(profile.prepare)  # code = ' '.join(code_tokens)
    assert profile.groups["unixcoder"].languages == list(LANGUAGES)
    published = profile.groups["unixcoder"].published["mrr"]
    assert published == {
        "ruby": 74.0,
        "javascript": 68.4,
        "go": 91.5,
        "python": 72.0,
        "java": 72.6,
        "php": 67.6,
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.update(extra=1), "unknown key 'extra'"),
        (
            lambda p: p["groups"]["nbow"]["config"]["train"].update(epochz=2),
            "unknown key 'train.epochz'",
        ),
        (
            lambda p: p["groups"]["nbow"]["config"]["train"].update(epochs="two"),
            "'train.epochs': expected int",
        ),
        (
            lambda p: p["groups"]["nbow"]["config"]["sampler"].update(name="tbs"),
            "'sampler.name' is set by the grid",
        ),
        (
            lambda p: p["groups"]["nbow"].update(samplers=["random", "bogus"]),
            "unknown sampler 'bogus'",
        ),
        (
            lambda p: p["groups"]["nbow"].update(seeds=["1"]),
            "expected a non-empty list of integers",
        ),
        (
            lambda p: p["groups"]["nbow"].update(published={"mrr": {"ruby": 74.0}}),
            "published: expected source",
        ),
        (
            lambda p: p["groups"]["nbow"].update(published={"source": "x", "mrr": {"cobol": 1}}),
            "published.mrr: unknown language",
        ),
        (
            lambda p: p["groups"]["nbow"].update(published={"source": "x", "mrr": {"ruby": "hi"}}),
            "published.mrr.ruby: expected a number",
        ),
        (
            lambda p: p["groups"]["nbow"].update(samplers=[{"label": "x"}]),
            r"samplers\[0\]: an arm needs a 'label' and a 'sampler'",
        ),
        (
            lambda p: p["groups"]["nbow"].update(samplers=[{"label": "a b", "sampler": "tbs"}]),
            "label 'a b' may hold only",
        ),
        (
            lambda p: p["groups"]["nbow"].update(
                samplers=[{"label": "x", "sampler": "tbs", "set": {"train.seed": 3}}]
            ),
            "'train.seed' is set by the grid, not by an arm",
        ),
        (
            lambda p: p["groups"]["nbow"].update(
                samplers=[{"label": "x", "sampler": "tbs", "set": {"sampler.tbs_start_epoch": 5}}]
            ),
            "leaves no TBS epoch",
        ),
        (
            lambda p: p["groups"]["nbow"].update(
                samplers=[{"label": "x", "sampler": "tbs", "set": {"sampler.tbs_colour": 5}}]
            ),
            "unknown key 'sampler.tbs_colour'",
        ),
        (
            lambda p: p["groups"]["nbow"].update(
                samplers=["tbs", {"label": "tbs", "sampler": "tbs"}]
            ),
            "'tbs' appears twice",
        ),
        (
            lambda p: p["groups"]["nbow"].update(
                samplers=["random", {"label": "x", "sampler": "tbs", "seeds": [99]}]
            ),
            "are not all among the group's seeds",
        ),
        (
            lambda p: p["groups"]["nbow"].update(
                samplers=["random", {"label": "x", "sampler": "tbs", "seeds": "1"}]
            ),
            "x.*seeds: expected a non-empty list of integers|samplers\\[1\\].seeds",
        ),
        (
            lambda p: p["groups"]["nbow"].update(compare=[["tbs", "bm25"]]),
            r"groups.nbow.compare\[0\]: no arm 'bm25'",
        ),
        (
            lambda p: p["groups"]["nbow"].update(compare=[["tbs", "tbs"]]),
            "two different labels",
        ),
        (lambda p: p["groups"]["nbow"].update(compare="tbs"), "list of \\[arm, baseline\\]"),
        (lambda p: p["groups"]["nbow"].update(languages=["cobol"]), "groups.nbow.languages"),
        (lambda p: p["groups"]["nbow"].update(jobs=0), "groups.nbow.jobs"),
        (lambda p: p.update(groups={}), "groups must name at least one group"),
        (lambda p: p["data"].pop("path"), "data.path is required"),
    ],
)
def test_bad_profiles_are_one_line_errors(tmp_path, edit, message):
    tree = yaml.safe_load((EXPERIMENTS / "smoke.yaml").read_text())
    tree["groups"]["nbow"]["config"].setdefault("sampler", {})
    edit(tree)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(UserError, match=message) as error:
        reproduce.load_profile(path)
    assert str(path) in str(error.value)


def test_missing_profile_names_the_known_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(EXPERIMENTS.parent)
    assert cli_main(["reproduce", "nosuch", "--check"]) == 2
    err = capsys.readouterr().err
    assert "experiments/nosuch.yaml: no such profile" in err and "local" in err
    assert err.startswith("codesearch: error:")


def test_check_lists_the_cells(monkeypatch, capsys):
    monkeypatch.chdir(EXPERIMENTS.parent)
    assert cli_main(["reproduce", "smoke", "--check"]) == 0
    out = capsys.readouterr().out
    assert "nbow__tbs__seed1: ruby, python" in out and "smoke: 3 cells, valid" in out


def test_missing_data_is_prepared_by_the_profile_command(tiny_data, tmp_path):
    data = tmp_path / "data"
    profile = tmp_path / "p.yaml"
    tree = yaml.safe_load(write_tiny_profile(profile, data) and profile.read_text())
    tree["data"]["prepare"] = [
        "python",
        "-c",
        f"import shutil; shutil.copytree({str(tiny_data)!r}, {str(data)!r})",
    ]
    profile.write_text(yaml.safe_dump(tree))
    reproduce.prepare_data(reproduce.load_profile(profile))
    assert (data / "manifest.json").is_file()

    tree["data"]["path"] = str(tmp_path / "absent")
    tree["data"]["prepare"] = "python -c 'raise SystemExit(3)'"
    profile.write_text(yaml.safe_dump(tree))
    with pytest.raises(UserError, match=r"the prepare command failed \(exit 3\)"):
        reproduce.prepare_data(reproduce.load_profile(profile))
    del tree["data"]["prepare"]
    profile.write_text(yaml.safe_dump(tree))
    with pytest.raises(UserError, match="has no data.prepare command"):
        reproduce.prepare_data(reproduce.load_profile(profile))


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_stopped_driver_stops_the_running_cells(tiny_data, tmp_path, stop):
    """A scheduler's SIGTERM or Ctrl-C: the driver terminates its cells with SIGTERM (the
    trainer checkpoints on it, tested in test_train.py), exits 130 and starts nothing else."""
    import os
    import signal
    import subprocess
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    # a stand-in launcher: records its pid, then waits to be stopped
    launcher = [
        sys.executable,
        "-c",
        "import os, sys, time; open(os.path.join(sys.argv[1], "
        "str(os.getpid())), 'w').close(); time.sleep(120)",
        str(pids),
    ]
    profile = tmp_path / "slow.yaml"
    tree = yaml.safe_load(Path(write_tiny_profile(profile, tiny_data)).read_text())
    tree["launcher"] = launcher
    profile.write_text(yaml.safe_dump(tree))
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codesearch.reproduce",
            str(profile),
            "--runs",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path / "results"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:  # jobs: 2
        time.sleep(0.1)
    started = [int(p.name) for p in pids.iterdir()]
    assert len(started) == 2
    driver.send_signal(getattr(signal, stop))
    _, err = driver.communicate(timeout=30)
    assert driver.returncode == 130
    assert "codesearch: interrupted; rerun the same command to resume" in err
    for pid in started:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert len(list(pids.iterdir())) == 2  # the third cell never started


def test_profiles_use_the_tbs_settings_the_ablation_chose():
    local = reproduce.load_profile(EXPERIMENTS / "local.yaml")
    nbow = reproduce.group_config(local, "nbow", "tbs", 1).sampler.options["tbs"]
    minilm = reproduce.group_config(local, "minilm", "tbs", 1).sampler.options["tbs"]
    assert (nbow.start_epoch, nbow.same_text_edges) == (1, "drop")  # from scratch
    assert (minilm.start_epoch, minilm.same_text_edges) == (0, "drop")  # pretrained
    paper = reproduce.load_profile(EXPERIMENTS / "paper.yaml")
    unixcoder = reproduce.group_config(paper, "unixcoder", "tbs", 1).sampler.options["tbs"]
    assert (unixcoder.start_epoch, unixcoder.same_text_edges) == (0, "drop")


def test_a_slice_keeps_every_sampler_of_some_languages_and_seeds(capsys, monkeypatch):
    monkeypatch.chdir(EXPERIMENTS.parent)
    profile = reproduce.load_profile(EXPERIMENTS / "gpu.yaml")
    part = reproduce.slice_profile(profile, ["ruby"], [1])
    assert part.name == "gpu-ruby-seed1" and profile.name == "gpu"
    cells = reproduce.plan_cells(part, Path("runs") / part.name, Path("results") / part.name)
    assert [(c.sampler, c.seed, c.languages) for c in cells] == [
        ("random", 1, ["ruby"]),
        ("hardneg", 1, ["ruby"]),
        ("tbs", 1, ["ruby"]),
    ]
    assert reproduce.slice_profile(profile) is profile
    local = reproduce.load_profile(EXPERIMENTS / "local.yaml")
    assert list(reproduce.slice_profile(local, ["go"]).groups) == ["nbow"]  # minilm has no go
    with pytest.raises(UserError, match="no group has"):
        reproduce.slice_profile(local, None, [7])
    assert cli_main(["reproduce", "gpu", "--check", "--languages", "ruby", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "gpu-ruby-seed1: 3 cells, valid" in out and "minilm__tbs__seed1: ruby\n" in out
    assert cli_main(["reproduce", "gpu", "--check", "--seeds", "one"]) == 2
    assert "--seeds" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["local", "evidence", "ablation", "sts"])
def test_a_group_survives_its_grid_record(name):
    """The report reads grid.json's groups back into the same typed groups."""
    profile = reproduce.load_profile(EXPERIMENTS / f"{name}.yaml")
    for group in profile.groups.values():
        record = json.loads(json.dumps(group.record()))
        back = reproduce.Group.from_record(record)
        assert dataclasses.replace(back, evaluate=group.evaluate, description="") == (
            dataclasses.replace(group, description="")
        )
