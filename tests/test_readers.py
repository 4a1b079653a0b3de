"""Readers for real CodeSearchNet data: the hub schema, the cleaned CodeXGLUE files, the original
release, and the fetch script (its download replaced by local archives)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers import load_script

from codesearch.cli import main
from codesearch.data.prepared import load_manifest, load_records
from codesearch.data.readers import hub
from codesearch.data.readers.codexglue import prepare_codexglue
from codesearch.data.readers.csn import prepare_csn, strip_docstring
from codesearch.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"
CSN_RAW = FIXTURES / "csn_raw"
CSN_HUB = FIXTURES / "csn_hub"
CODEXGLUE = FIXTURES / "codexglue"
ROOT = Path(__file__).resolve().parents[1]


def run_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting exit 2; return its one-line error message."""
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("codesearch: error: ")
    return lines[0]


def all_records(out: Path) -> dict[tuple[str, str], list]:
    counts = load_manifest(out)["counts"]
    return {
        (lang, split): load_records(out, lang, split)
        for lang, splits in counts.items()
        for split in splits
    }


def read_gz_lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def write_gz(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(data)


def csn_copy(tmp_path: Path, languages=("python",)) -> Path:
    src = tmp_path / "csn"
    for lang in languages:
        shutil.copytree(CSN_RAW / lang, src / lang)
    return src


def python_train(src: Path) -> Path:
    return src / "python/final/jsonl/train/python_train_0.jsonl.gz"


# ---------------------------------------------------------------- csn (original release)


def test_csn_reads_release_layout(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare", "csn", "--src", str(CSN_RAW), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = load_manifest(out)
    assert manifest["builder"] == "csn"
    assert set(manifest["counts"]) == {"python", "go", "javascript"}
    assert manifest["counts"]["go"] == {"train": 3, "valid": 1, "test": 1}
    assert manifest["config"]["filter_queries"] is True
    assert len(manifest["sources"]) == 9
    records = all_records(out)
    ids = [r.id for rs in records.values() for r in rs]
    assert len(ids) == len(set(ids))
    by_name = {r.func_name: r for rs in records.values() for r in rs}
    # python: the docstring is cut out of the code, the query is its first paragraph
    flask = by_name["get_root_path"]
    assert flask.query.startswith("Find the root path of a package")
    assert "Not to be confused" not in flask.query
    assert '"""' not in flask.code and "Find the root path" not in flask.code
    assert flask.code.startswith("def get_root_path(import_name):")
    assert "return os.getcwd()" in flask.code
    assert flask.repo == "pallets/flask" and flask.path == "src/flask/helpers.py"
    assert flask.url.startswith("https://github.com/pallets/flask/blob/")
    # go: the doc comment was never inside the code
    assert by_name["Cache.Add"].code.startswith("func (c *Cache) Add(")
    assert by_name["Cache.Add"].split == "train"
    # "TODO" is not a query: dropped and counted by reason
    assert "_todo" not in by_name
    assert "ask_path_exists" not in by_name  # its summary is a url
    assert manifest["dropped"] == {"python": {"query_has_url": 1, "query_too_short": 1}}


def test_csn_no_filter_keeps_every_nonempty_query(tmp_path):
    manifest = prepare_csn(CSN_RAW, tmp_path / "out", languages=["python"], filter_queries=False)
    names = {r.func_name for r in load_records(tmp_path / "out", "python", "train")}
    assert "_todo" in names
    assert manifest["dropped"] == {}
    assert manifest["counts"]["python"] == {"train": 4, "valid": 1, "test": 3}


def test_csn_flat_directory_and_language_choice(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in CSN_RAW.rglob("*.jsonl.gz"):
        shutil.copy(path, flat / path.name)
    manifest = prepare_csn(flat, tmp_path / "out", languages=["python", "js"])
    assert set(manifest["counts"]) == {"python", "javascript"}
    nested = prepare_csn(CSN_RAW, tmp_path / "out2", languages=["python", "javascript"])
    assert manifest["counts"] == nested["counts"]
    assert manifest["files"] == nested["files"]  # same records, same bytes


def test_csn_flat_directory_errors(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(python_train(CSN_RAW), flat)
    msg = run_error(
        capsys,
        ["prepare", "csn", "--src", str(flat), "--out", str(tmp_path / "o"), "--languages", "go"],
    )
    assert "no files for go (it has: python)" in msg
    write_gz(flat / "python_train.jsonl.gz", b"{}\n")
    msg = run_error(capsys, ["prepare", "csn", "--src", str(flat), "--out", str(tmp_path / "o")])
    assert "python_train.jsonl.gz: cannot tell language and split" in msg


def test_csn_file_outside_a_split_directory_is_an_error(tmp_path):
    src = tmp_path / "csn"
    write_gz(src / "python/final/jsonl/extra/more.jsonl.gz", b"{}\n")
    with pytest.raises(UserError, match="cannot tell its split"):
        prepare_csn(src, tmp_path / "out")


def test_csn_missing_empty_and_unknown_sources(tmp_path, capsys):
    out = str(tmp_path / "out")
    msg = run_error(capsys, ["prepare", "csn", "--src", str(tmp_path / "nope"), "--out", out])
    assert "no such source directory" in msg
    (tmp_path / "empty").mkdir()
    msg = run_error(capsys, ["prepare", "csn", "--src", str(tmp_path / "empty"), "--out", out])
    assert "no language directories" in msg
    (tmp_path / "langs" / "rust").mkdir(parents=True)
    msg = run_error(capsys, ["prepare", "csn", "--src", str(tmp_path / "langs"), "--out", out])
    assert "rust" in msg and "not a language directory" in msg
    msg = run_error(
        capsys, ["prepare", "csn", "--src", str(CSN_RAW), "--out", out, "--languages", "cobol"]
    )
    assert "unknown language 'cobol'" in msg
    msg = run_error(
        capsys, ["prepare", "csn", "--src", str(CSN_RAW), "--out", out, "--languages", "ruby"]
    )
    assert "no data for ruby" in msg
    (tmp_path / "nofiles" / "python").mkdir(parents=True)
    msg = run_error(capsys, ["prepare", "csn", "--src", str(tmp_path / "nofiles"), "--out", out])
    assert "no .jsonl.gz files" in msg
    assert not Path(out).exists()


def test_csn_bad_records_lenient_then_strict(tmp_path, capsys):
    src = csn_copy(tmp_path)
    train = python_train(src)
    good = read_gz_lines(train)
    missing = dict(good[0])
    del missing["docstring"]
    mistyped = {**good[1], "code": ["not", "a", "string"]}
    lines = [json.dumps(r).encode() for r in good]
    lines[0:2] = [json.dumps(missing).encode(), json.dumps(mistyped).encode()]
    lines += [b'{"repo": "a/b", "path": ', b'"\xff\xfe not utf-8"']
    write_gz(train, b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert main(["prepare", "csn", "--src", str(src), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "record skipped" in err
    dropped = load_manifest(out)["dropped"]["python"]
    assert dropped["field:docstring"] == 1
    assert dropped["field:code"] == 1
    assert dropped["malformed JSON"] == 1
    assert dropped["bytes are not valid UTF-8"] == 1
    assert len(load_records(out, "python", "train")) == len(good) - 3  # 2 bad + "TODO"

    argv = ["prepare", "csn", "--src", str(src), "--out", str(tmp_path / "strict"), "--strict"]
    msg = run_error(capsys, argv)
    assert f"{train}:1: field 'docstring': missing" in msg
    assert not (tmp_path / "strict").exists()

    write_gz(train, b"\n".join([json.dumps(mistyped).encode()]) + b"\n")
    msg = run_error(capsys, argv)
    assert f"{train}:1: field 'code': expected a string, got list" in msg
    write_gz(train, b'{"repo": 1\n')
    assert "python_train_0.jsonl.gz:1: malformed JSON" in run_error(capsys, argv)
    write_gz(train, b'"\xff"\n')
    assert "python_train_0.jsonl.gz:1: bytes are not valid UTF-8" in run_error(capsys, argv)
    write_gz(train, b"[1, 2]\n")
    assert "expected a JSON object, got list" in run_error(capsys, argv)


def test_csn_corrupt_gzip_is_an_error(tmp_path, capsys):
    src = csn_copy(tmp_path)
    train = python_train(src)
    data = train.read_bytes()
    train.write_bytes(data[: len(data) // 2])  # truncated
    msg = run_error(capsys, ["prepare", "csn", "--src", str(src), "--out", str(tmp_path / "o")])
    assert "python_train_0.jsonl.gz: cannot read" in msg
    train.write_bytes(b"this is not gzip at all")
    msg = run_error(capsys, ["prepare", "csn", "--src", str(src), "--out", str(tmp_path / "o")])
    assert "cannot read" in msg
    assert not (tmp_path / "o").exists()


def test_csn_ids_are_unique_on_collision(tmp_path):
    src = csn_copy(tmp_path)
    train = python_train(src)
    first = read_gz_lines(train)[0]
    write_gz(train, (json.dumps(first) + "\n" + json.dumps(first) + "\n").encode())
    prepare_csn(src, tmp_path / "out")
    a, b = load_records(tmp_path / "out", "python", "train")
    assert a.code == b.code and a.url == b.url
    assert b.id == a.id + "-2"


def test_strip_docstring_keeps_code_it_cannot_cut():
    assert strip_docstring("func F() {}", "go") == "func F() {}"
    assert strip_docstring("not python at all {", "python") == "not python at all {"
    cut = strip_docstring('def f(x):\n    """Doc."""\n    return x\n', "python")
    assert "Doc." not in cut and "return x" in cut


# ---------------------------------------------------------------- hub schema


def hub_rows() -> list[dict]:
    return [
        json.loads(line)
        for line in (CSN_HUB / "code_search_net.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def test_hub_data_files_jsonl_and_parquet_agree(tmp_path, capsys):
    out_j, out_p = tmp_path / "j", tmp_path / "p"
    assert (
        main(
            [
                "prepare",
                "hub",
                "--out",
                str(out_j),
                "--data-files",
                str(CSN_HUB / "code_search_net.jsonl"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "prepare",
                "hub",
                "--out",
                str(out_p),
                "--cache-dir",
                str(tmp_path / "hf"),
                "--data-files",
                str(CSN_HUB / "code_search_net.parquet"),
            ]
        )
        == 0
    )
    mj, mp = load_manifest(out_j), load_manifest(out_p)
    assert mj["builder"] == "hub"
    assert mj["counts"] == mp["counts"]
    assert mj["files"] == mp["files"]
    assert mj["counts"]["python"] == {"train": 3, "valid": 1, "test": 2}
    assert mj["sources"][0].endswith("code_search_net.jsonl")
    assert "datasets_version" in mj["sources"][-1]
    # the hub reader and the release reader see the same functions
    csn = prepare_csn(CSN_RAW, tmp_path / "csn")
    assert csn["files"] == mj["files"]
    code = {r.func_name: r.code for r in load_records(out_j, "python", "test")}
    assert '"""' not in code["truncate"]


def test_hub_split_names_and_language_choice(tmp_path):
    rows = hub_rows()
    for row in rows:
        if row["split_name"] == "valid":
            row["split_name"] = "validation"
    data = tmp_path / "rows.jsonl.gz"
    write_gz(data, "".join(json.dumps(r) + "\n" for r in rows).encode())
    manifest = hub.prepare_hub(tmp_path / "out", data_files=[str(data)], languages=["go"])
    assert manifest["counts"] == {"go": {"train": 3, "valid": 1, "test": 1}}
    assert manifest["config"]["languages"] == ["go"]


def test_hub_bad_rows(tmp_path, capsys):
    rows = hub_rows()[:3]
    bad_split = {**rows[0], "split_name": "dev"}
    bad_language = {**rows[1], "language": "cobol"}
    missing = dict(rows[2])
    del missing["func_code_url"]
    data = tmp_path / "rows.jsonl"
    data.write_text(
        "".join(json.dumps(r) + "\n" for r in [bad_split, bad_language, missing, *hub_rows()]),
        encoding="utf-8",
    )
    manifest = hub.prepare_hub(tmp_path / "out", data_files=[str(data)])
    assert manifest["dropped"]["unknown"] == {
        "field:split_name": 1,
        "field:language": 1,
        "field:func_code_url": 1,
    }
    msg = run_error(
        capsys,
        ["prepare", "hub", "--out", str(tmp_path / "o"), "--strict", "--data-files", str(data)],
    )
    assert f"{data}:1: field 'split_name': expected train, valid, validation or test" in msg


def test_hub_parquet_rows_are_checked_too(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = hub_rows()
    rows[1]["func_documentation_string"] = None
    data = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(rows), data)
    cache = str(tmp_path / "hf")
    manifest = hub.prepare_hub(tmp_path / "out", data_files=[str(data)], cache_dir=cache)
    assert manifest["dropped"]["unknown"] == {"field:func_documentation_string": 1}
    msg = run_error(
        capsys,
        [
            "prepare",
            "hub",
            "--out",
            str(tmp_path / "o"),
            "--strict",
            "--cache-dir",
            cache,
            "--data-files",
            str(data),
        ],
    )
    assert f"{data}:2: field 'func_documentation_string': expected a string, got NoneType" in msg


def test_hub_bad_data_files(tmp_path, capsys):
    out = str(tmp_path / "out")
    msg = run_error(
        capsys, ["prepare", "hub", "--out", out, "--data-files", str(tmp_path / "missing.parquet")]
    )
    assert "no such data file" in msg
    odd = tmp_path / "rows.csv"
    odd.write_text("a,b\n")
    assert "expected a .parquet" in run_error(
        capsys, ["prepare", "hub", "--out", out, "--data-files", str(odd)]
    )
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not really parquet")
    msg = run_error(
        capsys,
        [
            "prepare",
            "hub",
            "--out",
            out,
            "--cache-dir",
            str(tmp_path / "hf"),
            "--data-files",
            str(broken),
        ],
    )
    assert "broken.parquet: cannot read as parquet" in msg
    msg = run_error(
        capsys,
        [
            "prepare",
            "hub",
            "--out",
            out,
            "--languages",
            "cobol",
            "--data-files",
            str(CSN_HUB / "code_search_net.jsonl"),
        ],
    )
    assert "unknown language 'cobol'" in msg


class FakeHub:
    """Stands in for datasets.load_dataset: records calls, serves the fixture rows."""

    def __init__(self, script_error: bool = False, fail: Exception | None = None):
        self.calls: list[tuple] = []
        self.script_error, self.fail = script_error, fail

    def __call__(self, path, name=None, **kwargs):
        self.calls.append((path, name, kwargs))
        if self.fail is not None:
            raise self.fail
        if self.script_error and path != "parquet":
            raise RuntimeError(
                "Dataset scripts are no longer supported, but found code_search_net.py"
            )
        language = name or kwargs["data_files"]["train"].split("/")[-3]
        splits = {"train": "train", "valid": "validation", "test": "test"}
        out: dict[str, list] = {}
        for row in hub_rows():
            if row["language"] == language:
                out.setdefault(splits[row["split_name"]], []).append(row)
        return out


def test_hub_download_path(tmp_path, monkeypatch):
    import datasets

    fake = FakeHub()
    monkeypatch.setattr(datasets, "load_dataset", fake)
    manifest = hub.prepare_hub(
        tmp_path / "out", languages=["python", "javascript"], revision="main"
    )
    assert [c[:2] for c in fake.calls] == [
        ("code_search_net", "python"),
        ("code_search_net", "javascript"),
    ]
    assert fake.calls[0][2]["revision"] == "main"
    assert manifest["counts"]["javascript"] == {"train": 2, "valid": 1, "test": 1}
    source = manifest["sources"][0]
    assert source["hub_id"] == "code_search_net" and source["read_with"] == "load_dataset"
    assert source["datasets_version"] == datasets.__version__


def test_hub_falls_back_to_parquet_export(tmp_path, monkeypatch):
    import datasets

    fake = FakeHub(script_error=True)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    manifest = hub.prepare_hub(tmp_path / "out", languages=["go"])
    path, _, kwargs = fake.calls[1]
    assert path == "parquet"
    assert kwargs["data_files"]["validation"] == (
        "hf://datasets/code-search-net/code_search_net@refs%2Fconvert%2Fparquet/go/"
        "validation/*.parquet"
    )
    assert manifest["sources"][0]["read_with"] == "parquet export"
    assert manifest["counts"]["go"] == {"train": 3, "valid": 1, "test": 1}


def test_hub_unreachable_is_one_line(tmp_path, monkeypatch, capsys):
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", FakeHub(fail=ConnectionError("Couldn't reach the Hub\nmore"))
    )
    msg = run_error(capsys, ["prepare", "hub", "--out", str(tmp_path / "o"), "--languages", "ruby"])
    assert "cannot load 'code_search_net' (ruby)" in msg and "--data-files" in msg
    monkeypatch.setattr(
        datasets, "load_dataset", FakeHub(fail=RuntimeError("some other runtime failure"))
    )
    assert "some other runtime failure" in run_error(
        capsys, ["prepare", "hub", "--out", str(tmp_path / "o"), "--languages", "go"]
    )


# ---------------------------------------------------------------- cleaned CodeXGLUE


def test_codexglue_reads_cleaned_layout(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prepare", "codexglue", "--src", str(CODEXGLUE), "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert manifest["builder"] == "codexglue"
    assert manifest["counts"]["python"] == {"train": 3, "valid": 1, "test": 2, "codebase": 4}
    assert manifest["counts"]["go"] == {"train": 3, "valid": 1, "test": 1, "codebase": 2}
    assert manifest["codebase_without_query"] == {"python": 1, "go": 0, "javascript": 0}
    records = all_records(out)
    test, codebase = records[("python", "test")], records[("python", "codebase")]
    code_by_url = {r.url: r.code for r in codebase}
    for r in test:  # valid/test code was emptied by the cleaning: taken from the codebase
        assert r.url in code_by_url and r.code == code_by_url[r.url]
        assert '"""' not in r.code and r.code.startswith("def ")
    truncate = next(r for r in test if r.func_name == "truncate")
    assert truncate.query == "Truncate text to a maximum number of characters ."
    assert truncate.repo == "celery/celery"
    queries = {r.url: r.query for r in codebase}
    assert queries[truncate.url] == truncate.query
    assert list(queries.values()).count("") == 1
    ids = [r.id for rs in records.values() for r in rs]
    assert len(ids) == len(set(ids))


def test_codexglue_tolerates_missing_optional_fields(tmp_path):
    src = tmp_path / "cx"
    src.mkdir()
    shutil.copytree(CODEXGLUE / "go", src / "go")
    train = src / "go" / "train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    for row in rows:
        for name in ("repo", "path", "func_name", "language", "original_string", "docstring"):
            row.pop(name)
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "go" / "valid.jsonl").unlink()
    manifest = prepare_codexglue(src, tmp_path / "out")
    assert manifest["counts"]["go"] == {"train": 3, "test": 1, "codebase": 2}
    record = load_records(tmp_path / "out", "go", "train")[0]
    assert record.repo == "golang/groupcache" and record.path == "lru/lru.go"
    assert record.func_name == "" and record.code.startswith("func (c *Cache) Add(")


def test_codexglue_bad_input(tmp_path, capsys):
    src = tmp_path / "cx"
    shutil.copytree(CODEXGLUE / "python", src / "python")
    test = src / "python" / "test.jsonl"
    rows = [json.loads(line) for line in test.read_text().splitlines()]
    orphan = {**rows[0], "url": "https://github.com/a/b/blob/0/x.py#L1-L2"}
    no_code = dict(rows[1])
    del no_code["original_string"], no_code["code"]
    test.write_text("".join(json.dumps(r) + "\n" for r in [orphan, no_code, rows[1]]))
    manifest = prepare_codexglue(src, tmp_path / "out")
    assert manifest["dropped"]["python"] == {"code_not_in_codebase": 1, "field:original_string": 1}
    assert manifest["counts"]["python"]["test"] == 1
    msg = run_error(
        capsys,
        ["prepare", "codexglue", "--src", str(src), "--out", str(tmp_path / "o"), "--strict"],
    )
    assert f"{test}:2: field 'original_string': missing (and no 'code' either)" in msg

    test.write_text(json.dumps({**rows[1], "docstring_tokens": "not a list"}) + "\n")
    msg = run_error(
        capsys,
        ["prepare", "codexglue", "--src", str(src), "--out", str(tmp_path / "o"), "--strict"],
    )
    assert "field 'docstring_tokens': expected a list of strings, got str" in msg
    test.write_text(json.dumps({**rows[1], "url": " "}) + "\n")
    assert "field 'url': empty" in run_error(
        capsys,
        ["prepare", "codexglue", "--src", str(src), "--out", str(tmp_path / "o"), "--strict"],
    )

    (src / "ruby").mkdir()
    msg = run_error(
        capsys, ["prepare", "codexglue", "--src", str(src), "--out", str(tmp_path / "o")]
    )
    assert "ruby: no train/valid/test/codebase.jsonl" in msg
    msg = run_error(
        capsys,
        [
            "prepare",
            "codexglue",
            "--src",
            str(src),
            "--out",
            str(tmp_path / "o"),
            "--languages",
            "java",
        ],
    )
    assert "no data for java" in msg
    msg = run_error(
        capsys,
        ["prepare", "codexglue", "--src", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
    )
    assert "no such source directory" in msg


# ---------------------------------------------------------------- data_prep/fetch_codesearchnet.py


def load_fetch_script():
    return load_script("data_prep/fetch_codesearchnet.py")


def test_fetch_arguments():
    fetch = load_fetch_script()
    args = fetch.build_parser().parse_args(["--out", "d"])
    assert (args.via, args.format, args.languages, args.no_verify) == (
        "zenodo",
        "codexglue",
        None,
        False,
    )
    args = fetch.build_parser().parse_args(
        ["--out", "d", "--via", "hub", "--languages", "go", "ruby", "--work", "w", "--no-verify"]
    )
    assert (args.via, args.languages, args.work, args.no_verify) == (
        "hub",
        ["go", "ruby"],
        "w",
        True,
    )
    with pytest.raises(SystemExit):
        fetch.build_parser().parse_args(["--out", "d", "--via", "s3"])
    with pytest.raises(SystemExit):
        fetch.build_parser().parse_args([])


def make_archives(tmp_path: Path) -> dict[str, Path]:
    """A python.zip like Zenodo's and a tar.gz of url lists like GraphCodeBERT's dataset.zip."""
    python_zip = tmp_path / "served" / "python.zip"
    python_zip.parent.mkdir()
    with zipfile.ZipFile(python_zip, "w") as zf:
        for path in (CSN_RAW / "python").rglob("*.jsonl.gz"):
            zf.write(path, (Path("python") / path.relative_to(CSN_RAW / "python")).as_posix())
        zf.writestr("python_licenses.pkl", b"not used")
    lists = tmp_path / "served" / "dataset.tar.gz"
    with tarfile.open(lists, "w:gz") as tf:
        for split in ("train", "valid", "test", "codebase"):
            urls = [
                json.loads(line)["url"]
                for line in (CODEXGLUE / "python" / f"{split}.jsonl").read_text().splitlines()
            ]
            urls.append("https://github.com/gone/away/blob/0/x.py#L1-L2")  # not in the release
            data = "\n".join(urls).encode() + b"\n"
            info = tarfile.TarInfo(f"dataset/python/{split}.txt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return {"python.zip": python_zip, "dataset": lists}


def fake_download(served: dict[str, Path], log: list):
    def download(url, dest, md5=None):
        log.append((url, md5))
        name = "python.zip" if "zenodo.org" in url else "dataset"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(served[name], dest)
        return dest

    return download


def test_fetch_zenodo_rebuilds_cleaned_splits(tmp_path, monkeypatch, capsys):
    fetch = load_fetch_script()
    served = make_archives(tmp_path)
    log: list = []
    monkeypatch.setattr(fetch, "download", fake_download(served, log))
    monkeypatch.setattr(fetch, "zenodo_checksums", lambda: {"python.zip": "abc"})
    out = tmp_path / "out"
    assert (
        fetch.main(["--out", str(out), "--languages", "python", "--work", str(tmp_path / "work")])
        == 0
    )
    assert log[0] == (f"{fetch.ZENODO_FILES}/python.zip?download=1", "abc")
    assert log[1][0] == fetch.CLEANING_URL
    reference = prepare_codexglue(CODEXGLUE, tmp_path / "ref", languages=["python"])
    manifest = load_manifest(out)
    assert manifest["counts"] == reference["counts"]
    assert manifest["files"] == reference["files"]
    assert "urls found" in capsys.readouterr().err
    # the release format instead, from the archive already in --work
    assert (
        fetch.main(
            [
                "--out",
                str(tmp_path / "raw"),
                "--languages",
                "python",
                "--work",
                str(tmp_path / "work"),
                "--format",
                "csn",
                "--no-verify",
            ]
        )
        == 0
    )
    assert load_manifest(tmp_path / "raw")["builder"] == "csn"


def test_fetch_download_checks_md5_and_archives(tmp_path, monkeypatch, capsys):
    fetch = load_fetch_script()
    served = make_archives(tmp_path)
    url = served["python.zip"].as_uri()
    good = fetch.md5_file(served["python.zip"])
    dest = fetch.download(url, tmp_path / "dl" / "python.zip", good)
    assert fetch.md5_file(dest) == good
    with pytest.raises(UserError, match="does not match the published"):
        fetch.download(url, tmp_path / "dl" / "again.zip", "0" * 32)
    assert not (tmp_path / "dl" / "again.zip").exists()
    assert not (tmp_path / "dl" / "again.zip.part").exists()
    with pytest.raises(UserError, match="cannot download"):
        fetch.download((tmp_path / "absent.zip").as_uri(), tmp_path / "dl" / "x.zip")

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", b"x")
    with pytest.raises(UserError, match="outside"):
        fetch.extract(evil, tmp_path / "x")
    text = tmp_path / "plain.txt"
    text.write_text("hello")
    with pytest.raises(UserError, match="not a zip or tar archive"):
        fetch.extract(text, tmp_path / "x")

    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("go/readme.txt", b"x")
    monkeypatch.setattr(fetch, "download", lambda url, dest, md5=None: wrong)
    monkeypatch.setattr(fetch, "zenodo_checksums", lambda: {})
    assert (
        fetch.main(
            ["--out", str(tmp_path / "o"), "--languages", "python", "--work", str(tmp_path / "w2")]
        )
        == 2
    )
    assert "no 'python/' directory in it" in capsys.readouterr().err


def test_fetch_checksums_unreadable_means_unverified(tmp_path, capsys):
    fetch = load_fetch_script()
    assert fetch.zenodo_checksums((tmp_path / "no-such-record.json").as_uri()) == {}
    assert "downloads are not verified" in capsys.readouterr().err
    record = tmp_path / "record.json"
    record.write_text(
        json.dumps(
            {
                "files": [
                    {"key": "python.zip", "checksum": "md5:0a1b"},
                    {"key": "x.pkl", "checksum": "sha256:ff"},
                ]
            }
        )
    )
    assert fetch.zenodo_checksums(record.as_uri()) == {"python.zip": "0a1b"}
    record.write_text(
        json.dumps({"files": {"entries": {"go.zip": {"key": "go.zip", "checksum": "md5:77"}}}})
    )
    assert fetch.zenodo_checksums(record.as_uri()) == {"go.zip": "77"}


def test_fetch_url_lists_must_cover_the_languages(tmp_path):
    fetch = load_fetch_script()
    (tmp_path / "dataset" / "python").mkdir(parents=True)
    (tmp_path / "dataset" / "python" / "codebase.txt").write_text("")
    assert fetch.find_url_lists(tmp_path, ["python"]) == {"python": tmp_path / "dataset/python"}
    with pytest.raises(UserError, match="no url lists .* for go"):
        fetch.find_url_lists(tmp_path, ["python", "go"])


def test_fetch_via_hub_runs_the_hub_reader(tmp_path, monkeypatch):
    import datasets

    fetch = load_fetch_script()
    monkeypatch.setattr(datasets, "load_dataset", FakeHub())
    assert fetch.main(["--out", str(tmp_path / "o"), "--via", "hub", "--languages", "go"]) == 0
    assert load_manifest(tmp_path / "o")["counts"] == {"go": {"train": 3, "valid": 1, "test": 1}}


def test_a_giant_function_is_dropped_before_any_text_processing(monkeypatch):
    from codesearch.data.readers import csn

    monkeypatch.setattr(
        csn.filters,
        "first_paragraph",
        lambda *a: pytest.fail("a giant record must not be processed"),
    )
    maker = csn.PairMaker()
    fields = {
        "repo": "r",
        "path": "p.py",
        "func_name": "f",
        "url": "",
        "docstring": "Return the sum of the values.",
        "code": "x" * (csn.MAX_TEXT_CHARS + 1),
    }
    assert maker.make("python", "train", **fields) is None
    assert maker.dropped["python"]["record_too_large"] == 1
