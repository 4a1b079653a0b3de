"""`codesearch prepare csn`: the original CodeSearchNet gzipped jsonl files.

Layout of the release (Husain et al. 2019, arXiv 1909.09436; mirrored on Zenodo record
7857872 as ``<language>.zip``): ``<language>/final/jsonl/{train,valid,test}/
<language>_<split>_<n>.jsonl.gz``; a flat directory of such files is accepted too. Fields:
repo, path, func_name, original_string, language, code, code_tokens, docstring,
docstring_tokens, sha, partition, url.

query = the first paragraph of ``docstring``, filtered like CodeSearchNet / CodeXGLUE
(codesearch.data.filters); code = ``code`` without its docstring (for Python the release keeps
the docstring inside the function body). The helpers here are shared by the hub and CodeXGLUE
readers, whose records are the same functions under other field names.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from codesearch.data import extract, filters
from codesearch.data.jsonl_reader import MAX_WARNINGS_PER_FILE, drop_reason, read_jsonl
from codesearch.data.prepared import PreparedWriter
from codesearch.data.schema import (
    LANGUAGES,
    SPLITS,
    PairRecord,
    check_text,
    make_id,
    normalize_language,
    parse_languages,
)
from codesearch.errors import DataError, UserError

CSN_FILE = re.compile(
    r"^(?P<language>[a-z]+)_(?P<split>train|valid|test)_(?P<n>\d+)\.jsonl(\.gz)?$"
)
GITHUB_URL = re.compile(r"^https?://github\.com/(?P<repo>[^/]+/[^/]+)/blob/[^/]+/(?P<path>[^#]+)")
REQUIRED = ("repo", "path", "func_name", "code", "docstring", "url")
QUERY_FILTERS = "first paragraph of the docstring; filters.query_drop_reason"


# ---- shared helpers (hub and codexglue readers use them too) ----


def require_str(obj: dict, field: str, path: str, line: int | None) -> str:
    """obj[field] as a string, else a DataError naming the field."""
    if field not in obj:
        raise DataError("missing", path, line, field)
    return check_text(obj[field], path, line, field)


def require_str_list(obj: dict, field: str, path: str, line: int | None) -> list[str]:
    if field not in obj:
        raise DataError("missing", path, line, field)
    value = obj[field]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise DataError(
            f"expected a list of strings, got {type(value).__name__}", path, line, field
        )
    for token in value:
        check_text(token, path, line, field)
    return value


def require_object(obj: object, path: str, line: int | None) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    return obj


def repo_and_path_from_url(url: str) -> tuple[str, str]:
    """("owner/name", "file/path") from a GitHub blob url; ("", "") if it is not one."""
    match = GITHUB_URL.match(url)
    return (match["repo"], match["path"]) if match else ("", "")


def strip_docstring(code: str, language: str) -> str:
    """Python: the function without its docstring (re-extracted with tree-sitter).

    Other languages keep the doc comment outside the function, so their code is unchanged.
    If extraction fails, the original code is kept.
    """
    if language != "python":
        return code
    try:
        functions = extract.extract_functions(code.encode("utf-8"), language)
    except Exception:  # a parser failure on one record must not stop a 400k-record read
        return code
    for function in functions:
        if function.line == 1 and function.code.strip():
            return function.code
    return code


class UniqueIds:
    """``make_id(language, key, code)``, suffixed ``-2``, ``-3``... on a collision."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, language: str, key: str, code: str) -> str:
        base = make_id(language, key, code)
        new, n = base, 1
        while new in self.seen:
            n += 1
            new = f"{base}-{n}"
        self.seen.add(new)
        return new


def progress(items: Iterable, desc: str, total: int | None = None) -> Iterable:
    """A tqdm bar on stderr when it is a terminal."""
    return tqdm(
        items,
        desc=desc,
        total=total,
        unit=" rec",
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
    )


def parse_rows(
    rows: Iterable[dict], source: str, parse, strict: bool, dropped: Counter
) -> Iterator[PairRecord]:
    """read_jsonl's lenient/strict policy for rows that are not jsonl lines (parquet, hub).

    ``line`` in messages is the 1-based row number.
    """
    warned = 0
    for row_no, row in enumerate(rows, start=1):
        try:
            record = parse(row, source, row_no)
        except DataError as error:
            if strict:
                raise
            dropped[drop_reason(error)] += 1
            if warned < MAX_WARNINGS_PER_FILE:
                print(f"warning: {error} (record skipped; --strict stops here)", file=sys.stderr)
            warned += 1
            continue
        if record is not None:
            yield record


def language_dirs(src: str | Path, languages: list[str] | None) -> dict[str, Path]:
    """The per-language subdirectories of src, checked against the known languages."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: no such source directory")
    found: dict[str, Path] = {}
    for child in sorted(src.iterdir()):
        if not child.is_dir() or child.name.startswith((".", "_")):
            continue
        try:
            language = normalize_language(child.name)
        except UserError:
            raise UserError(
                f"{child}: not a language directory (expected one of {', '.join(LANGUAGES)})"
            ) from None
        found[language] = child
    if not found:
        raise UserError(f"{src}: no language directories in it (expected e.g. {src}/python)")
    wanted = parse_languages(languages) if languages else list(found)
    missing = [lang for lang in wanted if lang not in found]
    if missing:
        raise UserError(f"{src}: no data for {', '.join(missing)} (it has: {', '.join(found)})")
    return {lang: found[lang] for lang in LANGUAGES if lang in wanted}


def dropped_for_manifest(dropped: dict[str, Counter]) -> dict[str, dict[str, int]]:
    return {lang: dict(sorted(c.items())) for lang, c in dropped.items() if c}


# A function and its doc comment together at most: CodeSearchNet's largest are a few hundred
# thousand characters; a giant value would only cost memory in cleaning and tokenisation.
MAX_TEXT_CHARS = 1 << 20


class PairMaker:
    """CodeSearchNet-style fields -> PairRecord: query, code, unique id, drops by reason."""

    def __init__(self, filter_queries: bool = True):
        self.filter_queries = filter_queries
        self.ids = UniqueIds()
        self.dropped: dict[str, Counter] = {lang: Counter() for lang in LANGUAGES}

    def make(
        self,
        language: str,
        split: str,
        *,
        repo: str,
        path: str,
        func_name: str,
        docstring: str,
        code: str,
        url: str,
    ) -> PairRecord | None:
        """The record, or None when a filter drops it (counted under its reason)."""
        dropped = self.dropped[language]
        if len(code) + len(docstring) > MAX_TEXT_CHARS:  # before any text processing
            dropped["record_too_large"] += 1
            return None
        query = filters.first_paragraph(docstring, language)
        if self.filter_queries:
            reason = filters.query_drop_reason(query)
            if reason:
                dropped[reason] += 1
                return None
        if not query.strip():
            dropped["query_empty"] += 1
            return None
        code = strip_docstring(code, language)
        if not code.strip():
            dropped["code_empty"] += 1
            return None
        key = url or f"{repo}/{path}/{func_name}"
        return PairRecord(
            id=self.ids(language, key, code),
            language=language,
            repo=repo,
            path=path,
            func_name=func_name,
            query=query,
            code=code,
            url=url,
            split=split,
        )


# ---- the csn reader ----


def csn_files(src: str | Path, languages: list[str] | None) -> dict[str, dict[str, list[Path]]]:
    """{language: {split: [files]}} for the nested release layout or a flat directory."""
    src = Path(src)
    if not src.is_dir():
        raise UserError(f"{src}: no such source directory")
    flat = sorted(p for p in src.iterdir() if p.is_file() and ".jsonl" in p.name)
    if flat:
        located: list[tuple[str, str, Path]] = []
        for file in flat:
            match = CSN_FILE.match(file.name)
            if not match:
                raise UserError(
                    f"{file}: cannot tell language and split from the name "
                    f"(expected <language>_<split>_<n>.jsonl.gz)"
                )
            located.append((normalize_language(match["language"]), match["split"], file))
        have = list(dict.fromkeys(lang for lang, _, _ in located))
        wanted = parse_languages(languages) if languages else have
        missing = [lang for lang in wanted if lang not in have]
        if missing:
            raise UserError(f"{src}: no files for {', '.join(missing)} (it has: {', '.join(have)})")
    else:
        located = []
        for language, directory in language_dirs(src, languages).items():
            files = sorted(
                p for p in directory.rglob("*.jsonl*") if p.name.endswith((".jsonl", ".jsonl.gz"))
            )
            if not files:
                raise UserError(
                    f"{directory}: no .jsonl.gz files in it (expected "
                    f"{directory}/final/jsonl/train/{language}_train_0.jsonl.gz)"
                )
            for file in files:
                match = CSN_FILE.match(file.name)
                split = (
                    file.parent.name
                    if file.parent.name in SPLITS
                    else (match["split"] if match else None)
                )
                if split is None:
                    raise UserError(
                        f"{file}: cannot tell its split (expected it under train/, valid/ or test/)"
                    )
                located.append((language, split, file))
        wanted = None
    out: dict[str, dict[str, list[Path]]] = {}
    for language, split, file in located:
        if wanted is None or language in wanted:
            out.setdefault(language, {}).setdefault(split, []).append(file)

    def order(file: Path) -> tuple:
        match = CSN_FILE.match(file.name)
        return (int(match["n"]) if match else 0, file.name)

    return {
        lang: {split: sorted(out[lang][split], key=order) for split in SPLITS if split in out[lang]}
        for lang in LANGUAGES
        if lang in out
    }


def prepare_csn(
    src: str | Path,
    out: str | Path,
    languages: list[str] | None = None,
    strict: bool = False,
    filter_queries: bool = True,
) -> dict:
    """Read the original CodeSearchNet jsonl(.gz) files into a prepared directory."""
    files = csn_files(src, languages)
    maker = PairMaker(filter_queries)

    def records(language: str, split: str, paths: list[Path]) -> Iterator[PairRecord]:
        def parse(obj: object, path: str, line: int) -> PairRecord | None:
            obj = require_object(obj, path, line)
            fields = {name: require_str(obj, name, path, line) for name in REQUIRED}
            return maker.make(
                language,
                split,
                repo=fields["repo"],
                path=fields["path"],
                func_name=fields["func_name"],
                docstring=fields["docstring"],
                code=fields["code"],
                url=fields["url"],
            )

        for path in paths:
            yield from read_jsonl(path, parse, strict=strict, dropped=maker.dropped[language])

    with PreparedWriter(out) as writer:
        for language, splits in files.items():
            for split, paths in splits.items():
                label = f"{language}/{split}"
                writer.write_split(
                    language, split, progress(records(language, split, paths), label)
                )
        return writer.finish(
            builder="csn",
            sources=[str(p) for splits in files.values() for ps in splits.values() for p in ps],
            config={
                "src": str(src),
                "languages": list(files),
                "strict": strict,
                "filter_queries": filter_queries,
            },
            filters=[
                QUERY_FILTERS if filter_queries else "first paragraph of the docstring",
                "python: docstring removed from code (extract.extract_functions)",
            ],
            dropped=dropped_for_manifest(maker.dropped),
        )


def print_summary(out: str | Path, manifest: dict) -> None:
    for language, counts in manifest["counts"].items():
        drops = sum(manifest.get("dropped", {}).get(language, {}).values())
        print(
            f"{language}: "
            + ", ".join(f"{split} {n:,}" for split, n in counts.items())
            + f" ({drops:,} dropped)"
        )
    print(f"wrote {out}")


def _run(args: argparse.Namespace) -> int:
    manifest = prepare_csn(
        args.src,
        args.out,
        languages=args.languages,
        strict=args.strict,
        filter_queries=not args.no_filter,
    )
    print_summary(args.out, manifest)
    return 0


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    parser.add_argument(
        "--languages",
        nargs="+",
        default=None,
        help="languages to read, e.g. python go (default: all found)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad record (default: skip and count it)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "csn",
        help="the original CodeSearchNet jsonl.gz files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--src",
        required=True,
        help="directory with <language>/final/jsonl/<split>/*.jsonl.gz "
        "(or a flat directory of *.jsonl.gz)",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--no-filter",
        action="store_true",
        help="keep every non-empty query (no CodeSearchNet query filters)",
    )
    parser.set_defaults(func=_run)
