"""Saved models are sentence-transformers models: the same embeddings as `codesearch embed`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sentence_transformers import SentenceTransformer
from transformers import AutoModel

from codesearch.cli import main as cli_main
from codesearch.config import ModelConfig
from codesearch.data.prepared import load_records
from codesearch.data.training_data import subsample
from codesearch.model import DualEncoder, load_model, resolve_model_name


def train_two_steps(tiny_data: Path, out: Path, towers: str) -> Path:
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
            "--max-steps",
            "2",
            "--towers",
            towers,
            "--seed",
            "1",
            "--set",
            "model.max_query_length=24",
            "--set",
            "model.max_code_length=40",
            "--set",
            "train.diagnostics=off",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def embed(model_dir: Path, tiny_data: Path, out: Path) -> dict:
    code = cli_main(
        [
            "embed",
            "--model",
            str(model_dir),
            "--data",
            str(tiny_data),
            "--language",
            "python",
            "--split",
            "train",
            "--max-pairs",
            "40",
            "--seed",
            "1",
            "--out",
            str(out),
            "--quiet",
            "--precision",
            "fp32",  # compared with sentence-transformers' float32 encoding
        ]
    )
    assert code == 0
    with np.load(out) as npz:
        return {"queries": npz["queries"], "codes": npz["codes"]}


@pytest.mark.parametrize("towers", ["shared", "separate"])
def test_best_loads_in_sentence_transformers_with_our_embeddings(tiny_data, tmp_path, towers):
    run = train_two_steps(tiny_data, tmp_path / "run", towers)
    ours = embed(run, tiny_data, tmp_path / "emb.npz")
    records = subsample(load_records(tiny_data, "python", "train"), 40, 1)
    for folder in (run / "python" / "best", run):  # the model, and the run that chooses it
        st = SentenceTransformer(str(folder), device="cpu")
        queries = st.encode_query([r.query for r in records], convert_to_numpy=True)
        codes = st.encode_document([r.code for r in records], convert_to_numpy=True)
        np.testing.assert_allclose(queries, ours["queries"], atol=1e-4)
        np.testing.assert_allclose(codes, ours["codes"], atol=1e-4)
    best = run / "python" / "best"
    # each route keeps its own length; each tower's folder is a plain Hugging Face model
    lengths = {m[0].max_seq_length for m in st[0].sub_modules.values()}
    assert lengths == {24, 40}
    assert AutoModel.from_pretrained(best / "document_0_Transformer") is not None
    if towers == "separate":  # the towers were trained apart: the routes differ
        assert not np.allclose(queries, st.encode_document([r.query for r in records]))


def folder_tensors(folder: Path) -> dict:
    """Every safetensors tensor under ``folder``, keyed by relative file and name."""
    from safetensors.torch import load_file

    return {
        f"{path.relative_to(folder)}:{name}": tensor
        for path in sorted(folder.rglob("*.safetensors"))
        for name, tensor in load_file(str(path)).items()
    }


def test_save_load_save_is_silent_and_tensor_identical(tiny_data, tmp_path, caplog, capfd):
    """A saved run holds each encoder's full weights (its frozen pooler included), so
    sentence-transformers loads it without a missing/unexpected-weights report and re-saves
    the same tensors, twice over."""
    run = train_two_steps(tiny_data, tmp_path / "run", "shared")
    best = run / "python" / "best"
    saved = folder_tensors(best)
    assert any(".pooler." in key or ":pooler." in key for key in saved)
    capfd.readouterr()
    caplog.clear()
    with caplog.at_level("WARNING"):
        SentenceTransformer(str(run), device="cpu").save(str(tmp_path / "once"))
        SentenceTransformer(str(tmp_path / "once"), device="cpu").save(str(tmp_path / "twice"))
    noise = [r.getMessage() for r in caplog.records if "LOAD REPORT" in r.getMessage()]
    noise += [line for line in capfd.readouterr().err.splitlines() if "LOAD REPORT" in line]
    assert noise == []
    once, twice = folder_tensors(tmp_path / "once"), folder_tensors(tmp_path / "twice")
    assert set(once) == set(twice) == set(saved)
    for key, tensor in saved.items():
        assert torch.equal(once[key], tensor) and torch.equal(twice[key], tensor), key


def test_a_folder_without_pooler_weights_loads_without_a_pooler(tmp_path):
    """An encoder saved without a pooler is loaded without one (never with random weights)."""
    from model_helpers import tiny_bert_dir

    from codesearch.model import load_encoder
    from codesearch.st_layout import has_pooler_weights

    folder = tiny_bert_dir(tmp_path, pooler=False)
    assert not has_pooler_weights(folder)
    assert load_encoder(folder, trust_remote_code=False).pooler is None
    with_pooler = tiny_bert_dir(tmp_path / "b")
    encoder = load_encoder(with_pooler, trust_remote_code=False)
    assert has_pooler_weights(with_pooler) and encoder.pooler is not None
    assert not any(p.requires_grad for p in encoder.pooler.parameters())
    assert all(p.requires_grad for n, p in encoder.named_parameters() if "pooler" not in n)


def test_training_starts_from_a_sentence_transformers_folder(tiny_data, tmp_path):
    run = train_two_steps(tiny_data, tmp_path / "run", "shared")
    best = run / "python" / "best"
    assert resolve_model_name(str(best)) == str(best / "document_0_Transformer")
    trained, _ = load_model(best)
    start = DualEncoder(ModelConfig(model=str(best), max_query_length=24, max_code_length=40))
    for a, b in zip(
        trained.code_tower.encoder.state_dict().values(),
        start.code_tower.encoder.state_dict().values(),
        strict=True,
    ):
        assert np.array_equal(a.numpy(), b.numpy())
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
            "--max-steps",
            "1",
            "--model",
            str(best),
            "--set",
            "train.diagnostics=off",
            "--out",
            str(tmp_path / "again"),
        ]
    )
    assert code == 0


def test_the_unixcoder_format_becomes_the_routes_prompt(tmp_path):
    """The stand-in UniXcoder (paper-tiny) saved with input_format unixcoder: sentence-
    transformers builds <s> <encoder-only> </s> TEXT </s> from its prompt, so the embeddings
    equal ours."""
    from helpers import load_script

    root = Path(__file__).parents[1]
    script = load_script("data_prep/prepare_paper_tiny.py")
    model_dir = script.build_tiny_unixcoder(
        root / "experiments" / "fixtures" / "codexglue-tiny", tmp_path / "tiny"
    )
    config = ModelConfig(
        model=str(model_dir), input_format="unixcoder", max_query_length=16, max_code_length=32
    )
    DualEncoder(config).eval().save_pretrained(tmp_path / "saved")
    loaded, tokenizer = load_model(tmp_path / "saved")
    loaded.eval()
    texts = ["return the sum of two numbers", "def add ( a , b ) : return a + b"] * 3
    from codesearch.evaluate import embed_records

    class Text:
        def __init__(self, text):
            self.query = self.code = text

    import torch

    with torch.inference_mode():
        ours_q, ours_c = embed_records(loaded, tokenizer, [Text(t) for t in texts])
    st = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    saved = json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())
    assert saved["prompts"]["query"] == "<encoder-only></s>"
    np.testing.assert_allclose(st.encode_query(texts), ours_q, atol=1e-4)
    np.testing.assert_allclose(st.encode_document(texts), ours_c, atol=1e-4)


def test_export_writes_a_loadable_folder_with_a_model_card(tiny_data, tmp_path, capsys):
    run = train_two_steps(tiny_data, tmp_path / "run", "shared")
    results = tmp_path / "eval.json"
    assert (
        cli_main(
            [
                "evaluate",
                "--model",
                str(run),
                "--data",
                str(tiny_data),
                "--languages",
                "python",
                "--out",
                str(results),
                "--quiet",
            ]
        )
        == 0
    )
    out = tmp_path / "export"
    users = tmp_path / "export.tmp"  # the old fixed staging name: a user's folder stays
    (users / "keep").mkdir(parents=True)
    (users / "keep" / "notes.txt").write_text("mine\n")
    assert cli_main(["export", str(run), "--out", str(out), "--results", str(results)]) == 0
    assert (users / "keep" / "notes.txt").read_text() == "mine\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export.")]
    card = (out / "README.md").read_text()
    info = json.loads((run / "run_info.json").read_text())
    print(card)  # shown when the test fails
    front = yaml.safe_load(card.split("---")[1])
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert front["language"] == ["en"] and front["license"] == "other"
    assert front["library_name"] == "sentence-transformers"
    assert front["pipeline_tag"] == "sentence-similarity"
    assert {"code-search", "sampler-random"} <= set(front["tags"])
    (entry,) = front["model-index"]
    metrics = {
        (r["dataset"]["name"], m["type"]): m["value"]
        for r in entry["results"]
        for m in r["metrics"]
    }
    evaluated = json.loads(results.read_text())["languages"]["python"]
    assert metrics[("codesearch python", "cosine_mrr@1000")] == pytest.approx(evaluated["mrr"])
    assert "library_name: sentence-transformers" in card and "encode_query" in card
    assert info["data"]["data_hash"] in card and "| python |" in card  # data and evaluation
    assert "sampler:\n  name: random" in card  # the training config
    st = SentenceTransformer(str(out), device="cpu")
    ours = SentenceTransformer(str(run / "python" / "best"), device="cpu")
    np.testing.assert_allclose(st.encode_query(["a query"]), ours.encode_query(["a query"]))
    # an existing folder is not overwritten; an nbow run has no sentence-transformers folder
    capsys.readouterr()
    assert cli_main(["export", str(run), "--out", str(out)]) == 2
    assert "is not an empty directory" in capsys.readouterr().err
    # the evaluation of another model is not this run's card
    other = json.loads(results.read_text())
    other["languages"]["python"]["model"] = "minilm"
    (tmp_path / "other.json").write_text(json.dumps(other))
    again = ["export", str(run), "--out", str(tmp_path / "e2"), "--results"]
    assert cli_main([*again, str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err
    assert "'python' was evaluated with the model 'minilm', not this run's" in err
    assert err.count("\n") == 1 and not (tmp_path / "e2").exists()
    nbow = tmp_path / "nbow"
    assert (
        cli_main(
            [
                "train",
                "--data",
                str(tiny_data),
                "--languages",
                "python",
                "--encoder",
                "nbow",
                "--max-train-pairs",
                "40",
                "--batch-size",
                "8",
                "--max-steps",
                "1",
                "--out",
                str(nbow),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert cli_main(["export", str(nbow), "--out", str(tmp_path / "x")]) == 2
    assert "not a sentence-transformers folder" in capsys.readouterr().err


def test_push_to_hub_uploads_the_folder_it_wrote(tmp_path, monkeypatch):
    from codesearch import export

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    (tmp_path / "f").mkdir()
    export.push_to_hub(tmp_path / "f", "me/model")
    assert calls[1] == (
        "upload",
        {"folder_path": str(tmp_path / "f"), "repo_id": "me/model", "repo_type": "model"},
    )
