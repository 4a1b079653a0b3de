"""Command line: `codesearch prepare | train | evaluate | embed | batches | reproduce | report |
export | stats | verify`. Only parses arguments and calls the package; every command's errors leave
through ``main``'s one error path (one line, exit 2). Starting it (``--help``, ``stats``)
imports neither torch nor scipy: the commands import what they need when they run."""

from __future__ import annotations

import argparse
import sys

from codesearch.errors import UserError


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    """One sub-subcommand per reader (codesearch/data/readers/*)."""
    from codesearch.data import prepare_cli

    prepare = sub.add_parser("prepare", help="build a prepared data directory")
    prepare_cli.add_subcommands(
        prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
    )


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="MRR per language (codebase or csn1000 protocol) or STS Spearman (sts protocol)",
    )
    evaluate.add_argument(
        "--model",
        default="minilm",
        help="training run directory, 'minilm', a hub id or a local model path",
    )
    evaluate.add_argument("--data", required=True, help="prepared data directory")
    evaluate.add_argument("--languages", default=None, help="comma-separated (default: all)")
    evaluate.add_argument(
        "--protocol",
        default="codebase",
        choices=("codebase", "csn1000", "sts"),
        help="codebase, csn1000 (MRR) or sts (Spearman x 100 of cosine vs gold score, per genre; "
        "data from `codesearch prepare stsb`)",
    )
    evaluate.add_argument(
        "--split",
        default="test",
        choices=("train", "valid", "test"),
        help="the split evaluated (codebase, sts; STS-B's dev set is valid)",
    )
    evaluate.add_argument("--chunk-size", type=int, default=1000, help="csn1000 chunk size")
    evaluate.add_argument(
        "--seed", type=int, default=0, help="csn1000 shuffle seed; seed of --max-test-pairs"
    )
    evaluate.add_argument(
        "--max-test-pairs",
        type=int,
        default=None,
        help="per language: a fixed random subset of N test pairs (the same for every model; "
        "codebase: their queries against their codes)",
    )
    evaluate.add_argument("--batch-size", type=int, default=128, help="encoding batch size")
    evaluate.add_argument(
        "--precision",
        default="auto",
        help="auto (default: bf16 where the CPU or GPU executes it natively, else fp32) | fp32 "
        "| bf16 (bfloat16 autocast: faster on such hardware; ranks move slightly, "
        "docs/precision.md)",
    )
    evaluate.add_argument(
        "--max-query-length",
        type=int,
        default=None,
        help="truncate queries to N tokens (default: the model's setting)",
    )
    evaluate.add_argument(
        "--max-code-length",
        type=int,
        default=None,
        help="truncate code to N tokens (default: the model's setting)",
    )
    evaluate.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let Transformers import Python code shipped with the model "
        "(only for models whose code you have read)",
    )
    evaluate.add_argument("--out", default=None, help="write results JSON here")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from codesearch.evaluate import evaluate, format_table, save_results
    from codesearch.outputs import check_output_file

    if args.out:  # before an hour of encoding, not after
        check_output_file(args.out, "results file")
    results = evaluate(
        args.model,
        args.data,
        args.languages,
        protocol=args.protocol,
        batch_size=args.batch_size,
        seed=args.seed,
        chunk_size=args.chunk_size,
        progress=not args.quiet,
        max_query_length=args.max_query_length,
        max_code_length=args.max_code_length,
        trust_remote_code=args.trust_remote_code,
        precision=args.precision,
        max_test_pairs=args.max_test_pairs,
        split=args.split,
    )
    print(f"{args.protocol} protocol, model {args.model}, data {args.data}")
    print(format_table(results))
    if args.out:
        save_results(results, args.out)
        print(f"wrote {args.out}")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export", help="a trained run as a sentence-transformers folder with a model card"
    )
    export.add_argument("run", help="training run directory")
    export.add_argument("--out", required=True, help="folder to write (new or empty)")
    export.add_argument("--language", default=None, help="which model of a multi-language run")
    export.add_argument("--results", default=None, help="`codesearch evaluate --out` JSON")
    export.add_argument("--push-to-hub", default=None, metavar="REPO", help="then upload it")
    export.add_argument(
        "--license",
        default="other",
        help="the card's license (default other: the training data's licences are those of "
        "its sources; e.g. apache-2.0 when that is yours to give)",
    )
    export.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from codesearch.export import export_run

    out = export_run(
        args.run, args.out, args.language, args.results, args.push_to_hub, args.license
    )
    print(f"wrote {out}" + (f" and uploaded it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


def _add_stats_and_verify(sub: argparse._SubParsersAction) -> None:
    stats = sub.add_parser("stats", help="record counts per language and split")
    stats.add_argument("data", help="prepared data directory")
    stats.set_defaults(func=_cmd_stats)

    verify = sub.add_parser(
        "verify",
        help="check a prepared directory's files against its manifest (record counts and sha256)",
    )
    verify.add_argument("data", help="prepared data directory")
    verify.set_defaults(func=_cmd_verify)


def _cmd_stats(args: argparse.Namespace) -> int:
    from codesearch.data.prepared import format_stats

    print(format_stats(args.data))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from codesearch.data.prepared import verify_prepared

    checked = verify_prepared(args.data)
    print(
        f"{args.data}: {len(checked)} files, {sum(checked.values()):,} records, match the "
        "manifest (counts and sha256)"
    )
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codesearch")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """Every command group registers its commands the same way: ``add_parsers(sub)`` adds
    its subparsers, each with ``func`` the function that runs it."""
    from codesearch.cli import embeddings, experiments, train

    parser = argparse.ArgumentParser(
        prog="codesearch", description="Tail Batch Sampling for contrastive code search."
    )
    parser.add_argument("--version", action="version", version=f"codesearch {_version()}")
    parser.set_defaults(interrupt_hint="")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parsers in (
        _add_prepare,
        train.add_parsers,
        _add_evaluate,
        embeddings.add_parsers,
        experiments.add_parsers,
        _add_export,
        _add_stats_and_verify,
    ):
        add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare" and getattr(args, "out", None):  # before any reading
            from codesearch.data.prepared import PreparedWriter

            PreparedWriter(args.out).check_replaceable()
        return args.func(args)
    except UserError as error:
        print(f"codesearch: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the environment, not a bug: disk full, permission denied, ...
        where = f"{error.filename}: " if error.filename else ""
        print(f"codesearch: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"codesearch: interrupted{args.interrupt_hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
