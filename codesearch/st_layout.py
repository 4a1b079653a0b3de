"""A saved model's sentence-transformers layout: the folder ``DualEncoder.save_pretrained``
writes for a transformer encoder loads with ``SentenceTransformer(folder)``, a Router with a
query route (the query tower) and a document route (the code tower).

File formats only; the model itself is ``codesearch.model``.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from codesearch.data.training_data import UNIXCODER_MODE
from codesearch.errors import UserError

# format 2: the towers' folders inside the sentence-transformers Router layout
ST_TOWERS = {"query": "query_0_Transformer", "code": "document_0_Transformer"}


def sentence_transformer_encoder(folder: Path) -> Path:
    """The folder of the Transformer module a sentence-transformers model embeds documents with."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        for module in modules:
            where = folder / module.get("path", "")
            if module["type"].endswith(".Transformer"):
                return where
            if module["type"].endswith(".Router"):
                router = json.loads((where / "router_config.json").read_text(encoding="utf-8"))
                for part in router["structure"].get("document", []):
                    if router["types"][part].endswith(".Transformer"):
                        return where / part
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{folder}: unreadable sentence-transformers folder ({error})") from None
    raise UserError(f"{folder}: a sentence-transformers folder without a Transformer module")


def has_pooler_weights(folder: Path) -> bool:
    """False only for a local folder whose safetensors weights hold no ``pooler.`` tensor; a
    hub name or another weight format is taken to have one (the architecture decides)."""
    from safetensors import SafetensorError, safe_open

    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return True
    try:
        for file in files:
            with safe_open(str(file), "pt") as handle:
                if any(key.split(".")[0] == "pooler" or ".pooler." in key for key in handle.keys()):
                    return True
    except (OSError, SafetensorError):
        return True  # unreadable: let from_pretrained name the problem
    return False


def save_sentence_transformer(model: nn.Module, out: Path) -> None:
    """``out`` as a sentence-transformers folder of a ``DualEncoder``: a Router with a query route (the query tower,
    ``max_query_length``) and a document route (the code tower, ``max_code_length``), each a
    Transformer and a Pooling (the model's mean or CLS), then Normalize: ``encode_query`` /
    ``encode_document`` give the model's query and code embeddings. With shared towers both
    routes hold a copy of the one encoder. The unixcoder input format becomes each route's
    prompt ``<encoder-only></s>`` after the tokenizer's own ``<s>``, which gives run.py's
    ``<s> <encoder-only> </s> TEXT </s>``. Built with the library's own modules and ``save``."""
    import shutil

    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Router
    from sentence_transformers.sentence_transformer.modules import Pooling

    config, staging = model.config, out / ".towers"
    shutil.rmtree(staging, ignore_errors=True)
    routes = {}
    towers = {"query": model.query_tower, "code": model.code_tower}
    for side, length in (("query", config.max_query_length), ("code", config.max_code_length)):
        folder = staging / side
        towers[side].encoder.save_pretrained(str(folder))
        drop_remote_code(folder, towers[side].encoder)
        model.tokenizer.save_pretrained(str(folder))
        encoder = load_st_transformer(str(folder), length)
        pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode=config.pooling)
        routes[side] = [encoder, pooling]
    router = Router.for_query_document(routes["query"], routes["code"])
    prompts = None
    if config.input_format == "unixcoder":
        mode = f"{UNIXCODER_MODE}{model.tokenizer.sep_token}"
        prompts = {"query": mode, "document": mode}
    st = SentenceTransformer(modules=[router, Normalize()], device="cpu", prompts=prompts)
    st.save(str(out))
    shutil.rmtree(staging)


def load_st_transformer(folder: str, max_seq_length: int):
    """sentence-transformers' Transformer module over a saved tower: as ``load_encoder``, a
    folder without pooler weights is loaded without a pooler (it would get random ones)."""
    from sentence_transformers.sentence_transformer.modules import Transformer

    if has_pooler_weights(Path(folder)):
        return Transformer(folder, max_seq_length=max_seq_length)
    try:
        kwargs = {"model_kwargs": {"add_pooling_layer": False}}
        return Transformer(folder, max_seq_length=max_seq_length, **kwargs)
    except TypeError as error:
        if "add_pooling_layer" not in str(error):
            raise
        return Transformer(folder, max_seq_length=max_seq_length)


def drop_remote_code(folder: Path, encoder: nn.Module) -> None:
    """Remove ``auto_map`` and ``trust_remote_code`` from ``folder/config.json`` when the
    encoder is a class of Transformers itself: a base model's folder may carry them, and a
    saved run (and its export) would otherwise ask whoever loads it to run that code."""
    path = folder / "config.json"
    if not type(encoder).__module__.startswith("transformers.") or not path.is_file():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    if {"auto_map", "trust_remote_code"} & set(saved):
        saved = {k: v for k, v in saved.items() if k not in ("auto_map", "trust_remote_code")}
        path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")


def point_to_sentence_transformer(folder: Path, model_dir: str) -> bool:
    """Make ``folder`` (a run directory) load with ``SentenceTransformer(folder)`` as the
    sentence-transformers model in ``folder/model_dir`` (its ``best/``): a modules.json whose
    module paths lead there, and its config. False (nothing written) when that model has
    none (the nbow encoder)."""
    source = folder / model_dir
    if not (source / "modules.json").is_file():
        return False
    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        module["path"] = str(Path(model_dir) / module["path"]) if module["path"] else model_dir
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    config = source / "config_sentence_transformers.json"
    if config.is_file():
        (folder / config.name).write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    return True
