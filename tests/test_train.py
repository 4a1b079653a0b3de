"""Training end to end on tiny data: learning, resume, SIGTERM, two processes, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from safetensors.numpy import load_file

from codesearch import train as train_module
from codesearch.cli import main
from codesearch.config_sources import resolve_config
from codesearch.evaluate import evaluate

NBOW = {
    "model.encoder": "nbow",
    "train.lr": 1e-2,
    "train.batch_size": 16,
    "train.log_every": 1,
    "train.mixed_precision": "no",
}


def nbow_config(data, **extra):
    return resolve_config(
        None, {"data.path": str(data), "data.languages": "python", **NBOW, **extra}
    )


def step_losses(run: Path, task: str = "python") -> list[float]:
    rows = [json.loads(line) for line in (run / task / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "event" not in r]


def weights(run: Path, task: str = "python") -> dict[str, np.ndarray]:
    return load_file(str(run / task / "checkpoint" / "model.safetensors"))


def raise_keyboard_interrupt():
    raise KeyboardInterrupt


def run_interrupted(config, run: Path, monkeypatch, at_call: int, interrupt):
    """Train into ``run``, calling ``interrupt()`` before the ``at_call``-th step; returns the
    exception that stopped training (a crash or the SIGTERM checkpoint)."""
    real_step = train_module.train_step
    calls = {"n": 0}

    def step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            interrupt()
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", step)
    with pytest.raises((KeyboardInterrupt, train_module.Interrupted)) as raised:
        train_module.train(config, run)
    monkeypatch.setattr(train_module, "train_step", real_step)
    return raised.value


def test_nbow_training_beats_the_untrained_model(tiny_data, tmp_path):
    run = tmp_path / "run"
    summary = train_module.train(nbow_config(tiny_data, **{"train.epochs": 4}), run)
    assert summary["python"]["global_step"] == 4 * 6
    losses = step_losses(run)
    assert np.mean(losses[-6:]) < np.mean(losses[:6]) - 0.3
    trained = evaluate(str(run), tiny_data, ["python"], progress=False)
    assert trained["languages"]["python"]["mrr"] > 0.35  # chance is about 0.17
    info = json.loads((run / "run_info.json").read_text())
    assert (
        info["seed"] == 0
        and info["packages"]["torch"]
        and info["packages"]["sentence-transformers"] != "not installed"
        and info["data"]["data_hash"]
    )
    assert (run / "python" / "best" / "codesearch_model.json").is_file()


def test_resume_after_a_crash_matches_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    config = nbow_config(tiny_data, **{"train.epochs": 2, "train.save_every": 1})
    train_module.train(config, tmp_path / "full")

    # step 8 is mid-epoch 1: the checkpoint of step 7 is on disk
    stopped = run_interrupted(
        config, tmp_path / "resumed", monkeypatch, 8, raise_keyboard_interrupt
    )
    assert isinstance(stopped, KeyboardInterrupt)
    train_module.train(config, tmp_path / "resumed", resume=True)

    assert step_losses(tmp_path / "resumed") == step_losses(tmp_path / "full")
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert all(np.array_equal(full[k], resumed[k]) for k in full)


def test_sigterm_writes_a_checkpoint_and_resume_completes(tiny_data, tmp_path, monkeypatch):
    config = nbow_config(tiny_data, **{"train.epochs": 2})
    train_module.train(config, tmp_path / "full")
    stopped = run_interrupted(
        config, tmp_path / "stopped", monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGTERM)
    )
    assert isinstance(stopped, train_module.Interrupted)
    assert "checkpoint saved at step 3" in str(stopped)
    state = json.loads((tmp_path / "stopped/python/checkpoint/trainer_state.json").read_text())
    assert state["trainer"]["global_step"] == 3 and state["trainer"]["step_in_epoch"] == 3
    train_module.train(config, tmp_path / "stopped", resume=True)
    assert step_losses(tmp_path / "stopped") == step_losses(tmp_path / "full")


def train_in_one_and_two_processes(tiny_data, tmp_path, port: int, *flags) -> tuple[Path, Path]:
    """The same nbow training as one process and through `accelerate launch` with two gloo
    CPU processes; returns the two run directories."""
    common = [
        "-m",
        "codesearch",
        "train",
        "--data",
        str(tiny_data),
        "--languages",
        "python",
        "--encoder",
        "nbow",
        "--lr",
        "1e-2",
        "--batch-size",
        "16",
        "--mixed-precision",
        "no",
        *flags,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, *common, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        str(port),
    ]
    two = subprocess.run(
        [*launcher, *common, "--out", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    return tmp_path / "one", tmp_path / "two"


@pytest.mark.slow
def test_two_processes_match_one_process(tiny_data, tmp_path):
    """accelerate launch with two gloo CPU processes: same global batches, same losses."""
    train_in_one_and_two_processes(
        tiny_data, tmp_path, free_port(), "--epochs", "1", "--set", "train.log_every=1"
    )
    info = json.loads((tmp_path / "two" / "run_info.json").read_text())
    assert info["num_processes"] == 2
    np.testing.assert_allclose(
        step_losses(tmp_path / "two"), step_losses(tmp_path / "one"), rtol=1e-4
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{missing}"], "no such data directory"),
        (["--languages", "go"], "has no language 'go'"),
        (["--sampler", "fancy"], "unknown sampler 'fancy'"),
        (["--set", "train.lrr=1"], "unknown key 'train.lrr'"),
        (["--set", "train.epochs=two"], "'train.epochs': expected int"),
        (["--batch-size", "1000"], "larger than the training data (96 pairs"),
        (["--encoder", "rnn"], "encoder"),
    ],
)
def test_bad_train_input_is_one_line_exit_2(tiny_data, tmp_path, capsys, args, message):
    args = [a.replace("{missing}", str(tmp_path / "missing")) for a in args]
    base = [
        "train",
        "--data",
        str(tiny_data),
        "--languages",
        "python",
        "--encoder",
        "nbow",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_config_file_key(tmp_path, capsys, tiny_data):
    profile = tmp_path / "p.yaml"
    profile.write_text("train:\n  epochs: 1\n  warmup: 3\n")
    assert (
        main(
            [
                "train",
                "--config",
                str(profile),
                "--data",
                str(tiny_data),
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    assert "p.yaml: unknown key 'train.warmup'" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_in_the_second_language_of_a_per_language_run(tiny_data, tmp_path, monkeypatch):
    config = nbow_config(
        tiny_data, **{"data.languages": "python,ruby", "train.epochs": 1, "train.save_every": 1}
    )
    train_module.train(config, tmp_path / "full")
    # python has 6 steps; crash at ruby's 4th
    stopped = run_interrupted(
        config, tmp_path / "resumed", monkeypatch, 6 + 4, raise_keyboard_interrupt
    )
    assert isinstance(stopped, KeyboardInterrupt)
    train_module.train(config, tmp_path / "resumed", resume=True)
    for task in ("python", "ruby"):
        assert step_losses(tmp_path / "resumed", task) == step_losses(tmp_path / "full", task)
    # each task's checkpoint holds its own model only, not the previous task's
    assert not list((tmp_path / "full" / "ruby" / "checkpoint").glob("model_1*"))


# --- resuming with another config -------------------------------------------------------------


def _train_cli(tiny_data, run, *extra):
    return main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--languages",
            "python",
            "--encoder",
            "nbow",
            "--lr",
            "1e-2",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--mixed-precision",
            "no",
            "--out",
            str(run),
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def trained_once(tiny_data, tmp_path_factory):
    """One finished tiny run per module; tests that resume or lock it take a copy."""
    run = tmp_path_factory.mktemp("trained_once") / "run"
    assert _train_cli(tiny_data, run) == 0
    return run


@pytest.fixture
def finished_run(trained_once, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_once, run)
    return run


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--lr", "0.5"], "train.lr (run 0.01, now 0.5)"),
        (["--seed", "7"], "train.seed (run 0, now 7)"),
        (["--batch-size", "8"], "train.batch_size (run 16, now 8)"),
        (["--max-train-pairs", "50"], "data.max_train_pairs (run None, now 50)"),
        (["--sampler", "tbs"], "sampler.name (run 'random', now 'tbs')"),
        (["--set", "model.scale=10"], "model.scale (run 20.0, now 10.0)"),
    ],
)
def test_resume_with_a_result_changing_config_is_one_line_exit_2(
    tiny_data, finished_run, capsys, flags, named
):
    before = {p: (finished_run / p).read_bytes() for p in ("config.yaml", "run_info.json")}
    capsys.readouterr()
    assert _train_cli(tiny_data, finished_run, "--resume", *flags) == 2
    err = capsys.readouterr().err
    assert named in err and "--resume with a different config" in err and err.count("\n") == 1
    assert {p: (finished_run / p).read_bytes() for p in before} == before  # nothing rewritten


def test_resume_with_more_epochs_trains_on_and_records_it(tiny_data, finished_run, capsys):
    original = json.loads((finished_run / "run_info.json").read_text())
    assert main(["train", "--out", str(finished_run), "--resume", "--epochs", "2"]) == 0
    rows = [
        json.loads(line)
        for line in (finished_run / "python" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows if r.get("event") == "epoch"] == [0, 1]
    state = json.loads((finished_run / "python" / "checkpoint" / "trainer_state.json").read_text())[
        "trainer"
    ]
    assert state["epoch"] == 2 and state["global_step"] == 12 and state["finished"]
    assert "epochs: 2" in (finished_run / "config.yaml").read_text()
    info = json.loads((finished_run / "run_info.json").read_text())
    assert info["resumes"][-1]["changed"] == {"train.epochs": [1, 2]}
    assert {k: info[k] for k in original} == original  # the original record is kept
    capsys.readouterr()
    assert main(["train", "--out", str(finished_run), "--resume", "--epochs", "1"]) == 2
    assert "cannot lower train.epochs (2 -> 1)" in capsys.readouterr().err


def test_resume_alone_continues_with_the_saved_config(tiny_data, tmp_path, monkeypatch):
    config = nbow_config(tiny_data, **{"train.epochs": 2, "train.save_every": 1})
    run = tmp_path / "run"
    run_interrupted(config, run, monkeypatch, 8, raise_keyboard_interrupt)
    assert main(["train", "--out", str(run), "--resume"]) == 0
    full = tmp_path / "full"
    train_module.train(config, full)
    assert step_losses(run) == step_losses(full)


def test_resume_with_moved_data_needs_the_same_data(tiny_data, finished_run, tmp_path, capsys):
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    assert main(["train", "--out", str(finished_run), "--resume", "--data", str(moved)]) == 0
    from tiny_data import write_tiny_data

    other = write_tiny_data(tmp_path / "other", n_train=80)  # a valid build of other data
    capsys.readouterr()
    assert main(["train", "--out", str(finished_run), "--resume", "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "but the run trained on data_hash" in err and err.count("\n") == 1


def test_resume_never_takes_trust_remote_code_from_the_run(tiny_data, finished_run):
    from codesearch.config_sources import load_run_config
    from codesearch.run_dir import resume_base

    path = finished_run / "config.yaml"
    path.write_text(path.read_text().replace("trust_remote_code: false", "trust_remote_code: true"))
    assert resume_base(load_run_config(finished_run)).model.trust_remote_code is False


# --- one assignment for every process ------------------------------------------------------------


@pytest.mark.slow
def test_two_processes_share_one_tbs_assignment(tiny_data, tmp_path):
    """Two gloo processes with TBS (random epoch 0, TBS epoch 1): the run checks that both
    computed the same batches each epoch, and they are the one-process run's batches."""
    train_in_one_and_two_processes(
        tiny_data,
        tmp_path,
        free_port(),
        "--epochs",
        "2",
        "--sampler",
        "tbs",
        "--tbs-start-epoch",
        "1",
        "--tbs-quantile",
        "0.95",
    )

    def digests(run):
        rows = [
            json.loads(line) for line in (run / "python" / "metrics.jsonl").read_text().splitlines()
        ]
        return [r["batches_digest"] for r in rows if r.get("event") == "epoch"]

    assert len(digests(tmp_path / "two")) == 2
    assert digests(tmp_path / "two") == digests(tmp_path / "one")


def test_processes_that_disagree_on_the_batches_stop_with_one_line(monkeypatch):
    from codesearch import distributed
    from codesearch.samplers import Batch
    from codesearch.samplers.base import batches_digest

    batches = [Batch(np.arange(4))]
    digest = batches_digest(batches)
    assert digest != batches_digest([Batch(np.arange(4)[::-1])])
    distributed.check_processes_agree(digest, "python epoch 1")  # one process agrees with itself

    def two_processes(counts, device="cpu"):  # the second process's digest differs
        return [list(counts), [counts[0] + 1]]

    monkeypatch.setattr(distributed, "gather_counts", two_processes)
    with pytest.raises(
        train_module.UserError, match="processes computed different batches"
    ) as raised:
        distributed.check_processes_agree(digest, "python epoch 1")
    assert digest in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--sampler", "tbs", "--tbs-start-epoch", "-1"],
            "tbs_start_epoch must be a finite number >= 0",
        ),
        (["--sampler", "tbs", "--tbs-start-epoch", "1"], "leaves no TBS epoch in train.epochs 1"),
        (["--sampler", "tbs", "--tbs-same-text-edges", "merge"], "same_text_edges must be one of"),
    ],
)
def test_bad_tbs_options_are_one_line_exit_2(tiny_data, tmp_path, capsys, args, message):
    assert _train_cli(tiny_data, tmp_path / "run", *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_old_hardneg_keys_and_flags_are_aliases(tmp_path):
    import argparse

    import yaml

    from codesearch.cli.train import add_sampler_arguments, sampler_overrides
    from codesearch.config import RunConfig, flat_config
    from codesearch.config_sources import load_run_config

    config = resolve_config(None, {"sampler.hardneg_l": 3})
    assert config.sampler.options["hardneg"].negatives == 3
    flat = flat_config(config)
    assert flat["sampler.hardneg_negatives"] == 3 and flat["sampler.hardneg_ranks"] == "1:1"
    assert "sampler.hardneg_l" not in flat and "sampler.hardneg_range" not in flat
    config = resolve_config(None, {"sampler.hardneg_range": "2:4"})
    assert config.sampler.options["hardneg"].ranks == "2:4"
    # the old flags
    parser = argparse.ArgumentParser()
    add_sampler_arguments(parser)
    old = parser.parse_args(["--hardneg-l", "2", "--hardneg-range", "1:5"])
    new = parser.parse_args(["--hardneg-negatives", "2", "--hardneg-ranks", "1:5"])
    assert (
        sampler_overrides(old)
        == sampler_overrides(new)
        == {
            "sampler.hardneg_negatives": 2,
            "sampler.hardneg_ranks": "1:5",
        }
    )
    # a run saved with the old keys still loads
    tree = RunConfig().to_dict()
    del tree["sampler"]["hardneg_negatives"], tree["sampler"]["hardneg_ranks"]
    tree["sampler"].update(hardneg_l=4, hardneg_range="2:6")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree))
    saved = load_run_config(tmp_path).sampler.options["hardneg"]
    assert (saved.negatives, saved.ranks) == (4, "2:6")


def test_epoch_rows_hold_masked_and_unmasked_gaps_and_the_graph_density(
    tiny_data, tmp_path, capsys
):
    run = tmp_path / "run"
    assert _train_cli(tiny_data, run, "--sampler", "tbs") == 0
    row = next(
        json.loads(line)
        for line in (run / "python" / "metrics.jsonl").read_text().splitlines()
        if '"event": "epoch"' in line
    )
    for key in (
        "diag_gap",
        "diag_gap_masked",
        "diag_l_train_masked",
        "diag_l_global_masked",
        "diag_anchors_no_negatives",
        "diag_anchors_under_half_negatives",
    ):
        assert key in row, key
    assert row["diag_gap_masked"] >= 0
    graph = row["sampler_graph"]  # the default quantile leaves a tiny training set almost bare
    assert graph["isolated_share"] > 0.5 and 0 <= graph["neighbour_in_batch"] <= 1
    err = capsys.readouterr().err
    warnings = [x for x in err.splitlines() if x.startswith("warning: tbs")]
    assert len(warnings) == 1 and f"{graph['isolated_pairs']} pairs" in warnings[0]
    assert "\r" not in err and "python epoch 0: loss" in err  # not a terminal: no bars


def test_version_and_train_help_show_defaults(capsys):
    from codesearch.config import RunConfig

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("codesearch ")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = RunConfig()
    assert f"default {defaults.train.epochs}" in text and "--quiet" in text
    assert f"default {defaults.model.model}" in text and f"default {defaults.train.lr}" in text


# --- bad values and output paths: one line, exit 2, before any work -------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "train.epochs must be a finite number >= 1; got 0"),
        (["--epochs", "-1"], "train.epochs must be a finite number >= 1; got -1"),
        (["--max-steps", "0"], "train.max_steps must be a finite number >= 1 or null"),
        (["--lr", "-1"], "train.lr must be a finite number > 0; got -1.0"),
        (["--lr", "nan"], "train.lr must be a finite number > 0; got nan"),
        (["--max-train-pairs", "0"], "data.max_train_pairs must be a finite number >= 1"),
        (["--save-every", "-1"], "train.save_every must be a finite number >= 0"),
        (
            ["--set", "train.warmup_ratio=-0.1"],
            "train.warmup_ratio must be a finite number in [0, 1)",
        ),
        (
            ["--set", "train.eval_batch_size=0"],
            "train.eval_batch_size must be a finite number >= 1",
        ),
        (["--seed", "-3"], "train.seed must be a finite number in [0, 4294967295]"),
        (["--mixed-precision", "fp8"], "train.mixed_precision must be one of auto, no, bf16, fp16"),
    ],
)
def test_nonsense_values_are_one_line_exit_2(tiny_data, tmp_path, capsys, args, message):
    assert _train_cli(tiny_data, tmp_path / "run", *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # nothing written


def test_an_empty_training_split_is_one_line_exit_2(tmp_path, capsys, record_factory):
    from codesearch.data.prepared import PreparedWriter

    data = tmp_path / "data"
    with PreparedWriter(data) as writer:
        writer.write_split("python", "train", [])
        writer.write_split("python", "valid", [record_factory(i, split="valid") for i in range(3)])
        writer.finish(builder="test")
    assert _train_cli(data, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "no training pairs for python" in err and err.count("\n") == 1


def test_an_out_path_that_is_a_file_is_one_line_exit_2(tiny_data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert _train_cli(tiny_data, tmp_path / "file") == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert _train_cli(tiny_data, tmp_path / "file" / "run") == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err and err.count("\n") == 1


def test_two_runs_in_one_directory_exclude_each_other(tiny_data, finished_run, capsys):
    from codesearch.outputs import DirectoryLock

    with DirectoryLock(finished_run, "run directory"):  # as another training process holds it
        capsys.readouterr()
        assert _train_cli(tiny_data, finished_run, "--resume", "--epochs", "2") == 2
        err = capsys.readouterr().err
        assert "another process is writing this run directory" in err and err.count("\n") == 1
    assert (
        json.loads((finished_run / "python" / "checkpoint" / "trainer_state.json").read_text())[
            "trainer"
        ]["epoch"]
        == 1
    )  # untouched
    assert _train_cli(tiny_data, finished_run, "--resume", "--epochs", "2") == 0  # released


def test_json_output_never_holds_nan(tmp_path):
    from codesearch.data.prepared import write_json_atomic

    write_json_atomic(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.0, None]}
    assert "NaN" not in (tmp_path / "x.json").read_text()


def test_training_on_data_edited_after_the_build_is_one_line_exit_2(tiny_data, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    path = data / "python" / "train.jsonl"
    text = path.read_text()
    path.write_text(text.replace("result", "resulT", 1))
    assert path.read_text() != text
    assert _train_cli(data, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "train.jsonl: sha256 differs from the manifest" in err and err.count("\n") == 1


class Payload:  # a pickle that would run code if unpickled without weights_only
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("trainer_state.json", "trainer_state.json"),
        ("model.safetensors", "model.safetensors"),
        # Accelerate swallows a failed RNG restore: it must not resume silently
        ("random_states_0.pkl", "random_states_0.pkl"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_exit_2(tiny_data, finished_run, capsys, damage, named):
    path = finished_run / "python" / "checkpoint" / damage
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    capsys.readouterr()
    assert _train_cli(tiny_data, finished_run, "--resume", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert "unreadable checkpoint" in err and err.count("\n") == 1 and named in err


@pytest.mark.parametrize(
    ("damage", "content"),
    [
        ("random_states_0.pkl", {"not": "random states"}),
        ("random_states_0.pkl", Payload()),
        ("optimizer.bin", Payload()),
    ],
)
def test_a_replaced_checkpoint_pickle_is_one_line_exit_2(
    tiny_data, finished_run, capsys, damage, content
):
    import pickle

    (finished_run / "python" / "checkpoint" / damage).write_bytes(pickle.dumps(content))
    capsys.readouterr()
    assert _train_cli(tiny_data, finished_run, "--resume", "--epochs", "2") == 2
    captured = capsys.readouterr()
    assert "unreadable checkpoint" in captured.err and captured.err.count("\n") == 1
    assert "pwned" not in captured.out


def test_damaged_saved_weights_are_one_line_exit_2(tiny_data, finished_run, capsys):
    path = finished_run / "python" / "best" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(finished_run),
                "--data",
                str(tiny_data),
                "--languages",
                "python",
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "model.safetensors: unreadable weights" in err and err.count("\n") == 1


def test_checkpoints_of_shared_towers_do_not_list_the_shared_tensors(
    tiny_data, tmp_path, caplog, capsys
):
    import logging

    from model_helpers import tiny_bert_dir

    from codesearch.checkpoint import SharedTensorNotice

    record = logging.LogRecord(
        "accelerate.utils.other", 30, "", 0, "[RANK 0] Removed shared tensor {'a'}", None, None
    )
    assert not SharedTensorNotice().filter(record)  # the notice the filter exists for
    run = tmp_path / "run"
    args = ["train", "--data", str(tiny_data), "--languages", "python", "--model"]
    args += [str(tiny_bert_dir(tmp_path)), "--max-train-pairs", "32", "--batch-size", "16"]
    assert (
        main(
            [
                *args,
                "--set",
                "model.max_code_length=32",
                "--set",
                "model.max_query_length=32",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert "Loading weights" not in capsys.readouterr().err  # not a terminal: no bars at all
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert (run / "python" / "checkpoint").is_dir() and "Removed shared tensor" not in logged
    assert main(["train", "--out", str(run), "--resume"]) == 0  # restores both towers


def test_a_checkpoint_without_the_frozen_pooler_resumes_like_one_with_it(tiny_data, tmp_path):
    """The encoders' poolers never train: a checkpoint that lacks them resumes to the same
    weights as one that holds them; a missing trainable weight still fails, naming the file."""
    import shutil

    from model_helpers import tiny_bert_dir
    from safetensors.torch import load_file as load_torch
    from safetensors.torch import save_file

    args = ["train", "--data", str(tiny_data), "--languages", "python", "--model"]
    args += [str(tiny_bert_dir(tmp_path)), "--max-train-pairs", "32", "--batch-size", "16"]
    args += ["--set", "model.max_code_length=32", "--set", "model.max_query_length=32"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    shutil.copytree(tmp_path / "whole", tmp_path / "stripped")
    weights = tmp_path / "stripped" / "python" / "checkpoint" / "model.safetensors"
    kept = {k: v for k, v in load_torch(str(weights)).items() if ".pooler." not in k}
    assert len(kept) < len(load_torch(str(weights)))
    save_file(kept, str(weights), metadata={"format": "pt"})
    for run in ("whole", "stripped"):
        assert main(["train", "--out", str(tmp_path / run), "--resume", "--epochs", "2"]) == 0
    assert weights_of(tmp_path / "whole") == weights_of(tmp_path / "stripped")
    shutil.copytree(tmp_path / "whole", tmp_path / "damaged")
    weights = tmp_path / "damaged" / "python" / "checkpoint" / "model.safetensors"
    trainable = {k: v for k, v in load_torch(str(weights)).items() if "layer.0.output" not in k}
    save_file(trainable, str(weights), metadata={"format": "pt"})
    assert main(["train", "--out", str(tmp_path / "damaged"), "--resume", "--epochs", "3"]) == 2


def weights_of(run: Path) -> dict[str, bytes]:
    """The trained tensors of a run's checkpoint, as bytes (equal means bit-identical)."""
    from safetensors.torch import load_file as load_torch

    saved = load_torch(str(run / "python" / "checkpoint" / "model.safetensors"))
    return {k: v.numpy().tobytes() for k, v in saved.items() if ".pooler." not in k}
