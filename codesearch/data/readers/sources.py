"""`codesearch prepare sources`: pairs from any source tree (a user's own code), CodeSearchNet style."""

from __future__ import annotations

import argparse
from pathlib import Path

from codesearch.data.corpus import build_corpus, extract_tree, write_corpus
from codesearch.data.schema import normalize_language
from codesearch.errors import UserError


def prepare_sources(
    src: str | Path,
    language: str,
    out: str | Path,
    package: str | None = None,
    unit_depth: int = 1,
    url_base: str = "",
    max_share: float = 0.4,
    workers: int = 2,
) -> dict:
    """Extract, filter, deduplicate and split one source tree; returns the manifest."""
    src = Path(src)
    language = normalize_language(language)
    if not src.is_dir():
        raise UserError(f"{src}: no such source directory")
    package = package or src.resolve().name
    records, extraction_dropped = extract_tree(
        src, language, package, unit_depth=unit_depth, url_base=url_base, workers=workers
    )
    if not records:
        raise UserError(
            f"{src}: no {language} functions with a doc comment passed the filters "
            f"({extraction_dropped['files_read']} files read)"
        )
    package_of = {r.repo: package for r in records}
    records, report = build_corpus(
        records, package_of, max_share=max_share, dropped={language: extraction_dropped}
    )
    config = {
        "src": str(src),
        "language": language,
        "package": package,
        "unit_depth": unit_depth,
        "url_base": url_base,
        "max_share": max_share,
    }
    return write_corpus(
        out,
        records,
        builder="sources",
        config=config,
        sources=[{"path": str(src), "package": package, "language": language}],
        **report,
    )


def _run(args: argparse.Namespace) -> int:
    manifest = prepare_sources(
        args.src,
        args.language,
        args.out,
        package=args.package,
        unit_depth=args.unit_depth,
        url_base=args.url_base,
        workers=args.workers,
    )
    counts = manifest["counts"]
    print(
        f"wrote {args.out}: "
        + ", ".join(f"{lang} " + "/".join(str(n) for n in c.values()) for lang, c in counts.items())
        + " (train/valid/test)"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sources",
        help="pairs from a source tree of one language (your own code)",
        description=__doc__,
    )
    parser.add_argument("--src", required=True, help="root of the source tree")
    parser.add_argument("--language", required=True, help="python|java|javascript|go|php|ruby")
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    parser.add_argument("--package", default=None, help="name of the tree (default: dir name)")
    parser.add_argument(
        "--unit-depth",
        type=int,
        default=1,
        help="split unit = the first N directories under --src (default 1); "
        "with fewer than 10 units the split is by file",
    )
    parser.add_argument("--url-base", default="", help="prefix for record urls (optional)")
    parser.add_argument("--workers", type=int, default=2, help="extraction processes")
    parser.set_defaults(func=_run)
