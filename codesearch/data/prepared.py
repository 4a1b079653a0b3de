"""Prepared data directories: ``DIR/<language>/<split>.jsonl`` and ``DIR/manifest.json``.

Every reader writes through PreparedWriter, which builds into ``DIR.partial`` and renames it
into place only after the manifest (counts, content hashes, sources, filters, drops) is
written. A directory without ``manifest.json`` is never taken as complete.
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
from codesearch.data.jsonl import read_jsonl
from codesearch.data.schema import ALL_SPLITS, LANGUAGES, PairRecord, record_from_dict
from codesearch.errors import DataError, UserError

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
    """Write text through a temporary file and an atomic rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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


class PreparedWriter:
    """Write one prepared directory; use as a context manager, call ``finish`` to commit.

    Leaving the block without ``finish`` (an error, Ctrl-C) deletes the partial build and
    leaves any earlier complete directory untouched.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.partial = self.out_dir.with_name(self.out_dir.name + ".partial")
        self.counts: dict[str, dict[str, int]] = {}
        self.finished = False

    def __enter__(self) -> PreparedWriter:
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise UserError(f"{self.out_dir}: exists and is not a directory")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.partial.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.finished:
            shutil.rmtree(self.partial, ignore_errors=True)

    def write_split(self, language: str, split: str, records: Iterable[PairRecord]) -> int:
        if language not in LANGUAGES or split not in ALL_SPLITS:
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
            "counts": {lang: dict(self.counts[lang]) for lang in LANGUAGES if lang in self.counts},
            "files": files,
            "data_hash": data_hash(files),
            **manifest_fields,
        }
        write_json_atomic(self.partial / MANIFEST, manifest)
        old = self.out_dir.with_name(self.out_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.out_dir.exists():
            os.replace(self.out_dir, old)
        os.replace(self.partial, self.out_dir)
        shutil.rmtree(old, ignore_errors=True)
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
    if not isinstance(manifest, dict) or not isinstance(manifest.get("counts"), dict):
        raise DataError("expected an object with 'counts'", str(path), field="counts")
    return manifest


def available_languages(data_dir: str | Path) -> list[str]:
    counts = load_manifest(data_dir)["counts"]
    return [lang for lang in LANGUAGES if lang in counts]


def load_records(data_dir: str | Path, language: str, split: str) -> list[PairRecord]:
    """All records of one language and split; every record is validated (strict)."""
    manifest = load_manifest(data_dir)
    counts = manifest["counts"]
    if language not in counts:
        have = ", ".join(lang for lang in LANGUAGES if lang in counts) or "none"
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
    wanted = None if languages is None else set(languages)
    checked = {}
    for rel, entry in files.items():
        if wanted is not None and rel.split("/")[0] not in wanted:
            continue
        path = data_dir / rel
        if not path.is_file():
            raise DataError(f"missing; {REBUILD}", str(path))
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
    for lang in LANGUAGES:
        if lang not in counts:
            continue
        rows.append(
            f"| {lang} | " + " | ".join(f"{counts[lang].get(s, 0):,}" for s in splits) + " |"
        )
        total.update(counts[lang])
    rows.append("| **total** | " + " | ".join(f"{total.get(s, 0):,}" for s in splits) + " |")
    return "\n".join(rows)
