"""MRR per language under the codebase and csn-1000 protocols, and Spearman x 100 under the
sts protocol (docs/evaluation.md).

- codebase (GraphCodeBERT / UniXcoder ``run.py``): each test query against every candidate
  of its language: ``codebase.jsonl`` where the data has one (gold matched by ``url``),
  otherwise all test codes (gold matched by ``id``); MRR@1000.
- csn1000 (CodeSearchNet): test pairs shuffled with a fixed seed, chunks of 1000, last
  partial chunk dropped; each query ranked among its chunk's codes.
- sts (STS-B): Spearman x 100 between each sentence pair's cosine similarity and its gold
  score, overall and per genre (``codesearch.sts_eval``).

The results JSON holds every ranked query's id and rank, so any metric can be recomputed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from codesearch import metrics, sts_eval
from codesearch.data.prepared import (
    load_manifest,
    load_records,
    read_json_object,
    write_json_atomic,
)
from codesearch.data.schema import (
    CANDIDATE_SPLIT,
    KNOWN_LANGUAGES,
    SPLITS,
    PairRecord,
    parse_languages,
)
from codesearch.data.training_data import subsample, tokenize_lengths
from codesearch.encode import embed_pairs, model_device, precision_context
from codesearch.errors import UserError
from codesearch.model import load_model
from codesearch.precision import (
    ENCODING_PRECISIONS,
    machine_info,
    resolve_encoding_precision,
    warn_if_emulated,
)

PROTOCOLS = ("codebase", "csn1000", "sts")
RUN_INDEX = "run.json"  # written by `codesearch train`: which model serves which language


def models_for_languages(model: str, languages: list[str]) -> dict[str, str]:
    """Map each language to a model: a training run directory's per-language (or joint) best
    model, or the same model name / hub id / path for every language."""
    index = Path(model) / RUN_INDEX
    if not index.is_file():
        return dict.fromkeys(languages, model)
    trained = json.loads(index.read_text(encoding="utf-8"))["models"]
    out = {}
    for language in languages:
        rel = trained.get(language, trained.get("joint"))
        if rel is None:
            raise UserError(
                f"{model}: this run trained no model for '{language}' "
                f"(it has: {', '.join(trained)})"
            )
        out[language] = str(Path(model) / rel)
    return out


def embed_records(
    model,
    tokenizer,
    queries: list[PairRecord],
    codes: list[PairRecord] | None = None,
    batch_size: int = 128,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings of the ``queries``' query texts, of the ``codes``' code texts (default: the
    same records)), float32: tokenised as the model was trained, then ``encode.embed_pairs``."""
    cfg = model.config
    codes = queries if codes is None else codes
    query_ids = tokenize_lengths(
        tokenizer, [r.query for r in queries], cfg.max_query_length, cfg.input_format
    )
    code_ids = tokenize_lengths(
        tokenizer, [r.code for r in codes], cfg.max_code_length, cfg.input_format
    )
    return embed_pairs(
        model, query_ids, code_ids, tokenizer.pad_token_id, batch_size, progress=progress
    )


def codebase_ranks(
    model,
    tokenizer,
    data: str | Path,
    language: str,
    split: str = "test",
    batch_size: int = 128,
    progress: bool = False,
    max_pairs: int | None = None,
    subset_seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """(query ids, 1-based gold ranks) of a language's queries against its candidate set.
    ``max_pairs``: a fixed random subset of that many pairs of the split (``subset_seed``);
    without a separate candidate split their codes are the candidates."""
    queries = subsample(load_records(data, language, split), max_pairs, subset_seed)
    counts = load_manifest(data)["counts"][language]
    if split == "test" and CANDIDATE_SPLIT in counts:
        candidates = load_records(data, language, CANDIDATE_SPLIT)
        position: dict[str, int] = {}
        for i, r in enumerate(candidates):
            if r.url:
                position.setdefault(r.url, i)  # the first of duplicate urls, as UniXcoder
        missing = [q.id for q in queries if q.url not in position]
        if missing:
            raise UserError(
                f"{data}/{language}: {len(missing)} test queries have no candidate "
                f"with their url in {CANDIDATE_SPLIT}.jsonl (first: {missing[0]})"
            )
        gold = np.array([position[q.url] for q in queries])
    else:
        candidates, gold = queries, np.arange(len(queries))
    if not queries:
        raise UserError(f"{data}/{language}/{split}.jsonl: no queries to evaluate")
    q, c = embed_records(model, tokenizer, queries, candidates, batch_size, progress)
    return [r.id for r in queries], metrics.gold_ranks(q, c, gold)


def csn1000_language_ranks(
    model,
    tokenizer,
    data: str | Path,
    language: str,
    seed: int = 0,
    chunk_size: int = 1000,
    batch_size: int = 128,
    progress: bool = False,
    max_pairs: int | None = None,
) -> tuple[list[str], np.ndarray]:
    records = subsample(load_records(data, language, "test"), max_pairs, seed)
    if len(records) < chunk_size:
        raise UserError(
            f"{data}/{language}: {len(records)} test pairs make no full chunk of "
            f"{chunk_size} (csn1000); pass a smaller --chunk-size"
        )
    q, c = embed_records(model, tokenizer, records, records, batch_size, progress)
    order, ranks = metrics.csn1000_ranks(q, c, seed=seed, chunk_size=chunk_size)
    return [records[i].id for i in order], ranks


def sts_language(
    model,
    tokenizer,
    data: str | Path,
    language: str,
    split: str = "test",
    batch_size: int = 128,
    progress: bool = False,
    max_pairs: int | None = None,
    subset_seed: int = 0,
) -> dict:
    """The sts protocol on one language's split: ``sts_eval.sts_summary`` with every pair's id
    and cosine similarity."""
    records = subsample(sts_eval.scored_records(data, language, split), max_pairs, subset_seed)
    q, c = embed_records(model, tokenizer, records, None, batch_size, progress)
    similarity = sts_eval.cosines(q, c)
    return {
        **sts_eval.sts_summary(records, similarity),
        "pair_ids": [r.id for r in records],
        "cosines": similarity.tolist(),
    }


def evaluate(
    model: str,
    data: str | Path,
    languages: list[str] | str | None = None,
    protocol: str = "codebase",
    batch_size: int = 128,
    seed: int = 0,
    chunk_size: int = 1000,
    progress: bool = True,
    max_query_length: int | None = None,
    max_code_length: int | None = None,
    trust_remote_code: bool = False,
    precision: str = "auto",
    max_test_pairs: int | None = None,
    split: str = "test",
) -> dict:
    """Evaluate ``model`` (run directory, 'minilm', hub id or path) on each language.

    ``precision``: ``fp32``, ``bf16`` (bfloat16 autocast) or ``auto`` (bf16 where the device
    executes it natively, else fp32: ``codesearch.precision``); the result records the
    precision used and the machine (``machine``);
    ``max_test_pairs``: evaluate on a fixed random subset (``seed``) of each language's test
    pairs, the same for every model (codebase: their queries against their codes);
    ``split``: the split evaluated (codebase and sts; csn1000 uses test);
    ``max_query_length`` / ``max_code_length`` override the model's own truncation lengths;
    ``trust_remote_code`` lets Transformers import code shipped with the model (never taken
    from the model folder itself).
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol '{protocol}': expected one of {', '.join(PROTOCOLS)}")
    if split not in SPLITS or (protocol == "csn1000" and split != "test"):
        allowed = "test" if protocol == "csn1000" else ", ".join(SPLITS)
        raise UserError(f"--split {split}: the {protocol} protocol takes {allowed}")
    if max_test_pairs is not None and max_test_pairs < 1:
        raise UserError(f"--max-test-pairs must be >= 1, got {max_test_pairs}")
    if precision not in ENCODING_PRECISIONS:
        raise UserError(
            f"unknown precision '{precision}': expected one of {', '.join(ENCODING_PRECISIONS)}"
        )
    manifest = load_manifest(data)
    languages = (
        parse_languages(languages)
        if languages
        else [lang for lang in KNOWN_LANGUAGES if lang in manifest["counts"]]
    )
    for language in languages:
        if language not in manifest["counts"]:
            raise UserError(
                f"{data}: has no language '{language}' (it has: {', '.join(manifest['counts'])})"
            )
    per_language: dict[str, dict] = {}
    loaded: dict[str, tuple] = {}
    resolved = None
    lengths = {
        k: v
        for k, v in (("max_query_length", max_query_length), ("max_code_length", max_code_length))
        if v is not None
    }
    for language, name in models_for_languages(model, languages).items():
        if name not in loaded:
            loaded[name] = load_model(name, trust_remote_code=trust_remote_code, **lengths)
            loaded[name][0].eval()
        encoder, tokenizer = loaded[name]
        start = time.perf_counter()
        device = model_device(encoder)
        if resolved is None:
            resolved = resolve_encoding_precision(precision, device.type)
            warn_if_emulated(resolved, device.type)
        with torch.inference_mode(), precision_context(device, resolved):
            if protocol == "sts":
                row = sts_language(
                    encoder,
                    tokenizer,
                    data,
                    language,
                    split,
                    batch_size,
                    progress,
                    max_test_pairs,
                    seed,
                )
            elif protocol == "codebase":
                ids, ranks = codebase_ranks(
                    encoder,
                    tokenizer,
                    data,
                    language,
                    split,
                    batch_size=batch_size,
                    progress=progress,
                    max_pairs=max_test_pairs,
                    subset_seed=seed,
                )
            else:
                ids, ranks = csn1000_language_ranks(
                    encoder,
                    tokenizer,
                    data,
                    language,
                    seed,
                    chunk_size,
                    batch_size,
                    progress,
                    max_test_pairs,
                )
        if protocol != "sts":
            row = {**metrics.summarize(ranks), "query_ids": ids, "ranks": ranks.tolist()}
        per_language[language] = {
            **row,
            "model": name,
            "seconds": round(time.perf_counter() - start, 2),
        }
    first = per_language[languages[0]]
    keys = [  # the metrics: every number but the counts and the time
        k
        for k, v in first.items()
        if isinstance(v, float) and k not in ("seconds",) and not k.startswith("n_")
    ]
    average = {k: float(np.mean([per_language[lang][k] for lang in languages])) for k in keys}
    return {
        "protocol": protocol,
        "model": model,
        "data": str(data),
        **lengths,
        "data_hash": manifest.get("data_hash"),
        "seed": seed,
        "max_test_pairs": max_test_pairs,
        "split": split,
        "precision": resolved,
        "machine": machine_info(resolved, device.type),
        "chunk_size": chunk_size if protocol == "csn1000" else None,
        "languages": per_language,
        "average": average,
    }


TABLE_COLUMNS = ("mrr", "recall@1", "recall@5", "recall@10", "ndcg@10")
STS_COLUMNS = ("spearman",)


def read_results(path: str | Path) -> dict:
    """A ``codesearch evaluate --out`` file, checked for what ``format_table`` reads: a
    UserError naming the file and the field that is missing or of another type."""
    results = read_json_object(path)
    languages, average = results.get("languages"), results.get("average")
    if not isinstance(languages, dict) or not languages or not isinstance(average, dict):
        raise UserError(
            f"{path}: not a `codesearch evaluate --out` file (expected 'languages' and "
            "'average' objects)"
        )
    sts = results.get("protocol") == "sts"
    columns, count = (STS_COLUMNS, "n_pairs") if sts else (TABLE_COLUMNS, "n_queries")
    for name, row in [*languages.items(), ("average", average)]:
        for column in (*columns, *((count,) if name != "average" else ())):
            value = row.get(column) if isinstance(row, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{path}: '{name}' has no number '{column}' (got {value!r:.40})")
    return results


def format_table(results: dict) -> str:
    """Markdown table: MRR and recalls per language with the average row, or (sts) Spearman
    x 100 per language and genre."""
    if results.get("protocol") == "sts":
        lines = ["| language | genre | Spearman x 100 | pairs |", "|---|---|---:|---:|"]
        for language, row in results["languages"].items():
            lines.append(f"| {language} | **all** | {row['spearman']:.2f} | {row['n_pairs']:,} |")
            for genre, cell in row.get("genres", {}).items():
                lines.append(f"| | {genre} | {cell['spearman']:.2f} | {cell['n_pairs']:,} |")
        return "\n".join(lines)
    cols = list(TABLE_COLUMNS)
    lines = [
        "| language | " + " | ".join(c.upper() if c == "mrr" else c for c in cols) + " | queries |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for language, row in results["languages"].items():
        lines.append(
            f"| {language} | "
            + " | ".join(f"{100 * row[c]:.2f}" for c in cols)
            + f" | {row['n_queries']:,} |"
        )
    avg = results["average"]
    lines.append("| **average** | " + " | ".join(f"{100 * avg[c]:.2f}" for c in cols) + " | |")
    return "\n".join(lines)


def save_results(results: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, results)
