"""Package versions recorded with every run and report (reproducibility)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "sentence-transformers",
    "datasets",
    "numpy",
    "scipy",
    "faiss-cpu",
    "safetensors",
    "tree-sitter",
    "codesearch",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """{"python": ..., package: version or "not installed"}."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
