"""`codesearch prepare jsonl`: a user's own pairs become a prepared directory that trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesearch.cli import main as cli_main
from codesearch.data.prepared import load_manifest, load_records, verify_prepared
from codesearch.data.readers.pairs import prepare_jsonl
from codesearch.errors import DataError

WORDS = "parse read write sort merge split join count find load save open close send".split()


def write_pairs(path: Path, n: int = 120, repos: int | None = 12, extra: list[str] = ()) -> Path:
    """Hand-written pairs: query i names the verb and the number the code uses."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            verb = WORDS[i % len(WORDS)]
            line = {
                "query": f"{verb} the items and add {i} to each result",
                "code": f"def {verb}_{i}(items):\n    out = {verb}(items)\n    return [x + {i} "
                "for x in out]\n",
            }
            if repos:
                line["repo"] = f"org/repo{i % repos}"
            handle.write(json.dumps(line) + "\n")
        for text in extra:
            handle.write(text + "\n")
    return path


def splits_of(out: Path, language: str = "python") -> dict[str, list]:
    return {s: load_records(out, language, s) for s in ("train", "valid", "test")}


def test_repos_are_never_in_two_splits_and_ids_are_stable(tmp_path):
    src = write_pairs(tmp_path / "pairs.jsonl")
    manifest = prepare_jsonl(src, tmp_path / "a", language="python")
    again = prepare_jsonl(src, tmp_path / "b", language="python")
    assert manifest["data_hash"] == again["data_hash"]  # same file, same directory
    verify_prepared(tmp_path / "a")
    by_split = splits_of(tmp_path / "a")
    assert sum(len(r) for r in by_split.values()) == 120
    repos = {s: {r.repo for r in records} for s, records in by_split.items()}
    assert not (repos["train"] & repos["valid"] or repos["train"] & repos["test"])
    assert not repos["valid"] & repos["test"]
    assert len(by_split["train"]) > len(by_split["valid"]) > 0 and len(by_split["test"]) > 0
    ids = [r.id for records in by_split.values() for r in records]
    assert len(set(ids)) == len(ids) and all(i.startswith("python-") for i in ids)


def test_without_repo_the_split_is_a_seeded_hash(tmp_path):
    src = write_pairs(tmp_path / "pairs.jsonl", n=300, repos=None)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        prepare_jsonl(src, tmp_path / name, "python", seed=seed)
    first, same, other = (splits_of(tmp_path / name) for name in "abc")
    assert [r.id for r in first["test"]] == [r.id for r in same["test"]]
    assert [r.id for r in first["test"]] != [r.id for r in other["test"]]
    assert 200 < len(first["train"]) < 280  # about 80 %


def test_full_schema_lines_are_kept_and_languages_come_from_the_line(tmp_path, record_factory):
    record = record_factory(1, language="go", split="test").to_dict()
    src = tmp_path / "mixed.jsonl"
    src.write_text(
        json.dumps(record)
        + "\n"
        + json.dumps({"query": "add two numbers", "code": "func add() {}", "language": "Go"})
        + "\n"
    )
    prepare_jsonl(src, tmp_path / "out")
    assert load_records(tmp_path / "out", "go", "test")[0].id == record["id"]
    total = sum(load_manifest(tmp_path / "out")["counts"]["go"].values())
    assert total == 2


def test_bad_lines_are_counted_or_stop_the_build_with_strict(tmp_path, capsys):
    extra = [
        "not json",
        json.dumps({"query": 3, "code": "x"}),
        json.dumps({"code": "x"}),
        json.dumps({"query": "q", "code": "c", "language": "cobol"}),
        "[1, 2]",
    ]
    src = write_pairs(tmp_path / "pairs.jsonl", n=60, extra=extra)
    manifest = prepare_jsonl(src, tmp_path / "out", language="python")
    assert sum(manifest["counts"]["python"].values()) == 60
    assert sum(manifest["bad_lines"].values()) == 5
    with pytest.raises(DataError, match=r"pairs.jsonl:61: malformed JSON"):
        prepare_jsonl(src, tmp_path / "strict", language="python", strict=True)
    assert not (tmp_path / "strict").exists()  # nothing half-written
    no_language = write_pairs(tmp_path / "nolang.jsonl", n=3)
    with pytest.raises(DataError, match=r"nolang.jsonl:1: field 'language': missing"):
        prepare_jsonl(no_language, tmp_path / "nl", strict=True)
    code = cli_main(
        [
            "prepare",
            "jsonl",
            "--src",
            str(src),
            "--out",
            str(tmp_path / "cli"),
            "--language",
            "python",
            "--strict",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and err.startswith("codesearch: error:") and "pairs.jsonl:61" in err


def test_filters_are_optional_and_counted(tmp_path):
    src = write_pairs(
        tmp_path / "pairs.jsonl",
        n=30,
        extra=[
            json.dumps({"query": "x", "code": "def f():\n    a = 1\n    b = 2\n    return a + b\n"})
        ],
    )
    kept = prepare_jsonl(src, tmp_path / "all", language="python")
    assert sum(kept["counts"]["python"].values()) == 31
    filtered = prepare_jsonl(src, tmp_path / "f", language="python", apply_filters=True)
    assert sum(filtered["counts"]["python"].values()) == 30
    assert sum(filtered["dropped"]["python"].values()) == 1


def test_hand_written_pairs_train_and_evaluate(tmp_path, capsys):
    src = write_pairs(tmp_path / "pairs.jsonl", n=160, repos=16)
    data, run = tmp_path / "data", tmp_path / "run"
    assert (
        cli_main(
            ["prepare", "jsonl", "--src", str(src), "--out", str(data), "--language", "python"]
        )
        == 0
    )
    assert (
        cli_main(
            [
                "train",
                "--data",
                str(data),
                "--languages",
                "python",
                "--encoder",
                "nbow",
                "--epochs",
                "3",
                "--batch-size",
                "16",
                "--lr",
                "5e-3",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    out = tmp_path / "eval.json"
    assert (
        cli_main(
            ["evaluate", "--model", str(run), "--data", str(data), "--out", str(out), "--quiet"]
        )
        == 0
    )
    result = json.loads(out.read_text())["languages"]["python"]
    assert 0 < result["mrr"] <= 1 and result["n_queries"] > 0
