"""Numeric precision chosen by what the hardware executes natively, and the machine facts that
every run, evaluation and report records (docs/precision.md).

bfloat16 is fast only where the hardware executes it: a GPU with bf16 support, or a CPU with
AVX512-BF16 or AMX (oneDNN's bf16 kernels). On an AVX2-only CPU it is emulated and a MiniLM
training step is 15-40x slower than in float32, so ``auto`` means bf16 only where it is native
and fp32 everywhere else. Training speaks Accelerate's names (``no`` | ``bf16`` | ``fp16``), encoding
speaks ``fp32`` | ``bf16``; both accept ``auto``.
"""

from __future__ import annotations

import os
import platform
import sys

import torch

from codesearch.config import ENCODING_PRECISIONS, TRAINING_PRECISIONS

# ATen's CPU capabilities without bf16 instructions (torch.backends.cpu.get_cpu_capability())
_NO_BF16_CAPABILITIES = ("DEFAULT", "NO AVX", "AVX", "AVX2")
# Measured on an AVX2-only AMD EPYC: a MiniLM step 15x, a bare matmul 38x (docs/precision.md)
EMULATED_BF16_SLOWDOWN = "15-40x"


def cpu_capability() -> str:
    """ATen's vectorised kernel set on this CPU (AVX2, AVX512, ...); honours
    ``ATEN_CPU_CAPABILITY``."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU executes bfloat16 natively: oneDNN has bf16 kernels for it (AVX512-BF16
    or AMX; honours ``ONEDNN_MAX_CPU_ISA``) and ATen runs vector kernels above AVX2 (honours
    ``ATEN_CPU_CAPABILITY``)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and (
        cpu_capability() not in _NO_BF16_CAPABILITIES
    )


def device_has_native_bf16(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_training_precision(requested: str, device_type: str) -> tuple[str, str]:
    """Accelerate's ``mixed_precision`` for ``train.mixed_precision`` and where it came from.

    An explicit value is used as given (``config``). ``auto`` takes the launcher's setting
    when there is one (``accelerate launch --mixed_precision``, i.e. the environment variable
    ``ACCELERATE_MIXED_PRECISION``: ``launcher``), else bf16 where the device executes it
    natively and ``no`` (fp32) elsewhere (``hardware``). ``requested`` is a checked
    ``TrainConfig.mixed_precision``."""
    if requested != "auto":
        return requested, "config"
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "").strip().lower()
    if launcher:
        if launcher not in TRAINING_PRECISIONS[1:]:
            raise ValueError(
                f"ACCELERATE_MIXED_PRECISION must be one of "
                f"{', '.join(TRAINING_PRECISIONS[1:])}, got {launcher!r}"
            )
        return launcher, "launcher"
    return ("bf16" if device_has_native_bf16(device_type) else "no"), "hardware"


def resolve_encoding_precision(requested: str, device_type: str) -> str:
    """``fp32`` or ``bf16`` for no-grad encoding (evaluate, embed, the samplers' passes):
    ``auto`` is bf16 where the device executes it natively, fp32 elsewhere."""
    if requested not in ENCODING_PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(ENCODING_PRECISIONS)}, got {requested!r}"
        )
    if requested != "auto":
        return requested
    return "bf16" if device_has_native_bf16(device_type) else "fp32"


def warn_if_emulated(precision: str, device_type: str) -> bool:
    """One warning line on stderr when bf16 runs on a CPU that only emulates it; returns
    whether it warned. The run goes on: the user asked for bf16."""
    if precision != "bf16" or device_type != "cpu" or cpu_has_native_bf16():
        return False
    print(
        f"warning: bf16 on a CPU without native bfloat16 (capability {cpu_capability()}): "
        f"emulated, roughly {EMULATED_BF16_SLOWDOWN} slower than fp32; "
        f"precision 'auto' picks fp32 here",
        file=sys.stderr,
        flush=True,
    )
    return True


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform reports)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(precision: str, device_type: str) -> dict:
    """What produced a number: the resolved precision, the device, the CPU model, torch's CPU
    capability, whether the CPU executes bf16 natively, and the torch thread count."""
    info = {
        "precision": precision,
        "device": device_type,
        "cpu_model": cpu_model(),
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "threads": torch.get_num_threads(),
    }
    if device_type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
