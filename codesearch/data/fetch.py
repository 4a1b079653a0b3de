"""Fetch pinned source packages from Debian, npm and PyPI into a local cache (docs/data.md).

The registry clients are in ``codesearch.data.registries``; the running interpreter's standard
library is read in place. Each source lands in ``CACHE/<registry>/<name>-<version>/`` with the
unpacked tree under ``tree/`` and a ``.complete`` marker (JSON: archive name, size, sha256)
written last, so an interrupted fetch is redone and never taken as complete.

The pinned list is a YAML file read by ``codesearch.data.source_list.load_sources``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from codesearch.data import registries
from codesearch.data.prepared import file_digest
from codesearch.data.registries import TREE
from codesearch.data.source_list import DEFAULT_SOURCES, Source, load_sources
from codesearch.errors import UserError

DEFAULT_CACHE = Path(".cache/sources")
MARKER = ".complete"


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
    archive = registries.UNPACKERS[source.registry](source, directory, staged)
    registries.unzip_inner(source, directory / TREE)
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
            staged = registries.prefetch(missing, staging)
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
