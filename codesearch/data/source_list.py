"""The pinned list of source packages for the offline corpus (docs/data.md).

The list is a YAML file (default: ``local_sources.yaml`` beside this module); ``load_sources``
reads and validates it, and its docstring gives the keys. ``codesearch.data.fetch`` fetches
what the list names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codesearch.data.schema import LANGUAGES
from codesearch.errors import UserError
from codesearch.safe_yaml import read_yaml

DEFAULT_SOURCES = Path(__file__).with_name("local_sources.yaml")
REGISTRIES = ("debian", "npm", "pypi", "stdlib")
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
