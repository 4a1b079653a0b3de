"""The run config (codesearch.config, codesearch.config_sources): values coerced to their
field's type, YAML profiles and command-line overrides in that order, earlier key names,
and every bad value an error that names its key and where it came from."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import yaml

from codesearch.cli.train import TRAIN_FLAGS, add_parsers, train_overrides
from codesearch.config import (
    SECTIONS,
    DataConfig,
    ModelConfig,
    RunConfig,
    SamplerConfig,
    TrainConfig,
    check_choice,
    check_number,
    check_run_config,
    flat_config,
    legacy_keys,
    sampler_option_keys,
)
from codesearch.config_sources import apply_overrides, load_run_config, load_yaml, resolve_config
from codesearch.errors import UserError
from codesearch.run_dir import RESUMABLE_KEYS, check_resume_config, resume_base

# --- coercion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "given", "expected"),
    [
        ("train.epochs", "3", 3),
        ("train.epochs", 4.0, 4),  # a float with no fraction is an int
        ("train.lr", "1e-4", 1e-4),
        ("train.lr", 1, 1.0),
        ("train.tensorboard", "yes", True),
        ("train.tensorboard", "0", False),
        ("train.tensorboard", "FALSE", False),
        ("data.languages", "python, go,,ruby", ["python", "go", "ruby"]),
        ("data.languages", ["java"], ["java"]),
        ("data.max_train_pairs", None, None),
        ("data.max_train_pairs", "500", 500),
        ("model.model", 7, "7"),
        ("sampler.tbs_quantile", "0.9", 0.9),
    ],
)
def test_values_are_coerced_to_their_fields_type(key, given, expected):
    config = apply_overrides(RunConfig(), {key: given}, "test")
    value = flat_config(config)[key]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("key", "given", "message"),
    [
        ("train.epochs", "two", "test: 'train.epochs': expected int, got 'two'"),
        ("train.epochs", 2.5, "expected int, got 2.5"),
        ("train.epochs", True, "expected int, got True"),
        ("train.lr", "fast", "'train.lr': expected float"),
        ("train.tensorboard", "maybe", "'train.tensorboard': expected true or false"),
        ("train.tensorboard", 1, "expected true or false, got 1"),
        ("data.languages", 3, "'data.languages': expected a list, got 3"),
        ("data.max_train_pairs", float("inf"), "expected int, got inf"),
    ],
)
def test_a_value_of_the_wrong_type_names_source_and_key(key, given, message):
    with pytest.raises(UserError) as raised:
        apply_overrides(RunConfig(), {key: given}, "test")
    assert message in str(raised.value)


# --- validation: ValueError naming the field, UserError naming the source too --------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainConfig(epochs=0), "train.epochs must be a finite number >= 1; got 0"),
        (lambda: TrainConfig(lr=0.0), "train.lr must be a finite number > 0; got 0.0"),
        (
            lambda: TrainConfig(warmup_ratio=1.0),
            "train.warmup_ratio must be a finite number in [0, 1)",
        ),
        (lambda: TrainConfig(seed=2**32), "train.seed must be a finite number in [0, 4294967295]"),
        (lambda: TrainConfig(diagnostics="some"), "train.diagnostics must be one of auto, fresh"),
        (lambda: TrainConfig(cpu_dropout="slow"), "train.cpu_dropout must be one of fast, native"),
        (
            lambda: TrainConfig(mixed_precision="fp32"),
            "train.mixed_precision must be one of auto, no",
        ),
        (lambda: DataConfig(max_valid_queries=0), "data.max_valid_queries must be a finite number"),
        (lambda: ModelConfig(encoder="lstm"), "model.encoder must be one of transformer, nbow"),
        (lambda: ModelConfig(scale=0.0), "model.scale must be a finite number in (0, 1000.0]"),
        (lambda: ModelConfig(nbow_dim=0), "model.nbow_dim must be a positive integer; got 0"),
        (lambda: ModelConfig(nbow_dim=10**6), "model.nbow_dim must be at most 16384"),
        (lambda: ModelConfig(model=""), "model.model must be a non-empty name or path"),
        (
            lambda: ModelConfig(encoder="nbow", pooling="cls"),
            "model.pooling must be mean when encoder is nbow",
        ),
        (
            lambda: ModelConfig(input_format="unixcoder", max_query_length=4),
            "unixcoder needs max lengths >= 5",
        ),
    ],
)
def test_a_bad_field_is_a_value_error_naming_it(build, message):
    with pytest.raises(ValueError) as raised:
        build()
    assert message in str(raised.value)


def test_overrides_turn_a_bad_value_into_one_line_naming_the_source():
    with pytest.raises(UserError) as raised:
        apply_overrides(RunConfig(), {"model.towers": "three"}, "p.yaml")
    assert str(raised.value) == (
        "p.yaml: model.towers must be one of shared, separate; got 'three'"
    )


def test_checks_bound_numbers_and_choices():
    check_number("k", None, low=1, optional=True)
    check_number("k", 1, low=1)
    with pytest.raises(ValueError, match=r"k must be a finite number >= 1 or null; got 0"):
        check_number("k", 0, low=1, optional=True)
    with pytest.raises(ValueError, match="got True"):  # a bool is not a number
        check_number("k", True, low=0)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        check_number("k", 1, low=0, high=1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match="k must be one of a, b; got 'c'"):
        check_choice("k", "c", ("a", "b"))


def test_unknown_sections_and_keys_are_named_with_what_is_known():
    with pytest.raises(UserError, match="cli: unknown section 'optim' \\(known: data, model"):
        apply_overrides(RunConfig(), {"optim.lr": 1}, "cli")
    with pytest.raises(UserError) as raised:
        apply_overrides(RunConfig(), {"train.warmup": 3}, "cli")
    assert "unknown key 'train.warmup' (known in 'train': epochs, batch_size" in str(raised.value)
    with pytest.raises(UserError, match="unknown key 'sampler.tbs_nope'"):
        apply_overrides(RunConfig(), {"sampler.tbs_nope": 1}, "cli")


def test_a_sampler_option_against_the_epochs_and_an_unknown_sampler():
    config = resolve_config(None, {"sampler.name": "tbs", "sampler.tbs_start_epoch": 1})
    with pytest.raises(UserError, match="profile: .*leaves no TBS epoch in train.epochs 1"):
        check_run_config(config, "profile")
    check_run_config(dataclasses.replace(config, train=TrainConfig(epochs=2)))
    with pytest.raises(UserError, match="unknown sampler 'fancy': expected one of random"):
        check_run_config(resolve_config(None, {"sampler.name": "fancy"}))


# --- YAML profiles, then the command line --------------------------------------------------------


def test_defaults_then_yaml_then_command_line(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "data:\n  languages: [go, java]\ntrain:\n  epochs: 3\n  lr: 0.001\n"
        "sampler:\n  name: tbs\n  tbs_quantile: 0.5\n"
    )
    assert load_yaml(profile)["train.epochs"] == 3
    config = resolve_config(profile, {"train.epochs": 5, "train.lr": None, "model.scale": "10"})
    assert config.train.epochs == 5  # the command line wins
    assert config.train.lr == 0.001  # None: not given, the file's value stays
    assert config.data.languages == ["go", "java"] and config.model.scale == 10.0
    assert config.sampler.name == "tbs" and config.sampler.options["tbs"].quantile == 0.5
    assert config.train.batch_size == TrainConfig().batch_size  # untouched: the default
    base = resolve_config(None, {"train.seed": 7})
    assert resolve_config(profile, None, base).train.seed == 7  # a base replaces the defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping of sections"),
        ("train: 3\n", "section 'train' must be a mapping"),
        ("train:\n  epochs: x\n", "'train.epochs': expected int"),
        ("model:\n  pooling: max\n", "model.pooling must be one of mean, cls"),
    ],
)
def test_a_bad_profile_names_the_file(tmp_path, text, message):
    profile = tmp_path / "bad.yaml"
    profile.write_text(text)
    with pytest.raises(UserError) as raised:
        resolve_config(profile)
    assert str(profile) in str(raised.value) and message in str(raised.value)


def test_an_empty_profile_is_the_defaults(tmp_path):
    profile = tmp_path / "empty.yaml"
    profile.write_text("")
    assert resolve_config(profile) == RunConfig()


# --- plain data and earlier key names ------------------------------------------------------------


def test_to_dict_and_back_is_the_same_config():
    config = resolve_config(
        None, {"sampler.name": "hardneg", "sampler.hardneg_negatives": 2, "data.joint": True}
    )
    tree = config.to_dict()
    assert list(tree) == list(SECTIONS)
    assert tree["sampler"]["name"] == "hardneg" and tree["sampler"]["hardneg_negatives"] == 2
    assert RunConfig.from_dict(tree) == config
    assert set(tree["sampler"]) == {"name", *sampler_option_keys()}


def test_a_saved_config_loads_and_earlier_keys_are_read(tmp_path):
    assert legacy_keys()["sampler.hardneg_l"] == "sampler.hardneg_negatives"
    tree = RunConfig().to_dict()
    tree["train"]["epochs"] = 4
    tree["sampler"]["hardneg_l"] = tree["sampler"].pop("hardneg_negatives") + 5
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree))
    saved = load_run_config(tmp_path)
    assert saved.train.epochs == 4
    assert (
        saved.sampler.options["hardneg"].negatives
        == SamplerConfig().options["hardneg"].negatives + 5
    )
    (tmp_path / "config.yaml").write_text("[1, 2]\n")
    with pytest.raises(UserError, match="config.yaml: expected a mapping of sections"):
        load_run_config(tmp_path)


# --- resuming: what may change ---------------------------------------------------------------------


def test_resume_allows_only_the_resumable_keys():
    saved = RunConfig()
    more = apply_overrides(saved, {"train.epochs": 3, "train.log_every": 1}, "cli")
    assert check_resume_config(saved, more, "run") == {
        "train.epochs": [1, 3],
        "train.log_every": [10, 1],
    }
    other = apply_overrides(saved, {"train.lr": 0.1, "train.epochs": 2}, "cli")
    with pytest.raises(UserError) as raised:
        check_resume_config(saved, other, "run")
    message = str(raised.value)
    assert "train.lr (run 2e-05, now 0.1)" in message and "train.epochs (" not in message
    fewer = apply_overrides(more, {"train.epochs": 2}, "cli")
    with pytest.raises(UserError, match=r"cannot lower train.epochs \(3 -> 2\)"):
        check_resume_config(more, fewer, "run")
    assert "model.trust_remote_code" in RESUMABLE_KEYS
    trusted = apply_overrides(saved, {"model.trust_remote_code": True}, "cli")
    assert resume_base(trusted).model.trust_remote_code is False


# --- the train flags: written once, each with its config key ---------------------------------------


def _parse(*argv):
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", "--out", "run", *argv])


def test_train_flags_map_to_config_keys_and_unset_flags_are_none():
    keys = [key for _, key, _ in TRAIN_FLAGS if key is not None]
    assert len(keys) == len(set(keys)) and all(key.split(".")[0] in SECTIONS for key in keys)
    overrides = train_overrides(
        _parse("--epochs", "2", "--towers", "separate", "--tbs-quantile", "0.5", "--set", "x.y=1")
    )
    assert overrides["train.epochs"] == 2 and overrides["model.towers"] == "separate"
    assert overrides["sampler.tbs_quantile"] == 0.5 and overrides["x.y"] == "1"
    assert overrides["train.lr"] is None and overrides["data.path"] is None
    config = resolve_config(None, {k: v for k, v in overrides.items() if k != "x.y"})
    assert config.model.towers == "separate" and config.train.lr == TrainConfig().lr
    with pytest.raises(UserError, match="--set expects section.key=value, got 'oops'"):
        train_overrides(_parse("--set", "oops"))


def test_towers_and_pooling_flags_take_only_their_choices(capsys):
    with pytest.raises(SystemExit):
        _parse("--pooling", "max")
    assert "invalid choice: 'max'" in capsys.readouterr().err
