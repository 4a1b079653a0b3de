"""The record schema, the located jsonl reader, and prepared directories."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from codesearch.cli import main
from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.prepared import (
    PreparedWriter,
    file_digest,
    format_stats,
    load_manifest,
    load_records,
)
from codesearch.data.schema import normalize_language, parse_languages, record_from_dict
from codesearch.errors import DataError, UserError


def write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def good_line(record) -> bytes:
    return json.dumps(record.to_dict()).encode()


def test_record_from_dict_names_missing_and_mistyped_fields(record_factory):
    obj = record_factory(1).to_dict()
    assert record_from_dict(obj) == record_factory(1)
    del obj["query"]
    with pytest.raises(DataError, match=r"f\.jsonl:7: field 'query': missing"):
        record_from_dict(obj, "f.jsonl", 7)
    obj = {**record_factory(1).to_dict(), "code": 3}
    with pytest.raises(DataError, match="field 'code': expected a string, got int"):
        record_from_dict(obj, "f.jsonl", 1)
    with pytest.raises(DataError, match="field 'split'"):
        record_from_dict({**record_factory(1).to_dict(), "split": "dev"})
    with pytest.raises(DataError, match="field 'language': unknown language 'cobol'"):
        record_from_dict({**record_factory(1).to_dict(), "language": "cobol"})
    with pytest.raises(DataError, match="expected a JSON object, got list"):
        record_from_dict([1, 2])


def test_only_codebase_candidates_may_lack_a_query(record_factory):
    blank = {**record_factory(1).to_dict(), "query": " "}
    with pytest.raises(DataError, match="field 'query': empty"):
        record_from_dict(blank)
    assert record_from_dict({**blank, "split": "codebase"}).query == " "


def test_language_names():
    assert normalize_language("JS") == "javascript"
    assert parse_languages("python, go,python") == ["python", "go"]
    assert parse_languages(None) == ["ruby", "javascript", "go", "python", "java", "php"]
    with pytest.raises(UserError, match="unknown language 'cobol'"):
        parse_languages(["cobol"])


def test_read_jsonl_lenient_skips_and_counts_bad_lines(tmp_path, record_factory, capsys):
    path = tmp_path / "train.jsonl"
    write_lines(
        path,
        [
            good_line(record_factory(0)),
            b"{not json",
            b"\xff\xfe bad bytes",
            json.dumps({"id": "x"}).encode(),
            b"",
            good_line(record_factory(1)),
        ],
    )
    dropped: Counter = Counter()
    records = list(read_jsonl(path, record_from_dict, dropped=dropped))
    assert [r.func_name for r in records] == ["f0", "f1"]
    assert dropped == Counter(
        {"malformed JSON": 1, "bytes are not valid UTF-8": 1, "field:language": 1}
    )
    err = capsys.readouterr().err
    assert f"{path}:2: malformed JSON" in err and f"{path}:3: bytes are not valid UTF-8" in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", r":2: malformed JSON"),
        (b"\xff\xfe", r":2: bytes are not valid UTF-8"),
        (b'{"id": 1}', r":2: field 'id': expected a string, got int"),
    ],
)
def test_read_jsonl_strict_stops_at_first_bad_line(tmp_path, record_factory, line, message):
    path = tmp_path / "train.jsonl"
    write_lines(path, [good_line(record_factory(0)), line, good_line(record_factory(1))])
    with pytest.raises(DataError, match=message):
        list(read_jsonl(path, record_from_dict, strict=True))


def test_read_jsonl_gzip_and_missing_and_corrupt(tmp_path, record_factory):
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(good_line(record_factory(3)) + b"\n")
    assert [r.func_name for r in read_jsonl(path, record_from_dict)] == ["f3"]
    with pytest.raises(DataError, match="no such file"):
        list(read_jsonl(tmp_path / "missing.jsonl", record_from_dict))
    broken = tmp_path / "b.jsonl.gz"
    broken.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="b.jsonl.gz: cannot read"):
        list(read_jsonl(broken, record_from_dict))


def write_dir(out, records_by_split, **fields):
    with PreparedWriter(out) as writer:
        for split, records in records_by_split.items():
            writer.write_split("python", split, records)
        return writer.finish(builder="test", **fields)


def test_prepared_round_trip_and_manifest(tmp_path, record_factory):
    out = tmp_path / "data"
    train = [record_factory(i) for i in range(5)]
    test = [record_factory(i, split="test") for i in range(5, 7)]
    manifest = write_dir(out, {"train": train, "valid": [], "test": test}, config={"a": 1})
    assert load_records(out, "python", "train") == train
    assert load_records(out, "python", "valid") == []
    assert manifest == load_manifest(out)
    assert manifest["counts"] == {"python": {"train": 5, "valid": 0, "test": 2}}
    assert manifest["files"]["python/test.jsonl"] == {
        "sha256": file_digest(out / "python" / "test.jsonl"),
        "records": 2,
    }
    assert manifest["builder"] == "test" and manifest["config"] == {"a": 1}
    table = format_stats(out)
    assert "| python | 5 | 0 | 2 |" in table and "| **total** | 5 | 0 | 2 |" in table
    assert not (tmp_path / "data.partial").exists()


def test_interrupted_build_leaves_previous_directory_intact(tmp_path, record_factory):
    out = tmp_path / "data"
    write_dir(out, {"train": [record_factory(0)]})
    with pytest.raises(RuntimeError), PreparedWriter(out) as writer:
        writer.write_split("python", "train", [record_factory(1), record_factory(2)])
        raise RuntimeError("killed half way")
    assert not (tmp_path / "data.partial").exists()
    assert [r.func_name for r in load_records(out, "python", "train")] == ["f0"]


def test_writer_rejects_record_in_wrong_file(tmp_path, record_factory):
    with (
        pytest.raises(ValueError, match="written to python/test"),
        PreparedWriter(tmp_path / "d") as writer,
    ):
        writer.write_split("python", "test", [record_factory(0)])
    with (
        pytest.raises(UserError, match="no records to write"),
        PreparedWriter(tmp_path / "d") as writer,
    ):
        writer.finish()


def test_load_errors_name_the_problem(tmp_path, record_factory):
    with pytest.raises(UserError, match="no such data directory"):
        load_manifest(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(UserError, match=r"not a complete prepared data directory"):
        load_manifest(tmp_path / "half")
    (tmp_path / "half" / "manifest.json").write_text("{")
    with pytest.raises(DataError, match="manifest.json: not valid JSON"):
        load_manifest(tmp_path / "half")
    out = tmp_path / "data"
    write_dir(out, {"train": [record_factory(0)]})
    with pytest.raises(UserError, match="has no language 'go' \\(it has: python\\)"):
        load_records(out, "go", "train")
    with pytest.raises(UserError, match="python has no split 'codebase'"):
        load_records(out, "python", "codebase")


def test_cli_stats_and_one_line_errors(tmp_path, record_factory, capsys):
    out = tmp_path / "data"
    write_dir(out, {"train": [record_factory(0)], "valid": [], "test": []})
    assert main(["stats", str(out)]) == 0
    assert "| python | 1 | 0 | 0 |" in capsys.readouterr().out
    assert main(["stats", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such data directory" in err and "Traceback" not in err


def test_an_overlong_record_is_skipped_unread_or_stops_strict(
    tmp_path, record_factory, monkeypatch
):
    from codesearch.data import jsonl_reader

    monkeypatch.setattr(jsonl_reader, "MAX_RECORD_BYTES", 1000)
    path = tmp_path / "x.jsonl"
    good = json.dumps(record_factory(1).to_dict())
    huge = json.dumps(record_factory(2, code="x" * 5000).to_dict())
    path.write_text("\n".join([good, huge, good]) + "\n")
    dropped = Counter()
    assert len(list(read_jsonl(path, record_from_dict, dropped=dropped))) == 2
    assert dropped == {"record too large": 1}
    with pytest.raises(DataError, match=r"x.jsonl:2: record too large \(over 0 MiB\)"):
        list(read_jsonl(path, record_from_dict, strict=True))


def test_files_edited_after_the_build_are_found(tmp_path, record_factory, capsys):
    from codesearch.data.prepared import verify_prepared

    out = tmp_path / "data"
    write_dir(out, {"train": [record_factory(i) for i in range(5)], "valid": []})
    assert verify_prepared(out) == {"python/train.jsonl": 5, "python/valid.jsonl": 0}
    assert main(["verify", str(out)]) == 0
    path = out / "python" / "train.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4]) + "\n")  # one record removed
    with pytest.raises(DataError, match="holds 4 records but the manifest says 5"):
        load_records(out, "python", "train")
    capsys.readouterr()
    assert main(["verify", str(out)]) == 2
    err = capsys.readouterr().err
    assert "train.jsonl: holds 4 records but the manifest says 5" in err
    assert err.count("\n") == 1
    path.write_text("\n".join([lines[0].replace("table", "tablE"), *lines[1:]]) + "\n")
    with pytest.raises(DataError, match="sha256 differs from the manifest"):
        verify_prepared(out)


def test_an_os_error_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    import errno

    from codesearch.data import prepared

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(prepared, "format_stats", disk_full)
    assert main(["stats", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"codesearch: error: {tmp_path / 'x'}: No space left on device\n"
