"""Build the offline six-language corpus (`make data`): `codesearch prepare local` as a script.

Fetches the pinned source packages of ``codesearch/data/local_sources.yaml`` from Debian, npm
and PyPI into ``--cache`` (nothing is installed), extracts (doc comment, function) pairs as
CodeSearchNet did, and writes a prepared data directory (docs/data.md).

    python data_prep/build_local_corpus.py --out data/local [--languages ruby go] [--offline]
"""

from __future__ import annotations

import sys

from codesearch.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", "local", *sys.argv[1:]]))
