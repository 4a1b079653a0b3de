"""Checkpoints of a training task: atomic, complete, and loaded back exactly.

A checkpoint holds the model, optimiser and every RNG (``accelerator.save_state``), the trainer
state (epoch, step, best validation MRR), the scheduler, the sampler's state and, in cached
mode, the embedding cache; it is written to ``<dir>.tmp`` and renamed into place, so a run
stopped at any moment finds either the old or the new checkpoint whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

from accelerate import Accelerator

from codesearch.data.prepared import write_json_atomic
from codesearch.epoch_embeddings import TrainingPassEmbeddings
from codesearch.errors import UserError


@dataclass
class TrainerState:
    epoch: int = 0  # the epoch in progress (or next to start)
    step_in_epoch: int = 0  # batches of that epoch already trained
    global_step: int = 0
    best_mrr: float = -1.0  # the best validation score (MRR, or Spearman for sentence pairs)
    best_epoch: int = -1
    finished: bool = False


class SharedTensorNotice(logging.Filter):
    """Drops Accelerate's "Removed shared tensor {...}" (logger ``accelerate.utils.other``):
    with shared towers the query and code towers are one module, so every checkpoint would log
    about a hundred parameter names that are saved once and restored to both, as intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Removed shared tensor" not in str(record.msg)  # after "[RANK k] "


def save_checkpoint(
    accelerator: Accelerator,
    ckpt_dir: Path,
    state: TrainerState,
    sampler,
    scheduler,
    cache: TrainingPassEmbeddings | None = None,
) -> None:
    """Atomic checkpoint: everything goes to ``<dir>.tmp``, then one rename replaces ``dir``."""
    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    notices, quiet = logging.getLogger("accelerate.utils.other"), SharedTensorNotice()
    notices.addFilter(quiet)
    try:
        accelerator.save_state(str(tmp))
    finally:
        notices.removeFilter(quiet)
    if cache is not None:
        cache.save(tmp, accelerator.process_index)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(
            tmp / "trainer_state.json",
            {
                "trainer": dataclasses.asdict(state),
                "sampler": sampler.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
        )
        old = ckpt_dir.with_name(ckpt_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if ckpt_dir.exists():
            os.replace(ckpt_dir, old)
        os.replace(tmp, ckpt_dir)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(
    accelerator: Accelerator,
    ckpt_dir: Path,
    model,
    sampler,
    scheduler,
    cache: TrainingPassEmbeddings | None = None,
) -> TrainerState:
    """Restore a checkpoint into ``model`` (the unwrapped model ``accelerator`` prepared); a
    truncated or corrupt one is a UserError naming it (checkpoints are written atomically, so
    this means the files were damaged afterwards)."""
    from safetensors import SafetensorError

    try:
        try:
            saved = json.loads((ckpt_dir / "trainer_state.json").read_text(encoding="utf-8"))
            state = TrainerState(**saved["trainer"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"trainer_state.json: {exc}") from None
        check_weight_files(ckpt_dir)
        check_random_states(ckpt_dir, accelerator.process_index)
        accelerator.load_state(str(ckpt_dir), strict=not lacks_only_frozen(model, ckpt_dir))
        if cache is not None:
            cache.load(ckpt_dir, accelerator.process_index)
        sampler.load_state_dict(saved["sampler"])
        scheduler.load_state_dict(saved["scheduler"])
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        EOFError,
        RuntimeError,
        SafetensorError,
        pickle.UnpicklingError,
    ) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"{ckpt_dir}: unreadable checkpoint ({detail}); restore it, or remove "
            f"{ckpt_dir.parent} to train that task again"
        ) from None
    return state


def lacks_only_frozen(model, ckpt_dir: Path) -> bool:
    """True when the checkpoint's weights miss some of ``model``'s frozen parameters and nothing
    else (an encoder's pooler, which never trains: a checkpoint saved without it resumes with
    the pretrained values it would hold anyway). Any other mismatch keeps the load strict, so
    Accelerate names it."""
    from safetensors.torch import load_model

    path = ckpt_dir / "model.safetensors"
    if not path.is_file():
        return False
    missing, unexpected = load_model(model, str(path), strict=False)
    frozen = {
        name for name, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad
    }
    return bool(missing) and not unexpected and set(missing) <= frozen


def check_weight_files(ckpt_dir: Path) -> None:
    """Open every safetensors file of the checkpoint (its header and the extent of its data),
    so that a damaged one is named before Accelerate reads it."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(ckpt_dir.rglob("*.safetensors")):
        try:
            with safe_open(str(path), "pt") as handle:
                for key in handle.keys():
                    handle.get_slice(key)
        except (OSError, SafetensorError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"{path.relative_to(ckpt_dir)}: {detail}") from None


RANDOM_STATE_KEYS = ("random_state", "numpy_random_seed", "torch_manual_seed")


def check_random_states(ckpt_dir: Path, process_index: int) -> None:
    """Accelerate's ``load_state`` restores the RNGs inside a try that swallows every error, so
    a damaged ``random_states_<rank>.pkl`` would resume silently with fresh RNGs (dropout and
    sampling would then not replay). Read it first, as Accelerate does (``weights_only``), and
    fail naming the file."""
    from accelerate.utils import RNG_STATE_NAME
    from accelerate.utils.other import load

    path = ckpt_dir / f"{RNG_STATE_NAME}_{process_index}.pkl"
    try:
        states = load(path)
    except Exception as exc:  # torch.load raises many kinds on a damaged file
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path.name}: the random states cannot be restored ({detail})") from None
    if not isinstance(states, dict) or not all(k in states for k in RANDOM_STATE_KEYS):
        raise ValueError(f"{path.name}: not the random states Accelerate saves")


def save_best(accelerator: Accelerator, model, best_dir: Path) -> None:
    """The best epoch's model as a loadable folder (safetensors), replaced atomically."""
    if accelerator.is_main_process:
        tmp = best_dir.with_name(best_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.unwrap_model(model).save_pretrained(tmp)
        shutil.rmtree(best_dir, ignore_errors=True)
        os.replace(tmp, best_dir)
    accelerator.wait_for_everyone()
