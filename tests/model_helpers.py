"""Tokenising pairs for the model tests (the trainer pads token ids itself: ``encode.pad_batch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from codesearch.config import ModelConfig


def tokenize_texts(tokenizer: Any, texts: list[str], max_length: int) -> tuple[torch.Tensor, ...]:
    """(input_ids, attention_mask), each (B, L) with L the longest text after truncation."""
    encoded = tokenizer(
        list(texts),
        padding="longest",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
        return_token_type_ids=False,
    )
    return encoded["input_ids"], encoded["attention_mask"]


def tokenize_pairs(
    tokenizer: Any, queries: list[str], codes: list[str], config: ModelConfig
) -> dict[str, torch.Tensor]:
    """Dynamic padding of a batch of pairs; the keys are `DualEncoder.forward`'s arguments."""
    if len(queries) != len(codes):
        raise ValueError(f"{len(queries)} queries but {len(codes)} codes")
    q_ids, q_mask = tokenize_texts(tokenizer, queries, config.max_query_length)
    c_ids, c_mask = tokenize_texts(tokenizer, codes, config.max_code_length)
    return {
        "query_input_ids": q_ids,
        "query_attention_mask": q_mask,
        "code_input_ids": c_ids,
        "code_attention_mask": c_mask,
    }


def tiny_bert_dir(root: Path, pooler: bool = True) -> Path:
    """A randomly initialised one-layer BERT (64 positions) with MiniLM's tokenizer, saved as
    a local model folder (with a pooler, as pretrained BERTs, unless ``pooler`` is False): a
    transformer base model in milliseconds."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from codesearch.model import resolve_model_name

    path = root / "tiny-bert"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("minilm"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config, add_pooling_layer=pooler).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
