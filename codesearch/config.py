"""Typed run configuration: one dataclass per component and the checks of its values.

A run config has the sections ``data``, ``model``, ``train``, ``sampler``; each value is
checked where it is set, and ``ValueError`` names its key (``train.lr``,
``sampler.tbs_quantile``). Where the values come from (defaults, YAML profiles, command-line
overrides) is ``codesearch.config_sources``. Importing this module loads neither torch nor
scipy (the samplers' option dataclasses are plain Python).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field

from codesearch.errors import UserError, check_choice, check_number


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
# Accelerate's names for training, codesearch.precision's for encoding (docs/precision.md)
TRAINING_PRECISIONS = ("auto", "no", "bf16", "fp16")
ENCODING_PRECISIONS = ("auto", "fp32", "bf16")
DIAGNOSTICS = ("auto", "fresh", "cached", "off")
CPU_DROPOUTS = ("fast", "native")
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
        check_choice("train.mixed_precision", self.mixed_precision, TRAINING_PRECISIONS)
        check_choice("train.diagnostics", self.diagnostics, DIAGNOSTICS)
        check_choice("train.cpu_dropout", self.cpu_dropout, CPU_DROPOUTS)


def _samplers() -> dict:
    """``samplers.SAMPLERS``, imported when first needed: the samplers' ``Options`` check
    their values with this module's ``check_number`` / ``check_choice``."""
    from codesearch.samplers import SAMPLERS

    return SAMPLERS


def _default_options() -> dict[str, object]:
    return {name: cls.Options() for name, cls in _samplers().items() if cls.Options is not None}


@functools.cache
def sampler_option_keys() -> dict[str, tuple[str, dataclasses.Field, object]]:
    """{'tbs_quantile': ('tbs', <field quantile>, float), ...}: every sampler option as the flat
    key it has in a config's ``sampler`` section, generated from the samplers' ``Options``."""
    out = {}
    for name, cls in _samplers().items():
        if cls.Options is not None:
            hints = typing.get_type_hints(cls.Options)
            for f in dataclasses.fields(cls.Options):
                out[f"{name}_{f.name}"] = (name, f, hints[f.name])
    return out


@functools.cache
def legacy_keys() -> dict[str, str]:
    """Earlier names of keys, still read from saved runs, profiles and --set:
    {'sampler.hardneg_l': 'sampler.hardneg_negatives', ...}."""
    return {
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
            for name, cls_ in _samplers().items()
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


def flat_config(config: RunConfig) -> dict[str, object]:
    """{'section.key': value} of a config."""
    return {
        f"{section}.{key}": value
        for section, values in config.to_dict().items()
        for key, value in values.items()
    }


def check_run_config(config: RunConfig, source: str = "config") -> None:
    """UserError for option combinations no single field's type can rule out (the sampler's
    options against the number of epochs: ``BatchSampler.check_epochs``)."""
    sampler = _samplers().get(config.sampler.name)
    if sampler is None:
        raise UserError(
            f"{source}: unknown sampler '{config.sampler.name}': expected one of "
            f"{', '.join(_samplers())}"
        )
    try:
        sampler.check_epochs(config.sampler.options.get(sampler.name), config.train.epochs)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None
