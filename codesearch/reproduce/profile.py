"""Profiles (``experiments/<name>.yaml``): read and validated once into a ``Profile`` whose
groups are typed ``Group``s; a group's cells are (arm, seed) pairs over its languages."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

from codesearch.config import SECTIONS, RunConfig, check_run_config
from codesearch.config_sources import apply_overrides
from codesearch.data.schema import normalize_language, parse_languages
from codesearch.errors import UserError
from codesearch.safe_yaml import read_yaml
from codesearch.samplers import sampler_class

PROFILE_KEYS = {"name", "description", "data", "protocol", "launcher", "groups"}
GROUP_KEYS = {
    "description",
    "languages",
    "samplers",
    "seeds",
    "jobs",
    "threads",
    "config",
    "evaluate",
    "published",
    "compare",
    "zero_shot",
}
DATA_KEYS = {"path", "prepare"}
FIXED_KEYS = ("data.path", "data.languages", "sampler.name", "train.seed")
ARM_KEYS = {"label", "sampler", "set", "seeds"}


@dataclasses.dataclass(frozen=True)
class Arm:
    """One entry of a group's ``samplers``: the sampler it runs, its own config keys
    (``section.key: value``) and the group's seeds it runs with."""

    sampler: str
    overrides: dict
    seeds: list[int]

    def record(self) -> dict:
        """As grid.json holds it."""
        return {"sampler": self.sampler, "set": self.overrides, "seeds": self.seeds}


@dataclasses.dataclass(frozen=True)
class Group:
    """One group of a profile: its arms (by label, in the profile's order) over its languages
    and seeds, ``jobs`` cells at a time with ``threads`` threads each. ``model`` and
    ``encoder`` are read off its resolved config; ``published`` is {source, mrr: {language:
    points}} and ``compare`` its own [arm, baseline] pairs (None: each arm against random and
    hardneg). ``zero_shot``: also evaluate the group's base model untrained, once (a reference
    row, ``codesearch.reproduce.reference``). A group read back from grid.json
    (``from_record``) may lack the keys an older driver did not write: ``threads``, ``model``
    and ``encoder`` are then None."""

    languages: list[str]
    arms: dict[str, Arm]
    seeds: list[int]
    jobs: int = 1
    threads: int | None = 1
    config: dict = dataclasses.field(default_factory=dict)
    evaluate: list[str] = dataclasses.field(default_factory=list)
    published: dict | None = None
    compare: list[list[str]] | None = None
    model: str | None = None
    encoder: str | None = None
    description: str = ""
    zero_shot: bool = False

    @property
    def samplers(self) -> list[str]:
        """The arm labels, in the profile's order."""
        return list(self.arms)

    def record(self) -> dict:
        """The group as grid.json holds it (the report reads it back with ``from_record``);
        ``zero_shot`` only where it is set, so older profiles' grid.json is unchanged."""
        return {
            "languages": self.languages,
            "samplers": self.samplers,
            "arms": {label: arm.record() for label, arm in self.arms.items()},
            "seeds": self.seeds,
            "model": self.model,
            "encoder": self.encoder,
            "jobs": self.jobs,
            "threads": self.threads,
            "published": self.published,
            "compare": self.compare,
            "config": self.config,
            **({"zero_shot": True} if self.zero_shot else {}),
        }

    @classmethod
    def from_record(cls, record: dict) -> Group:
        """A group of grid.json (``record``); needs ``languages`` and ``samplers`` lists."""
        seeds = record.get("seeds", [])
        arms = {}
        for label in record["samplers"]:
            arm = (record.get("arms") or {}).get(label) or {}
            arms[label] = Arm(
                sampler=arm.get("sampler", label),
                overrides=arm.get("set") or {},
                seeds=arm.get("seeds") or seeds,
            )
        return cls(
            languages=record["languages"],
            arms=arms,
            seeds=seeds,
            jobs=record.get("jobs", 1),
            threads=record.get("threads"),
            config=record.get("config") or {},
            published=record.get("published"),
            compare=record.get("compare"),
            model=record.get("model"),
            encoder=record.get("encoder"),
            zero_shot=bool(record.get("zero_shot", False)),
        )


@dataclasses.dataclass
class Profile:
    name: str
    description: str
    path: Path
    data_path: str
    prepare: list[str] | None
    protocol: str
    launcher: list[str]
    groups: dict[str, Group]


def _check_keys(where: str, mapping: object, allowed: set[str]) -> dict:
    if not isinstance(mapping, dict):
        raise UserError(f"{where}: expected a mapping")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise UserError(
            f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(allowed))})"
        )
    return mapping


def _as_command(where: str, value: object) -> list[str]:
    """A profile's command as a list; "python" is this interpreter (the venv's)."""
    if isinstance(value, str):
        value = shlex.split(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [sys.executable if part == "python" else part for part in value]
    raise UserError(f"{where}: expected a command (a string or a list of strings)")


def check_name(where: str, name: str) -> str:
    """``name`` if it is safe as one path component under runs/ and results/ (letters, digits,
    '-', '_', '.', not only dots), else a UserError: a profile, group or arm named '../x' would
    write outside them."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or not name.strip("."):
        raise UserError(
            f"{where} '{name}' may hold only letters, digits, '-', '_' and '.' (and not only dots)"
        )
    return name


def _is_seed_list(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    )


def parse_arm(where: str, entry: object) -> tuple[str, dict]:
    """One entry of a group's ``samplers`` list: a sampler name, or an arm
    ``{label: NAME, sampler: SAMPLER, set: {section.key: value, ...}, seeds: [...]}`` (a
    sampler with its own config keys, e.g. one row of an ablation, run with some of the
    group's seeds). Returns (label, {"sampler", "set", "seeds"}); seeds None means all."""
    if isinstance(entry, str):
        return entry, {"sampler": entry, "set": {}, "seeds": None}
    arm = _check_keys(where, entry, ARM_KEYS)
    label, sampler = arm.get("label"), arm.get("sampler")
    if not isinstance(label, str) or not label or not isinstance(sampler, str):
        raise UserError(f"{where}: an arm needs a 'label' and a 'sampler' (strings)")
    check_name(f"{where}: label", label)
    overrides = arm.get("set") or {}
    if not isinstance(overrides, dict) or not all(
        isinstance(v, (str, int, float, bool)) for v in overrides.values()
    ):
        raise UserError(f"{where}.set: expected a mapping of section.key to a scalar value")
    fixed = [k for k in overrides if k in FIXED_KEYS]
    if fixed:
        raise UserError(f"{where}.set: '{fixed[0]}' is set by the grid, not by an arm")
    seeds = arm.get("seeds")
    if seeds is not None and not _is_seed_list(seeds):
        raise UserError(f"{where}.seeds: expected a non-empty list of integers")
    return label, {"sampler": sampler, "set": dict(overrides), "seeds": seeds}


def parse_compare(where: str, value: object, labels: list[str]) -> list[list[str]] | None:
    """A group's own comparisons, ``[[arm, baseline], ...]`` by arm label (e.g. a 2-epoch TBS
    arm against a 2-epoch random arm); None (the default: every arm against random and
    hardneg) when absent."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: expected a non-empty list of [arm, baseline] pairs")
    pairs = []
    for number, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(label, str) for label in pair)
            or pair[0] == pair[1]
        ):
            raise UserError(f"{where}[{number}]: expected [arm, baseline], two different labels")
        unknown = [label for label in pair if label not in labels]
        if unknown:
            raise UserError(
                f"{where}[{number}]: no arm '{unknown[0]}' in this group (arms: "
                f"{', '.join(labels)})"
            )
        pairs.append(list(pair))
    return pairs


PUBLISHED_METRICS = ("mrr", "spearman")  # the codebase / csn1000 protocols, the sts protocol


def parse_published(where: str, value: object) -> dict | None:
    """A group's published numbers to show beside its random baseline: {source: str, mrr:
    {language: MRR in points}} (e.g. UniXcoder's, for the paper profile), or {source, spearman:
    {language: Spearman x 100}} for the sts protocol (SimCSE's, for paper-sts); or None."""
    if value is None:
        return None
    value = _check_keys(where, value, {"source", *PUBLISHED_METRICS})
    metrics = [m for m in PUBLISHED_METRICS if m in value]
    if (
        not isinstance(value.get("source"), str)
        or len(metrics) != 1
        or not isinstance(value[metrics[0]], dict)
    ):
        raise UserError(
            f"{where}: expected source (text) and one of mrr, spearman (language: number)"
        )
    metric = metrics[0]
    numbers = {}
    for language, number in value[metric].items():
        try:
            language = normalize_language(str(language))
        except UserError as exc:
            raise UserError(f"{where}.{metric}: {exc}") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise UserError(f"{where}.{metric}.{language}: expected a number, got {number!r}")
        numbers[language] = float(number)
    return {"source": value["source"], metric: numbers}


def _cell_config(
    profile_path: Path, name: str, group: Group, data_path: str, label: str, seed: int
) -> RunConfig:
    """Defaults, the group's config, the arm's keys, the cell's keys; validated."""
    where = f"{profile_path}: groups.{name}.config"
    tree = _check_keys(where, group.config, set(SECTIONS))
    flat = {}
    for section, values in tree.items():
        if not isinstance(values, dict):
            raise UserError(f"{where}.{section}: expected a mapping of keys")
        # apply_overrides names any unknown key and checks every value's type.
        flat.update({f"{section}.{key}": value for key, value in values.items()})
    for fixed in FIXED_KEYS:
        if fixed in flat:
            raise UserError(
                f"{where}: '{fixed}' is set by the grid (data.path, the group's "
                f"languages, samplers and seeds), not in config"
            )
    arm = group.arms.get(label, Arm(sampler=label, overrides={}, seeds=[]))
    flat.update(arm.overrides)
    flat.update(
        {
            "data.path": data_path,
            "data.languages": group.languages,
            "sampler.name": arm.sampler,
            "train.seed": seed,
        }
    )
    config = apply_overrides(RunConfig(), flat, where)
    check_run_config(config, f"{profile_path}: groups.{name}")
    return config


def group_config(profile: Profile, group: str, sampler: str, seed: int) -> RunConfig:
    """The validated training config of one cell: defaults, the group's config, the arm's
    keys (``sampler`` is an arm label), the cell."""
    spec = profile.groups[group]
    return _cell_config(profile.path, group, spec, profile.data_path, sampler, seed)


def _parse_arms(where: str, samplers: object, seeds: list[int]) -> dict[str, Arm]:
    if not isinstance(samplers, list) or not samplers:
        raise UserError(f"{where}.samplers: expected a non-empty list")
    if not _is_seed_list(seeds):
        raise UserError(f"{where}.seeds: expected a non-empty list of integers")
    arms = {}
    for number, entry in enumerate(samplers):
        label, arm = parse_arm(f"{where}.samplers[{number}]", entry)
        if label in arms:
            raise UserError(f"{where}.samplers: '{label}' appears twice")
        try:
            sampler_class(arm["sampler"])
        except UserError as exc:
            raise UserError(f"{where}.samplers: {exc}") from None
        if arm["seeds"] is None:
            arm["seeds"] = list(seeds)
        elif not set(arm["seeds"]) <= set(seeds):
            raise UserError(
                f"{where}.samplers[{number}].seeds: {arm['seeds']} are not all among the "
                f"group's seeds {seeds}"
            )
        arms[label] = Arm(sampler=arm["sampler"], overrides=arm["set"], seeds=arm["seeds"])
    return arms


def parse_group(path: Path, name: str, spec: object, data_path: str) -> Group:
    """One group of a profile, every cell's config checked; ``model`` and ``encoder`` are
    those of its first cell."""
    where = f"{path}: groups.{name}"
    check_name(f"{path}: group", str(name))
    spec = _check_keys(where, spec, GROUP_KEYS)
    try:
        languages = parse_languages(spec.get("languages", "all"))
    except UserError as exc:
        raise UserError(f"{where}.languages: {exc}") from None
    seeds = spec.get("seeds", [0])
    arms = _parse_arms(where, spec.get("samplers", ["random", "hardneg", "tbs"]), seeds)
    parallel = {}
    for key in ("jobs", "threads"):
        value = parallel[key] = spec.get(key, 1)
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{where}.{key}: expected a positive integer, got {value!r}")
    group = Group(
        languages=languages,
        arms=arms,
        seeds=seeds,
        **parallel,
        config=spec.get("config") or {},
        evaluate=_as_command(f"{where}.evaluate", spec["evaluate"]) if spec.get("evaluate") else [],
        published=parse_published(f"{where}.published", spec.get("published")),
        compare=parse_compare(f"{where}.compare", spec.get("compare"), list(arms)),
        description=str(spec.get("description", "")),
    )
    configs = [
        _cell_config(path, name, group, data_path, label, seed)
        for label, arm in arms.items()
        for seed in arm.seeds
    ]
    zero_shot = spec.get("zero_shot", False)
    if not isinstance(zero_shot, bool):
        raise UserError(f"{where}.zero_shot: expected true or false, got {zero_shot!r}")
    if zero_shot:
        _check_zero_shot(
            where, _cell_config(path, name, _without_arms(group), data_path, "random", seeds[0])
        )
    return dataclasses.replace(
        group,
        model=configs[0].model.model,
        encoder=configs[0].model.encoder,
        zero_shot=zero_shot,
    )


def _without_arms(group: Group) -> Group:
    return dataclasses.replace(group, arms={})


def _check_zero_shot(where: str, config: RunConfig) -> None:
    """`codesearch evaluate` builds an untrained model from its name with the defaults of
    ``ModelConfig`` but the lengths: a group whose model differs otherwise has no zero-shot
    evaluation that matches it."""
    model = config.model
    if model.pooling != "mean" or model.input_format != "plain":
        raise UserError(
            f"{where}.zero_shot: `codesearch evaluate` builds an untrained model with mean "
            f"pooling and the plain input format; this group's has pooling {model.pooling} and "
            f"input_format {model.input_format}"
        )


def group_base_config(profile: Profile, group: str) -> RunConfig:
    """The group's own config (defaults and its ``config``, none of its arms' keys; sampler
    random, its first seed): what its zero-shot reference evaluates (``model.*``)."""
    spec = profile.groups[group]
    return _cell_config(
        profile.path, group, _without_arms(spec), profile.data_path, "random", spec.seeds[0]
    )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile: every cell's config is checked before anything runs."""
    path = Path(path)
    if not path.is_file():
        known = sorted(p.stem for p in Path("experiments").glob("*.yaml"))
        raise UserError(
            f"{path}: no such profile" + (f" (known: {', '.join(known)})" if known else "")
        )
    tree = _check_keys(str(path), read_yaml(path, "profile"), PROFILE_KEYS)
    data = _check_keys(f"{path}: data", tree.get("data"), DATA_KEYS)
    if "path" not in data:
        raise UserError(f"{path}: data.path is required")
    groups = tree.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise UserError(f"{path}: groups must name at least one group of cells")
    profile = Profile(
        name=check_name(f"{path}: name", str(tree.get("name") or path.stem)),
        description=str(tree.get("description", "")),
        path=path,
        data_path=str(data["path"]),
        prepare=_as_command(f"{path}: data.prepare", data["prepare"])
        if data.get("prepare")
        else None,
        protocol=str(tree.get("protocol", "codebase")),
        launcher=_as_command(f"{path}: launcher", tree["launcher"])
        if tree.get("launcher")
        else [sys.executable, "-m", "codesearch"],
        groups={
            name: parse_group(path, name, spec, str(data["path"])) for name, spec in groups.items()
        },
    )
    metric = "spearman" if profile.protocol == "sts" else "mrr"
    for name, group in profile.groups.items():
        if group.published and metric not in group.published:
            raise UserError(
                f"{path}: groups.{name}.published: the {profile.protocol} protocol reports "
                f"{metric}; give the published numbers as {metric}: {{language: number}}"
            )
    return profile


def slice_profile(
    profile: Profile, languages: list[str] | None = None, seeds: list[int] | None = None
) -> Profile:
    """The profile restricted to some languages and seeds (every sampler stays), named
    ``<name>-<languages>-seed<seeds>`` so that its runs and results default to directories of
    their own; a group left without a language or a seed is dropped."""
    if not languages and not seeds:
        return profile
    groups = {}
    for name, group in profile.groups.items():
        kept_languages = [lang for lang in group.languages if not languages or lang in languages]
        kept_seeds = [seed for seed in group.seeds if not seeds or seed in seeds]
        arms = {
            label: dataclasses.replace(arm, seeds=[s for s in arm.seeds if s in kept_seeds])
            for label, arm in group.arms.items()
        }
        arms = {label: arm for label, arm in arms.items() if arm.seeds}
        if kept_languages and kept_seeds and arms:
            groups[name] = dataclasses.replace(
                group, languages=kept_languages, seeds=kept_seeds, arms=arms
            )
    if not groups:
        raise UserError(
            f"{profile.path}: no group has the languages {languages or 'any'} and seeds "
            f"{seeds or 'any'}"
        )
    suffix = "-".join(
        part
        for part in (
            "+".join(languages) if languages else "",
            "seed" + "+".join(map(str, seeds)) if seeds else "",
        )
        if part
    )
    return dataclasses.replace(profile, name=f"{profile.name}-{suffix}", groups=groups)
