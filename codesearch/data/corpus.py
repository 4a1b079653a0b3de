"""Build a corpus of (doc comment, function) pairs from source trees, CodeSearchNet style.

The recipe of CodeSearchNet (Husain et al. 2019, arXiv 1909.09436) and its CodeXGLUE cleaning:
functions paired with the first paragraph of their doc comment (tree-sitter), queries and code
filtered (codesearch.data.filters), exact duplicate code removed across the whole corpus, and
an 80/10/10 split by repository so that no unit and no code text appears in two splits.
Our additions: no single package gives more than ``max_share`` of a language's pairs (generated
code would otherwise dominate), and where a language has fewer than 10 split units the split
falls back to file-level units (recorded in the report).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from codesearch.data import extract, filters
from codesearch.data.jsonl_reader import not_a_plain_file
from codesearch.data.prepared import PreparedWriter
from codesearch.data.schema import SPLITS, PairRecord, make_id
from codesearch.errors import UserError

MAX_FILE_BYTES = 1 << 20  # larger source files are bundles or generated tables
MIN_SPLIT_UNITS = 10  # below this many units a language is split by file


def _hash_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _unit_of(package: str, rel_path: str, unit_depth: int) -> str:
    parts = rel_path.split("/")[:-1][:unit_depth]
    return "/".join([package, *parts])


def list_source_files(
    root: Path, language: str, include: list[str] | None = None, exclude: list[str] | None = None
) -> list[str]:
    """Relative posix paths of the language's source files under root, sorted."""
    suffixes = extract.SOURCE_EXTENSIONS[language]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(suffixes):
                continue
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if include and not any(fnmatch.fnmatch(rel, p) for p in include):
                continue
            if exclude and any(fnmatch.fnmatch(rel, p) for p in exclude):
                continue
            found.append(rel)
    return found


def _extract_file(job: tuple) -> tuple[list[PairRecord], Counter]:
    """Pairs of one file and the reasons for what was dropped (runs in a worker process)."""
    root, rel, language, package, unit_depth, url_base = job
    dropped: Counter = Counter()
    path = Path(root, rel)
    if not_a_plain_file(path) is not None:  # a FIFO, a device, a link into /proc, gone
        dropped["file_not_regular"] += 1
        return [], dropped
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            dropped["file_too_large"] += 1
            return [], dropped
        with open(path, "rb") as handle:
            source = handle.read(MAX_FILE_BYTES + 1)  # the file may have grown since stat
    except OSError:
        dropped["file_unreadable"] += 1
        return [], dropped
    if len(source) > MAX_FILE_BYTES:
        dropped["file_too_large"] += 1
        return [], dropped
    try:
        source.decode("utf-8")
    except UnicodeDecodeError:
        dropped["file_not_utf8"] += 1
        return [], dropped
    tree = extract.parse(source, language)
    if extract.has_syntax_errors(source, language, tree=tree):
        dropped["file_parse_error"] += 1
        return [], dropped
    repo = _unit_of(package, rel, unit_depth)
    records = []
    for func in extract.extract_functions(source, language, tree=tree):
        query = filters.first_paragraph(func.docstring, language)
        reason = filters.query_drop_reason(query) or filters.code_drop_reason(
            func.name, func.code, rel, language
        )
        if reason:
            dropped[reason] += 1
            continue
        records.append(
            PairRecord(
                id=make_id(language, repo, rel, func.name, str(func.line)),
                language=language,
                repo=repo,
                path=rel,
                func_name=func.name,
                query=query,
                code=func.code,
                url=f"{url_base}{rel}#L{func.line}" if url_base else "",
                split="",
            )
        )
    return records, dropped


def extract_tree(
    root: str | Path,
    language: str,
    package: str,
    unit_depth: int = 0,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    url_base: str = "",
    workers: int = 2,
    progress: bool = True,
) -> tuple[list[PairRecord], Counter]:
    """Extract filtered pairs from every source file of ``language`` under ``root``.

    Records come back in file order with ``split=""``; ``repo`` is the split unit: the package,
    or package/<first ``unit_depth`` directories>. Files that are not regular (FIFOs, devices),
    unreadable, oversized, non-UTF-8 or unparsable, and paths that are not UTF-8, are skipped and
    counted (``file_*`` reasons) with the filter drops.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such source directory")
    dropped: Counter = Counter()
    files = []
    for rel in list_source_files(root, language, include, exclude):
        try:
            rel.encode("utf-8")  # os.walk gives undecodable bytes as surrogates
        except UnicodeEncodeError:
            dropped["file_name_not_utf8"] += 1
            continue
        files.append(rel)
    jobs = [(str(root), rel, language, package, unit_depth, url_base) for rel in files]
    records: list[PairRecord] = []
    bar = tqdm(
        total=len(jobs),
        desc=f"{language}:{package}",
        unit="file",
        disable=not progress,
        leave=False,
    )
    if workers > 1 and len(jobs) > 50:
        with get_context("fork").Pool(workers) as pool:
            results = pool.imap(_extract_file, jobs, chunksize=16)
            for file_records, file_dropped in results:
                records.extend(file_records)
                dropped.update(file_dropped)
                bar.update()
    else:
        for job in jobs:
            file_records, file_dropped = _extract_file(job)
            records.extend(file_records)
            dropped.update(file_dropped)
            bar.update()
    bar.close()
    dropped["files_read"] = len(jobs)
    return records, dropped


def remove_duplicate_code(
    records: Iterable[PairRecord], dropped: dict[str, Counter]
) -> list[PairRecord]:
    """Keep the first record of each distinct (whitespace-normalised) code text."""
    seen: set[str] = set()
    kept = []
    for record in records:
        key = _hash_key(filters.normalize_code_for_dedup(record.code))
        if key in seen:
            dropped[record.language]["duplicate_code"] += 1
            continue
        seen.add(key)
        kept.append(record)
    return kept


def cap_package_share(
    records: list[PairRecord], package_of: dict[str, str], max_share: float, dropped: Counter
) -> tuple[list[PairRecord], dict[str, dict[str, int]]]:
    """Down-sample any package above ``max_share`` of one language's pairs (deterministic).

    With n_p pairs in the package and R in all the others, the package keeps
    floor(max_share / (1 - max_share) * R); repeated until no package is above the share. A
    language with a single package is left alone.
    """
    by_package: dict[str, list[PairRecord]] = defaultdict(list)
    for record in records:
        by_package[package_of[record.repo]].append(record)
    before = {p: len(rs) for p, rs in by_package.items()}
    if len(by_package) > 1:
        while True:
            total = sum(len(rs) for rs in by_package.values())
            package, largest = max(by_package.items(), key=lambda kv: (len(kv[1]), kv[0]))
            if len(largest) <= max_share * total:
                break
            others = total - len(largest)
            cap = int(max_share / (1 - max_share) * others)
            # a hash order is a deterministic sample that does not favour any file
            keep = sorted(largest, key=lambda r: _hash_key(r.id))[:cap]
            keep_ids = {r.id for r in keep}
            by_package[package] = [r for r in largest if r.id in keep_ids]
            dropped["package_cap"] += len(largest) - len(keep)
    kept_ids = {r.id for rs in by_package.values() for r in rs}
    report = {p: {"before": before[p], "after": len(by_package[p])} for p in sorted(before)}
    return [r for r in records if r.id in kept_ids], report


def assign_splits(units: dict[str, int], fractions: tuple[float, ...]) -> dict[str, str]:
    """Assign units (name -> pair count) to SPLITS so pair counts follow ``fractions``.

    Deterministic. Units too big for an evaluation split (over half the smallest split's
    target) go to train, so that no single package makes up a whole valid or test set; the
    others, in the order of a hash of their name, each go to the split furthest below its
    target. No unit is in two splits.
    """
    if len(fractions) != len(SPLITS) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be {len(SPLITS)} numbers summing to 1, got {fractions}")
    total = sum(units.values())
    big_limit = 0.5 * min(fractions) * total
    big = {u for u, n in units.items() if n > big_limit}
    if sum(units[u] for u in units if u not in big) < (1 - fractions[0]) * total:
        big = set()  # too few small units to fill valid and test: treat all alike
    filled = dict.fromkeys(SPLITS, 0)
    assignment = {}
    for unit in sorted(big, key=_hash_key):
        assignment[unit] = SPLITS[0]
        filled[SPLITS[0]] += units[unit]
    for unit in sorted((u for u in units if u not in big), key=_hash_key):
        split = max(
            SPLITS,
            key=lambda s: (
                (fractions[SPLITS.index(s)] * total - filled[s]) / fractions[SPLITS.index(s)]
            ),
        )
        assignment[unit] = split
        filled[split] += units[unit]
    return assignment


def build_corpus(
    records: list[PairRecord],
    package_of: dict[str, str],
    max_share: float = 0.4,
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1),
    dropped: dict[str, Counter] | None = None,
) -> tuple[list[PairRecord], dict]:
    """Deduplicate, cap, and split extracted records; returns them with ``split`` set.

    ``package_of`` maps each record's ``repo`` (split unit) to its source package (cap unit).
    ``dropped`` (language -> reason counts) carries the extraction drops into the report, which
    holds drops per language and reason, the cap per package and the split units.
    """
    dropped = defaultdict(Counter, {k: Counter(v) for k, v in (dropped or {}).items()})
    records = remove_duplicate_code(records, dropped)
    by_language: dict[str, list[PairRecord]] = defaultdict(list)
    for record in records:
        by_language[record.language].append(record)
    out: list[PairRecord] = []
    report: dict = {"cap": {}, "split": {}, "max_share": max_share, "fractions": list(fractions)}
    for language in sorted(by_language):
        kept, report["cap"][language] = cap_package_share(
            by_language[language], package_of, max_share, dropped[language]
        )
        repos = Counter(r.repo for r in kept)
        file_level = len(repos) < MIN_SPLIT_UNITS
        unit_of = (lambda r: f"{r.repo}/{r.path}") if file_level else (lambda r: r.repo)
        units = Counter(unit_of(r) for r in kept)
        assignment = assign_splits(units, fractions)
        out.extend(PairRecord(**{**r.to_dict(), "split": assignment[unit_of(r)]}) for r in kept)
        report["split"][language] = {
            "unit": "file" if file_level else "repo",
            "units": dict(Counter(assignment.values())),
        }
    report["dropped"] = {lang: dict(sorted(c.items())) for lang, c in sorted(dropped.items())}
    return out, report


def write_corpus(out_dir: str | Path, records: list[PairRecord], **manifest_fields) -> dict:
    """Write split records as a prepared directory (see codesearch.data.prepared)."""
    groups: dict[str, dict[str, list[PairRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record.language][record.split].append(record)
    with PreparedWriter(out_dir) as writer:
        for language in sorted(groups):
            for split in SPLITS:  # every split is written, even an empty one
                writer.write_split(language, split, groups[language][split])
        return writer.finish(**manifest_fields)
