"""The paper-sts path: supervised SimCSE's recipe in experiments/paper-sts.yaml, and its code
path on a CPU (paper-sts-tiny): SimCSE-format triplets built from STS-B files, `prepare nli`, a
tiny random RoBERTa, [CLS] pooling, every sampler through two processes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml
from helpers import free_port, load_script
from transformers import AutoTokenizer

from codesearch import reproduce
from codesearch.data.prepared import load_manifest, load_records
from codesearch.data.readers.stsb import FILES
from codesearch.data.schema import SENTENCE_LANGUAGE

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
SUBJECTS = ["A man", "A woman", "A child", "The dog", "Two cats", "An old farmer", "The band"]
VERBS = ["is playing", "is cutting", "is riding", "is eating", "is painting", "is watching"]
OBJECTS = ["a guitar", "an onion", "a horse", "a sandwich", "the fence", "the news", "a boat"]


def stsb_folder(root: Path, pairs: dict[str, int]) -> Path:
    """STS-B files in the wheel's tab-separated layout (genre, file, year, id, score, sentence
    1, sentence 2), gold = 5 x the share of parts the two sentences share."""
    rng = random.Random(0)
    root.mkdir(parents=True)
    for split, count in pairs.items():
        lines = []
        for i in range(count):
            a = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
            b = [
                x if rng.random() < 0.5 else rng.choice(pool)
                for x, pool in zip(a, (SUBJECTS, VERBS, OBJECTS), strict=True)
            ]
            score = 5 * sum(x == y for x, y in zip(a, b, strict=True)) / 3
            genre = ("main-captions", "main-news", "main-forum")[i % 3]
            fields = [genre, "MSRvid", "2012test", f"{i:04d}", f"{score:.3f}"]
            lines.append("\t".join([*fields, " ".join(a) + ".", " ".join(b) + "."]))
        (root / FILES[split]).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def sts_files(tmp_path_factory) -> Path:
    return stsb_folder(
        tmp_path_factory.mktemp("stsb") / "files", {"train": 400, "valid": 60, "test": 60}
    )


def test_the_tiny_path_builds_simcse_triplets_and_a_model(sts_files, tmp_path):
    script = load_script("data_prep/prepare_paper_tiny.py")
    data, model = tmp_path / "data", tmp_path / "model"
    argv = ["--task", "sentence-similarity", "--out", str(data), "--model-out", str(model)]
    assert script.main([*argv, "--wheel", str(sts_files), "--max-triplets", "64"]) == 0
    csv_text = (tmp_path / "data-triplets" / "nli_for_simcse.csv").read_text()
    assert csv_text.splitlines()[0] == "sent0,sent1,hard_neg"
    manifest = load_manifest(data)
    assert manifest["task"] == "sentence-similarity" and manifest["builder"] == "nli"
    train = load_records(data, SENTENCE_LANGUAGE, "train")
    assert len(train) == 64 and all(r.negative for r in train)
    test = load_records(data, SENTENCE_LANGUAGE, "test")
    assert len(test) == 60 and all(r.score is not None for r in test)
    tokenizer = AutoTokenizer.from_pretrained(model)
    assert tokenizer.cls_token == "<s>" and tokenizer.pad_token_id is not None


def test_paper_sts_profile_is_the_simcse_recipe():
    profile = reproduce.load_profile(EXPERIMENTS / "paper-sts.yaml")
    assert profile.protocol == "sts" and profile.data_path == "data/nli"
    ((name, group),) = profile.groups.items()
    assert set(group.samplers) == {"random", "hardneg", "tbs"}
    assert group.published["spearman"] == {"english": 84.25}
    config = reproduce.group_config(profile, name, "tbs", 1)
    assert config.model.model == "bert-base-uncased" and config.model.pooling == "cls"
    assert (config.model.max_query_length, config.model.max_code_length) == (32, 32)
    assert (config.train.batch_size, config.train.lr, config.train.epochs) == (512, 5e-5, 3)
    assert config.model.scale == 20.0  # temperature 0.05


@pytest.mark.slow
def test_paper_sts_tiny_runs_every_sampler_through_two_processes(sts_files, tmp_path):
    """experiments/paper-sts-tiny.yaml itself (one epoch, to keep the suite short): the
    triplets and the model are built, each sampler trains under `accelerate launch --multi_gpu
    --num_processes 2` with the negatives in its batches, the report holds every sampler."""
    tree = yaml.safe_load((EXPERIMENTS / "paper-sts-tiny.yaml").read_text())
    data, model = tmp_path / "data", tmp_path / "model"
    script = ROOT / "data_prep" / "prepare_paper_tiny.py"
    tree["data"] = {
        "path": str(data),
        "prepare": [
            "python",
            str(script),
            "--task",
            "sentence-similarity",
            "--out",
            str(data),
            "--model-out",
            str(model),
            "--wheel",
            str(sts_files),
            "--max-triplets",
            "96",
        ],
    }
    port = f" --main_process_port {free_port()} -m codesearch"
    tree["launcher"] = tree["launcher"].replace(" -m codesearch", port)
    (group,) = tree["groups"].values()
    group["config"]["model"]["model"] = str(model)
    group["config"]["train"]["epochs"] = 1
    profile = tmp_path / "paper-sts-tiny.yaml"
    profile.write_text(yaml.safe_dump(tree))
    grid = reproduce.run_profile(profile, tmp_path / "runs", tmp_path / "results", progress=False)
    assert [c["status"] for c in grid["cells"]] == ["done"] * 3
    for sampler in ("random", "hardneg", "tbs"):
        run = tmp_path / "runs" / "roberta-tiny" / f"{sampler}-seed1"
        assert json.loads((run / "run_info.json").read_text())["num_processes"] == 2
        rows = [json.loads(r) for r in (run / "english" / "metrics.jsonl").read_text().splitlines()]
        epoch = [r for r in rows if r.get("event") == "epoch"][-1]
        assert -1 <= epoch["valid_spearman"] <= 1
    text = (tmp_path / "results" / "report.md").read_text()
    assert "| language | genre | pairs | random | hardneg | tbs |" in text
