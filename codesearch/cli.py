"""Command line: `codesearch prepare | stats | ...`. Only parses arguments and calls the package."""

from __future__ import annotations

import argparse
import sys

from codesearch.errors import UserError


def _cmd_stats(args: argparse.Namespace) -> int:
    from codesearch.data.prepared import format_stats

    print(format_stats(args.data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codesearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- prepare: one sub-subcommand per reader (codesearch/data/readers/*) ---
    prepare = sub.add_parser("prepare", help="build a prepared data directory")
    prepare_sub = prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
    from codesearch.data import prepare_cli

    prepare_cli.add_subcommands(prepare_sub)

    stats = sub.add_parser("stats", help="record counts per language and split")
    stats.add_argument("data", help="prepared data directory")
    stats.set_defaults(func=_cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        print(f"codesearch: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("codesearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
