"""What a run directory records: config.yaml, run_info.json (command, seed, processes, device,
package versions, data manifest; resumptions appended), metrics.jsonl; and the checks a
``--resume`` makes against them."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml
from accelerate import Accelerator

from codesearch.config import RunConfig, check_resume_config, flat_config, load_run_config
from codesearch.data.prepared import (
    json_safe,
    load_manifest,
    verify_prepared,
    write_json_atomic,
    write_text_atomic,
)
from codesearch.data.schema import parse_languages
from codesearch.errors import UserError
from codesearch.outputs import replacing_file
from codesearch.precision import machine_info
from codesearch.versions import package_versions


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


def check_resume(out_dir: Path, config: RunConfig, manifest: dict) -> dict:
    """The config keys a resumption changes (UserError for those that would change the
    result; ``config.check_resume_config``); the data must still be the run's (data_hash),
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


def tracker_config(config: RunConfig) -> dict[str, object]:
    """The config as the flat scalars experiment trackers (TensorBoard) accept."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else str(value)
        for key, value in flat_config(config).items()
    }
