"""Precision by hardware (codesearch.precision): auto is bf16 only where it runs natively, the
launcher's setting wins over auto, emulated bf16 warns, and every record names the machine."""

from __future__ import annotations

import json

import pytest
import torch

from codesearch import precision
from codesearch import train as train_module
from codesearch.config import TrainConfig
from codesearch.config_sources import resolve_config
from codesearch.report import describe_machine


@pytest.fixture
def no_launcher(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)


def nbow_config(data, precision: str, **extra):
    return resolve_config(
        None,
        {
            "data.path": str(data),
            "data.languages": "python",
            "model.encoder": "nbow",
            "train.batch_size": 16,
            "train.epochs": 1,
            "train.mixed_precision": precision,
            **extra,
        },
    )


def fake_cpu(monkeypatch, mkldnn_bf16: bool, capability: str):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: mkldnn_bf16)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)


@pytest.mark.parametrize(
    ("mkldnn_bf16", "capability", "training", "encoding"),
    [
        (True, "AVX512", "bf16", "bf16"),  # AVX512-BF16 / AMX
        (False, "AVX2", "no", "fp32"),  # e.g. AMD EPYC before Zen 4
        (False, "AVX512", "no", "fp32"),  # AVX-512 without its bf16 extension
        (True, "AVX2", "no", "fp32"),  # ATEN_CPU_CAPABILITY=avx2 on a bf16 CPU
    ],
)
def test_auto_is_bf16_only_on_a_cpu_that_executes_it(
    monkeypatch, no_launcher, mkldnn_bf16, capability, training, encoding
):
    fake_cpu(monkeypatch, mkldnn_bf16, capability)
    assert precision.resolve_training_precision("auto", "cpu") == (training, "hardware")
    assert precision.resolve_encoding_precision("auto", "cpu") == encoding


def test_the_launchers_precision_wins_over_auto(monkeypatch):
    fake_cpu(monkeypatch, True, "AVX512")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert precision.resolve_training_precision("auto", "cpu") == ("no", "launcher")
    fake_cpu(monkeypatch, False, "AVX2")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert precision.resolve_training_precision("auto", "cpu") == ("bf16", "launcher")
    # an explicit config value is the user's word, as Accelerator(mixed_precision=...) treats it
    assert precision.resolve_training_precision("no", "cpu") == ("no", "config")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp8x")
    with pytest.raises(ValueError, match="ACCELERATE_MIXED_PRECISION must be one of"):
        precision.resolve_training_precision("auto", "cpu")


def test_unknown_precisions_are_refused():
    with pytest.raises(ValueError, match="train.mixed_precision must be one of auto, no, bf16"):
        TrainConfig(mixed_precision="fp32")
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        precision.resolve_encoding_precision("no", "cpu")


def test_explicit_bf16_on_an_emulating_cpu_warns_once_and_runs(monkeypatch, capsys):
    fake_cpu(monkeypatch, False, "AVX2")
    assert precision.warn_if_emulated("bf16", "cpu")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without native bfloat16 (capability AVX2)" in err
    assert "slower than fp32" in err
    assert not precision.warn_if_emulated("fp32", "cpu")
    fake_cpu(monkeypatch, True, "AMX")
    assert not precision.warn_if_emulated("bf16", "cpu")
    assert capsys.readouterr().err == ""


def test_machine_info_names_the_cpu_precision_and_threads():
    info = precision.machine_info("no", "cpu")
    assert info["precision"] == "no" and info["device"] == "cpu"
    assert info["cpu_model"] and info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["threads"] == torch.get_num_threads()
    line = describe_machine({**info, "threads": 1})
    assert line.startswith("no on ") and line.endswith(", 1 thread")
    assert describe_machine(None) == "machine not recorded"


def test_a_run_records_the_resolved_precision_and_the_machine(
    tiny_data, tmp_path, monkeypatch, no_launcher
):
    fake_cpu(monkeypatch, False, "AVX2")
    train_module.train(nbow_config(tiny_data, "auto"), tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run_info.json").read_text())
    assert info["mixed_precision"] == "no"
    machine = info["machine"]
    assert machine["precision"] == "no" and machine["precision_source"] == "hardware"
    assert machine["cpu_capability"] == "AVX2" and machine["cpu_native_bf16"] is False
    assert machine["threads"] >= 1 and machine["cpu_model"]


def test_an_evaluation_records_the_resolved_precision_and_the_machine(
    tiny_data, tmp_path, monkeypatch
):
    from codesearch.evaluate import evaluate

    run = tmp_path / "run"
    train_module.train(nbow_config(tiny_data, "no", **{"train.max_steps": 1}), run)
    fake_cpu(monkeypatch, False, "AVX2")
    result = evaluate(str(run), tiny_data, ["python"], progress=False)
    assert result["precision"] == "fp32"
    assert result["machine"]["precision"] == "fp32"
    assert result["machine"]["cpu_capability"] == "AVX2"
    fake_cpu(monkeypatch, True, "AVX512")
    assert evaluate(str(run), tiny_data, ["python"], progress=False)["precision"] == "bf16"
