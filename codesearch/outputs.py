"""Output paths, checked before long work starts; the one way outputs are built and put in
place; and a lock so that two processes never write one run directory at once (e.g. two
`codesearch train --resume` of the same run).

The rule for deleting: the program removes only what it can prove it created, a directory it
made itself in this process with a unique name (``staging_dir``) or an output of its own kind
that the caller has checked (a prepared data directory whose every file its manifest lists).
A user's file or directory that happens to sit where an output or a temporary name would go
is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
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


def _unique_beside(target: Path, suffix: str, make) -> Path:
    """``make(path)`` on a new name beside ``target`` that nothing holds yet (``make`` fails
    with FileExistsError otherwise, so the name is this process's alone). Not tempfile's
    mkdtemp / mkstemp: those create mode 0700 / 0600, and the output would keep it."""
    for _ in range(100):
        path = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")
        try:
            make(path)
            return path
        except FileExistsError:
            continue
    raise UserError(f"{target.parent}: cannot create a temporary name beside {target.name}")


def staging_dir(target: str | Path) -> Path:
    """A new, empty directory beside ``target`` with a unique name that this process made, to
    build ``target`` in and then ``replace_dir`` into place."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    return _unique_beside(target, ".partial", os.mkdir)


def replace_dir(staging: Path, target: str | Path) -> None:
    """Rename ``staging`` to ``target``. An existing ``target`` must be one the caller has
    checked is its own to replace (or an empty directory): it is first renamed onto a fresh
    unique name, so a crash in between leaves either the old or the new one in place."""
    target = Path(target).absolute()
    if not target.exists():
        os.replace(staging, target)
        return
    aside = _unique_beside(target, ".old", os.mkdir)
    os.replace(target, aside)  # onto the empty directory just made
    os.replace(staging, target)
    shutil.rmtree(aside)


def temporary_file_beside(path: str | Path) -> Path:
    """A new, empty file beside ``path`` with a unique name, for writing ``path`` atomically:
    write it, then ``os.replace`` it onto ``path``."""
    return _unique_beside(Path(path), ".tmp", lambda p: open(p, "x").close())


@contextlib.contextmanager
def replacing_file(path: str | Path) -> Iterator[Path]:
    """Write ``path`` atomically: yields a new temporary file beside it, renamed onto ``path``
    when the block ends, removed (it is this process's own) when the block raises."""
    tmp = temporary_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DirectoryLock:
    """An exclusive, non-blocking lock on ``directory/.lock`` (flock: released when the process
    ends, even by SIGKILL, so a crash never leaves a stale lock). With ``beside=True`` the lock
    is ``.<name>.lock`` next to ``directory`` instead, for a directory that is replaced as a
    whole (a prepared data directory); that file is removed again on exit."""

    def __init__(self, directory: str | Path, what: str, beside: bool = False):
        directory = Path(directory)
        self.directory, self.what, self.beside, self._handle = directory, what, beside, None
        if beside:
            self.path = directory.absolute().with_name(f".{directory.absolute().name}.lock")
        else:
            self.path = directory / ".lock"

    def __enter__(self) -> DirectoryLock:
        for _ in range(100):
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until __exit__)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise UserError(
                    f"{self.directory}: another process is writing this {self.what} "
                    f"(locked: {self.path}); wait for it to finish"
                ) from None
            if self._still_linked(handle):
                break
            handle.close()  # its holder removed the file before we locked it: lock anew
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def _still_linked(self, handle) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            if self.beside:  # while still held, so no one else can be holding this file
                self.path.unlink(missing_ok=True)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
