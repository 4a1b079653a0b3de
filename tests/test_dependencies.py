"""Every third-party module the package imports is declared: pinned in requirements.txt (the
one pip call of `make install`) and listed in pyproject.toml (``pip install .``), as the
installed package's metadata has it (`make install` reinstalls when pyproject.toml changes)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> set[str]:
    """Top-level names of every absolute import in codesearch/, module level or not."""
    names = set()
    for path in (ROOT / "codesearch").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"codesearch", "__future__"}


def test_every_third_party_import_is_pinned_and_declared():
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"requirements.txt: '{line}' is not pinned with =="
            pinned[_normalise(name)] = version
    # the installed package's metadata: pyproject.toml's dependencies and extras
    declared = {
        _normalise(re.split(r"[<>=!~\[; (]", d, maxsplit=1)[0]) for d in requires("codesearch")
    }
    distributions = packages_distributions()
    modules = imported_top_level_modules()
    assert {"torch", "transformers", "sentence_transformers", "pandas"} <= modules
    for module in sorted(modules):
        assert module in distributions, f"codesearch imports '{module}', which no package provides"
        names = {_normalise(d) for d in distributions[module]}
        assert names & pinned.keys(), f"'{module}' ({names}) is not pinned in requirements.txt"
        assert names & declared, f"'{module}' ({names}) is not a dependency in pyproject.toml"
