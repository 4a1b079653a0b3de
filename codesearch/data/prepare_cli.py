"""`codesearch prepare SOURCE`: each reader module contributes one subcommand via add_parser."""

from __future__ import annotations

import argparse
import importlib

# module path -> it defines add_parser(subparsers) that registers its subcommand(s)
READER_MODULES = (
    "codesearch.data.readers.hub",
    "codesearch.data.readers.codexglue",
    "codesearch.data.readers.csn",
    "codesearch.data.readers.sources",
    "codesearch.data.readers.local",
    "codesearch.data.readers.user_jsonl",
    "codesearch.data.readers.stsb",
    "codesearch.data.readers.nli",
)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    for name in READER_MODULES:
        importlib.import_module(name).add_parser(subparsers)
