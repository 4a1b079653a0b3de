"""The program removes only what it can prove it created (codesearch.outputs): a user's
directory at --out, or a user's folder on a name the program might use for a temporary build,
is left byte-identical; a refusal is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_prepare_jsonl import write_pairs

from codesearch.cli import main as cli_main
from codesearch.data.prepared import load_records, write_json_atomic
from codesearch.outputs import replace_dir, staging_dir, temporary_file_beside


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (and ``root`` itself) with a file's bytes (None: a folder)."""
    return {
        p.relative_to(root.parent).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in [root, *sorted(root.rglob("*"))]
    }


def users_folder(path: Path) -> Path:
    (path / "notes").mkdir(parents=True)
    (path / "thesis.tex").write_text("two years of work\n")
    (path / "notes" / "ideas.md").write_text("- try TBS on proofs\n")
    return path


def prepare(src: Path, out: Path) -> int:
    return cli_main(
        ["prepare", "jsonl", "--src", str(src), "--out", str(out), "--language", "python"]
    )


def one_line_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_prepare_into_a_users_directory_is_refused_and_touches_nothing(tmp_path, capsys):
    src = write_pairs(tmp_path / "pairs.jsonl")
    victim = users_folder(tmp_path / "victim")
    before = snapshot(victim)
    assert prepare(src, victim) == 2
    one_line_error(capsys, "victim", "holds notes", "not a prepared data directory")
    assert snapshot(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "victim"]


def test_a_users_folder_on_the_old_temporary_names_is_never_removed(tmp_path):
    """v2.partial / v2.old were the fixed build names; the build now takes a fresh name."""
    src = write_pairs(tmp_path / "pairs.jsonl")
    kept = [users_folder(tmp_path / name) for name in ("v2.partial", "v2.old", "v2.tmp")]
    before = [snapshot(k) for k in kept]
    assert prepare(src, tmp_path / "v2") == 0
    assert prepare(src, tmp_path / "v2") == 0  # a rebuild replaces codesearch's own directory
    assert [snapshot(k) for k in kept] == before
    assert load_records(tmp_path / "v2", "python", "train")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".v2.")]
    assert leftovers == []


def test_a_prepared_directory_with_a_users_file_in_it_is_not_replaced(tmp_path, capsys):
    src = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "data"
    assert prepare(src, out) == 0
    (out / "python" / "my-annotations.txt").write_text("keep me\n")
    before = snapshot(out)
    capsys.readouterr()
    assert prepare(src, out) == 2
    one_line_error(capsys, "python/my-annotations.txt")
    assert snapshot(out) == before


def test_prepare_out_dot_is_one_line(tmp_path, capsys, monkeypatch):
    src = write_pairs(tmp_path / "pairs.jsonl")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert prepare(src, Path(".")) == 2
    one_line_error(capsys, "pairs.jsonl")
    assert snapshot(tmp_path) == before


def test_an_interrupted_build_removes_only_its_own_staging(tmp_path):
    victim = users_folder(tmp_path / "out.partial")
    before = snapshot(victim)
    staging = staging_dir(tmp_path / "out")
    assert staging.parent == tmp_path and staging.name.startswith(".out.")
    assert staging != victim and not any(staging.iterdir())
    (staging / "x").write_text("built")
    replace_dir(staging, tmp_path / "out")
    assert (tmp_path / "out" / "x").read_text() == "built"
    assert snapshot(victim) == before


def test_atomic_writes_never_touch_a_users_tmp_file(tmp_path):
    mine = tmp_path / "results.json.tmp"
    mine.write_text("the user's\n")
    write_json_atomic(tmp_path / "results.json", {"mrr": 0.5})
    assert json.loads((tmp_path / "results.json").read_text()) == {"mrr": 0.5}
    assert mine.read_text() == "the user's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.json.tmp"]
    tmp = temporary_file_beside(tmp_path / "results.json")
    assert tmp.is_file() and tmp != mine and tmp.stat().st_size == 0


@pytest.mark.parametrize("resume", [False, True])
def test_train_into_a_users_directory_is_refused_and_touches_nothing(
    tiny_data, tmp_path, capsys, resume
):
    victim = users_folder(tmp_path / "victim")
    (victim / "config.yaml").write_text("my: own config\n")  # not a run: no run_info.json
    before = snapshot(victim)
    args = ["train", "--data", str(tiny_data), "--languages", "python", "--encoder", "nbow"]
    assert cli_main([*args, "--out", str(victim), *(["--resume"] if resume else [])]) == 2
    one_line_error(capsys, "victim", "holds no codesearch run")
    assert snapshot(victim) == before  # not even a .lock
