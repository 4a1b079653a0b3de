"""Prepared data directories: ``DIR/<language>/<split>.jsonl`` and ``DIR/manifest.json``.

Every reader writes through PreparedWriter, which builds into a new directory of a unique name
beside ``DIR`` and renames it into place only after the manifest (counts, content hashes,
sources, filters, drops) is written. A directory without ``manifest.json`` is never taken as
complete, and an existing ``DIR`` is replaced only when it is empty or wholly codesearch's.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from codesearch import __version__
from codesearch.data.jsonl_reader import not_a_plain_file, read_jsonl
from codesearch.data.schema import (
    ALL_SPLITS,
    KNOWN_LANGUAGES,
    TASKS,
    PairRecord,
    record_from_dict,
)
from codesearch.errors import DataError, UserError
from codesearch.outputs import DirectoryLock, replace_dir, replacing_file, staging_dir

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks (``algorithm``: any hashlib name)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text through a temporary file of a unique name and an atomic rename."""
    with replacing_file(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def json_safe(obj: object) -> object:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN; Python's
    json module would write the invalid token ``NaN``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: json_safe(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(value) for value in obj]
    return obj


def read_json_object(path: str | Path) -> dict:
    """A JSON object from a file; UserError naming the file when it is missing, malformed or
    not an object."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: malformed JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object")
    return obj


def write_json_atomic(path: str | Path, obj: object) -> None:
    """Write JSON (NaN and infinities as null) through a temporary file and an atomic rename."""
    write_text_atomic(
        path, json.dumps(json_safe(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    )


def data_hash(files: dict[str, dict]) -> str:
    """The manifest's data_hash: sha256 over the listed files' paths and sha256s, in order."""
    return hashlib.sha256(
        "".join(f"{k}:{v['sha256']}\n" for k, v in files.items()).encode()
    ).hexdigest()


def foreign_entry(out_dir: Path) -> str | None:
    """The first entry of an existing ``out_dir`` that is not part of a prepared directory
    written by codesearch (its manifest and the files the manifest lists), or None when
    ``out_dir`` is empty or wholly codesearch's, so that it may be replaced. Walks no further
    than that first entry and follows no links."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        listed = set(manifest["files"]) | {MANIFEST}
        listed |= {name.split("/")[0] for name in listed if "/" in name}  # language folders
    except (OSError, ValueError, KeyError, TypeError):
        listed = None
    for root, dirs, files in os.walk(out_dir):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            entry = (Path(root) / name).relative_to(out_dir).as_posix()
            if listed is None:
                return f"{entry} and no readable {MANIFEST} of codesearch"
            if entry not in listed:
                return entry
    return None


class PreparedWriter:
    """Write one prepared directory; use as a context manager, call ``finish`` to commit.

    The build goes into a new directory of a unique name beside ``out_dir`` and is renamed
    into place by ``finish``. An existing ``out_dir`` is replaced only when it is empty or a
    prepared directory written by codesearch with nothing else in it; anything else is a
    UserError before any work, and nothing is touched. Leaving the block without ``finish``
    (an error, Ctrl-C) deletes the partial build and leaves any earlier directory untouched.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.partial: Path | None = None
        self.counts: dict[str, dict[str, int]] = {}
        self.ids: dict[str, str] = {}  # id -> the file it was first written to
        self.finished = False

    def check_replaceable(self) -> None:
        if not self.out_dir.exists():
            return
        if not self.out_dir.is_dir():
            raise UserError(f"{self.out_dir}: exists and is not a directory")
        entry = foreign_entry(self.out_dir)
        if entry is not None:
            raise UserError(
                f"{self.out_dir}: exists and is not a prepared data directory of codesearch "
                f"(it holds {entry}); nothing was changed: choose another --out"
            )

    def __enter__(self) -> PreparedWriter:
        self.out_dir.absolute().parent.mkdir(parents=True, exist_ok=True)
        self.lock = DirectoryLock(self.out_dir, "prepared data directory", beside=True)
        self.lock.__enter__()  # two builds into one --out: the second stops here
        try:
            self.check_replaceable()
            self.partial = staging_dir(self.out_dir)
        except BaseException:
            self.lock.__exit__()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.finished and self.partial is not None:
            shutil.rmtree(self.partial, ignore_errors=True)
        self.lock.__exit__()

    def write_split(self, language: str, split: str, records: Iterable[PairRecord]) -> int:
        if language not in KNOWN_LANGUAGES or split not in ALL_SPLITS:
            raise ValueError(f"bad language/split {language}/{split}")
        path = self.partial / language / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with open(path, "w", encoding="utf-8") as handle:
            for record in records:
                if record.language != language or record.split != split:
                    raise ValueError(
                        f"record {record.id} is {record.language}/{record.split}, "
                        f"written to {language}/{split}"
                    )
                if record.id in self.ids:
                    raise DataError(
                        f"id '{record.id}' again (first in {self.ids[record.id]}); ids must "
                        f"be unique in a prepared directory",
                        f"{self.out_dir}/{language}/{split}.jsonl",
                        n + 1,
                        "id",
                    )
                self.ids[record.id] = f"{language}/{split}.jsonl"
                handle.write(json.dumps(record.to_dict(), ensure_ascii=False))
                handle.write("\n")
                n += 1
        self.counts.setdefault(language, {})[split] = n
        return n

    def finish(self, **manifest_fields) -> dict:
        """Write the manifest (counts and hashes computed here) and move the build into place."""
        files = {}
        for path in sorted(self.partial.glob("*/*.jsonl")):
            rel = path.relative_to(self.partial).as_posix()
            files[rel] = {
                "sha256": file_digest(path),
                "records": self.counts[path.parent.name][path.stem],
            }
        if not files:
            raise UserError(
                f"{self.out_dir}: no records to write (every input was empty or filtered out)"
            )
        manifest = {
            "format_version": FORMAT_VERSION,
            "codesearch_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "counts": {
                lang: dict(self.counts[lang]) for lang in KNOWN_LANGUAGES if lang in self.counts
            },
            "files": files,
            "data_hash": data_hash(files),
            **manifest_fields,
        }
        write_json_atomic(self.partial / MANIFEST, manifest)
        self.check_replaceable()  # again: the build may have taken hours
        replace_dir(self.partial, self.out_dir)
        self.finished = True
        return manifest


def load_manifest(data_dir: str | Path) -> dict:
    """Read ``DIR/manifest.json``; a clear UserError if DIR is not a complete prepared dir."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"{data_dir}: no such data directory (make one with `codesearch prepare`)")
    path = data_dir / MANIFEST
    if not path.is_file():
        raise UserError(
            f"{data_dir}: not a complete prepared data directory (no {MANIFEST}); "
            f"rebuild it with `codesearch prepare`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not valid JSON: {exc}", str(path)) from None
    check_manifest_shape(manifest, str(path))
    return manifest


DEFAULT_TASK = "code-search"  # manifests written before sentence pairs name no task


def task_of(manifest: dict) -> str:
    """The task a prepared directory holds (a key of schema.TASKS): the manifest's ``task``,
    or code-search where it names none (the code readers write none)."""
    return manifest.get("task", DEFAULT_TASK)


def check_manifest_shape(manifest: object, path: str) -> None:
    """DataError naming the field unless ``manifest`` has the types ``finish`` writes:
    ``counts`` {language: {split: records}} and, when present, ``files`` {"<language>/<split>
    .jsonl": {"sha256": hex, "records": count}}."""
    if not isinstance(manifest, dict):
        raise DataError(f"expected a JSON object, got {type(manifest).__name__}", path)
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        raise DataError("expected an object {language: {split: records}}", path, field="counts")
    for lang, splits in counts.items():
        if lang not in KNOWN_LANGUAGES or not isinstance(splits, dict):
            raise DataError(
                f"expected {{language: {{split: records}}}} with a language of "
                f"{', '.join(KNOWN_LANGUAGES)}; got {lang!r}: {splits!r:.60}",
                path,
                field="counts",
            )
        for split, n in splits.items():
            if split not in ALL_SPLITS or not _is_count(n):
                raise DataError(
                    f"expected {{split: records}} with a split of {', '.join(ALL_SPLITS)} and "
                    f"a count >= 0; got {split!r}: {n!r:.60}",
                    path,
                    field=f"counts.{lang}",
                )
    task = manifest.get("task", DEFAULT_TASK)
    if not isinstance(task, str) or task not in TASKS:
        raise DataError(f"expected one of {', '.join(TASKS)}, got {task!r:.60}", path, field="task")
    files = manifest.get("files")
    if files is None:
        return
    if not isinstance(files, dict):
        raise DataError(
            f"expected an object {{file: {{sha256, records}}}}, got {type(files).__name__}",
            path,
            field="files",
        )
    for rel, entry in files.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not _is_count(entry.get("records"))
        ):
            raise DataError(
                f"expected {{sha256: hex, records: count}} for {rel!r}; got {entry!r:.60}",
                path,
                field="files",
            )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_records(data_dir: str | Path, language: str, split: str) -> list[PairRecord]:
    """All records of one language and split; every record is validated (strict)."""
    manifest = load_manifest(data_dir)
    counts = manifest["counts"]
    if language not in counts:
        have = ", ".join(lang for lang in KNOWN_LANGUAGES if lang in counts) or "none"
        raise UserError(f"{data_dir}: has no language '{language}' (it has: {have})")
    if split not in counts[language]:
        raise UserError(
            f"{data_dir}: {language} has no split '{split}' (it has: {', '.join(counts[language])})"
        )
    path = Path(data_dir) / language / f"{split}.jsonl"
    records = list(read_jsonl(path, record_from_dict, strict=True))
    expected = manifest.get("files", {}).get(f"{language}/{split}.jsonl", {}).get("records")
    if expected is not None and expected != len(records):
        raise DataError(
            f"holds {len(records):,} records but the manifest says {expected:,}: "
            f"the file changed after the build; {REBUILD}",
            str(path),
        )
    line_of: dict[str, int] = {}
    for line, record in enumerate(records, 1):
        if line_of.setdefault(record.id, line) != line:
            raise DataError(
                f"id '{record.id}' again (first on line {line_of[record.id]}); ids must be "
                f"unique in a prepared directory",
                str(path),
                line,
                "id",
            )
    return records


REBUILD = "rebuild the directory with `codesearch prepare` (or `make data`)"


def verify_prepared(data_dir: str | Path, languages: Iterable[str] | None = None) -> dict:
    """Check the files of a prepared directory against its manifest: each listed file is
    present with its record count and sha256, and the manifest's data_hash is that of the
    listed hashes. ``languages`` limits the files checked. Returns {file: records} of the files
    checked; a DataError names the first file that differs."""
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise DataError("lists no files; " + REBUILD, str(data_dir / MANIFEST), field="files")
    if manifest.get("data_hash") != data_hash(files):
        raise DataError(
            "data_hash is not the hash of the listed files; " + REBUILD,
            str(data_dir / MANIFEST),
            field="data_hash",
        )
    # Only the files the loaders read, named as the writer names them: no other path (no
    # '..', no absolute path) can be vouched for, and every file a loader reads is listed.
    allowed = {f"{lang}/{split}.jsonl" for lang in KNOWN_LANGUAGES for split in ALL_SPLITS}
    for rel, entry in files.items():
        if rel not in allowed or not isinstance(entry, dict):
            raise DataError(
                f"lists '{rel}', which is not <language>/<split>.jsonl with a record count "
                f"and sha256; {REBUILD}",
                str(data_dir / MANIFEST),
                field="files",
            )
    counts = manifest["counts"]
    for lang, splits in counts.items():
        for split in splits if isinstance(splits, dict) else ():
            if f"{lang}/{split}.jsonl" not in files:
                raise DataError(
                    f"counts {lang}/{split} but does not list {lang}/{split}.jsonl; {REBUILD}",
                    str(data_dir / MANIFEST),
                    field="files",
                )
    wanted = None if languages is None else set(languages)
    checked = {}
    root = data_dir.resolve()
    for rel, entry in files.items():
        if wanted is not None and rel.split("/")[0] not in wanted:
            continue
        path = data_dir / rel
        if not path.exists():
            raise DataError(f"missing; {REBUILD}", str(path))
        problem = not_a_plain_file(path)
        if problem is None and not path.resolve().is_relative_to(root):
            problem = f"a link out of {data_dir} (to {path.resolve()})"
        if problem is not None:
            raise DataError(f"{problem}; {REBUILD}", str(path))
        with open(path, "rb") as handle:
            records = sum(1 for line in handle if line.strip())
        if records != entry.get("records"):
            raise DataError(
                f"holds {records:,} records but the manifest says "
                f"{entry.get('records')}: the file changed after the build; "
                f"{REBUILD}",
                str(path),
            )
        if file_digest(path) != entry.get("sha256"):
            raise DataError(
                f"sha256 differs from the manifest: the file changed after the build; {REBUILD}",
                str(path),
            )
        checked[rel] = records
    return checked


def format_stats(data_dir: str | Path) -> str:
    """A markdown table of record counts per language and split, with a total row."""
    counts = load_manifest(data_dir)["counts"]
    splits = [s for s in ALL_SPLITS if any(s in c for c in counts.values())]
    rows = ["| language | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    total: Counter = Counter()
    for lang in KNOWN_LANGUAGES:
        if lang not in counts:
            continue
        rows.append(
            f"| {lang} | " + " | ".join(f"{counts[lang].get(s, 0):,}" for s in splits) + " |"
        )
        total.update(counts[lang])
    rows.append("| **total** | " + " | ".join(f"{total.get(s, 0):,}" for s in splits) + " |")
    return "\n".join(rows)
