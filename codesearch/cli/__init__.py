"""Command line: `codesearch prepare | train | evaluate | embed | batches | reproduce | report |
export | stats | verify`. Only parses arguments and calls the package; every command's errors leave
through ``main``'s one error path (one line, exit 2). Starting it (``--help``, ``stats``)
imports neither torch nor scipy: the commands import what they need when they run."""

from __future__ import annotations

import argparse
import sys

from codesearch.errors import UserError


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


def _cmd_export(args: argparse.Namespace) -> int:
    from codesearch.export import export_run

    out = export_run(
        args.run, args.out, args.language, args.results, args.push_to_hub, args.license
    )
    print(f"wrote {out}" + (f" and uploaded it to {args.push_to_hub}" if args.push_to_hub else ""))
    return 0


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
    )
    print(f"{args.protocol} protocol, model {args.model}, data {args.data}")
    print(format_table(results))
    if args.out:
        save_results(results, args.out)
        print(f"wrote {args.out}")
    return 0


# command-line flag -> config key; None values mean "not given" and leave the config alone
TRAIN_FLAGS = {
    "data": "data.path",
    "languages": "data.languages",
    "joint": "data.joint",
    "max_train_pairs": "data.max_train_pairs",
    "model": "model.model",
    "encoder": "model.encoder",
    "towers": "model.towers",
    "pooling": "model.pooling",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "max_steps": "train.max_steps",
    "seed": "train.seed",
    "save_every": "train.save_every",
    "mixed_precision": "train.mixed_precision",
    "tensorboard": "train.tensorboard",
    "sampler": "sampler.name",
}


def _parse_set(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects section.key=value, got '{item}'")
        out[key.strip()] = value
    return out


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesearch.config import load_run_config, resolve_config, resume_base, sampler_overrides
    from codesearch.run_record import is_run_directory
    from codesearch.samplers import sampler_class
    from codesearch.train import Interrupted, train

    overrides = {key: getattr(args, flag) for flag, key in TRAIN_FLAGS.items()}
    overrides.update(sampler_overrides(args))
    overrides.update(_parse_set(args.set))
    # `--resume` starts from the run's saved config, so `train --out RUN --resume` alone
    # continues it; whatever the command line changes is checked by train().
    base = None
    if args.resume and is_run_directory(Path(args.out)):
        base = resume_base(load_run_config(args.out))
    config = resolve_config(args.config, overrides, base)
    sampler_class(config.sampler.name)  # an unknown sampler fails before any work
    try:
        summary = train(
            config, args.out, resume=args.resume, progress=False if args.quiet else None
        )
    except Interrupted as stop:
        print(f"codesearch: {stop}", file=sys.stderr)
        return 143
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return 0
    for task, state in summary.items():
        print(
            f"{task}: best valid MRR {state['best_mrr']:.4f} at epoch {state['best_epoch']}, "
            f"{state['global_step']} steps"
        )
    print(
        f"run directory: {args.out} (evaluate with: codesearch evaluate --model {args.out} "
        f"--data {config.data.path})"
    )
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("codesearch")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _show_config_defaults(parser: argparse.ArgumentParser) -> None:
    """Append each train flag's default, read from the config dataclasses, to its help (the
    flags themselves default to None: "not given", so a --config file can set them)."""
    from codesearch.config import RunConfig

    defaults = RunConfig()
    for action in parser._actions:
        key = TRAIN_FLAGS.get(action.dest)
        if key is None:
            continue
        section, field = key.split(".")
        value = getattr(getattr(defaults, section), field)
        note = f"default {value}" if value not in (None, "") else "default: not set"
        action.help = f"{action.help}; {note}" if action.help else note


def build_parser() -> argparse.ArgumentParser:
    from codesearch.config import add_sampler_arguments

    parser = argparse.ArgumentParser(
        prog="codesearch", description="Tail Batch Sampling for contrastive code search."
    )
    parser.add_argument("--version", action="version", version=f"codesearch {_version()}")
    parser.set_defaults(interrupt_hint="")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- prepare: one sub-subcommand per reader (codesearch/data/readers/*) ---
    prepare = sub.add_parser("prepare", help="build a prepared data directory")
    prepare_sub = prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
    from codesearch.data import prepare_cli

    prepare_cli.add_subcommands(prepare_sub)

    train = sub.add_parser("train", help="fine-tune a dual encoder with a batch sampler")
    train.add_argument("--data", default=None, help="prepared data directory")
    train.add_argument("--out", required=True, help="run directory (checkpoints, best model)")
    train.add_argument(
        "--config",
        default=None,
        help="YAML profile (sections data, model, train, sampler); flags override it",
    )
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--languages", default=None, help="comma-separated, or 'all'")
    train.add_argument(
        "--joint",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one model over all --languages (default: one per language)",
    )
    train.add_argument("--max-train-pairs", type=int, default=None, help="per language")
    train.add_argument("--model", default=None, help="'minilm', a hub id or a local path")
    train.add_argument("--encoder", default=None, help="transformer | nbow")
    train.add_argument("--towers", default=None, help="shared | separate")
    train.add_argument("--pooling", default=None, help="mean | cls")
    train.add_argument("--sampler", default=None, help="batch sampler: random | hardneg | tbs")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None, help="the global batch")
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--max-steps", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--save-every", type=int, default=None, help="checkpoint every N steps")
    train.add_argument(
        "--mixed-precision",
        default=None,
        help="auto (default: the launcher's --mixed_precision if given, else bf16 where the "
        "hardware executes it natively, else no) | no | bf16 | fp16",
    )
    train.add_argument("--tensorboard", action="store_true", default=None)
    train.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars (by default they show only on a terminal; logs get one line "
        "per epoch)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="any config key, e.g. --set train.warmup_ratio=0.05",
    )
    _show_config_defaults(train)
    sampler_options = train.add_argument_group("sampler options (--random-*, --tbs-*, --hardneg-*)")
    add_sampler_arguments(sampler_options)
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", help="MRR per language (codebase or csn1000 protocol)")
    evaluate.add_argument(
        "--model",
        default="minilm",
        help="training run directory, 'minilm', a hub id or a local model path",
    )
    evaluate.add_argument("--data", required=True, help="prepared data directory")
    evaluate.add_argument("--languages", default=None, help="comma-separated (default: all)")
    evaluate.add_argument("--protocol", default="codebase", help="codebase | csn1000")
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

    from codesearch.cli import embeddings, experiments

    embed = sub.add_parser("embed", help="write query and code embeddings of a split (.npz)")
    embeddings.add_embed_arguments(embed)
    embed.set_defaults(func=embeddings.cmd_embed)
    batches = sub.add_parser(
        "batches",
        help="a sampler's batch assignment from embeddings, with L^Global, L^Train and their gap",
    )
    embeddings.add_batches_arguments(batches)
    batches.set_defaults(func=embeddings.cmd_batches)
    experiments.add_parsers(sub)

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

    stats = sub.add_parser("stats", help="record counts per language and split")
    stats.add_argument("data", help="prepared data directory")
    stats.set_defaults(func=_cmd_stats)

    verify = sub.add_parser(
        "verify",
        help="check a prepared directory's files against its manifest (record counts and sha256)",
    )
    verify.add_argument("data", help="prepared data directory")
    verify.set_defaults(func=_cmd_verify)
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
