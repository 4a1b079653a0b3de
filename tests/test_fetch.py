"""The offline corpus fetcher and builder (data.source_list, data.registries, data.fetch,
data.readers.local).

No network: the registry clients (apt-get, npm, pip) are replaced by a fake that serves tiny
archives built here (a real .deb made with `dpkg-deb -b`, an npm tarball, an sdist, a wheel);
`dpkg-deb -x` and the unpacking code run for real.
"""

from __future__ import annotations

import io
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from codesearch.cli import main as cli_main
from codesearch.data import fetch, registries, source_list
from codesearch.data.prepared import file_digest
from codesearch.data.readers import local
from codesearch.data.schema import LANGUAGES
from codesearch.errors import UserError

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

GO_SOURCE = """package demo

// Sum adds up all the values of the slice and returns the total.
func Sum(values []int) int {
\ttotal := 0
\tfor _, v := range values {
\t\ttotal += v
\t}
\treturn total
}
"""

PY_SOURCE = '''
def mean(values):
    """Return the arithmetic mean of a non-empty list of numbers."""
    total = sum(values)
    count = len(values)
    return total / count
'''

JS_SOURCE = """
/**
 * Join the words of a list with single spaces between them.
 */
function joinWords(words) {
  let out = "";
  for (const w of words) { out += (out ? " " : "") + w; }
  return out;
}
"""


# ----------------------------------------------------------------------------- tiny archives


def make_deb(tmp: Path, name: str, version: str, files: dict[str, str]) -> Path:
    root = tmp / f"build-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: Test <t@example.org>\nDescription: test package\n"
    )
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    deb = tmp / f"{name}_{version.replace(':', '%3a')}_all.deb"
    subprocess.run(
        ["dpkg-deb", "-b", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def make_tar(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
    return path


def proc(cmd, rc=0, stdout="", stderr=""):
    return subprocess.CompletedProcess(cmd, rc, stdout, stderr)


class FakeRegistries:
    """Stands in for apt-get, npm and pip: serves archives from dicts and logs every call."""

    def __init__(self, real_run):
        self.real_run = real_run
        self.debs: dict[str, Path] = {}  # "name=version" -> .deb
        self.npm: dict[str, Path] = {}  # "name@version" -> .tgz
        self.pypi: dict[str, Path] = {}  # "name==version" -> wheel or sdist
        self.calls: list[list[str]] = []
        self.lists_updated = True  # False: apt-get download fails until apt-get update
        self.update_rc = 0
        self.pip_ok = True

    def downloads(self) -> list[list[str]]:
        return [
            c
            for c in self.calls
            if c[:2] in (["apt-get", "download"], ["npm", "pack"]) or "download" in c
        ]

    def __call__(self, cmd: list[str], cwd: Path | None = None):
        cmd = list(cmd)
        self.calls.append(cmd)
        if cmd[0] == "dpkg-deb":
            return self.real_run(cmd, cwd=cwd)
        if cmd[:2] == ["apt-get", "update"]:
            self.lists_updated = self.update_rc == 0
            return proc(
                cmd,
                self.update_rc,
                stderr=""
                if self.update_rc == 0
                else "E: Could not open lock file /var/lib/apt/lists/lock",
            )
        if cmd[:2] == ["apt-get", "download"]:
            specs = [c for c in cmd[2:] if "=" in c and not c.startswith("APT::")]
            for spec in specs:
                name = spec.split("=")[0]
                if not self.lists_updated:
                    return proc(cmd, 100, stderr=f"E: Unable to locate package {name}")
                if spec not in self.debs:
                    version = spec.split("=", 1)[1]
                    return proc(
                        cmd, 100, stderr=f"E: Version '{version}' for '{name}' was not found"
                    )
            for spec in specs:
                shutil.copy(self.debs[spec], cwd)
            return proc(cmd)
        if cmd[:2] == ["npm", "pack"]:
            specs = [c for c in cmd[2:] if not c.startswith("--")]
            missing = [s for s in specs if s not in self.npm]
            if missing:
                return proc(
                    cmd,
                    1,
                    stderr=f"npm error code ETARGET\nnpm error notarget No "
                    f"matching version found for {missing[0]}.",
                )
            for spec in specs:
                shutil.copy(self.npm[spec], cwd)
            return proc(cmd, stdout="\n".join(self.npm[s].name for s in specs))
        if cmd[1:3] == ["-m", "pip"]:
            if "--version" in cmd:
                return proc(
                    cmd,
                    0 if self.pip_ok else 1,
                    stderr="" if self.pip_ok else "No module named pip",
                )
            spec = cmd[-1]
            if spec not in self.pypi:
                return proc(cmd, 1, stderr=f"ERROR: No matching distribution found for {spec}")
            shutil.copy(self.pypi[spec], cwd)
            return proc(cmd)
        raise AssertionError(f"unexpected command {cmd}")


@pytest.fixture
def fake(monkeypatch):
    clients = FakeRegistries(registries.run)
    monkeypatch.setattr(registries, "run", clients)
    monkeypatch.setattr(registries.Apt, "updated", False)
    return clients


def src(registry="debian", name="golang-demo-dev", version="1.0-1", language="go", **kw):
    return source_list.Source(
        registry=registry, name=name, version=version, language=language, **kw
    )


# ----------------------------------------------------------------------------- fetching


@needs_dpkg
def test_debian_fetch_unpacks_records_hash_and_marks_complete(tmp_path, fake):
    deb = make_deb(
        tmp_path, "golang-demo-dev", "1:1.0-1", {"usr/share/gocode/src/demo/sum.go": GO_SOURCE}
    )
    fake.debs["golang-demo-dev=1:1.0-1"] = deb
    source = src(version="1:1.0-1", root="usr/share/gocode/src")
    got = fetch.fetch_source(source, tmp_path / "cache")
    assert got.downloaded
    assert (got.tree / "demo" / "sum.go").read_text() == GO_SOURCE
    assert got.sha256 == file_digest(deb) and got.size == deb.stat().st_size
    directory = fetch.cache_dir(tmp_path / "cache", source)
    assert directory.name == "golang-demo-dev-1+1.0-1"  # no ':' in cache paths
    marker = json.loads((directory / fetch.MARKER).read_text())
    assert marker["sha256"] == got.sha256 and marker["version"] == "1:1.0-1"
    assert not list(directory.glob("*.deb"))  # the archive is not kept, its hash is


@needs_dpkg
def test_second_run_fetches_nothing(tmp_path, fake):
    fake.debs["a=1"] = make_deb(tmp_path, "a", "1", {"usr/a/x.go": GO_SOURCE})
    fake.debs["b=2"] = make_deb(tmp_path, "b", "2", {"usr/b/y.go": GO_SOURCE})
    fake.npm["left-pad@1.3.0"] = make_tar(
        tmp_path / "left-pad-1.3.0.tgz", {"package/index.js": JS_SOURCE}
    )
    fake.npm["@scope/pkg@2.0.0"] = make_tar(
        tmp_path / "scope-pkg-2.0.0.tgz", {"package/lib/a.js": JS_SOURCE}
    )
    fake.pypi["demo==0.1"] = make_zip(
        tmp_path / "demo-0.1-py3-none-any.whl", {"demo/__init__.py": PY_SOURCE}
    )
    sources = [
        src(name="a", version="1"),
        src(name="b", version="2"),
        src("npm", "left-pad", "1.3.0", "javascript"),
        src("npm", "@scope/pkg", "2.0.0", "javascript"),
        src("pypi", "demo", "0.1", "python"),
    ]
    first = fetch.fetch_all(sources, tmp_path / "cache", progress=False)
    assert all(f.downloaded for f in first)
    # Debian and npm are fetched in one client call each (batched), pip per package
    assert len([c for c in fake.calls if c[:2] == ["apt-get", "download"]]) == 1
    assert len([c for c in fake.calls if c[:2] == ["npm", "pack"]]) == 1
    assert (first[3].tree / "lib" / "a.js").is_file()  # npm's package/ top directory
    assert (first[4].tree / "demo" / "__init__.py").is_file()

    fake.calls.clear()
    second = fetch.fetch_all(sources, tmp_path / "cache", progress=False)
    assert fake.calls == []
    assert not any(f.downloaded for f in second)
    assert [f.sha256 for f in second] == [f.sha256 for f in first]
    assert [f.tree for f in second] == [f.tree for f in first]
    # offline works from the complete cache
    assert len(fetch.fetch_all(sources, tmp_path / "cache", offline=True, progress=False)) == 5


@needs_dpkg
def test_interrupted_fetch_is_redone(tmp_path, fake, monkeypatch):
    fake.debs["a=1"] = make_deb(tmp_path, "a", "1", {"usr/a/x.go": GO_SOURCE})
    source = src(name="a", version="1")
    cache = tmp_path / "cache"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(registries, "unzip_inner", crash)  # dies after unpacking, before the marker
    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_source(source, cache)
    directory = fetch.cache_dir(cache, source)
    assert (directory / "tree" / "usr" / "a" / "x.go").is_file()
    assert not (directory / fetch.MARKER).exists()
    (directory / "tree" / "stale.go").write_text("left over")
    with pytest.raises(UserError, match="not in the cache"):
        fetch.fetch_source(source, cache, offline=True)  # a partial copy is not complete

    monkeypatch.undo()
    monkeypatch.setattr(registries, "run", fake)
    fake.calls.clear()
    got = fetch.fetch_source(source, cache)
    assert got.downloaded and any(c[:2] == ["apt-get", "download"] for c in fake.calls)
    assert not (directory / "tree" / "stale.go").exists()  # redone from scratch
    assert (directory / fetch.MARKER).is_file()


@needs_dpkg
def test_damaged_marker_means_fetch_again(tmp_path, fake):
    fake.debs["a=1"] = make_deb(tmp_path, "a", "1", {"usr/a/x.go": GO_SOURCE})
    source = src(name="a", version="1")
    fetch.fetch_source(source, tmp_path / "cache")
    (fetch.cache_dir(tmp_path / "cache", source) / fetch.MARKER).write_text("{not json")
    assert fetch.fetch_source(source, tmp_path / "cache").downloaded


def test_sdist_unpacks_to_its_top_directory(tmp_path, fake):
    fake.pypi["demo==0.2"] = make_tar(
        tmp_path / "demo-0.2.tar.gz",
        {"demo-0.2/demo/core.py": PY_SOURCE, "demo-0.2/setup.py": "from setuptools import setup\n"},
    )
    got = fetch.fetch_source(src("pypi", "demo", "0.2", "python"), tmp_path / "cache")
    assert got.tree.name == "demo-0.2" and (got.tree / "demo" / "core.py").is_file()
    assert got.archive == "demo-0.2.tar.gz"


@needs_dpkg
def test_apt_update_runs_once_when_the_lists_lack_the_package(tmp_path, fake):
    fake.debs["a=1"] = make_deb(tmp_path, "a", "1", {"usr/a/x.go": GO_SOURCE})
    fake.debs["b=1"] = make_deb(tmp_path, "b", "1", {"usr/b/x.go": GO_SOURCE})
    fake.lists_updated = False
    fetched = fetch.fetch_all(
        [src(name="a", version="1"), src(name="b", version="1")], tmp_path / "cache", progress=False
    )
    assert all(f.downloaded for f in fetched)
    assert [c[:2] for c in fake.calls].count(["apt-get", "update"]) == 1


def test_apt_update_failure_is_a_user_error(tmp_path, fake):
    fake.lists_updated, fake.update_rc = False, 100
    with pytest.raises(UserError, match=r"cannot refresh the Debian package lists.*a 1"):
        fetch.fetch_source(src(name="a", version="1"), tmp_path / "cache")


def test_missing_debian_version_names_package_and_command(tmp_path, fake):
    with pytest.raises(UserError) as info:
        fetch.fetch_source(src(name="golang-demo-dev", version="9.9-1"), tmp_path / "cache")
    message = str(info.value)
    assert "golang-demo-dev 9.9-1" in message and "apt-get download" in message
    assert "Version '9.9-1' for 'golang-demo-dev' was not found" in message
    assert "\n" not in message
    # a wrong version in a batch: the batch fails, the per-package fetch names the culprit
    with pytest.raises(UserError, match="cannot fetch debian package zz 1"):
        fetch.fetch_all(
            [src(name="golang-demo-dev", version="9.9-1"), src(name="zz", version="1")][::-1],
            tmp_path / "cache",
            progress=False,
        )


def test_missing_npm_and_pypi_versions_name_package_and_command(tmp_path, fake):
    with pytest.raises(
        UserError,
        match=r"npm package left-pad 0\.0\.9 .*`npm pack .*"
        r"left-pad@0\.0\.9`.*No matching version",
    ):
        fetch.fetch_source(src("npm", "left-pad", "0.0.9", "javascript"), tmp_path / "c")
    with pytest.raises(UserError, match=r"pypi package demo 7 .*pip download.*demo==7"):
        fetch.fetch_source(src("pypi", "demo", "7", "python"), tmp_path / "c")


def test_missing_tools_are_user_errors(tmp_path, monkeypatch, fake):
    monkeypatch.setattr(registries, "run", fake.real_run)
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no npm here
    with pytest.raises(UserError, match="`apt-get` not found"):
        fetch.fetch_source(src(name="a", version="1"), tmp_path / "cache")
    with pytest.raises(UserError, match="`npm` not found.*npm pack"):
        fetch.fetch_source(src("npm", "left-pad", "1.3.0", "javascript"), tmp_path / "cache")
    monkeypatch.setattr(registries, "run", fake)
    fake.pip_ok = False
    with pytest.raises(UserError, match="pip is not available .* demo"):
        fetch.fetch_source(src("pypi", "demo", "0.1", "python"), tmp_path / "cache")


@needs_dpkg
def test_corrupt_deb_is_a_user_error(tmp_path, fake):
    bad = tmp_path / "a_1_all.deb"
    bad.write_bytes(b"not an ar archive")
    fake.debs["a=1"] = bad
    with pytest.raises(UserError, match=r"debian package a 1 \(`dpkg-deb -x .*` exited"):
        fetch.fetch_source(src(name="a", version="1"), tmp_path / "cache")


def test_client_that_leaves_no_archive_is_an_error(tmp_path, fake, monkeypatch):
    monkeypatch.setattr(registries, "run", lambda cmd, cwd=None: proc(cmd))
    with pytest.raises(UserError, match="expected one npm tarball, found 0"):
        fetch.fetch_source(src("npm", "left-pad", "1.3.0", "javascript"), tmp_path / "cache")


def test_offline_without_cache_is_an_error(tmp_path, fake):
    with pytest.raises(UserError, match="debian package a 1 is not in the cache .*--offline"):
        fetch.fetch_all(
            [src(name="a", version="1")], tmp_path / "cache", offline=True, progress=False
        )
    assert fake.calls == []


@needs_dpkg
def test_inner_zip_is_unpacked_and_root_checked(tmp_path, fake):
    inner = make_zip(tmp_path / "src.zip", {"java.base/java/util/Box.java": "class Box {}\n"})
    root = tmp_path / "build-jdk"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: jdk-src\nVersion: 1\nArchitecture: all\nMaintainer: T <t@example.org>\n"
        "Description: test\n"
    )
    (root / "usr/lib/jdk").mkdir(parents=True)
    shutil.copy(inner, root / "usr/lib/jdk/src.zip")
    deb = tmp_path / "jdk-src_1_all.deb"
    subprocess.run(
        ["dpkg-deb", "-b", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    fake.debs["jdk-src=1"] = deb
    got = fetch.fetch_source(
        src(
            name="jdk-src",
            version="1",
            language="java",
            unzip=("usr/lib/jdk/src.zip",),
            root="usr/lib/jdk/src",
        ),
        tmp_path / "cache",
    )
    assert (got.tree / "java.base/java/util/Box.java").is_file()

    with pytest.raises(UserError, match="no file matches unzip pattern 'nothing/\\*.zip'"):
        fetch.fetch_source(
            src(name="jdk-src", version="1", language="php", unzip=("nothing/*.zip",)),
            tmp_path / "cache2",
        )
    with pytest.raises(UserError, match="root 'usr/missing' is not a directory"):
        fetch.fetch_source(
            src(name="jdk-src", version="1", language="ruby", root="usr/missing"),
            tmp_path / "cache3",
        )


def test_zip_member_outside_the_target_is_refused(tmp_path):
    bad = make_zip(tmp_path / "bad.whl", {"../evil.py": "x = 1\n"})
    with pytest.raises(UserError, match="escapes the target"):
        registries.unzip(bad, tmp_path / "out")
    assert not (tmp_path / "evil.py").exists()


def test_inner_zip_linked_outside_the_package_is_refused(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    make_zip(tmp_path / "outside.zip", {"a.java": "class A {}\n"})
    (tree / "src.zip").symlink_to(tmp_path / "outside.zip")
    with pytest.raises(UserError, match="outside the package"):
        registries.unzip_inner(src(unzip=("src.zip",)), tree)


def test_stdlib_source_is_read_in_place(tmp_path, monkeypatch):
    lib = tmp_path / "lib" / "python3.99"
    (lib / "json").mkdir(parents=True)
    (lib / "json" / "__init__.py").write_text(PY_SOURCE)
    (lib / "site-packages" / "thirdparty").mkdir(parents=True)
    (lib / "site-packages" / "thirdparty" / "x.py").write_text("y = 2\n")
    monkeypatch.setattr(fetch, "stdlib_dir", lambda: lib)
    source = source_list.Source("stdlib", "cpython", "local", "python")
    first = fetch.fetch_source(source, tmp_path / "cache")
    assert first.tree == lib and first.version == platform.python_version()
    (lib / "site-packages" / "thirdparty" / "x.py").write_text("y = 3\n")
    assert fetch.fetch_source(source, tmp_path / "cache").sha256 == first.sha256
    (lib / "json" / "__init__.py").write_text(PY_SOURCE + "\n# changed\n")
    assert fetch.fetch_source(source, tmp_path / "cache").sha256 != first.sha256
    assert not (tmp_path / "cache").exists()  # nothing is copied


# ----------------------------------------------------------------------------- the list


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


GOOD_ENTRY = '{registry: npm, name: left-pad, version: "1.3.0", language: javascript}'


def test_load_sources_applies_defaults(tmp_path):
    path = write_yaml(
        tmp_path,
        f"""
defaults: {{exclude: ["*.min.js"]}}
sources:
  - {GOOD_ENTRY}
  - {{registry: debian, name: x, version: "1", language: go, exclude: ["gen/*"], unit_depth: 2,
      max_pairs: 10, generated: true, root: usr/share, include: "*.go"}}
  - {{registry: stdlib, name: cpython, version: local, language: python}}
""",
    )
    first, second, stdlib = source_list.load_sources(path)
    assert first.exclude == ("*.min.js",) and first.unit_depth == 0 and not first.generated
    assert second.exclude == ("*.min.js", "gen/*") and second.include == ("*.go",)
    assert (second.unit_depth, second.max_pairs, second.generated) == (2, 10, True)
    assert "site-packages/*" in stdlib.exclude  # installed packages are never the stdlib


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            '{registry: npm, name: left-pad, version: "1.3.0", language: javascript, colour: red}',
            "source #2 (left-pad): unknown key 'colour'",
        ),
        (
            "{registry: npm, name: left-pad, language: javascript}",
            "source #2 (left-pad): missing field 'version'",
        ),
        (
            "{registry: npm, name: left-pad, version: 1.0, language: javascript}",
            "source #2 (left-pad): 'version' must be a non-empty string",
        ),
        (
            '{registry: cpan, name: x, version: "1", language: javascript}',
            "source #2 (x): unknown registry 'cpan'",
        ),
        (
            '{registry: npm, name: x, version: "1", language: cobol}',
            "source #2 (x): unknown language 'cobol'",
        ),
        (
            '{registry: npm, name: x, version: "1", language: go, unit_depth: -1}',
            "source #2 (x): 'unit_depth' must be an integer >= 0",
        ),
        (
            '{registry: npm, name: x, version: "1", language: go, max_pairs: 0}',
            "source #2 (x): 'max_pairs' must be a positive integer",
        ),
        (
            '{registry: npm, name: x, version: "1", language: go, generated: maybe}',
            "source #2 (x): 'generated' must be true or false",
        ),
        (
            '{registry: npm, name: x, version: "1", language: go, exclude: [1, 2]}',
            "source #2 (x): 'exclude' must be a list of glob strings",
        ),
        (
            '{registry: npm, name: x, version: "1", language: go, root: ../../etc}',
            "source #2 (x): 'root' must be a relative path",
        ),
        ("just-a-string", "source #2: expected a mapping"),
        (GOOD_ENTRY, "source #2 (left-pad): duplicate of source #1"),
    ],
)
def test_bad_entries_are_one_line_errors_naming_file_and_entry(tmp_path, entry, message):
    path = write_yaml(tmp_path, f"sources:\n  - {GOOD_ENTRY}\n  - {entry}\n")
    with pytest.raises(UserError) as info:
        source_list.load_sources(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sources: [", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with a 'sources' list"),
        (f"sources:\n  - {GOOD_ENTRY}\nextra: 1\n", "unknown top-level key 'extra'"),
        (f"defaults: {{include: ['x']}}\nsources:\n  - {GOOD_ENTRY}\n", "'defaults' may only hold"),
        ("sources: []\n", "the 'sources' list is empty"),
    ],
)
def test_bad_files_are_user_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        source_list.load_sources(write_yaml(tmp_path, text))


def test_unreadable_list_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such source list"):
        source_list.load_sources(tmp_path / "missing.yaml")


def test_shipped_source_list_is_valid_and_covers_every_language():
    sources = source_list.load_sources()
    assert {s.language for s in sources} == set(LANGUAGES)
    for source in sources:
        assert source.version == "local" if source.registry == "stdlib" else source.version
        if source.generated:
            assert source.max_pairs, f"generated source {source.name} needs max_pairs"
    assert all(any(g.endswith("*.min.js") for g in s.exclude) for s in sources)


# ----------------------------------------------------------------------------- the builder


def python_tree(root: Path, n_packages: int = 12) -> None:
    """A stand-in stdlib with enough split units (one directory each) for a real split."""
    for i in range(n_packages):
        pkg = root / f"mod{i}"
        pkg.mkdir(parents=True)
        body = "\n".join(
            f'def func_{i}_{j}(values):\n    """Return the weighted sum number {j} of module '
            f'{i} over the values."""\n    total = 0\n    for v in values:\n'
            f"        total += v * {i * 100 + j}\n    return total\n"
            for j in range(5)
        )
        (pkg / "core.py").write_text(body)


@pytest.fixture
def stdlib_tree(tmp_path, monkeypatch):
    lib = tmp_path / "lib" / "python3.99"
    python_tree(lib)
    monkeypatch.setattr(fetch, "stdlib_dir", lambda: lib)
    return lib


def test_build_local_corpus_writes_manifest_and_reuses_extraction(
    tmp_path, stdlib_tree, monkeypatch
):
    sources = write_yaml(
        tmp_path,
        "sources:\n  - {registry: stdlib, name: cpython, "
        "version: local, language: python, unit_depth: 1, "
        "max_pairs: 50}\n",
    )
    out, cache = tmp_path / "out", tmp_path / "cache"
    manifest = local.build_local_corpus(out, cache, None, sources, progress=False)
    assert manifest["builder"] == "local"
    (entry,) = manifest["sources"]
    assert entry["registry"] == "stdlib" and entry["version"] == platform.python_version()
    assert entry["pairs_before_cap"] == 60 and entry["pairs_after_cap"] == 50
    assert len(entry["sha256"]) == 64
    assert manifest["config"]["sources_file"] == str(sources)
    assert manifest["dropped"]["python"]["max_pairs"] == 10
    assert sum(manifest["counts"]["python"].values()) == 50
    record = json.loads((out / "python" / "train.jsonl").read_text().splitlines()[0])
    assert record["url"].startswith(f"stdlib:cpython@{platform.python_version()}/mod")
    assert record["repo"].startswith("cpython/mod")  # unit_depth 1

    calls = []
    monkeypatch.setattr(local, "extract_tree", lambda *a, **k: calls.append(a))
    again = local.build_local_corpus(out, cache, ["python"], sources, progress=False)
    assert calls == [] and again["data_hash"] == manifest["data_hash"]


def test_cap_source_is_deterministic(record_factory):
    records = [record_factory(i) for i in range(20)]
    kept = local.cap_source(records, 7)
    assert len(kept) == 7 and kept == local.cap_source(list(reversed(records)), 7)[::-1]
    assert local.cap_source(records, None) == records


def test_build_errors(tmp_path, stdlib_tree, monkeypatch):
    sources = write_yaml(
        tmp_path,
        "sources:\n  - {registry: stdlib, name: cpython, version: local, language: python}\n",
    )
    with pytest.raises(UserError, match="no source for go"):
        local.build_local_corpus(
            tmp_path / "out", tmp_path / "cache", ["go"], sources, progress=False
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.py").write_text("x = 1\n")
    monkeypatch.setattr(fetch, "stdlib_dir", lambda: empty)
    with pytest.raises(UserError, match="no pairs for python"):
        local.build_local_corpus(
            tmp_path / "out", tmp_path / "cache", None, sources, progress=False
        )


def test_cli_prepare_local_offline(tmp_path, stdlib_tree, capsys, fake):
    sources = write_yaml(
        tmp_path,
        "sources:\n  - {registry: stdlib, name: cpython, "
        "version: local, language: python, unit_depth: 1}\n"
        '  - {registry: npm, name: left-pad, version: "1.3.0", '
        "language: javascript}\n",
    )
    args = [
        "prepare",
        "local",
        "--out",
        str(tmp_path / "out"),
        "--cache",
        str(tmp_path / "cache"),
        "--sources",
        str(sources),
        "--quiet",
    ]
    assert cli_main([*args, "--offline"]) == 2
    assert "npm package left-pad 1.3.0 is not in the cache" in capsys.readouterr().err
    assert cli_main([*args, "--offline", "--languages", "python"]) == 0
    assert "python: train" in capsys.readouterr().out
    assert fake.calls == []


def test_script_runs_the_same_command(tmp_path):
    script = Path(__file__).parents[1] / "data_prep" / "build_local_corpus.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and "--offline" in result.stdout
