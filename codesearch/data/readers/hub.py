"""`codesearch prepare hub`: the Hugging Face hub data set ``code_search_net``.

The same functions as the original CodeSearchNet release (see readers/csn.py) under other
field names: repository_name, func_path_in_repository, func_name, whole_func_string,
language, func_code_string, func_code_tokens, func_documentation_string,
func_documentation_tokens, split_name, func_code_url. ``split_name`` chooses the split
(train / valid or validation / test).

From the hub: ``datasets.load_dataset("code_search_net", language)``; where the installed
``datasets`` no longer runs the repository's loading script, the hub's own Parquet export
(revision refs/convert/parquet) is read instead. ``--data-files`` reads local files of the same
schema (.parquet through ``datasets.load_dataset("parquet")``; .jsonl / .jsonl.gz line by line,
so that a bad line is reported with its number).
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.prepared import PreparedWriter
from codesearch.data.readers.csn import (
    QUERY_FILTERS,
    PairMaker,
    add_common_arguments,
    dropped_for_manifest,
    parse_rows,
    print_summary,
    progress,
    require_object,
    require_str,
)
from codesearch.data.schema import LANGUAGES, SPLITS, PairRecord, parse_languages
from codesearch.errors import DataError, UserError

HUB_ID = "code_search_net"
# where the hub keeps that data set now, for the hf:// paths of its Parquet export
HUB_REPOS = {"code_search_net": "code-search-net/code_search_net"}
PARQUET_EXPORT = "refs%2Fconvert%2Fparquet"  # refs/convert/parquet, quoted for hf:// paths
HUB_SPLITS = ("train", "validation", "test")
SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
# hub field -> original CodeSearchNet field
FIELDS = {
    "repository_name": "repo",
    "func_path_in_repository": "path",
    "func_name": "func_name",
    "func_code_string": "code",
    "func_documentation_string": "docstring",
    "func_code_url": "url",
}


def make_parser(maker: PairMaker, only: list[str]):
    """parse(row, source, line) -> PairRecord | None for one hub-schema row."""

    def parse(row: object, source: str, line: int) -> PairRecord | None:
        row = require_object(row, source, line)
        language = require_str(row, "language", source, line).strip().lower()
        if language not in LANGUAGES:
            raise DataError(f"unknown language '{language}'", source, line, "language")
        split_name = require_str(row, "split_name", source, line)
        if split_name not in SPLIT_NAMES:
            raise DataError(
                f"expected train, valid, validation or test, got '{split_name}'",
                source,
                line,
                "split_name",
            )
        fields = {ours: require_str(row, theirs, source, line) for theirs, ours in FIELDS.items()}
        if language not in only:
            return None
        return maker.make(language, SPLIT_NAMES[split_name], **fields)

    return parse


def iter_rows(rows) -> Iterator[dict]:
    """Rows of a datasets.Dataset as dicts, read in batches (much faster than row by row)."""
    if not hasattr(rows, "iter"):
        yield from rows
        return
    for batch in rows.iter(batch_size=1000):
        names = list(batch)
        for i in range(len(batch[names[0]]) if names else 0):
            yield {name: batch[name][i] for name in names}


def load_parquet(path: Path, cache_dir: str | None) -> Iterable[dict]:
    import datasets
    import pyarrow
    import pyarrow.parquet

    try:
        pyarrow.parquet.read_schema(path)  # a clear error before datasets logs a traceback
        return datasets.load_dataset(
            "parquet", data_files=str(path), split="train", cache_dir=cache_dir
        )
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(
            f"cannot read as parquet: {type(exc).__name__}: {first_line}", str(path)
        ) from None


def load_hub(
    hub_id: str, language: str, revision: str | None, cache_dir: str | None
) -> tuple[dict, str]:
    """({hub split: rows}, how it was read) for one language config."""
    import datasets

    try:
        try:
            loaded = datasets.load_dataset(hub_id, language, revision=revision, cache_dir=cache_dir)
            how = "load_dataset"
        except RuntimeError as exc:
            if "scripts are no longer supported" not in str(exc):
                raise
            # datasets >= 4 does not run loading scripts: read the hub's Parquet export
            repo = HUB_REPOS.get(hub_id, hub_id)
            base = f"hf://datasets/{repo}@{PARQUET_EXPORT}/{language}"
            loaded = datasets.load_dataset(
                "parquet",
                data_files={s: f"{base}/{s}/*.parquet" for s in HUB_SPLITS},
                cache_dir=cache_dir,
            )
            how = "parquet export"
    except Exception as exc:  # no network, unknown id, gated...: one line for the user
        raise UserError(
            f"cannot load '{hub_id}' ({language}) from the Hugging Face hub: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            f"(use --data-files for local parquet/jsonl files)"
        ) from None
    return {split: loaded[split] for split in loaded}, how


def prepare_hub(
    out: str | Path,
    data_files: list[str] | None = None,
    languages: list[str] | None = None,
    strict: bool = False,
    filter_queries: bool = True,
    hub_id: str = HUB_ID,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> dict:
    """Read the hub data set (or local files of its schema) into a prepared directory."""
    only = parse_languages(languages)
    maker = PairMaker(filter_queries)
    # rows of all splits (and, in local files, all languages) come mixed: group them first
    grouped: dict[tuple[str, str], list[PairRecord]] = defaultdict(list)
    file_drops: Counter = Counter()  # bad rows of local files: their language is unknown
    sources: list = []

    def collect(records: Iterable[PairRecord]) -> None:
        for record in records:
            grouped[(record.language, record.split)].append(record)

    parse = make_parser(maker, only)
    if data_files:
        import datasets

        paths = [Path(p) for p in data_files]
        for path in paths:
            if not path.is_file():
                raise UserError(f"{path}: no such data file")
            if not path.name.endswith((".parquet", ".jsonl", ".jsonl.gz")):
                raise UserError(f"{path}: expected a .parquet, .jsonl or .jsonl.gz file")
        for path in paths:
            if path.name.endswith(".parquet"):
                rows = load_parquet(path, cache_dir)
                collect(
                    parse_rows(
                        progress(iter_rows(rows), path.name, len(rows)),
                        str(path),
                        parse,
                        strict,
                        file_drops,
                    )
                )
            else:
                collect(
                    progress(read_jsonl(path, parse, strict=strict, dropped=file_drops), path.name)
                )
            sources.append(str(path))
        sources.append({"datasets_version": datasets.__version__})
    else:
        import datasets

        for language in only:
            loaded, how = load_hub(hub_id, language, revision, cache_dir)
            for split, rows in loaded.items():
                name = f"{hub_id}/{language}/{split}"
                collect(
                    parse_rows(
                        progress(iter_rows(rows), name, len(rows)),
                        name,
                        parse,
                        strict,
                        maker.dropped[language],
                    )
                )
            sources.append(
                {
                    "hub_id": hub_id,
                    "config": language,
                    "revision": revision,
                    "read_with": how,
                    "datasets_version": datasets.__version__,
                }
            )
    dropped = dropped_for_manifest(maker.dropped)
    if file_drops:
        dropped["unknown"] = dict(sorted(file_drops.items()))
    with PreparedWriter(out) as writer:
        for language in LANGUAGES:
            for split in SPLITS:
                if (language, split) in grouped:
                    writer.write_split(language, split, grouped[(language, split)])
        return writer.finish(
            builder="hub",
            sources=sources,
            config={
                "data_files": [str(p) for p in data_files] if data_files else None,
                "languages": only,
                "strict": strict,
                "filter_queries": filter_queries,
                "hub_id": hub_id,
                "revision": revision,
            },
            filters=[
                QUERY_FILTERS if filter_queries else "first paragraph of the docstring",
                "python: docstring removed from code (extract.extract_functions)",
            ],
            dropped=dropped,
        )


def _run(args: argparse.Namespace) -> int:
    manifest = prepare_hub(
        args.out,
        data_files=args.data_files,
        languages=args.languages,
        strict=args.strict,
        filter_queries=not args.no_filter,
        hub_id=args.hub_id,
        revision=args.revision,
        cache_dir=args.cache_dir,
    )
    print_summary(args.out, manifest)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "hub",
        help="the Hugging Face hub data set code_search_net (or local files of it)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--data-files",
        nargs="+",
        default=None,
        metavar="FILE",
        help="local .parquet / .jsonl(.gz) files of the hub schema (no network)",
    )
    parser.add_argument(
        "--no-filter",
        action="store_true",
        help="keep every non-empty query (no CodeSearchNet query filters)",
    )
    parser.add_argument("--hub-id", default=HUB_ID, help=f"hub data set (default {HUB_ID})")
    parser.add_argument("--revision", default=None, help="hub revision (default: main)")
    parser.add_argument("--cache-dir", default=None, help="datasets cache directory")
    parser.set_defaults(func=_run)
