"""`codesearch prepare jsonl`: your own (query, code) pairs as a prepared data directory.

Each line of ``--src`` (a ``.jsonl`` / ``.jsonl.gz`` file, or a directory of them, read in name
order) is either a record of our schema (``codesearch.data.schema``: id, language, repo, path,
func_name, query, code, url, split), kept as it is, or just ``{"query": ..., "code": ...}`` with
optional ``language`` (else ``--language``), ``repo``, ``path``, ``func_name`` and ``url``.
For the short form:

- ids are stable: ``make_id(language, query, code)``, suffixed on a collision;
- the split is by ``repo`` when the line has one (no repository in two splits, pair counts near
  ``--fractions``, ``corpus.assign_splits``), else by a hash of (``--seed``, id), so the same
  file gives the same split on every machine;
- ``--filter`` applies the corpus filters (``filters.query_drop_reason`` and
  ``code_drop_reason``), counted in the manifest; by default nothing is filtered.

A bad line (not JSON, not an object, a missing or non-string field, an unknown language) is
skipped and counted, or with ``--strict`` stops the build naming file, line and field.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from collections import Counter, defaultdict
from pathlib import Path

from codesearch.data import filters
from codesearch.data.corpus import assign_splits
from codesearch.data.jsonl_reader import not_a_plain_file, read_jsonl
from codesearch.data.prepared import PreparedWriter
from codesearch.data.readers.csn import UniqueIds, dropped_for_manifest, print_summary
from codesearch.data.schema import (
    ALL_SPLITS,
    FIELDS,
    SPLITS,
    PairRecord,
    check_text,
    normalize_language,
    record_from_dict,
)
from codesearch.errors import DataError, UserError

OPTIONAL = ("repo", "path", "func_name", "url")


def source_files(src: str | Path, skipped: Counter | None = None) -> list[Path]:
    """``src`` itself, or the .jsonl(.gz) files under the directory ``src``; in a directory,
    files that are not plain (FIFOs, devices, links to /proc, ...: ``not_a_plain_file``) are
    skipped and counted in ``skipped`` by reason."""
    src = Path(src)
    if not src.is_dir():
        problem = not_a_plain_file(src)
        if problem is not None:
            raise UserError(f"{src}: {problem}")
        return [src]
    files = []
    for path in sorted(src.rglob("*")):
        if not path.name.endswith((".jsonl", ".jsonl.gz")) or path.is_dir():
            continue
        problem = not_a_plain_file(path)
        if problem is None:
            files.append(path)
        elif skipped is not None:
            skipped[f"file skipped: {problem}"] += 1
    if not files:
        raise UserError(f"{src}: no readable .jsonl or .jsonl.gz files in it")
    return files


def read_line(obj: object, path: str, line: int, language: str | None) -> dict:
    """A line as {record} (full schema) or {fields} (the short form), checked."""
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, line)
    if all(name in obj for name in FIELDS):
        return {"record": record_from_dict(obj, path, line)}
    fields = {}
    for name in ("query", "code", "language", *OPTIONAL):
        if name not in obj:
            if name in ("query", "code"):
                raise DataError("missing", path, line, name)
            continue
        fields[name] = check_text(obj[name], path, line, name)
    if not fields["query"].strip() or not fields["code"].strip():
        raise DataError("empty", path, line, "query" if not fields["query"].strip() else "code")
    given = fields.get("language") or language
    if given is None:
        raise DataError("missing (and no --language given)", path, line, "language")
    try:
        fields["language"] = normalize_language(given)
    except UserError as exc:
        raise DataError(str(exc), path, line, "language") from None
    return {"fields": fields}


def hashed_split(seed: int, key: str, fractions: tuple[float, ...]) -> str:
    """A split from a hash of (seed, key): the same on every machine."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    point, edge = int.from_bytes(digest, "little") / 2**64, 0.0
    for split, fraction in zip(SPLITS, fractions, strict=True):
        edge += fraction
        if point < edge:
            return split
    return SPLITS[-1]


def prepare_jsonl(
    src: str | Path,
    out: str | Path,
    language: str | None = None,
    seed: int = 0,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    apply_filters: bool = False,
    strict: bool = False,
) -> dict:
    """Read pair files into a prepared directory (module docstring); returns the manifest."""
    if (
        len(fractions) != len(SPLITS)
        or not all(math.isfinite(f) and f >= 0 for f in fractions)
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise UserError(
            f"--fractions must be {len(SPLITS)} finite numbers >= 0 summing to 1, got "
            + " ".join(map(str, fractions))
        )
    bad = Counter()
    files = source_files(src, bad)
    dropped: dict[str, Counter] = defaultdict(Counter)
    ids, by_split = UniqueIds(), defaultdict(lambda: defaultdict(list))
    pending: dict[str, list[PairRecord]] = defaultdict(list)  # records still without a split
    for file in files:
        for item in read_jsonl(
            file, lambda o, p, n: read_line(o, p, n, language), strict=strict, dropped=bad
        ):
            if "record" in item:
                record = item["record"]
                by_split[record.language][record.split].append(record)
                continue
            f = item["fields"]
            lang = f["language"]
            if apply_filters:
                reason = filters.query_drop_reason(f["query"]) or filters.code_drop_reason(
                    f.get("func_name", ""), f["code"], f.get("path", ""), lang
                )
                if reason:
                    dropped[lang][reason] += 1
                    continue
            record = PairRecord(
                id=ids(lang, f["query"], f["code"]),
                language=lang,
                repo=f.get("repo", ""),
                path=f.get("path", ""),
                func_name=f.get("func_name", ""),
                query=f["query"],
                code=f["code"],
                url=f.get("url", ""),
                split="",
            )
            pending[lang].append(record)
    for lang, records in pending.items():
        units = Counter(r.repo for r in records if r.repo)
        by_repo = assign_splits(dict(units), fractions) if units else {}
        for r in records:
            split = by_repo[r.repo] if r.repo else hashed_split(seed, r.id, fractions)
            by_split[lang][split].append(PairRecord(**{**r.to_dict(), "split": split}))
    if not by_split:
        raise UserError(f"{src}: no pairs read ({sum(bad.values())} bad lines)")
    with PreparedWriter(out) as writer:
        for lang in sorted(by_split):
            for split in ALL_SPLITS:
                if split in by_split[lang] or split in SPLITS:
                    writer.write_split(lang, split, by_split[lang].get(split, []))
        return writer.finish(
            builder="jsonl",
            sources=[str(f) for f in files],
            config={
                "src": str(src),
                "language": language,
                "seed": seed,
                "fractions": list(fractions),
                "filter": apply_filters,
                "strict": strict,
            },
            filters=["filters.query_drop_reason", "filters.code_drop_reason"]
            if apply_filters
            else ["none"],
            dropped=dropped_for_manifest(dict(dropped)),
            bad_lines=dict(sorted(bad.items())),  # skipped lines by reason (no language known)
        )


def _run(args: argparse.Namespace) -> int:
    manifest = prepare_jsonl(
        args.src,
        args.out,
        language=args.language,
        seed=args.seed,
        fractions=tuple(args.fractions),
        apply_filters=args.filter,
        strict=args.strict,
    )
    print_summary(args.out, manifest)
    if manifest["bad_lines"]:
        print(f"skipped bad lines: {manifest['bad_lines']}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "jsonl",
        help="your own pairs: {query, code[, language, repo]} per line, or our record schema",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--src", required=True, help="a .jsonl(.gz) file or a directory of them")
    parser.add_argument("--out", required=True, help="prepared data directory to write")
    parser.add_argument("--language", default=None, help="for lines without a language")
    parser.add_argument("--seed", type=int, default=0, help="of the split of lines without repo")
    parser.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=[0.8, 0.1, 0.1],
        metavar=("TRAIN", "VALID", "TEST"),
    )
    parser.add_argument("--filter", action="store_true", help="apply the corpus filters")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first bad line (default: skip, count)"
    )
    parser.set_defaults(func=_run)
