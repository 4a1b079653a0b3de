"""Write a small cleaned-CodeXGLUE-format corpus from a prepared directory (the `paper-tiny`
stand-in for the cleaned CodeSearchNet of `experiments/paper.yaml`).

The layout and fields are those `codesearch prepare codexglue` reads (docs/data.md):
``<language>/{train,valid,test,codebase}.jsonl.gz`` with url, code_tokens, docstring_tokens,
original_string, code, repo, path, func_name; valid/test lines have their code fields emptied
(their code is the codebase entry with the same url) and codebase lines their docstring fields,
as GraphCodeBERT's preprocess.py writes them. The codebase is the valid and test codes. Tokens
are a plain regex split (identifiers, numbers, single punctuation), standing in for
CodeSearchNet's tree-sitter tokens. The pairs are the first short ones of each split, so the
output depends only on the source directory.

    python data_prep/make_codexglue_fixture.py --src data/local --out experiments/fixtures/codexglue-tiny
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
from pathlib import Path

from codesearch.data.prepared import load_records
from codesearch.errors import UserError

TOKEN = re.compile(r"\w+|[^\w\s]")
SIZES = {"train": 300, "valid": 40, "test": 60}


def open_gzip(path: Path):
    """A text handle writing gzip without a timestamp, so the bytes depend on the content."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", mtime=0), encoding="utf-8")


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def line(record, code: bool, docstring: bool) -> dict:
    return {
        "url": record.url,
        "repo": record.repo,
        "path": record.path,
        "func_name": record.func_name,
        "original_string": record.code if code else "",
        "code": record.code if code else "",
        "code_tokens": tokens(record.code) if code else [],
        "docstring": record.query if docstring else "",
        "docstring_tokens": tokens(record.query) if docstring else [],
    }


def write_fixture(src: str, out: str, languages: list[str], max_code_chars: int = 500) -> dict:
    counts = {}
    for language in languages:
        directory = Path(out) / language
        directory.mkdir(parents=True, exist_ok=True)
        codebase = []
        for split, size in SIZES.items():
            records = [
                r
                for r in load_records(src, language, split)
                if r.url and len(r.code) <= max_code_chars and len(tokens(r.query)) >= 3
            ][:size]
            if len(records) < size:
                raise UserError(f"{src}/{language}/{split}.jsonl: only {len(records)} short pairs")
            with open_gzip(directory / f"{split}.jsonl.gz") as handle:
                for r in records:
                    keep_code = split == "train"  # valid/test code lives in the codebase
                    handle.write(json.dumps(line(r, keep_code, True)) + "\n")
            if split != "train":
                codebase += records
        with open_gzip(directory / "codebase.jsonl.gz") as handle:
            for r in codebase:
                handle.write(json.dumps(line(r, True, False)) + "\n")
        counts[language] = {**SIZES, "codebase": len(codebase)}
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default="data/local", help="prepared data directory")
    parser.add_argument("--out", required=True, help="fixture directory to write")
    parser.add_argument("--languages", nargs="+", default=["ruby", "python"])
    args = parser.parse_args(argv)
    try:
        counts = write_fixture(args.src, args.out, args.languages)
    except UserError as error:
        print(f"make_codexglue_fixture: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
