"""Output paths, checked before long work starts, and a lock so that two processes never write
one run directory at once (e.g. two `codesearch train --resume` of the same run)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from codesearch.errors import UserError


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_creatable(directory: Path, target: Path, what: str) -> None:
    """``directory`` or, where it does not exist yet, its nearest existing ancestor must be a
    writable directory."""
    ancestor = _existing_ancestor(directory)
    if not ancestor.is_dir():
        raise UserError(f"{target}: cannot write the {what} here: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{target}: cannot write the {what} here: {ancestor} is not writable")


def check_output_file(path: str | Path, what: str) -> Path:
    """UserError unless ``path`` can be written as a file (an existing file is replaced)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; the {what} needs a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{path}: exists and is not writable")
    _check_creatable(path.parent, path, what)
    return path


def check_output_dir(path: str | Path, what: str) -> Path:
    """UserError unless ``path`` is, or can be created as, a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a directory; the {what} needs a directory")
    _check_creatable(path, path, what)
    return path


class DirectoryLock:
    """An exclusive, non-blocking lock on ``directory/.lock`` (flock: released when the process
    ends, even by SIGKILL, so a crash never leaves a stale lock)."""

    def __init__(self, directory: str | Path, what: str):
        self.path, self.what, self._handle = Path(directory) / ".lock", what, None

    def __enter__(self) -> DirectoryLock:
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until __exit__)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(
                f"{self.path.parent}: another process is using this {self.what} "
                f"(locked: {self.path}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
