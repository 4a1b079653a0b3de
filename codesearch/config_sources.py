"""Where a run config's values come from: the defaults (or a saved run's config, when
resuming), then a YAML profile, then command-line overrides. Each value is coerced to its
field's type; a key that does not exist is an error that names the source and the key, and
earlier names of keys (``config.legacy_keys``) are still read."""

from __future__ import annotations

import types
import typing
from pathlib import Path

from codesearch.config import SECTIONS, RunConfig, legacy_keys, sampler_option_keys
from codesearch.errors import UserError
from codesearch.safe_yaml import read_yaml


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
        dotted = legacy_keys().get(dotted, dotted)
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


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config a run saved in ``run_dir/config.yaml``."""
    path = Path(run_dir) / "config.yaml"
    tree = read_yaml(path, "run config")
    if not isinstance(tree, dict) or not all(isinstance(v, dict) for v in tree.values()):
        raise UserError(f"{path}: expected a mapping of sections")
    flat = {f"{s}.{k}": v for s, values in tree.items() for k, v in values.items()}
    return apply_overrides(RunConfig(), flat, str(path))
