"""`codesearch prepare codexglue`: the cleaned CodeSearchNet of CodeBERT / GraphCodeBERT / UniXcoder.

Layout ``<language>/{train,valid,test,codebase}.jsonl``, as written by the preprocess.py of
GraphCodeBERT's codesearch/dataset.zip from the original release and its url lists
(<language>/<split>.txt). Each line is an original CodeSearchNet record (url, code_tokens,
docstring_tokens, original_string, code, repo, path, func_name, ...), with two changes made by
that script: in valid/test the code fields are emptied (the code is the codebase entry with the
same url), and in codebase the docstring fields are emptied. ``codebase`` is the candidate set
of the codebase protocol; gold codes are matched by url.

query = " ".join(docstring_tokens), as in GraphCodeBERT / UniXcoder run.py. code, by
``--text-from``: ``original`` (default) is original_string (or code), with the Python docstring
removed like the other readers; ``tokens`` is " ".join(code_tokens), the text UniXcoder's run.py
trains and evaluates on (and so the published numbers); the manifest records which. The data
are already filtered; no query filter is applied here, so the published candidate sets stay
intact. A codebase entry keeps its url; its query is that of the valid/test record with the same
url, else "" (codebase entries are candidates, never queries; the schema allows an empty
query in the codebase split only).
"""

from __future__ import annotations

import argparse
import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.prepared import PreparedWriter
from codesearch.data.readers.csn import (
    UniqueIds,
    add_common_arguments,
    dropped_for_manifest,
    language_dirs,
    print_summary,
    progress,
    repo_and_path_from_url,
    require_object,
    require_str,
    require_str_list,
    strip_docstring,
)
from codesearch.data.schema import ALL_SPLITS, CANDIDATE_SPLIT, PairRecord
from codesearch.errors import DataError, UserError

TEXT_FROM = ("original", "tokens")


def read_entry(obj: object, path: str, line: int, text_from: str = "original") -> dict:
    """One cleaned-CodeXGLUE line as {url, query, code, repo, path, func_name}."""
    obj = require_object(obj, path, line)
    url = require_str(obj, "url", path, line)
    if not url.strip():
        raise DataError("empty", path, line, "url")
    query = " ".join(require_str_list(obj, "docstring_tokens", path, line)).strip()
    code = ""
    if text_from == "tokens":
        code = " ".join(require_str_list(obj, "code_tokens", path, line)).strip()
    elif "original_string" not in obj and "code" not in obj:
        raise DataError("missing (and no 'code' either)", path, line, "original_string")
    for name in ("original_string", "code") if text_from == "original" else ():
        if name in obj:
            code = require_str(obj, name, path, line)
            if code.strip():
                break
    url_repo, url_path = repo_and_path_from_url(url)
    entry = {
        "url": url,
        "query": query,
        "code": code,
        "repo": url_repo,
        "path": url_path,
        "func_name": "",
    }
    for name in ("repo", "path", "func_name"):  # optional; the url gives repo and path
        if name in obj:
            entry[name] = require_str(obj, name, path, line)
    return entry


def with_code_and_query(
    entries: Iterable[dict], code_of: dict[str, str], drops: Counter
) -> Iterator[dict]:
    """Entries with code (valid/test: taken from the codebase by url) and a query."""
    for entry in entries:
        if not entry["code"].strip():
            if entry["url"] not in code_of:
                drops["code_not_in_codebase"] += 1  # valid/test code is the codebase's
                continue
            entry["code"] = code_of[entry["url"]]
        if not entry["query"]:
            drops["query_empty"] += 1
            continue
        yield entry


def split_file(directory: Path, split: str) -> Path | None:
    """``<split>.jsonl``, or ``<split>.jsonl.gz``, in a language directory."""
    for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def prepare_codexglue(
    src: str | Path,
    out: str | Path,
    languages: list[str] | None = None,
    strict: bool = False,
    text_from: str = "original",
) -> dict:
    """Read the cleaned CodeXGLUE code-search files into a prepared directory; ``text_from``
    picks the code text (module docstring)."""
    if text_from not in TEXT_FROM:
        raise UserError(f"--text-from must be one of {', '.join(TEXT_FROM)}, got '{text_from}'")
    read = functools.partial(read_entry, text_from=text_from)
    dirs = language_dirs(src, languages)
    ids = UniqueIds()
    dropped: dict[str, Counter] = {lang: Counter() for lang in dirs}
    sources: list[str] = []
    without_query: dict[str, int] = {}

    def entries(file: Path, language: str) -> Iterator[dict]:
        sources.append(str(file))
        return progress(
            read_jsonl(file, read, strict=strict, dropped=dropped[language]),
            f"{language}/{file.name.split('.')[0]}",
        )

    def record(language: str, split: str, entry: dict) -> PairRecord:
        # code_tokens carry no docstring (CodeSearchNet tokenised the function without it)
        code = entry["code"] if text_from == "tokens" else strip_docstring(entry["code"], language)
        return PairRecord(
            id=ids(language, entry["url"], code),
            language=language,
            repo=entry["repo"],
            path=entry["path"],
            func_name=entry["func_name"],
            query=entry["query"],
            code=code,
            url=entry["url"],
            split=split,
        )

    with PreparedWriter(out) as writer:
        for language, directory in dirs.items():
            files = {split: path for split in ALL_SPLITS if (path := split_file(directory, split))}
            if not files:
                raise UserError(
                    f"{directory}: no train/valid/test/codebase.jsonl in it (run "
                    f"the CodeXGLUE preprocess step, or see "
                    f"data_prep/fetch_codesearchnet.py)"
                )
            drops = dropped[language]
            codebase = (
                list(entries(files[CANDIDATE_SPLIT], language)) if CANDIDATE_SPLIT in files else []
            )
            code_of = {e["url"]: e["code"] for e in codebase if e["code"].strip()}
            query_of: dict[str, str] = {}
            for split in ("train", "valid", "test"):
                if split not in files:
                    continue
                kept = with_code_and_query(entries(files[split], language), code_of, drops)
                if split != "train":  # their queries also name the codebase entries
                    kept = list(kept)
                    for entry in kept:
                        query_of.setdefault(entry["url"], entry["query"])
                writer.write_split(
                    language, split, (record(language, split, entry) for entry in kept)
                )
            if codebase:
                n_without_query = 0
                candidates = []
                for entry in codebase:
                    if not entry["code"].strip():
                        drops["code_empty"] += 1
                        continue
                    if not entry["query"]:
                        entry["query"] = query_of.get(entry["url"], "")
                    n_without_query += not entry["query"]
                    candidates.append(record(language, CANDIDATE_SPLIT, entry))
                writer.write_split(language, CANDIDATE_SPLIT, candidates)
                without_query[language] = n_without_query
        return writer.finish(
            builder="codexglue",
            sources=sources,
            config={
                "src": str(src),
                "languages": list(dirs),
                "strict": strict,
                "text_from": text_from,
            },
            filters=[
                "none (already cleaned by CodeXGLUE)",
                "query = ' '.join(docstring_tokens)",
                "code = ' '.join(code_tokens)"
                if text_from == "tokens"
                else "python: docstring removed from code (extract.extract_functions)",
            ],
            dropped=dropped_for_manifest(dropped),
            codebase_without_query=without_query,
        )


def _run(args: argparse.Namespace) -> int:
    manifest = prepare_codexglue(
        args.src, args.out, languages=args.languages, strict=args.strict, text_from=args.text_from
    )
    print_summary(args.out, manifest)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "codexglue",
        help="the cleaned CodeSearchNet of CodeXGLUE / GraphCodeBERT / UniXcoder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--src", required=True, help="directory with <language>/{train,valid,test,codebase}.jsonl"
    )
    parser.add_argument(
        "--text-from",
        default="original",
        choices=TEXT_FROM,
        help="code text: original_string (docstring removed) or ' '.join(code_tokens), "
        "as UniXcoder's run.py (default original)",
    )
    add_common_arguments(parser)
    parser.set_defaults(func=_run)
