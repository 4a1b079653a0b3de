"""The `make reproduce` driver: run a profile's grid of training cells and write the report.

A profile (``experiments/<name>.yaml``) names a prepared data directory (and the command that
prepares it when it is missing) and groups of cells. A cell is one (group, sampler, seed): one
``codesearch train`` run over the group's languages, then one ``codesearch evaluate`` of it,
both run as subprocesses exactly as a user would type them. Cells that finished are skipped,
a cell that was interrupted resumes from its checkpoint, and the report
(:mod:`codesearch.report`) is rewritten at the end from every finished cell.

Layout: ``runs/<profile>/<group>/<sampler>-seed<k>/`` (the training run) and
``results/<profile>/{grid.json, cells/<cell>.json, logs/<cell>.log, report.md, ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from codesearch.config import SECTIONS, RunConfig, check_run_config
from codesearch.config_sources import apply_overrides
from codesearch.data.prepared import load_manifest, write_json_atomic
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
}
DATA_KEYS = {"path", "prepare"}


@dataclasses.dataclass
class Cell:
    """One training run of the grid and its evaluation. ``sampler`` is the arm's label (the
    sampler's name unless the profile names the arm), ``sampler_name`` the sampler it runs
    and ``overrides`` the arm's own config keys."""

    group: str
    sampler: str
    seed: int
    languages: list[str]
    run_dir: Path
    eval_path: Path
    log_path: Path
    config_path: Path
    jobs: int
    threads: int
    evaluate_args: list[str]
    sampler_name: str = ""
    overrides: dict = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.group}__{self.sampler}__seed{self.seed}"


@dataclasses.dataclass
class Profile:
    name: str
    description: str
    path: Path
    data_path: str
    prepare: list[str] | None
    protocol: str
    launcher: list[str]
    groups: dict[str, dict]


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


FIXED_KEYS = ("data.path", "data.languages", "sampler.name", "train.seed")
ARM_KEYS = {"label", "sampler", "set", "seeds"}


def check_name(where: str, name: str) -> str:
    """``name`` if it is safe as one path component under runs/ and results/ (letters, digits,
    '-', '_', '.', not only dots), else a UserError: a profile, group or arm named '../x' would
    write outside them."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or not name.strip("."):
        raise UserError(
            f"{where} '{name}' may hold only letters, digits, '-', '_' and '.' (and not only dots)"
        )
    return name


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


def _is_seed_list(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    )


def group_config(profile: Profile, group: str, sampler: str, seed: int) -> RunConfig:
    """The validated training config of one cell: defaults, the group's config, the arm's
    keys (``sampler`` is an arm label), the cell."""
    spec = profile.groups[group]
    where = f"{profile.path}: groups.{group}.config"
    tree = _check_keys(where, spec.get("config") or {}, set(SECTIONS))
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
    arm = spec.get("arms", {}).get(sampler, {"sampler": sampler, "set": {}})
    flat.update(arm["set"])
    flat.update(
        {
            "data.path": profile.data_path,
            "data.languages": spec["languages"],
            "sampler.name": arm["sampler"],
            "train.seed": seed,
        }
    )
    config = apply_overrides(RunConfig(), flat, where)
    check_run_config(config, f"{profile.path}: groups.{group}")
    return config


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
        groups={},
    )
    for name, spec in groups.items():
        where = f"{path}: groups.{name}"
        check_name(f"{path}: group", str(name))
        spec = dict(_check_keys(where, spec, GROUP_KEYS))
        try:
            spec["languages"] = parse_languages(spec.get("languages", "all"))
        except UserError as exc:
            raise UserError(f"{where}.languages: {exc}") from None
        samplers = spec.get("samplers", ["random", "hardneg", "tbs"])
        seeds = spec.get("seeds", [0])
        if not isinstance(samplers, list) or not samplers:
            raise UserError(f"{where}.samplers: expected a non-empty list")
        if not _is_seed_list(seeds):
            raise UserError(f"{where}.seeds: expected a non-empty list of integers")
        spec["arms"] = {}
        for number, entry in enumerate(samplers):
            label, arm = parse_arm(f"{where}.samplers[{number}]", entry)
            if label in spec["arms"]:
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
            spec["arms"][label] = arm
        for key in ("jobs", "threads"):
            value = spec.setdefault(key, 1)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{where}.{key}: expected a positive integer, got {value!r}")
        spec["evaluate"] = (
            _as_command(f"{where}.evaluate", spec["evaluate"]) if spec.get("evaluate") else []
        )
        spec["samplers"], spec["seeds"] = list(spec["arms"]), seeds
        spec["published"] = parse_published(f"{where}.published", spec.get("published"))
        spec["compare"] = parse_compare(f"{where}.compare", spec.get("compare"), spec["samplers"])
        profile.groups[name] = spec
        configs = [
            group_config(profile, name, sampler, seed)
            for sampler in spec["samplers"]
            for seed in spec["arms"][sampler]["seeds"]
        ]
        spec["model"], spec["encoder"] = configs[0].model.model, configs[0].model.encoder
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
    for name, spec in profile.groups.items():
        kept_languages = [lang for lang in spec["languages"] if not languages or lang in languages]
        kept_seeds = [seed for seed in spec["seeds"] if not seeds or seed in seeds]
        arms = {
            label: {**arm, "seeds": [s for s in arm["seeds"] if s in kept_seeds]}
            for label, arm in spec["arms"].items()
        }
        arms = {label: arm for label, arm in arms.items() if arm["seeds"]}
        if kept_languages and kept_seeds and arms:
            groups[name] = {
                **spec,
                "languages": kept_languages,
                "seeds": kept_seeds,
                "arms": arms,
                "samplers": list(arms),
            }
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


def parse_published(where: str, value: object) -> dict | None:
    """A group's published numbers to show beside its random baseline: {source: str, mrr:
    {language: MRR in points}} (e.g. UniXcoder's, for the paper profile), or None."""
    if value is None:
        return None
    value = _check_keys(where, value, {"source", "mrr"})
    if not isinstance(value.get("source"), str) or not isinstance(value.get("mrr"), dict):
        raise UserError(f"{where}: expected source (text) and mrr (language: number)")
    mrr = {}
    for language, number in value["mrr"].items():
        try:
            language = normalize_language(str(language))
        except UserError as exc:
            raise UserError(f"{where}.mrr: {exc}") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise UserError(f"{where}.mrr.{language}: expected a number, got {number!r}")
        mrr[language] = float(number)
    return {"source": value["source"], "mrr": mrr}


def plan_cells(profile: Profile, runs_root: Path, results_dir: Path) -> list[Cell]:
    cells = []
    for group, spec in profile.groups.items():
        config_path = runs_root / group / "config.yaml"
        for sampler in spec["samplers"]:
            for seed in spec["arms"][sampler]["seeds"]:
                cell_id = f"{group}__{sampler}__seed{seed}"
                cells.append(
                    Cell(
                        group=group,
                        sampler=sampler,
                        seed=seed,
                        languages=spec["languages"],
                        run_dir=runs_root / group / f"{sampler}-seed{seed}",
                        eval_path=results_dir / "cells" / f"{cell_id}.json",
                        log_path=results_dir / "logs" / f"{cell_id}.log",
                        config_path=config_path,
                        jobs=spec["jobs"],
                        threads=spec["threads"],
                        evaluate_args=spec["evaluate"],
                        sampler_name=spec["arms"][sampler]["sampler"],
                        overrides=spec["arms"][sampler]["set"],
                    )
                )
    return cells


def write_group_configs(profile: Profile, runs_root: Path) -> None:
    """The group's config as a `codesearch train --config` file (without the cell's keys)."""
    for group, spec in profile.groups.items():
        path = runs_root / group / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(spec.get("config") or {}, sort_keys=False)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            with tempfile.NamedTemporaryFile(
                "w", dir=path.parent, delete=False, suffix=".tmp"
            ) as handle:
                handle.write(text)
            os.replace(handle.name, path)


def train_finished(cell: Cell) -> bool:
    """True when the run directory's run.json says every language's task finished."""
    try:
        summary = json.loads((cell.run_dir / "run.json").read_text(encoding="utf-8"))["summary"]
    except (OSError, ValueError, KeyError):
        return False
    return all(summary.get(lang, {}).get("finished") for lang in cell.languages)


def train_command(profile: Profile, cell: Cell) -> list[str]:
    command = [
        *profile.launcher,
        "train",
        "--config",
        str(cell.config_path),
        "--data",
        profile.data_path,
        "--languages",
        ",".join(cell.languages),
        "--sampler",
        cell.sampler_name or cell.sampler,
        "--seed",
        str(cell.seed),
        "--out",
        str(cell.run_dir),
    ]
    for key, value in cell.overrides.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["--set", f"{key}={text}"]
    if cell.run_dir.is_dir() and (cell.run_dir / "config.yaml").is_file():
        command.append("--resume")
    return command


def evaluate_command(profile: Profile, cell: Cell) -> list[str]:
    # Evaluation is one process: the launcher's `accelerate launch` flags do not apply.
    return [
        sys.executable,
        "-m",
        "codesearch",
        "evaluate",
        "--model",
        str(cell.run_dir),
        "--data",
        profile.data_path,
        "--languages",
        ",".join(cell.languages),
        "--protocol",
        profile.protocol,
        "--out",
        str(cell.eval_path),
        "--quiet",
        *cell.evaluate_args,
    ]


class CellFailed(Exception):
    pass


class Children:
    """The running cell subprocesses, so that an interrupt stops every one of them (the trainer
    writes a checkpoint on SIGTERM) and no new one starts afterwards."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._stopped = False

    def run(self, command: list[str], **popen_args) -> int:
        with self._lock:
            if self._stopped:
                raise CellFailed("interrupted")
            # Its own session: Ctrl-C reaches only the driver, which then sends SIGTERM (the
            # trainer's checkpoint signal) rather than SIGINT (which would lose the epoch).
            process = subprocess.Popen(command, start_new_session=True, **popen_args)
            self._running.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def stop_all(self) -> None:
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            process.terminate()
        for process in running:
            process.wait()


def _run_logged(
    command: list[str], log_path: Path, env: dict[str, str], children: Children
) -> float:
    start = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {shlex.join(command)}\n")
        log.flush()
        code = children.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0:
        raise CellFailed(f"exit {code}: {shlex.join(command[:4])} ...")
    return time.perf_counter() - start


def run_cell(profile: Profile, cell: Cell, children: Children) -> dict:
    """Train (or resume, or skip a finished run) and evaluate one cell; returns its timings."""
    cell.log_path.parent.mkdir(parents=True, exist_ok=True)
    cell.eval_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(cell.threads),
        MKL_NUM_THREADS=str(cell.threads),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    timings = {"train_seconds": 0.0, "eval_seconds": 0.0}
    if not train_finished(cell):
        timings["train_seconds"] = _run_logged(
            train_command(profile, cell), cell.log_path, env, children
        )
    timings["eval_seconds"] = _run_logged(
        evaluate_command(profile, cell), cell.log_path, env, children
    )
    return timings


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in kept)


def grid_record(
    profile: Profile, cells: list[Cell], state: dict[str, dict], wall_seconds: float
) -> dict:
    return {
        "profile": profile.name,
        "description": profile.description,
        "profile_file": str(profile.path),
        "data": profile.data_path,
        "protocol": profile.protocol,
        "groups": {
            name: {
                key: spec[key]
                for key in (
                    "languages",
                    "samplers",
                    "arms",
                    "seeds",
                    "model",
                    "encoder",
                    "jobs",
                    "threads",
                    "published",
                    "compare",
                )
            }
            | {"config": spec.get("config") or {}}
            for name, spec in profile.groups.items()
        },
        "cells": [
            {
                "id": cell.id,
                "group": cell.group,
                "sampler": cell.sampler,
                "seed": cell.seed,
                "languages": cell.languages,
                "run_dir": str(cell.run_dir),
                "eval": str(cell.eval_path),
                "log": str(cell.log_path),
                **state[cell.id],
            }
            for cell in cells
        ],
        "wall_seconds": wall_seconds,
    }


def prepare_data(profile: Profile) -> None:
    """Run the profile's prepare command when its data directory has no manifest."""
    if (Path(profile.data_path) / "manifest.json").is_file():
        load_manifest(profile.data_path)
        return
    if profile.prepare is None:
        raise UserError(
            f"{profile.data_path}: no prepared data (manifest.json) and the profile "
            f"{profile.path} has no data.prepare command"
        )
    print(f"preparing {profile.data_path}: {shlex.join(profile.prepare)}", flush=True)
    code = subprocess.call(profile.prepare)
    if code != 0 or not (Path(profile.data_path) / "manifest.json").is_file():
        raise UserError(
            f"{profile.data_path}: the prepare command failed (exit {code}): "
            f"{shlex.join(profile.prepare)}"
        )


def shared_pools(cells: list[Cell]) -> list[list[Cell]]:
    """Groups run one after the other, each with its own parallelism; consecutive groups with
    the same ``jobs`` and ``threads`` share one pool, so the next group's cells start in a
    slot that the last cells of the previous group leave free (the ``local`` grid's odd
    number of MiniLM cells would otherwise leave a core idle for a whole cell)."""
    pools: list[list[Cell]] = []
    for cell in cells:
        last = pools[-1][-1] if pools else None
        if last is not None and (last.jobs, last.threads) == (cell.jobs, cell.threads):
            pools[-1].append(cell)
        else:
            pools.append([cell])
    return pools


def run_group(
    profile: Profile,
    cells: list[Cell],
    state: dict[str, dict],
    children: Children,
    bar: tqdm,
    save_grid: Callable[[], dict],
) -> list[Cell]:
    """Run cells of one parallelism, ``jobs`` at a time, in order; updates ``state``, returns
    the failed cells."""
    failed = []
    with ThreadPoolExecutor(max_workers=cells[0].jobs) as pool:
        pending = {pool.submit(run_cell, profile, cell, children): cell for cell in cells}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = pending.pop(future)
                    try:
                        state[cell.id] = {"status": "done", **future.result()}
                        bar.write(
                            f"done {cell.id}: train {state[cell.id]['train_seconds']:.0f} "
                            f"s, evaluate {state[cell.id]['eval_seconds']:.0f} s"
                        )
                    except CellFailed as exc:
                        state[cell.id] = {"status": "failed", "error": str(exc)}
                        failed.append(cell)
                        bar.write(
                            f"FAILED {cell.id} ({exc}); log {cell.log_path}:\n"
                            f"{_log_tail(cell.log_path)}"
                        )
                    bar.update(1)
                    save_grid()
        except BaseException:
            # Before the pool's shutdown waits for its threads: stop every running cell (the
            # trainer checkpoints on SIGTERM) and start no other.
            children.stop_all()
            raise
    return failed


def previous_cells(path: Path) -> list[dict]:
    """The cell rows of an earlier grid.json, for the timings of finished cells; which cells
    are finished comes from their evaluation files, so a damaged grid.json costs only those
    timings (one warning) and is rewritten."""
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8")).get("cells")
        if not isinstance(rows, list):
            raise TypeError("no list of cells")
    except (ValueError, TypeError, AttributeError) as error:
        print(
            f"warning: {path}: unreadable ({error}); it is rewritten, without the timings of "
            "the cells already done",
            file=sys.stderr,
        )
        return []
    return [row for row in rows if isinstance(row, dict)]


def run_profile(
    profile_path: str | Path,
    runs_root: str | Path | None = None,
    results_dir: str | Path | None = None,
    report: bool = True,
    progress: bool = True,
    languages: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Run every unfinished cell of a profile (or of its ``slice_profile`` to some languages
    and seeds), then write the report; returns grid.json."""
    profile = slice_profile(load_profile(profile_path), languages, seeds)
    runs_root = Path(runs_root or Path("runs") / profile.name)
    results_dir = Path(results_dir or Path("results") / profile.name)
    prepare_data(profile)
    write_group_configs(profile, runs_root)
    cells = plan_cells(profile, runs_root, results_dir)
    state = {
        cell.id: {"status": "done" if cell.eval_path.is_file() else "pending"} for cell in cells
    }
    for row in previous_cells(results_dir / "grid.json"):
        if row.get("id") in state and state[row["id"]]["status"] == "done":
            state[row["id"]].update(
                {k: row[k] for k in ("train_seconds", "eval_seconds") if k in row}
            )
    todo = [c for c in cells if state[c.id]["status"] != "done"]
    start = time.perf_counter()

    def save_grid() -> dict:
        grid = grid_record(profile, cells, state, time.perf_counter() - start)
        write_json_atomic(results_dir / "grid.json", grid)
        return grid

    results_dir.mkdir(parents=True, exist_ok=True)
    save_grid()
    done_before = len(cells) - len(todo)
    print(
        f"{profile.name}: {len(cells)} cells, {done_before} already done, {len(todo)} to run "
        f"(logs in {results_dir / 'logs'})",
        flush=True,
    )
    children = Children()
    bar = tqdm(
        total=len(cells),
        initial=done_before,
        desc=f"reproduce {profile.name}",
        unit="cell",
        disable=not progress,
        dynamic_ncols=True,
    )
    failed = []
    try:
        for pool_cells in shared_pools(todo):
            failed += run_group(profile, pool_cells, state, children, bar, save_grid)
    finally:
        bar.close()
    grid = save_grid()
    if report:
        from codesearch.report import write_report

        write_report(results_dir)
        print(f"report: {results_dir / 'report.md'}", flush=True)
    if failed:
        raise UserError(
            f"{len(failed)} cell(s) failed: {', '.join(c.id for c in failed)}; "
            f"see {results_dir / 'logs'}; rerun to retry them"
        )
    return grid


if __name__ == "__main__":  # `python -m codesearch.reproduce ...` is `codesearch reproduce ...`
    from codesearch.cli import main

    sys.exit(main(["reproduce", *sys.argv[1:]]))
