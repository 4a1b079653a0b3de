"""A run directory's life: the checks before a run starts or resumes (the directory, the data,
the resume policy), the lock held while it trains, and what it records: config.yaml,
run_info.json (command, seed, processes, device, package versions, data manifest;
resumptions appended) and metrics.jsonl."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from codesearch.config import RunConfig, flat_config
from codesearch.config_sources import load_run_config
from codesearch.data.prepared import (
    json_safe,
    load_manifest,
    verify_prepared,
    write_json_atomic,
    write_text_atomic,
)
from codesearch.data.schema import parse_languages
from codesearch.errors import UserError
from codesearch.outputs import DirectoryLock, check_output_dir, replacing_file

if TYPE_CHECKING:
    from accelerate import Accelerator


# --- before a run ---------------------------------------------------------------------------------


def is_run_directory(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a run that ``codesearch train`` wrote: its config.yaml and a
    run_info.json with the keys ``write_run_info`` gives it."""
    try:
        info = json.loads((out_dir / "run_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        (out_dir / "config.yaml").is_file()
        and isinstance(info, dict)
        and {"command", "seed", "packages"} <= set(info)
    )


def has_trained(out_dir: Path) -> bool:
    """Whether a run in ``out_dir`` got as far as training: a metrics row, a checkpoint, a
    best model or run.json. A run that failed before (a wrong --model, too little memory)
    left only its config.yaml and run_info.json, which a new ``train`` there rewrites."""
    if (out_dir / "run.json").exists():
        return True
    return out_dir.is_dir() and any(
        (task / name).exists()
        for task in out_dir.iterdir()
        if task.is_dir()
        for name in ("metrics.jsonl", "checkpoint", "best")
    )


def check_run_directory(out_dir: Path) -> None:
    """Before anything is written into ``out_dir`` (not even the lock): it is absent, empty or
    a codesearch run. A user's folder is a one-line error and stays as it was."""
    if not out_dir.is_dir() or is_run_directory(out_dir):
        return
    entries = sorted(p.name for p in out_dir.iterdir() if p.name != ".lock")
    if entries:
        raise UserError(
            f"{out_dir}: exists, is not empty and holds no codesearch run (it holds "
            f"{entries[0]}); nothing was changed: choose another --out"
        )


@contextlib.contextmanager
def locked_run_dir(out_dir: Path) -> Iterator[Path]:
    """Create ``out_dir`` (a writable path that is absent, empty or a codesearch run: checked
    before anything is written into it) and hold its lock while the block runs, so that two
    processes never train in one run directory at once."""
    check_output_dir(out_dir, "run directory")
    check_run_directory(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(out_dir, "run directory"):
        yield out_dir


def check_run(
    config: RunConfig, out_dir: Path, resume: bool
) -> tuple[dict[str, list[str]], dict | None]:
    """Before any work: the config's languages exist in the data and hold at least a batch,
    ``out_dir`` holds no other run unless resuming, the data files are what the manifest
    describes (``verify_prepared``: the run records its data_hash), and a resumption changes
    only what may change (``check_resume``). Returns the tasks ({name: languages}: one per
    language, or "joint") and the keys a resumption changes (None when not resuming)."""
    manifest = load_manifest(config.data.path)
    languages = parse_languages(config.data.languages)
    for language in languages:
        if language not in manifest["counts"]:
            raise UserError(
                f"{config.data.path}: has no language '{language}' "
                f"(it has: {', '.join(manifest['counts'])})"
            )
    tasks = {"joint": languages} if config.data.joint else {lang: [lang] for lang in languages}
    limit, batch_size = config.data.max_train_pairs, config.train.batch_size
    for task_languages in tasks.values():
        counts = [manifest["counts"][lang].get("train", 0) for lang in task_languages]
        n = sum(min(count, limit or count) for count in counts)
        if 0 < n < batch_size:  # none at all is load_training_data's error
            raise UserError(
                f"--batch-size {batch_size} is larger than the training data "
                f"({n} pairs of {', '.join(task_languages)})"
            )
    if not resume and has_trained(out_dir):
        raise UserError(
            f"{out_dir}: already holds a run; pass --resume to continue it or choose another --out"
        )
    verify_prepared(config.data.path, languages)
    if resume and (out_dir / "config.yaml").is_file():
        return tasks, check_resume(out_dir, config, manifest)
    return tasks, None


# --- resuming a run -------------------------------------------------------------------------------


def check_resume(out_dir: Path, config: RunConfig, manifest: dict) -> dict:
    """The config keys a resumption changes (UserError for those that would change the
    result; ``check_resume_config``); the data must still be the run's (data_hash),
    wherever it lives now."""
    changes = check_resume_config(load_run_config(out_dir), config, str(out_dir))
    info_path = out_dir / "run_info.json"
    if info_path.is_file():
        try:
            recorded = json.loads(info_path.read_text(encoding="utf-8"))["data"]["data_hash"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{info_path}: unreadable run record ({exc!r})") from None
        if recorded != manifest.get("data_hash"):
            raise UserError(
                f"{out_dir}: --resume with data {config.data.path} (data_hash "
                f"{manifest.get('data_hash')}), but the run trained on data_hash "
                f"{recorded}"
            )
    return changes


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


# --- what a run records ---------------------------------------------------------------------------


# the versions recorded with every run and report (reproducibility)
PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "sentence-transformers",
    "datasets",
    "numpy",
    "scipy",
    "faiss-cpu",
    "safetensors",
    "tree-sitter",
    "codesearch",
)


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """{"python": ..., package: version or "not installed"}."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_run_info(
    out_dir: Path,
    config: RunConfig,
    accelerator: Accelerator,
    resumed_with: dict | None = None,
    precision_source: str = "config",
) -> None:
    """config.yaml and run_info.json; a resumption keeps the original run_info and appends
    its command, time, machine and the config keys it changed (``resumed_with``) to
    ``resumes``. ``machine`` is the resolved precision and the hardware that ran
    (``codesearch.precision.machine_info``); ``precision_source`` says whether the precision
    came from the config, the launcher or the hardware (``auto``)."""
    from codesearch.precision import machine_info  # torch: only when a run starts

    machine = {
        **machine_info(accelerator.mixed_precision, accelerator.device.type),
        "precision_source": precision_source,
    }
    manifest = load_manifest(config.data.path)
    write_text_atomic(out_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    if resumed_with is not None and (out_dir / "run_info.json").is_file():
        info = json.loads((out_dir / "run_info.json").read_text(encoding="utf-8"))
        info.setdefault("resumes", []).append(
            {
                "command": sys.argv,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "num_processes": accelerator.num_processes,
                "machine": machine,
                "changed": resumed_with,
            }
        )
        write_json_atomic(out_dir / "run_info.json", info)
        return
    write_json_atomic(
        out_dir / "run_info.json",
        {
            "command": sys.argv,
            "seed": config.train.seed,
            "num_processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "mixed_precision": accelerator.mixed_precision,
            "machine": machine,
            "packages": package_versions(),
            "data": {
                "path": config.data.path,
                "data_hash": manifest.get("data_hash"),
                "counts": manifest.get("counts"),
            },
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


class MetricsLog:
    """Append-only metrics JSONL, written by the main process only; numbers also go to
    Accelerate's trackers (TensorBoard) when an accelerator is given."""

    def __init__(self, path: Path, enabled: bool, accelerator: Accelerator | None = None):
        self.path, self.enabled, self.accelerator = path, enabled, accelerator

    def keep_until(self, step: int, epoch: int) -> int:
        """On resuming from the checkpoint at global ``step`` in ``epoch``: drop the rows that
        a crash after that checkpoint left (a later checkpoint that failed, on a full disk
        say), which the resumed run writes again; a torn last line too. Returns the rows
        dropped."""
        if not self.enabled or not self.path.is_file():
            return 0
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
                step_done = row["step"] <= step
                epoch_done = row.get("event") != "epoch" or row["epoch"] < epoch
            except (ValueError, KeyError, TypeError):
                continue
            if step_done and epoch_done and line.endswith("\n"):
                kept.append(line)
        if len(kept) < len(lines):
            with replacing_file(self.path) as tmp:
                tmp.write_text("".join(kept), encoding="utf-8")
        return len(lines) - len(kept)

    def write(self, **row) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
        if self.accelerator is not None:
            numbers = {
                f"{row['task']}/{k}": v
                for k, v in row.items()
                if isinstance(v, (int, float)) and k not in ("step", "epoch")
            }
            self.accelerator.log(numbers, step=row["step"])


def tracker_config(config: RunConfig) -> dict[str, object]:
    """The config as the flat scalars experiment trackers (TensorBoard) accept."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else str(value)
        for key, value in flat_config(config).items()
    }
