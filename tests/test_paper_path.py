"""The paper path: UniXcoder's input format (pinned against run.py's own construction), the
token-joined CodeXGLUE text, the tiny stand-in model, and the errors of a bad format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import free_port, load_script
from transformers import AutoModel, AutoTokenizer

from codesearch.cli import main as cli_main
from codesearch.config import ModelConfig
from codesearch.config_sources import resolve_config
from codesearch.data.prepared import load_manifest, load_records
from codesearch.data.readers.codexglue import prepare_codexglue
from codesearch.data.training_data import tokenize_lengths
from codesearch.errors import UserError
from codesearch.model import DualEncoder

ROOT = Path(__file__).parents[1]
FIXTURE = ROOT / "experiments" / "fixtures" / "codexglue-tiny"


@pytest.fixture(scope="module")
def paper_tiny(tmp_path_factory):
    """(prepared data dir, tiny model dir) as `make reproduce PROFILE=paper-tiny` builds them."""
    root = tmp_path_factory.mktemp("paper-tiny")
    script = load_script("data_prep/prepare_paper_tiny.py")
    assert script.main(["--out", str(root / "data"), "--model-out", str(root / "model")]) == 0
    return root / "data", root / "model"


def run_py_ids(tokenizer, text: str, length: int) -> list[int]:
    """UniXcoder/downstream-tasks/code-search/run.py, convert_examples_to_features (unpadded)."""
    tokens = tokenizer.tokenize(text)[: length - 4]
    tokens = [tokenizer.cls_token, "<encoder-only>", tokenizer.sep_token, *tokens]
    return tokenizer.convert_tokens_to_ids([*tokens, tokenizer.sep_token])


def test_unixcoder_format_is_run_py_token_for_token(paper_tiny):
    data, model = paper_tiny
    tokenizer = AutoTokenizer.from_pretrained(model)
    records = load_records(data, "ruby", "train")[:20] + load_records(data, "python", "test")[:20]
    texts = [r.query for r in records] + [r.code for r in records]
    for length in (8, 64, 256):
        ours = tokenize_lengths(tokenizer, texts, length, "unixcoder")
        assert ours == [run_py_ids(tokenizer, t, length) for t in texts]
        assert max(len(ids) for ids in ours) <= length
    first = tokenizer.convert_ids_to_tokens(ours[0][:3])
    assert first == ["<s>", "<encoder-only>", "</s>"] and ours[0][-1] == tokenizer.sep_token_id
    plain = tokenize_lengths(tokenizer, texts[:1], 64)  # the tokenizer's own special tokens
    assert tokenizer.convert_ids_to_tokens(plain[0][1]) != "<encoder-only>"


def test_codexglue_text_from_tokens_joins_the_cleaned_tokens(tmp_path):
    manifest = prepare_codexglue(FIXTURE, tmp_path / "tokens", text_from="tokens")
    assert manifest["config"]["text_from"] == "tokens"
    assert "code = ' '.join(code_tokens)" in manifest["filters"]
    import gzip

    with gzip.open(FIXTURE / "ruby" / "train.jsonl.gz", "rt") as handle:
        first = json.loads(handle.readline())
    record = load_records(tmp_path / "tokens", "ruby", "train")[0]
    assert record.code == " ".join(first["code_tokens"])
    assert record.query == " ".join(first["docstring_tokens"])
    # valid/test code comes from the codebase line with the same url, token-joined as well
    test = load_records(tmp_path / "tokens", "ruby", "test")
    codebase = {r.url: r.code for r in load_records(tmp_path / "tokens", "ruby", "codebase")}
    assert all(r.code == codebase[r.url] for r in test)
    original = prepare_codexglue(FIXTURE, tmp_path / "original")
    assert original["config"]["text_from"] == "original"
    assert load_records(tmp_path / "original", "ruby", "train")[0].code == first["original_string"]
    with pytest.raises(UserError, match="--text-from must be one of original, tokens"):
        prepare_codexglue(FIXTURE, tmp_path / "bad", text_from="code")


def test_tiny_stand_in_loads_like_unixcoder(paper_tiny):
    data, model = paper_tiny
    encoder = AutoModel.from_pretrained(model)
    assert encoder.config.model_type == "roberta" and encoder.config.num_hidden_layers == 2
    assert load_manifest(data)["config"]["text_from"] == "tokens"
    config = ModelConfig(model=str(model), input_format="unixcoder", max_code_length=32)
    DualEncoder(config)  # has <encoder-only>: no error


def test_unixcoder_format_without_the_mode_token_is_one_line(tiny_data, tmp_path, capsys):
    # the offline default's MiniLM (WordPiece) tokenizer has no <encoder-only>
    with pytest.raises(UserError, match="needs the token <encoder-only>"):
        DualEncoder(ModelConfig(input_format="unixcoder"))
    code = cli_main(
        [
            "train",
            "--data",
            str(tiny_data),
            "--languages",
            "python",
            "--max-train-pairs",
            "40",
            "--batch-size",
            "8",
            "--set",
            "model.input_format=unixcoder",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs the token <encoder-only>" in err and "\n" not in err


def test_a_bad_input_format_is_one_line(tmp_path, capsys):
    with pytest.raises(UserError, match="model.input_format must be one of plain, unixcoder"):
        resolve_config(None, {"model.input_format": "t5"})
    code = cli_main(["train", "--set", "model.input_format=t5", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.input_format must be one of plain, unixcoder" in err
    assert "\n" not in err


@pytest.mark.slow
def test_paper_tiny_runs_every_sampler_through_two_processes(tmp_path):
    """experiments/paper-tiny.yaml itself (one epoch, Ruby only, to keep the suite short): the
    fixture is prepared, each sampler trains under `accelerate launch --multi_gpu
    --num_processes 2` (gloo on CPU), is evaluated, and the report holds every sampler."""
    import yaml

    from codesearch.reproduce import run_profile

    tree = yaml.safe_load((ROOT / "experiments" / "paper-tiny.yaml").read_text())
    data, model = tmp_path / "data", tmp_path / "model"
    script = ROOT / "data_prep" / "prepare_paper_tiny.py"
    tree["data"] = {
        "path": str(data),
        "prepare": ["python", str(script), "--out", str(data), "--model-out", str(model)],
    }
    port = f" --main_process_port {free_port()} -m codesearch"
    tree["launcher"] = tree["launcher"].replace(" -m codesearch", port)
    group = tree["groups"]["unixcoder-tiny"]
    group["languages"] = ["ruby"]
    group["config"]["model"]["model"] = str(model)
    group["config"]["train"]["epochs"] = 1
    profile = tmp_path / "paper-tiny.yaml"
    profile.write_text(yaml.safe_dump(tree))
    grid = run_profile(profile, tmp_path / "runs", tmp_path / "results", progress=False)
    assert [c["status"] for c in grid["cells"]] == ["done"] * 3
    for sampler in ("random", "hardneg", "tbs"):
        run = tmp_path / "runs" / "unixcoder-tiny" / f"{sampler}-seed1"
        info = json.loads((run / "run_info.json").read_text())
        assert info["num_processes"] == 2
        saved = json.loads((run / "ruby" / "best" / "codesearch_model.json").read_text())
        assert saved["config"]["input_format"] == "unixcoder"
    text = (tmp_path / "results" / "report.md").read_text()
    assert "| language | random | hardneg | tbs |" in text
