"""`codesearch prepare jsonl`: a user's own pairs become a prepared directory that trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codesearch.cli import main as cli_main
from codesearch.data.prepared import load_manifest, load_records, verify_prepared
from codesearch.data.readers.user_jsonl import prepare_jsonl
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


@pytest.mark.slow
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


@pytest.mark.parametrize(
    "fractions", [["nan", "0.5", "0.5"], ["inf", "0", "0"], ["1", "-0.5", "0.5"], ["1", "1", "1"]]
)
def test_fractions_that_are_not_three_finite_shares_are_one_line_exit_2(
    tmp_path, capsys, fractions
):
    src = write_pairs(tmp_path / "pairs.jsonl")
    args = ["prepare", "jsonl", "--src", str(src), "--out", str(tmp_path / "o")]
    assert cli_main([*args, "--language", "python", "--fractions", *fractions]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fractions must be 3 finite numbers" in err
    assert not (tmp_path / "o").exists()


def test_records_sharing_one_id_are_refused_when_written_and_when_read(
    tmp_path, capsys, record_factory
):
    """Twenty full-schema records with one id would pass as twenty queries of one id."""
    src = tmp_path / "same.jsonl"
    lines = [{**record_factory(i, split="test").to_dict(), "id": "python-0"} for i in range(20)]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli_main(["prepare", "jsonl", "--src", str(src), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "id 'python-0' again" in err and "field 'id'" in err
    assert not (tmp_path / "o").exists()
    # a directory edited afterwards: the loaders refuse it too
    prepare_jsonl(write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "d", language="python")
    path = tmp_path / "d" / "python" / "train.jsonl"
    rows = path.read_text().splitlines()
    twin = {**json.loads(rows[1]), "id": json.loads(rows[0])["id"]}
    path.write_text("\n".join([rows[0], json.dumps(twin), *rows[2:]]) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl:2: field 'id': id '.*' again"):
        load_records(tmp_path / "d", "python", "train")


def test_special_files_in_a_source_directory_are_skipped_and_counted(tmp_path, capsys):
    """A FIFO, /dev/zero and /proc/self/pagemap behind .jsonl names: skipped at once (reading
    any of them would block or never end), the real file still read."""
    import os
    import time

    src = tmp_path / "src"
    src.mkdir()
    write_pairs(src / "real.jsonl")
    os.mkfifo(src / "fifo.jsonl")
    (src / "zero.jsonl").symlink_to("/dev/zero")
    (src / "pagemap.jsonl").symlink_to("/proc/self/pagemap")
    start = time.perf_counter()
    out = tmp_path / "o"
    assert (
        cli_main(["prepare", "jsonl", "--src", str(src), "--out", str(out), "--language", "python"])
        == 0
    )
    assert time.perf_counter() - start < 30
    bad = load_manifest(out)["bad_lines"]
    assert sum(n for reason, n in bad.items() if reason.startswith("file skipped")) == 3
    assert sum(len(records) for records in splits_of(out).values()) == 120
    capsys.readouterr()
    assert cli_main(["prepare", "jsonl", "--src", str(src / "fifo.jsonl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file" in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("../../../../etc/passwd", "lists '../../../../etc/passwd', which is not"),
        ("/etc/passwd", "lists '/etc/passwd', which is not"),
        ("python/notes.txt", "lists 'python/notes.txt', which is not"),
    ],
)
def test_verify_vouches_only_for_the_files_the_loaders_read(tmp_path, capsys, edit, message):
    """A manifest that names a file outside the directory (with its real sha256) no longer
    passes, and nothing a loader reads may be left unlisted."""
    from codesearch.data.prepared import data_hash, file_digest

    out = tmp_path / "d"
    prepare_jsonl(write_pairs(tmp_path / "pairs.jsonl"), out, language="python")
    manifest = json.loads((out / "manifest.json").read_text())
    target = (out / edit) if not edit.startswith("/") else Path(edit)
    sha = file_digest(target) if target.is_file() else "0" * 64
    manifest["files"] = {edit: {"sha256": sha, "records": 1}}
    manifest["data_hash"] = data_hash(manifest["files"])
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert cli_main(["verify", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_verify_refuses_a_listed_file_that_links_to_proc(tmp_path, capsys):
    import time

    out = tmp_path / "d"
    prepare_jsonl(write_pairs(tmp_path / "pairs.jsonl"), out, language="python")
    train = out / "python" / "train.jsonl"
    train.unlink()
    train.symlink_to("/proc/self/pagemap")
    start = time.perf_counter()
    assert cli_main(["verify", str(out)]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pseudo filesystem /proc" in err
