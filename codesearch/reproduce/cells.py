"""The cells of a grid: one (group, arm, seed) is one ``codesearch train`` run over the group's
languages, then one ``codesearch evaluate`` of it, both subprocesses run exactly as a user
would type them, logged to ``logs/<cell>.log``. A finished run is not trained again, an
interrupted one resumes from its checkpoint (``--resume``)."""

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
from pathlib import Path

import yaml

from codesearch.reproduce.profile import Profile


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


def plan_cells(profile: Profile, runs_root: Path, results_dir: Path) -> list[Cell]:
    """Every cell of the profile, group by group, arm by arm, seed by seed."""
    cells = []
    for name, group in profile.groups.items():
        config_path = runs_root / name / "config.yaml"
        for label, arm in group.arms.items():
            for seed in arm.seeds:
                cell_id = f"{name}__{label}__seed{seed}"
                cells.append(
                    Cell(
                        group=name,
                        sampler=label,
                        seed=seed,
                        languages=group.languages,
                        run_dir=runs_root / name / f"{label}-seed{seed}",
                        eval_path=results_dir / "cells" / f"{cell_id}.json",
                        log_path=results_dir / "logs" / f"{cell_id}.log",
                        config_path=config_path,
                        jobs=group.jobs,
                        threads=group.threads,
                        evaluate_args=group.evaluate,
                        sampler_name=arm.sampler,
                        overrides=arm.overrides,
                    )
                )
    return cells


def write_group_configs(profile: Profile, runs_root: Path) -> None:
    """The group's config as a `codesearch train --config` file (without the cell's keys)."""
    for name, group in profile.groups.items():
        path = runs_root / name / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(group.config, sort_keys=False)
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


def child_env(threads: int) -> dict[str, str]:
    """The environment of a cell's subprocesses: ``threads`` torch threads, no tokenizer
    threads, unbuffered output (the log follows the run)."""
    return dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )


def run_cell(profile: Profile, cell: Cell, children: Children) -> dict:
    """Train (or resume, or skip a finished run) and evaluate one cell; returns its timings."""
    cell.log_path.parent.mkdir(parents=True, exist_ok=True)
    cell.eval_path.parent.mkdir(parents=True, exist_ok=True)
    env = child_env(cell.threads)
    timings = {"train_seconds": 0.0, "eval_seconds": 0.0}
    if not train_finished(cell):
        timings["train_seconds"] = _run_logged(
            train_command(profile, cell), cell.log_path, env, children
        )
    timings["eval_seconds"] = _run_logged(
        evaluate_command(profile, cell), cell.log_path, env, children
    )
    return timings


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join("    " + line for line in kept)
