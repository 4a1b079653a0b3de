"""Line-by-line jsonl reading with located errors (file, 1-based line, field).

Lenient by default: a bad record is skipped and counted by reason; ``strict=True`` raises
a DataError at the first one. Files ending in ``.gz`` are decompressed on the fly.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from codesearch.errors import DataError

T = TypeVar("T")
MAX_WARNINGS_PER_FILE = 3
# One record (one line) at most: CodeSearchNet's largest records are a few hundred KB. A longer
# line is skipped (counted, or an error under strict) without ever being held whole.
MAX_RECORD_BYTES = 8 << 20
UTF8_BOM = b"\xef\xbb\xbf"


# Files there are regular in name but endless or unbounded when read (/proc/self/pagemap).
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def not_a_plain_file(path: str | Path) -> str | None:
    """Why ``path`` is not a plain file to read, or None when it is: missing, not regular (a
    FIFO, a device, a directory, or a link to one), or on a pseudo filesystem."""
    try:
        info = os.stat(path)  # follows links
    except OSError:
        return "no such file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, a device or a directory)"
    real = os.path.realpath(path)
    for root in PSEUDO_FILESYSTEMS:
        if real == root or real.startswith(root + "/"):
            return f"{real} is on the pseudo filesystem {root}"
    return None


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _bounded_lines(handle, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, raw line), or None for a line longer than ``limit`` bytes, whose
    rest is read and thrown away in 1 MiB pieces."""
    line_no = 0
    while True:
        raw = handle.readline(limit + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:
                rest = handle.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line_no, None
        else:
            yield line_no, raw


def drop_reason(error: DataError) -> str:
    """A short counter key for a bad record: 'field:<name>' or the error kind."""
    if error.field is not None:
        return f"field:{error.field}"
    return error.reason.split(" (")[0].split(":")[0]


def read_jsonl(
    path: str | Path,
    parse: Callable[[object, str, int], T | None],
    strict: bool = False,
    dropped: Counter | None = None,
) -> Iterator[T]:
    """Yield ``parse(obj, path, line)`` for each line of a jsonl file.

    ``parse`` raises DataError for an invalid record, or returns None to drop it silently
    (a filter, counted by the caller). Blank lines are ignored.
    """
    path = Path(path)
    name = str(path)
    problem = not_a_plain_file(path)
    if problem is not None:
        raise DataError(problem, name)
    warned = 0
    try:
        handle = _open_binary(path)
        with handle:
            for line_no, raw in _bounded_lines(handle, MAX_RECORD_BYTES):
                if raw is not None and not raw.strip():
                    continue
                try:
                    if raw is None:
                        raise DataError(
                            f"record too large (over {MAX_RECORD_BYTES >> 20} MiB)", name, line_no
                        )
                    if line_no == 1 and raw.startswith(UTF8_BOM):  # some editors write one
                        raw = raw[len(UTF8_BOM) :]
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise DataError(
                            f"bytes are not valid UTF-8 (at column {exc.start + 1})", name, line_no
                        ) from None
                    try:
                        obj = json.loads(text)
                    except json.JSONDecodeError as exc:
                        raise DataError(
                            f"malformed JSON: {exc.msg} (column {exc.colno})", name, line_no
                        ) from None
                    item = parse(obj, name, line_no)
                except DataError as error:
                    if strict:
                        raise
                    if dropped is not None:
                        dropped[drop_reason(error)] += 1
                    if warned < MAX_WARNINGS_PER_FILE:
                        print(
                            f"warning: {error} (record skipped; --strict stops here)",
                            file=sys.stderr,
                        )
                    warned += 1
                    continue
                if item is not None:
                    yield item
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read: {exc}", name) from None
