"""Typed run configuration: one dataclass per component, YAML profiles as overrides.

A YAML file has the sections ``data``, ``model``, ``train``, ``sampler``; a key that does not
exist is an error that names the file and the key. Command-line flags override the file, and
the resolved configuration is saved with every run and checkpoint. Importing this module
loads neither torch nor scipy (the samplers' option dataclasses are plain Python).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from codesearch.checks import check_choice, check_number
from codesearch.errors import UserError
from codesearch.safe_yaml import read_yaml
from codesearch.samplers import SAMPLERS


@dataclass
class DataConfig:
    path: str = "data/local"
    languages: list[str] = field(default_factory=lambda: ["python"])  # or ["all"]
    joint: bool = False  # one model over all languages instead of one per language
    max_train_pairs: int | None = None  # per language, a deterministic prefix of a shuffle
    max_valid_queries: int | None = 2000  # validation MRR each epoch on at most this many

    def __post_init__(self) -> None:
        check_number("data.max_train_pairs", self.max_train_pairs, low=1, optional=True)
        check_number("data.max_valid_queries", self.max_valid_queries, low=1, optional=True)


ENCODERS = ("transformer", "nbow")
MAX_SCALE = 1000.0  # the logit scale; the paper's is 20 (temperature 0.05)
MAX_NBOW_DIM = 16384  # 2 GB of float32 with MiniLM's 30,522-token vocabulary
TOWERS = ("shared", "separate")
POOLINGS = ("mean", "cls")
INPUT_FORMATS = ("plain", "unixcoder")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a DualEncoder (``codesearch.model``); saved with every
    checkpoint."""

    model: str = "minilm"  # "minilm", a hub id or a local path (weights and/or tokenizer)
    encoder: str = "transformer"  # "transformer" | "nbow"
    towers: str = "shared"  # "shared" | "separate"
    pooling: str = "mean"  # "mean" | "cls" (transformer only)
    scale: float = 20.0  # logit scale s = 1 / temperature
    nbow_dim: int = 256
    trust_remote_code: bool = False
    max_query_length: int = 128
    max_code_length: int = 256
    # plain (the tokenizer's special tokens) | unixcoder (<s> <encoder-only> </s> TEXT </s>)
    input_format: str = "plain"

    def __post_init__(self) -> None:
        check_choice("model.encoder", self.encoder, ENCODERS)
        check_choice("model.input_format", self.input_format, INPUT_FORMATS)
        check_choice("model.towers", self.towers, TOWERS)
        check_choice("model.pooling", self.pooling, POOLINGS)
        if self.encoder == "nbow" and self.pooling != "mean":
            raise ValueError("model.pooling must be mean when encoder is nbow")
        if not self.model:
            raise ValueError("model.model must be a non-empty name or path")
        check_number("model.scale", self.scale, low=0, high=MAX_SCALE, low_open=True)
        for name in ("nbow_dim", "max_query_length", "max_code_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer; got {value!r}")
        if self.nbow_dim > MAX_NBOW_DIM:  # the table is vocabulary x dim floats, per tower
            raise ValueError(f"model.nbow_dim must be at most {MAX_NBOW_DIM}; got {self.nbow_dim}")
        if (
            self.input_format == "unixcoder"
            and min(self.max_query_length, self.max_code_length) < 5
        ):
            raise ValueError(
                "model.input_format unixcoder needs max lengths >= 5 (4 special tokens)"
            )


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 32  # the global (contrastive) batch, whatever the number of processes
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0
    # auto (the launcher's, else bf16 where native: codesearch/precision.py) | no | bf16 | fp16
    mixed_precision: str = "auto"
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps in total
    save_every: int = 0  # checkpoint every N steps (0: only at epoch end)
    symmetric_loss: bool = False  # add the code-to-query InfoNCE term
    log_every: int = 10
    eval_batch_size: int = 128
    tensorboard: bool = False
    # L^Global / L^Train each epoch: auto | fresh (a no-grad pass) | cached | off
    diagnostics: str = "auto"
    # dropout masks on a CPU: fast (16 random bits per element, codesearch.fast_dropout) | native
    cpu_dropout: str = "fast"
    # encode each side of a step's batch in this many length-sorted chunks, each padded only
    # to its own longest row (model.encode_by_length): 8 makes a MiniLM step 1.9x faster on a
    # CPU at batch 32; the same loss up to float rounding (dropout draws differ)
    length_chunks: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every", "eval_batch_size", "length_chunks"):
            check_number(f"train.{name}", getattr(self, name), low=1)
        check_number("train.lr", self.lr, low=0, low_open=True)
        check_number("train.weight_decay", self.weight_decay, low=0)
        check_number("train.warmup_ratio", self.warmup_ratio, low=0, high=1, high_open=True)
        check_number("train.grad_clip", self.grad_clip, low=0)
        check_number("train.seed", self.seed, low=0, high=2**32 - 1)
        check_number("train.max_steps", self.max_steps, low=1, optional=True)
        check_number("train.save_every", self.save_every, low=0)
        check_choice("train.mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        check_choice("train.diagnostics", self.diagnostics, ("auto", "fresh", "cached", "off"))
        check_choice("train.cpu_dropout", self.cpu_dropout, ("fast", "native"))


def _default_options() -> dict[str, object]:
    return {name: cls.Options() for name, cls in SAMPLERS.items() if cls.Options is not None}


@functools.cache
def sampler_option_keys() -> dict[str, tuple[str, dataclasses.Field, object]]:
    """{'tbs_quantile': ('tbs', <field quantile>, float), ...}: every sampler option as the flat
    key it has in a config's ``sampler`` section, generated from the samplers' ``Options``."""
    out = {}
    for name, cls in SAMPLERS.items():
        if cls.Options is not None:
            hints = typing.get_type_hints(cls.Options)
            for f in dataclasses.fields(cls.Options):
                out[f"{name}_{f.name}"] = (name, f, hints[f.name])
    return out


# earlier names of keys, still read from saved runs, profiles and --set
LEGACY_KEYS = {
    f"sampler.{sampler}_{f.metadata['legacy']}": f"sampler.{key}"
    for key, (sampler, f, _) in sampler_option_keys().items()
    if "legacy" in f.metadata
}


@dataclass
class SamplerConfig:
    """The sampler's name and every sampler's options (``options["tbs"]`` is a
    ``TBSOptions``). As plain data (YAML, flags, ``--set``) an option is the flat key
    ``<sampler>_<field>`` of the ``sampler`` section: ``sampler.tbs_quantile``."""

    name: str = "random"  # a key of samplers.SAMPLERS
    options: dict[str, object] = field(default_factory=_default_options)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        for sampler, options in self.options.items():
            out.update({f"{sampler}_{k}": v for k, v in dataclasses.asdict(options).items()})
        return out

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> SamplerConfig:
        """From flat keys; absent options keep their defaults (ValueError for a bad value)."""
        by_sampler: dict[str, dict] = {}
        for key, (sampler, f, _) in sampler_option_keys().items():
            if key in values:
                by_sampler.setdefault(sampler, {})[f.name] = values[key]
        options = {
            name: cls_.Options(**by_sampler.get(name, {}))
            for name, cls_ in SAMPLERS.items()
            if cls_.Options is not None
        }
        return cls(name=str(values.get("name", "random")), options=options)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def to_dict(self) -> dict:
        """Plain data: {section: {key: value}} (the form of config.yaml)."""
        return {
            "data": dataclasses.asdict(self.data),
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "sampler": self.sampler.to_dict(),
        }

    @classmethod
    def from_dict(cls, tree: dict[str, dict]) -> RunConfig:
        """From ``to_dict``'s form with every value already coerced (ValueError if bad)."""
        return cls(
            data=DataConfig(**tree["data"]),
            model=ModelConfig(**tree["model"]),
            train=TrainConfig(**tree["train"]),
            sampler=SamplerConfig.from_dict(tree["sampler"]),
        )


SECTIONS = ("data", "model", "train", "sampler")


def _coerce(value: object, annotation: object, where: str) -> object:
    """Check/convert one value against a dataclass field annotation."""
    hints = annotation
    origin = typing.get_origin(hints)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hints)
        if value is None and type(None) in args:
            return None
        hints = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hints)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return [str(v) for v in value]
    if hints is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise UserError(f"{where}: expected true or false, got {value!r}")
        return value
    if hints in (int, float):
        try:
            number = hints(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError, OverflowError):  # int(.inf), int(1e400)
            number = None
        if number is None or (hints is int and isinstance(value, float) and value != number):
            raise UserError(f"{where}: expected {hints.__name__}, got {value!r}")
        return number
    if hints is str:
        return str(value)
    return value


def _section_types(section: str) -> dict[str, object]:
    if section == "sampler":
        return {"name": str, **{k: hint for k, (_, _, hint) in sampler_option_keys().items()}}
    return typing.get_type_hints(typing.get_type_hints(RunConfig)[section])


def apply_overrides(config: RunConfig, overrides: dict[str, object], source: str) -> RunConfig:
    """Set ``section.key`` values (validated) on a copy of ``config``."""
    sections = config.to_dict()
    for dotted, value in overrides.items():
        dotted = LEGACY_KEYS.get(dotted, dotted)
        section, _, key = dotted.partition(".")
        if section not in sections:
            raise UserError(f"{source}: unknown section '{section}' (known: {', '.join(SECTIONS)})")
        types_ = _section_types(section)
        if key not in types_:
            raise UserError(
                f"{source}: unknown key '{dotted}' (known in '{section}': {', '.join(types_)})"
            )
        sections[section][key] = _coerce(value, types_[key], f"{source}: '{dotted}'")
    try:
        return RunConfig.from_dict(sections)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None


def load_yaml(path: str | Path) -> dict[str, object]:
    """A YAML profile flattened to {'section.key': value}."""
    path = Path(path)
    tree = read_yaml(path, "config file") or {}
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a mapping of sections")
    flat = {}
    for section, values in tree.items():
        if not isinstance(values, dict):
            raise UserError(f"{path}: section '{section}' must be a mapping")
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    return flat


def resolve_config(
    config_file: str | Path | None = None,
    overrides: dict[str, object] | None = None,
    base: RunConfig | None = None,
) -> RunConfig:
    """Defaults (or ``base``, e.g. the saved config of a run being resumed), then the YAML
    file, then command-line overrides (``None`` values ignored)."""
    config = base if base is not None else RunConfig()
    if config_file is not None:
        config = apply_overrides(config, load_yaml(config_file), str(config_file))
    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        config = apply_overrides(config, given, "command line")
    return config


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


def check_run_config(config: RunConfig, source: str = "config") -> None:
    """UserError for option combinations no single field's type can rule out (the sampler's
    options against the number of epochs: ``BatchSampler.check_epochs``)."""
    sampler = SAMPLERS.get(config.sampler.name)
    if sampler is None:
        raise UserError(
            f"{source}: unknown sampler '{config.sampler.name}': expected one of "
            f"{', '.join(SAMPLERS)}"
        )
    try:
        sampler.check_epochs(config.sampler.options.get(sampler.name), config.train.epochs)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None


# --- resuming a run -----------------------------------------------------------------------------

# Keys that may differ between a run and its resumption. Everything else changes what the run
# computes (weights, batches, schedule, data), so a resumed run with another value would be a
# hybrid that its config.yaml misdescribes.
# - train.epochs may grow (never shrink): training really goes on, the linear schedule is
#   recomputed over the new total, so the result is not that of a run started with that many
#   epochs; run_info.json records the resumption;
# - save_every, log_every, tensorboard only change what is written;
# - model.trust_remote_code is this invocation's decision, never taken from a file;
# - data.path may move when the data it points to has the run's data_hash (checked by train).
RESUMABLE_KEYS = (
    "train.epochs",
    "train.save_every",
    "train.log_every",
    "train.tensorboard",
    "model.trust_remote_code",
    "data.path",
)


def flat_config(config: RunConfig) -> dict[str, object]:
    """{'section.key': value} of a config."""
    return {
        f"{section}.{key}": value
        for section, values in config.to_dict().items()
        for key, value in values.items()
    }


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config a run saved in ``run_dir/config.yaml``."""
    path = Path(run_dir) / "config.yaml"
    tree = read_yaml(path, "run config")
    if not isinstance(tree, dict) or not all(isinstance(v, dict) for v in tree.values()):
        raise UserError(f"{path}: expected a mapping of sections")
    flat = {f"{s}.{k}": v for s, values in tree.items() for k, v in values.items()}
    return apply_overrides(RunConfig(), flat, str(path))


def resume_base(saved: RunConfig) -> RunConfig:
    """The saved config of a run as the base that a resuming command line overrides; what
    may never come from a file (trust_remote_code) is reset to its default."""
    return dataclasses.replace(
        saved, model=dataclasses.replace(saved.model, trust_remote_code=False)
    )


def check_resume_config(saved: RunConfig, new: RunConfig, where: str) -> dict[str, list]:
    """UserError naming every key whose new value would change what the resumed run computes;
    returns the changes allowed on resume as {'section.key': [saved, new]}."""
    old, now = flat_config(saved), flat_config(new)
    changed = {k: [old[k], now[k]] for k in old if old[k] != now[k]}
    frozen = [k for k in changed if k not in RESUMABLE_KEYS]
    if frozen:
        details = ", ".join(f"{k} (run {changed[k][0]!r}, now {changed[k][1]!r})" for k in frozen)
        raise UserError(
            f"{where}: --resume with a different config: {details}; resume with "
            f"the run's own values or start a new --out (only "
            f"{', '.join(RESUMABLE_KEYS)} may change on resume)"
        )
    if now["train.epochs"] < old["train.epochs"]:
        raise UserError(
            f"{where}: --resume cannot lower train.epochs "
            f"({old['train.epochs']} -> {now['train.epochs']})"
        )
    return changed
