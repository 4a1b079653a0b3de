"""Typed run configuration: one dataclass per component, YAML profiles as overrides.

A YAML file has the sections ``data``, ``model``, ``train``, ``sampler``; a key that does not
exist is an error that names the file and the key. Command-line flags override the file, and
the resolved configuration is saved with every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from codesearch.errors import UserError
from codesearch.model import ModelConfig


@dataclass
class DataConfig:
    path: str = "data/local"
    languages: list[str] = field(default_factory=lambda: ["python"])  # or ["all"]
    joint: bool = False  # one model over all languages instead of one per language
    max_train_pairs: int | None = None  # per language, a deterministic prefix of a shuffle
    max_valid_queries: int | None = 2000  # validation MRR each epoch on at most this many

    def __post_init__(self) -> None:
        _check_range(self, "data", "max_train_pairs", low=1, optional=True)
        _check_range(self, "data", "max_valid_queries", low=1, optional=True)


def _check_range(
    obj: object,
    section: str,
    name: str,
    low: float | None = None,
    high: float | None = None,
    optional: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """ValueError unless obj.name is a finite number within [low, high] (open ends where
    asked), or None when ``optional``. ``apply_overrides`` turns it into a UserError."""
    value = getattr(obj, name)
    if value is None and optional:
        return
    if high is None:
        bounds = f"{'>' if low_open else '>='} {low}"
    else:
        bounds = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (low is not None and (value <= low if low_open else value < low))
        or (high is not None and (value >= high if high_open else value > high))
    ):
        raise ValueError(
            f"{section}.{name} must be a finite number {bounds}"
            f"{' or null' if optional else ''}; got {value!r}"
        )


def _check_choice(obj: object, section: str, name: str, choices: tuple[str, ...]) -> None:
    if getattr(obj, name) not in choices:
        raise ValueError(
            f"{section}.{name} must be one of {', '.join(choices)}; got {getattr(obj, name)!r}"
        )


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 32  # the global (contrastive) batch, whatever the number of processes
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # auto (bf16 on GPUs that have it) | no | bf16 | fp16
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps in total
    save_every: int = 0  # checkpoint every N steps (0: only at epoch end)
    symmetric_loss: bool = False  # add the code-to-query InfoNCE term
    log_every: int = 10
    eval_batch_size: int = 128
    tensorboard: bool = False
    # L^Global / L^Train each epoch: auto | fresh (a no-grad pass) | cached | off
    diagnostics: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "log_every", "eval_batch_size"):
            _check_range(self, "train", name, low=1)
        _check_range(self, "train", "lr", low=0, low_open=True)
        _check_range(self, "train", "weight_decay", low=0)
        _check_range(self, "train", "warmup_ratio", low=0, high=1, high_open=True)
        _check_range(self, "train", "grad_clip", low=0)
        _check_range(self, "train", "seed", low=0, high=2**32 - 1)
        _check_range(self, "train", "max_steps", low=1, optional=True)
        _check_range(self, "train", "save_every", low=0)
        _check_choice(self, "train", "mixed_precision", ("auto", "no", "bf16", "fp16"))
        _check_choice(self, "train", "diagnostics", ("auto", "fresh", "cached", "off"))


@dataclass
class SamplerConfig:
    """The sampler's name and options; ``<name>_<option>`` fields go to that sampler's class."""

    name: str = "random"  # random | hardneg | tbs
    # tbs (codesearch/samplers/tbs.py)
    tbs_quantile: float = 0.999  # similarities above this quantile form the graph
    tbs_graph: str = "quantile"  # quantile (paper-exact) | knn (top-m codes per query)
    tbs_knn: int = 16  # m for the knn graph
    tbs_knn_backend: str = "auto"  # auto | exact | faiss
    tbs_shuffle_batches: bool = True  # shuffle the order of the batches each epoch
    tbs_embeddings: str = "fresh"  # fresh (no-grad pass at epoch start) | cached (last epoch's)
    tbs_every: int = 1  # recompute the assignment every E epochs
    tbs_block_size: int = 2048  # rows per block of the similarity computation
    tbs_start_epoch: int = 0  # epochs before this one use random batches (warm start)
    tbs_same_text_edges: str = "drop"  # drop | keep graph edges between same-text pairs

    def __post_init__(self) -> None:
        _check_range(self, "sampler", "tbs_start_epoch", low=0)

    # hardneg (codesearch/samplers/hardneg.py)
    hardneg_l: int = 1  # mined negatives per anchor
    hardneg_range: str = "1:1"  # rank window lo:hi (1-based, inclusive) to sample negatives from
    hardneg_every: int = 1  # refresh the index every E epochs
    hardneg_backend: str = "auto"  # auto | exact | faiss

    def options_for(self, name: str) -> dict:
        """Keyword arguments of sampler ``name``: its fields without the prefix."""
        prefix = f"{name}_"
        return {
            k[len(prefix) :]: v for k, v in dataclasses.asdict(self).items() if k.startswith(prefix)
        }


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {f.name: f.type for f in dataclasses.fields(RunConfig)}


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
        except (TypeError, ValueError):
            number = None
        if number is None or (hints is int and isinstance(value, float) and value != number):
            raise UserError(f"{where}: expected {hints.__name__}, got {value!r}")
        return number
    if hints is str:
        return str(value)
    return value


def _section_types(section: str) -> dict[str, object]:
    cls = typing.get_type_hints(RunConfig)[section]
    return typing.get_type_hints(cls)


def apply_overrides(config: RunConfig, overrides: dict[str, object], source: str) -> RunConfig:
    """Set ``section.key`` values (validated) on a copy of ``config``."""
    sections = {name: dataclasses.asdict(getattr(config, name)) for name in SECTIONS}
    for dotted, value in overrides.items():
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
        return RunConfig(
            **{
                name: typing.get_type_hints(RunConfig)[name](**values)
                for name, values in sections.items()
            }
        )
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None


def load_yaml(path: str | Path) -> dict[str, object]:
    """A YAML profile flattened to {'section.key': value}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such config file")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
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


def add_sampler_arguments(parser) -> None:
    """One ``--<field>`` flag per SamplerConfig option (``--tbs-quantile``, ``--hardneg-l``...)."""
    hints = typing.get_type_hints(SamplerConfig)
    for f in dataclasses.fields(SamplerConfig):
        if f.name == "name":
            continue
        kind = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        if kind is bool:
            import argparse

            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"default {f.default}",
            )
        else:
            parser.add_argument(flag, type=kind, default=None, help=f"default {f.default}")


def sampler_overrides(args) -> dict[str, object]:
    """{'sampler.<field>': value} for the sampler flags given on the command line."""
    return {
        f"sampler.{f.name}": getattr(args, f.name)
        for f in dataclasses.fields(SamplerConfig)
        if f.name != "name" and getattr(args, f.name, None) is not None
    }


def config_from_dict(tree: dict, source: str = "saved config") -> RunConfig:
    """Rebuild a RunConfig saved with ``to_dict`` (e.g. from a run directory)."""
    if not isinstance(tree, dict) or not all(isinstance(v, dict) for v in tree.values()):
        raise UserError(f"{source}: expected a mapping of sections")
    flat = {f"{s}.{k}": v for s, values in tree.items() for k, v in values.items()}
    return apply_overrides(RunConfig(), flat, source)


def check_run_config(config: RunConfig, source: str = "config") -> None:
    """UserError for option combinations no single field's type can rule out."""
    sampler = config.sampler
    if sampler.name == "tbs" and sampler.tbs_start_epoch >= config.train.epochs:
        raise UserError(
            f"{source}: sampler.tbs_start_epoch {sampler.tbs_start_epoch} leaves no "
            f"TBS epoch in train.epochs {config.train.epochs} (epochs before it use "
            "random batches); lower it or train more epochs"
        )


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
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: unreadable run config ({exc})".replace("\n", " ")) from None
    return config_from_dict(tree, str(path))


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
