"""Corpus building: duplicate removal, the package cap, and the split by unit."""

from __future__ import annotations

from collections import Counter

import pytest

from codesearch.data.corpus import assign_splits, build_corpus, cap_package_share, write_corpus
from codesearch.data.prepared import load_manifest, load_records


def records_for(record_factory, n: int, packages: int, language: str = "python"):
    return [
        record_factory(i, language=language, split="", repo=f"pkg{i % packages}") for i in range(n)
    ]


def test_duplicate_code_is_removed_across_the_corpus(record_factory):
    records = records_for(record_factory, 40, 20)
    same = records[0].code.replace("\n", "\n  ")  # same text up to whitespace
    records.append(record_factory(999, split="", repo="pkg3", code=same))
    records.append(record_factory(998, language="go", split="", repo="gopkg", code=same))
    out, report = build_corpus(records, {r.repo: r.repo for r in records})
    assert len(out) == 40
    assert report["dropped"]["python"]["duplicate_code"] == 1
    assert report["dropped"]["go"]["duplicate_code"] == 1


def test_cap_limits_the_largest_package(record_factory):
    records = [record_factory(i, split="", repo="big") for i in range(100)]
    records += [record_factory(i, split="", repo=f"small{i % 3}") for i in range(100, 130)]
    dropped: Counter = Counter()
    kept, report = cap_package_share(records, {r.repo: r.repo for r in records}, 0.4, dropped)
    big = sum(r.repo == "big" for r in kept)
    assert big == 20  # 0.4 / 0.6 * 30
    assert big / len(kept) <= 0.4
    assert report["big"] == {"before": 100, "after": 20}
    assert dropped["package_cap"] == 80
    again, _ = cap_package_share(records, {r.repo: r.repo for r in records}, 0.4, Counter())
    assert [r.id for r in again] == [r.id for r in kept]  # deterministic


def test_single_package_is_not_capped(record_factory):
    records = [record_factory(i, split="", repo="only") for i in range(50)]
    kept, _ = cap_package_share(records, {"only": "only"}, 0.4, Counter())
    assert len(kept) == 50


def test_assign_splits_balances_and_is_deterministic():
    units = {f"u{i}": 10 + (i * 7) % 13 for i in range(60)}
    assignment = assign_splits(units, (0.8, 0.1, 0.1))
    assert assignment == assign_splits(dict(reversed(list(units.items()))), (0.8, 0.1, 0.1))
    total = sum(units.values())
    share = {
        s: sum(n for u, n in units.items() if assignment[u] == s) / total
        for s in ("train", "valid", "test")
    }
    assert share["train"] == pytest.approx(0.8, abs=0.03)
    assert share["test"] == pytest.approx(0.1, abs=0.03)
    with pytest.raises(ValueError, match="summing to 1"):
        assign_splits(units, (0.5, 0.1, 0.1))


def test_a_unit_too_big_for_an_evaluation_split_goes_to_train():
    units = {"huge": 400, "large": 300, **{f"u{i}": 10 for i in range(60)}}
    assignment = assign_splits(units, (0.8, 0.1, 0.1))
    assert assignment["huge"] == assignment["large"] == "train"
    test_units = [u for u, s in assignment.items() if s == "test"]
    assert len(test_units) >= 5


def test_split_by_repo_has_no_leakage(record_factory):
    records = records_for(record_factory, 600, 30)
    out, report = build_corpus(records, {r.repo: r.repo for r in records})
    assert report["split"]["python"]["unit"] == "repo"
    split_of_repo: dict[str, set] = {}
    for r in out:
        split_of_repo.setdefault(r.repo, set()).add(r.split)
    assert all(len(s) == 1 for s in split_of_repo.values())
    assert {r.split for r in out} == {"train", "valid", "test"}
    out2, _ = build_corpus(list(reversed(records)), {r.repo: r.repo for r in records})
    assert {r.id: r.split for r in out} == {r.id: r.split for r in out2}


def test_few_units_fall_back_to_file_level(record_factory):
    records = records_for(record_factory, 200, 3)
    out, report = build_corpus(records, {r.repo: r.repo for r in records})
    assert report["split"]["python"]["unit"] == "file"
    by_file: dict[tuple, set] = {}
    for r in out:
        by_file.setdefault((r.repo, r.path), set()).add(r.split)
    assert all(len(s) == 1 for s in by_file.values())
    assert Counter(r.split for r in out)["test"] > 0


def test_write_corpus_writes_every_split(tmp_path, record_factory):
    records = records_for(record_factory, 30, 15)
    out, report = build_corpus(records, {r.repo: r.repo for r in records})
    manifest = write_corpus(tmp_path / "d", out, builder="test", **report)
    assert set(manifest["counts"]["python"]) == {"train", "valid", "test"}
    assert sum(manifest["counts"]["python"].values()) == 30
    assert load_manifest(tmp_path / "d")["split"]["python"]["unit"] == "repo"
    assert (
        len(load_records(tmp_path / "d", "python", "train"))
        == manifest["counts"]["python"]["train"]
    )


def make_python_tree(root, n_dirs: int = 12):
    """A small package tree: documented functions in n_dirs sub-packages, plus messy files."""
    for d in range(n_dirs):
        pkg = root / f"sub{d}"
        pkg.mkdir(parents=True)
        (pkg / "mod.py").write_text(
            "\n".join(
                f"def compute_{d}_{k}(values, factor):\n"
                f'    """Scale every value of the list by the factor {d} {k}.\n\n    More text.\n    """\n'
                f"    result = [v * factor + {k} for v in values]\n"
                f"    total = sum(result) - {d}\n    return result, total\n"
                for k in range(5)
            )
        )
    (root / "sub0" / "latin1.py").write_bytes(b"# caf\xe9\ndef f():\n    pass\n")
    (root / "sub0" / "broken.py").write_text("def broken(:\n    '''Doc here for it.'''\n")
    tests = root / "tests"
    tests.mkdir()
    (tests / "test_mod.py").write_text(
        'def test_scaling_works(values):\n    """Check that scaling works for values."""\n'
        "    result = [v * 2 for v in values]\n    assert result == values\n    return None\n"
    )


def test_extract_tree_counts_skipped_files_and_drops(tmp_path):
    from codesearch.data.corpus import extract_tree

    make_python_tree(tmp_path)
    records, dropped = extract_tree(
        tmp_path, "python", "demo", unit_depth=1, workers=1, progress=False
    )
    assert len(records) == 60
    assert dropped["file_not_utf8"] == 1 and dropped["file_parse_error"] == 1
    assert dropped["test_function"] == 1 and dropped["files_read"] == 15
    first = records[0]
    assert first.repo == "demo/sub0" and first.path == "sub0/mod.py"
    assert first.query == "Scale every value of the list by the factor 0 0."
    assert '"""' not in first.code and first.split == ""
    again, _ = extract_tree(tmp_path, "python", "demo", unit_depth=1, workers=2, progress=False)
    assert again == records  # the worker pool gives the same records in the same order


def test_prepare_sources_cli(tmp_path, capsys):
    from codesearch.cli import main

    make_python_tree(tmp_path / "src")
    out = tmp_path / "out"
    assert (
        main(
            [
                "prepare",
                "sources",
                "--src",
                str(tmp_path / "src"),
                "--language",
                "py",
                "--out",
                str(out),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    manifest = load_manifest(out)
    assert sum(manifest["counts"]["python"].values()) == 60
    assert manifest["split"]["python"]["unit"] == "repo"  # 12 sub-packages
    assert manifest["dropped"]["python"]["file_parse_error"] == 1
    assert manifest["builder"] == "sources"
    assert (
        main(
            [
                "prepare",
                "sources",
                "--src",
                str(tmp_path / "src"),
                "--language",
                "cobol",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "unknown language 'cobol'" in capsys.readouterr().err
    assert (
        main(
            [
                "prepare",
                "sources",
                "--src",
                str(tmp_path / "nope"),
                "--language",
                "go",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "no such source directory" in capsys.readouterr().err
    assert (
        main(
            [
                "prepare",
                "sources",
                "--src",
                str(tmp_path / "src"),
                "--language",
                "go",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "no go functions with a doc comment" in capsys.readouterr().err


def test_extract_tree_skips_fifos_devices_big_files_and_undecodable_names(tmp_path):
    """None of these is read (a FIFO would block forever, a device never ends)."""
    import os

    from codesearch.data import corpus
    from codesearch.data.corpus import extract_tree

    make_python_tree(tmp_path)
    os.mkfifo(tmp_path / "pipe.py")
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    (tmp_path / "big.py").write_bytes(b"x = 1\n" * (corpus.MAX_FILE_BYTES // 6 + 1))
    bad_name = os.fsencode(str(tmp_path)) + b"/caf\xe9.py"
    with open(bad_name, "wb") as handle:
        handle.write(b'def f(x):\n    """Return the value of x plus one."""\n    return x + 1\n')
    records, dropped = extract_tree(
        tmp_path, "python", "demo", unit_depth=1, workers=1, progress=False
    )
    assert len(records) == 60  # what the regular tree gives
    assert dropped["file_not_regular"] == 2 and dropped["file_too_large"] == 1
    assert dropped["file_name_not_utf8"] == 1
