"""`codesearch train`: its flags, each written once with the config key it sets, the flags
generated from the samplers' ``Options`` (shared with `codesearch batches`), and the command."""

from __future__ import annotations

import argparse
import sys

from codesearch.config import POOLINGS, TOWERS, RunConfig, sampler_option_keys
from codesearch.errors import UserError

# (flag, config key or None, argparse keywords), in --help's order. A flag with a config key
# defaults to None, "not given", so that a --config file can set it; its help ends with the
# config's default.
TRAIN_FLAGS = (
    ("--data", "data.path", {"help": "prepared data directory"}),
    ("--out", None, {"required": True, "help": "run directory (checkpoints, best model)"}),
    (
        "--config",
        None,
        {"help": "YAML profile (sections data, model, train, sampler); flags override it"},
    ),
    ("--resume", None, {"action": "store_true", "help": "continue the run in --out"}),
    ("--languages", "data.languages", {"help": "comma-separated, or 'all'"}),
    (
        "--joint",
        "data.joint",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "one model over all --languages (default: one per language)",
        },
    ),
    ("--max-train-pairs", "data.max_train_pairs", {"type": int, "help": "per language"}),
    ("--model", "model.model", {"help": "'minilm', a hub id or a local path"}),
    ("--encoder", "model.encoder", {"help": "transformer | nbow"}),
    (
        "--towers",
        "model.towers",
        {"choices": TOWERS, "metavar": "TOWERS", "help": "shared | separate"},
    ),
    (
        "--pooling",
        "model.pooling",
        {"choices": POOLINGS, "metavar": "POOLING", "help": "mean | cls"},
    ),
    ("--sampler", "sampler.name", {"help": "batch sampler: random | hardneg | tbs"}),
    ("--epochs", "train.epochs", {"type": int}),
    ("--batch-size", "train.batch_size", {"type": int, "help": "the global batch"}),
    ("--lr", "train.lr", {"type": float}),
    ("--max-steps", "train.max_steps", {"type": int}),
    ("--seed", "train.seed", {"type": int}),
    ("--save-every", "train.save_every", {"type": int, "help": "checkpoint every N steps"}),
    (
        "--mixed-precision",
        "train.mixed_precision",
        {
            "help": "auto (default: the launcher's --mixed_precision if given, else bf16 where the "
            "hardware executes it natively, else no) | no | bf16 | fp16"
        },
    ),
    ("--tensorboard", "train.tensorboard", {"action": "store_true"}),
    (
        "--quiet",
        None,
        {
            "action": "store_true",
            "help": "no progress bars (by default they show only on a terminal; logs get one "
            "line per epoch)",
        },
    ),
    (
        "--set",
        None,
        {
            "action": "append",
            "default": [],
            "metavar": "SECTION.KEY=VALUE",
            "help": "any config key, e.g. --set train.warmup_ratio=0.05",
        },
    ),
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="fine-tune a dual encoder with a batch sampler")
    defaults = RunConfig()
    for flag, key, keywords in TRAIN_FLAGS:
        keywords = dict(keywords)
        if key is not None:
            section, name = key.split(".")
            value = getattr(getattr(defaults, section), name)
            note = f"default {value}" if value not in (None, "") else "default: not set"
            help_ = keywords.get("help")
            keywords.update(default=None, help=f"{help_}; {note}" if help_ else note)
        parser.add_argument(flag, **keywords)
    sampler_options = parser.add_argument_group(
        "sampler options (--random-*, --tbs-*, --hardneg-*)"
    )
    add_sampler_arguments(sampler_options)
    parser.set_defaults(func=cmd_train)


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per sampler option (``--tbs-quantile``, ``--hardneg-negatives``...), and the
    earlier name of a renamed one (``--hardneg-l``)."""
    for key, (sampler, f, kind) in sampler_option_keys().items():
        flags = ["--" + key.replace("_", "-")]
        if "legacy" in f.metadata:
            flags.append(f"--{sampler}-{f.metadata['legacy']}".replace("_", "-"))
        if kind is bool:
            parser.add_argument(
                *flags,
                dest=key,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"default {f.default}",
            )
        else:
            parser.add_argument(
                *flags, dest=key, type=kind, default=None, help=f"default {f.default}"
            )


def sampler_overrides(args: argparse.Namespace) -> dict[str, object]:
    """{'sampler.<key>': value} for the sampler flags given on the command line."""
    return {
        f"sampler.{key}": getattr(args, key)
        for key in sampler_option_keys()
        if getattr(args, key, None) is not None
    }


def train_overrides(args: argparse.Namespace) -> dict[str, object]:
    """{'section.key': value} of every config flag (None: not given), the sampler flags given
    and ``--set``'s."""
    overrides = {
        key: getattr(args, flag[2:].replace("-", "_"))
        for flag, key, _ in TRAIN_FLAGS
        if key is not None
    }
    overrides.update(sampler_overrides(args))
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set expects section.key=value, got '{item}'")
        overrides[key.strip()] = value
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from codesearch.config_sources import load_run_config, resolve_config
    from codesearch.run_dir import is_run_directory, resume_base
    from codesearch.samplers import sampler_class
    from codesearch.train import Interrupted, train

    overrides = train_overrides(args)
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
            f"{task}: best validation score {state['best_mrr']:.4f} at epoch "
            f"{state['best_epoch']}, "
            f"{state['global_step']} steps"
        )
    print(
        f"run directory: {args.out} (evaluate with: codesearch evaluate --model {args.out} "
        f"--data {config.data.path})"
    )
    return 0
