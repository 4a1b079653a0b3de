"""`codesearch prepare local`: the offline six-language corpus from registry source packages.

For machines that reach Debian's archive, npm and PyPI but no data hub (docs/data.md). We
fetch a pinned list of source packages (``local_sources.yaml``: ``codesearch.data.source_list``;
``codesearch.data.fetch``) and apply CodeSearchNet's recipe (Husain et al. 2019, arXiv
1909.09436) with ``codesearch.data.corpus``: functions paired with the first paragraph of
their doc comment, filtered, exact duplicates removed, no package above 40% of a language,
split 80/10/10 by unit (the package, or package/<first ``unit_depth`` directories>).

The manifest lists every source with its exact version, archive sha256, ``pairs_before_cap``
(pairs that passed the filters) and ``pairs_after_cap`` (pairs in the corpus, after the
source's ``max_pairs``, duplicate removal and the 40% cap).

Per-source extraction results are cached beside the downloads (keyed by the archive hash,
the source's settings and the extractor's code), so a second build mostly reads the cache.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from codesearch.data import (
    corpus,
    doc_comments,
    extract,
    fetch,
    filters,
    language_rules,
    source_list,
)
from codesearch.data.corpus import build_corpus, extract_tree, write_corpus
from codesearch.data.prepared import file_digest
from codesearch.data.schema import LANGUAGES, PairRecord, parse_languages
from codesearch.errors import UserError

MAX_SHARE = 0.4
FRACTIONS = (0.8, 0.1, 0.1)
PAIRS_CACHE = "pairs"  # CACHE/pairs/<registry>/<name>-<version>-<key>.json.gz


def extractor_version() -> str:
    """A hash of the extraction code and grammar versions: a change invalidates cached pairs."""
    digest = hashlib.sha256()
    for module in (extract, doc_comments, language_rules, filters, corpus):
        digest.update(Path(module.__file__).read_bytes())
    for dist in ("tree-sitter", *(f"tree-sitter-{lang}" for lang in extract.SOURCE_EXTENSIONS)):
        try:
            digest.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return digest.hexdigest()[:16]


def url_base(fetched: fetch.Fetched) -> str:
    """A pseudo-URL naming the exact package a record comes from: ``debian:mediawiki@1.39/``."""
    source = fetched.source
    return f"{source.registry}:{source.name}@{fetched.version}/"


def _pairs_cache_path(cache: Path, fetched: fetch.Fetched, version: str) -> Path:
    source = fetched.source
    settings = json.dumps(
        [
            fetched.sha256,
            source.language,
            source.root,
            source.include,
            source.exclude,
            source.unit_depth,
            version,
        ]
    )
    key = hashlib.sha256(settings.encode()).hexdigest()[:16]
    return cache / PAIRS_CACHE / source.registry / f"{source.key}-{source.language}-{key}.json.gz"


def extract_source(
    fetched: fetch.Fetched, cache: Path, version: str, workers: int = 2, progress: bool = True
) -> tuple[list[PairRecord], Counter]:
    """Filtered pairs of one fetched source (split unset), from the pairs cache when it has them."""
    path = _pairs_cache_path(cache, fetched, version)
    if path.is_file():
        try:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                data = json.load(handle)
            return [PairRecord(**r) for r in data["records"]], Counter(data["dropped"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache file: extract again
    source = fetched.source
    records, dropped = extract_tree(
        fetched.tree,
        source.language,
        source.name,
        unit_depth=source.unit_depth,
        include=list(source.include) or None,
        exclude=list(source.exclude) or None,
        url_base=url_base(fetched),
        workers=workers,
        progress=progress,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        json.dump({"records": [r.to_dict() for r in records], "dropped": dict(dropped)}, handle)
    os.replace(tmp, path)
    return records, dropped


def cap_source(records: list[PairRecord], max_pairs: int | None) -> list[PairRecord]:
    """At most ``max_pairs`` records, chosen by a hash of the id (deterministic, spread over files)."""
    if max_pairs is None or len(records) <= max_pairs:
        return records
    keep = set(
        sorted((r.id for r in records), key=lambda i: hashlib.sha1(i.encode()).hexdigest())[
            :max_pairs
        ]
    )
    return [r for r in records if r.id in keep]


def build_local_corpus(
    out: str | Path,
    cache: str | Path = fetch.DEFAULT_CACHE,
    languages: list[str] | str | None = None,
    sources_file: str | Path = source_list.DEFAULT_SOURCES,
    offline: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Fetch the pinned sources, extract, deduplicate, cap and split; returns the manifest."""
    cache = Path(cache)
    sources = source_list.load_sources(sources_file)
    if languages is not None:  # else every language of the list
        wanted = parse_languages(languages)
        lacking = [lang for lang in wanted if not any(s.language == lang for s in sources)]
        if lacking:
            raise UserError(f"{sources_file}: no source for {', '.join(lacking)}")
        sources = [s for s in sources if s.language in wanted]
    languages = sorted({s.language for s in sources}, key=LANGUAGES.index)
    fetched = fetch.fetch_all(sources, cache, offline=offline, progress=progress)

    version = extractor_version()
    records: list[PairRecord] = []
    package_of: dict[str, str] = {}
    dropped: dict[str, Counter] = defaultdict(Counter)
    per_source = []
    # Hand-written sources come first in the list: duplicate removal keeps the first copy.
    for item in tqdm(fetched, desc="extract", unit="pkg", disable=not progress):
        source = item.source
        found, source_dropped = extract_source(item, cache, version, workers, progress)
        kept = cap_source(found, source.max_pairs)
        if len(kept) < len(found):
            source_dropped["max_pairs"] += len(found) - len(kept)
        dropped[source.language].update(source_dropped)
        for record in kept:
            package_of[record.repo] = source.name
        records.extend(kept)
        per_source.append((item, len(found), len(kept)))
    missing = [lang for lang in languages if not any(r.language == lang for r in records)]
    if missing:
        raise UserError(f"no pairs for {', '.join(missing)}: check {sources_file}")

    records, report = build_corpus(
        records, package_of, max_share=MAX_SHARE, fractions=FRACTIONS, dropped=dropped
    )
    final = Counter((r.language, package_of[r.repo]) for r in records)
    manifest_sources = [
        {
            "registry": item.source.registry,
            "name": item.source.name,
            "version": item.version,
            "sha256": item.sha256,
            "archive": item.archive,
            "language": item.source.language,
            "generated": item.source.generated,
            "pairs_before_cap": n_found,
            "pairs_after_cap": final[(item.source.language, item.source.name)],
        }
        for item, n_found, _ in per_source
    ]
    config = {
        "sources_file": str(sources_file),
        "sources_sha256": file_digest(Path(sources_file)),
        "languages": languages,
        "max_share": MAX_SHARE,
        "fractions": list(FRACTIONS),
        "extractor_version": version,
        "python": platform.python_version(),
        "download_bytes": sum(item.size for item in fetched if item.source.registry != "stdlib"),
    }
    return write_corpus(
        out, records, builder="local", sources=manifest_sources, config=config, **report
    )


def print_summary(out: str | Path, manifest: dict) -> None:
    for language, counts in manifest["counts"].items():
        print(f"{language}: " + ", ".join(f"{split} {n:,}" for split, n in counts.items()))
    print(f"wrote {out}")


def _run(args: argparse.Namespace) -> int:
    manifest = build_local_corpus(
        args.out,
        cache=args.cache,
        languages=args.languages,
        sources_file=args.sources,
        offline=args.offline,
        workers=args.workers,
        progress=not args.quiet,
    )
    print_summary(args.out, manifest)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "local",
        help="offline corpus from Debian / npm / PyPI source packages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    parser.add_argument(
        "--cache",
        default=str(fetch.DEFAULT_CACHE),
        help=f"downloaded packages and extracted pairs (default {fetch.DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--languages", nargs="+", default=None, help="e.g. python go (default: all six)"
    )
    parser.add_argument(
        "--sources",
        default=str(source_list.DEFAULT_SOURCES),
        help="pinned source list (default: the packaged local_sources.yaml)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="use only the cache; a missing package is an error"
    )
    parser.add_argument("--workers", type=int, default=2, help="extraction processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_run)
