"""Hostile inputs that used to end in a traceback, a silent wrong result or a blocked retry:
each is now one line and exit 2, skipped and counted, or handled (README "Bad input")."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_outputs import one_line_error, prepare, snapshot
from test_prepare_jsonl import write_pairs

from codesearch.cli import main as cli_main
from codesearch.data.prepared import PreparedWriter, load_manifest, load_records
from codesearch.errors import UserError
from codesearch.outputs import DirectoryLock

NBOW = ["--encoder", "nbow", "--batch-size", "8", "--mixed-precision", "no"]


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--languages", "python", "--out", str(out), *NBOW, *extra]


# --- text and manifests ---------------------------------------------------------------------


def test_a_lone_surrogate_is_a_skipped_line_naming_its_field(tmp_path, capsys):
    src = write_pairs(tmp_path / "pairs.jsonl", extra=['{"query": "bad \\ud800", "code": "x = 1"}'])
    assert prepare(src, tmp_path / "out") == 0
    assert "field 'query': holds a lone surrogate" in capsys.readouterr().err
    assert sum(load_manifest(tmp_path / "out")["counts"]["python"].values()) == 120


def test_a_prepared_file_holding_a_lone_surrogate_is_refused_when_read(tmp_path):
    assert prepare(write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out") == 0
    path = tmp_path / "out" / "python" / "train.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    lines[0] = json.dumps({**record, "code": "x = '\ud800'"})  # ensure_ascii: a \ud800 escape
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match="train.jsonl:1: field 'code': holds a lone surrogate"):
        load_records(tmp_path / "out", "python", "train")


def test_a_utf8_bom_keeps_the_first_record(tmp_path):
    src = write_pairs(tmp_path / "pairs.jsonl")
    src.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    assert prepare(src, tmp_path / "out") == 0
    manifest = load_manifest(tmp_path / "out")
    assert sum(manifest["counts"]["python"].values()) == 120
    assert "dropped" not in json.dumps(manifest.get("skipped", {}))


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("counts", "x", ["field 'counts'"]),
        ("counts", {"python": {"train": "many"}}, ["field 'counts.python'", "'many'"]),
        ("counts", {"klingon": {"train": 3}}, ["field 'counts'", "klingon"]),
        ("files", [1, 2], ["field 'files'", "got list"]),
        ("files", {"python/train.jsonl": {"sha256": 5}}, ["field 'files'"]),
    ],
)
@pytest.mark.parametrize("command", ["stats", "verify"])
def test_a_manifest_of_the_wrong_types_is_one_line(tmp_path, capsys, field, value, words, command):
    assert prepare(write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out") == 0
    path = tmp_path / "out" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    capsys.readouterr()
    assert cli_main([command, str(tmp_path / "out")]) == 2
    one_line_error(capsys, "manifest.json", *words)


def test_two_builds_into_one_out_the_second_is_refused(tmp_path):
    out = tmp_path / "out"
    with PreparedWriter(out):
        with pytest.raises(UserError, match="another process is writing"), PreparedWriter(out):
            pass
    assert not (tmp_path / ".out.lock").exists()  # the lock beside it is removed again
    with PreparedWriter(out):  # and free for the next build
        pass


def test_a_lock_file_removed_by_its_holder_is_not_taken_as_held(tmp_path):
    """A second process that opened the lock file just before its holder removed it must not
    believe it holds the lock while a third locks the new file."""
    first = DirectoryLock(tmp_path / "d", "thing", beside=True)
    with first:
        handle = open(first.path)  # opened before the holder removes the file
    second = DirectoryLock(tmp_path / "d", "thing", beside=True)
    with second:
        assert second._still_linked(second._handle)
        assert not second._still_linked(handle)
    handle.close()


# --- training configs and runs --------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml_text, words",
    [
        ("train:\n  epochs: .inf\n", ["'train.epochs'", "expected int"]),
        ("train:\n  seed: 1.0e+400\n", ["'train.seed'", "expected int"]),
        ("model:\n  encoder: nbow\n  nbow_dim: 100000000\n", ["nbow_dim must be at most"]),
        ("model:\n  scale: 1.0e+39\n", ["model.scale must be a finite number"]),
    ],
)
def test_configs_out_of_range_are_one_line_and_leave_no_run(
    tiny_data, tmp_path, capsys, yaml_text, words
):
    (tmp_path / "c.yaml").write_text(yaml_text)
    out = tmp_path / "run"
    assert cli_main([*train_args(tiny_data, out), "--config", str(tmp_path / "c.yaml")]) == 2
    one_line_error(capsys, *words)
    assert not out.exists()


def test_a_non_finite_loss_stops_the_run_naming_the_step(tiny_data, tmp_path, capsys, monkeypatch):
    import codesearch.train as train_module

    real = train_module.info_nce
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * math.nan if calls["n"] == 3 else loss

    monkeypatch.setattr(train_module, "info_nce", poisoned)
    out = tmp_path / "run"
    assert cli_main(train_args(tiny_data, out, "--save-every", "1")) == 2
    err = capsys.readouterr().err
    assert "the loss of step 3 is nan" in err and "Traceback" not in err, err
    state = json.loads((out / "python" / "checkpoint" / "trainer_state.json").read_text())
    assert state["trainer"]["global_step"] == 2  # the poisoned step saved nothing


def test_a_train_that_failed_before_training_can_be_retried(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    bad = ["--model", str(tmp_path / "no-such-model"), "--encoder", "transformer"]
    assert cli_main([*train_args(tiny_data, out), *bad]) == 2
    assert (out / "config.yaml").is_file()  # it got as far as recording the run
    assert cli_main([*train_args(tiny_data, out), "--max-steps", "2"]) == 0
    assert (out / "run.json").is_file()
    capsys.readouterr()
    assert cli_main([*train_args(tiny_data, out), "--max-steps", "2"]) == 2  # a trained run stays
    one_line_error(capsys, "already holds a run")


def test_resuming_drops_metric_rows_written_after_the_checkpoint(tmp_path):
    """A checkpoint that failed (a full disk) after rows were logged: the resumed run logs
    those steps again, so the rows past the checkpoint it resumes from are removed once."""
    from codesearch.run_dir import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl", enabled=True)
    for step in range(1, 7):
        log.write(task="python", epoch=0, step=step, loss=1.0)
    log.write(task="python", event="epoch", epoch=0, step=6, valid_mrr=0.5)
    with open(log.path, "a") as handle:
        handle.write('{"torn": ')  # a crash in the middle of a row
    assert log.keep_until(step=4, epoch=0) == 4
    rows = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    log.write(task="python", event="epoch", epoch=0, step=6, valid_mrr=0.5)
    assert log.keep_until(step=6, epoch=1) == 0  # a finished epoch's row is kept


def test_evaluate_lengths_are_checked(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(train_args(tiny_data, out, "--max-steps", "1")) == 0
    capsys.readouterr()
    args = ["evaluate", "--model", str(out), "--data", str(tiny_data), "--languages", "python"]
    assert cli_main([*args, "--max-code-length", "0", "--quiet"]) == 2
    one_line_error(capsys, "max_code_length must be a positive integer")


def test_a_transformer_refuses_lengths_beyond_its_positions(tmp_path):
    from model_helpers import tiny_bert_dir

    from codesearch.config import ModelConfig
    from codesearch.model import DualEncoder

    path = tiny_bert_dir(tmp_path)
    with pytest.raises(UserError, match="longer than the .* positions"):
        DualEncoder(ModelConfig(model=str(path), max_code_length=100_000))


def test_a_saved_model_with_a_bad_codesearch_model_json_is_one_line(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_main(train_args(tiny_data, out, "--max-steps", "1")) == 0
    meta_path = out / "python" / "best" / "codesearch_model.json"
    meta = json.loads(meta_path.read_text())
    args = ["evaluate", "--model", str(out), "--data", str(tiny_data), "--quiet"]
    for broken, words in (
        ({**meta, "config": {**meta["config"], "encoder": "weird"}}, ["model.encoder"]),
        ({k: v for k, v in meta.items() if k != "vocab_size"}, ["'vocab_size'"]),
    ):
        meta_path.write_text(json.dumps(broken))
        capsys.readouterr()
        assert cli_main([*args, "--languages", "python"]) == 2
        one_line_error(capsys, "codesearch_model.json", *words)


# --- export ----------------------------------------------------------------------------------


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A run directory as export reads it, without training (the files export opens)."""
    from model_helpers import tiny_bert_dir
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from codesearch.config import RunConfig

    run = tmp_path / "run"
    encoder = Transformer(str(tiny_bert_dir(tmp_path)), max_seq_length=16)
    model = SentenceTransformer(modules=[encoder, Pooling(encoder.get_embedding_dimension())])
    model.save(str(run / "python" / "best"))
    (run / "run.json").write_text(json.dumps({"models": {"python": "python/best"}}))
    (run / "run_info.json").write_text(json.dumps({"seed": 0, "packages": {}}))
    import yaml

    (run / "config.yaml").write_text(yaml.safe_dump(RunConfig().to_dict()))
    return run


def test_export_writes_from_a_well_formed_run(fake_run, tmp_path):
    from codesearch.export import export_run

    out = export_run(fake_run, tmp_path / "exp")
    assert "codesearch random python" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda run: (run / "run.json").write_text('{"models": 3}'), ["run.json", "'models'"]),
        (lambda run: (run / "config.yaml").write_text("train: [\n"), ["config.yaml"]),
        (
            lambda run: (run / "config.yaml").write_text("train: {epochs: -1}\n"),
            ["config.yaml", "train.epochs"],
        ),
        (
            lambda run: (run / "results.json").write_text("[1, 2]"),
            ["results.json", "expected a JSON object"],
        ),
        (
            lambda run: (run / "results.json").write_text('{"protocol": "codebase"}'),
            ["results.json", "not a `codesearch evaluate --out` file"],
        ),
        (
            lambda run: (run / "results.json").write_text(
                json.dumps({"languages": {"python": {"mrr": "high"}}, "average": {}})
            ),
            ["results.json", "'python' has no number 'mrr'"],
        ),
    ],
)
def test_export_of_damaged_inputs_is_one_line(fake_run, tmp_path, capsys, damage, words):
    damage(fake_run)
    results = ["--results", str(fake_run / "results.json")]
    args = ["export", str(fake_run), "--out", str(tmp_path / "exp")]
    assert cli_main([*args, *(results if (fake_run / "results.json").exists() else [])]) == 2
    one_line_error(capsys, *words)
    assert not (tmp_path / "exp").exists()


def test_export_to_a_dangling_link_is_one_line_and_copies_nothing(fake_run, tmp_path, capsys):
    link = tmp_path / "exp"
    link.symlink_to(tmp_path / "nowhere")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli_main(["export", str(fake_run), "--out", str(link)]) == 2
    one_line_error(capsys, "a link to nothing")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_saved_towers_drop_auto_map_of_a_builtin_class(tmp_path):
    from model_helpers import tiny_bert_dir

    from codesearch.config import ModelConfig
    from codesearch.model import DualEncoder

    path = tiny_bert_dir(tmp_path)
    config = json.loads((path / "config.json").read_text())
    config.update(auto_map={"AutoModel": "evil.Model"}, trust_remote_code=True)
    (path / "config.json").write_text(json.dumps(config))
    config = ModelConfig(model=str(path), max_query_length=32, max_code_length=32)
    DualEncoder(config).save_pretrained(tmp_path / "saved")
    saved = [json.loads(p.read_text()) for p in (tmp_path / "saved").rglob("config.json")]
    assert saved and not any({"auto_map", "trust_remote_code"} & set(c) for c in saved)


# --- profiles and the sentence-transformers sampler -----------------------------------------


@pytest.mark.parametrize("where", ["name", "group"])
def test_profile_names_cannot_leave_runs_and_results(tiny_data, tmp_path, capsys, where):
    from conftest import write_tiny_profile

    path = Path(write_tiny_profile(tmp_path / "p.yaml", tiny_data))
    text = path.read_text()
    text = (
        text.replace("name: tiny", "name: ../../escape")
        if where == "name"
        else text.replace("  nbow:", "  ../../g:")
    )
    path.write_text(text)
    assert cli_main(["reproduce", str(path), "--check"]) == 2
    one_line_error(capsys, "may hold only letters")


def test_a_damaged_grid_json_costs_only_its_timings(tmp_path, capsys):
    from codesearch.reproduce import previous_cells

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"cells": [{"id": "a", "train_seconds": 3}, "junk"]}))
    assert previous_cells(good) == [{"id": "a", "train_seconds": 3}]
    for text in ('{"cells": [', "[1, 2]", '{"cells": 5}'):
        (tmp_path / "grid.json").write_text(text)
        assert previous_cells(tmp_path / "grid.json") == []
        assert "grid.json: unreadable" in capsys.readouterr().err


def test_tbs_batch_sampler_names_a_column_that_is_not_text():
    datasets = pytest.importorskip("datasets")
    from codesearch.st_batch_sampler import TBSBatchSampler

    class Model:
        device = torch.device("cpu")

    data = datasets.Dataset.from_dict({"anchor": [1, 2, 3, 4], "positive": ["a", "b", "c", "d"]})
    with pytest.raises(ValueError, match="column 'anchor'.* int values"):
        TBSBatchSampler(data, 2, False, model=Model())


def test_users_files_beside_a_build_are_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    with PreparedWriter(tmp_path / "out"):
        pass
    assert snapshot(tmp_path) == before
