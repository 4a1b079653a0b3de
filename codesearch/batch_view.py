"""A look inside the batches: which training pairs TBS puts together, next to random batches.

Used by notebooks/compare_samplers.ipynb. For one trained model (a cell of a ``make
reproduce`` results directory, layout in experiments/) and one language: embed a sample of the
training pairs, compute one epoch of random and of TBS batches from those fixed embeddings
(as ``codesearch batches`` does), and tabulate one batch of each. TBS (arXiv 2210.12874)
chunks the reverse Cuthill-McKee order of the graph of large query-code similarities, so its
batches hold similar pairs and their in-batch negatives are harder: the mean off-diagonal
similarity <q_i, c_j> (i != j, same batch) is higher than under random batches.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from codesearch.config_sources import resolve_config
from codesearch.data.prepared import load_records
from codesearch.data.schema import PairRecord, normalize_language
from codesearch.data.training_data import subsample, text_keys
from codesearch.diagnostics import assignment_diagnostics
from codesearch.encode import inference_device
from codesearch.errors import UserError
from codesearch.evaluate import embed_records, models_for_languages
from codesearch.loss import false_negative_mask
from codesearch.model import load_model
from codesearch.report import grid_path_candidates
from codesearch.samplers.random import RandomSampler
from codesearch.samplers.tbs import TBSOptions, tbs_batches

# --- which model -------------------------------------------------------------------------------


@dataclass
class RunChoice:
    """The cell whose model embeds the pairs, with the settings its run trained under."""

    cell: str  # the cell id, "<group>__<sampler>__seed<k>"
    run_dir: Path  # the cell's training run
    model: Path  # its best model for ``language``
    data: Path
    language: str
    batch_size: int
    tbs_options: TBSOptions = field(default_factory=TBSOptions)

    def describe(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.tbs_options).items())
        return (
            f"embeddings from the model of cell {self.cell}: {self.model}\n"
            f"training pairs of {self.language} from {self.data}\n"
            f"batch size {self.batch_size} (the run's); tbs options: {options}"
        )


def resolve_path(path: str | Path, results_dir: str | Path) -> Path:
    """A path from grid.json (``report.grid_path_candidates``) that exists."""
    candidates = grid_path_candidates(path, results_dir)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UserError(
        f"{results_dir}/grid.json: '{path}' does not exist (looked in "
        f"{', '.join(str(c) for c in candidates)})"
    )


def choose_run(
    results_dir: str | Path,
    group: str | None = None,
    sampler: str | None = None,
    language: str | None = None,
) -> RunChoice:
    """The first cell in grid.json with status "done" of ``group`` (default: the first group)
    trained with ``sampler`` (default: any), and ``language`` (default: the cell's first)."""
    grid_path = Path(results_dir) / "grid.json"
    if not grid_path.is_file():
        raise UserError(f"{results_dir}: no grid.json (run `make reproduce` first)")
    grid = json.loads(grid_path.read_text(encoding="utf-8"))
    groups = list(grid.get("groups", {}))
    if group is None and groups:
        group = groups[0]
    done = [
        c
        for c in grid.get("cells", [])
        if c.get("status") == "done" and c["group"] == group and sampler in (None, c["sampler"])
    ]
    if not done:
        raise UserError(
            f"{grid_path}: no done cell of group '{group}'"
            + (f" with sampler '{sampler}'" if sampler else "")
            + f" (groups: {', '.join(groups) or 'none'})"
        )
    cell = done[0]
    language = normalize_language(language) if language else cell["languages"][0]
    if language not in cell["languages"]:
        raise UserError(
            f"cell {cell['id']} has no model for '{language}' "
            f"(it has: {', '.join(cell['languages'])})"
        )
    run_dir = resolve_path(cell["run_dir"], results_dir)
    config = resolve_config(run_dir / "config.yaml")
    model = Path(models_for_languages(str(run_dir), [language])[language])
    return RunChoice(
        cell=cell["id"],
        run_dir=run_dir,
        model=model,
        data=resolve_path(grid["data"], results_dir),
        language=language,
        batch_size=config.train.batch_size,
        tbs_options=config.sampler.options["tbs"],
    )


def load_run_model(run_dir: str | Path, language: str):
    """(model, tokenizer) of a training run's best model for ``language``, in eval mode."""
    if not (Path(run_dir) / "run.json").is_file():
        raise UserError(f"{run_dir}: not a training run directory (no run.json)")
    language = normalize_language(language)
    name = models_for_languages(str(run_dir), [language])[language]
    model, tokenizer = load_model(name)
    model.to(inference_device()).eval()
    return model, tokenizer


# --- embeddings and batches --------------------------------------------------------------------


def sample_pairs(
    data_dir: str | Path, language: str, n: int | None, seed: int = 0
) -> list[PairRecord]:
    """At most ``n`` training pairs: the subset ``train --max-train-pairs n`` trains on."""
    return subsample(load_records(data_dir, normalize_language(language), "train"), n, seed)


def unit_embeddings(
    model, tokenizer, records: list[PairRecord], batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """(queries, codes), each (N, d) float32 with unit-norm rows; row i = records[i]."""
    with torch.inference_mode():
        out = embed_records(model, tokenizer, records, records, batch_size)
    out = [x.astype(np.float32) for x in out]
    return tuple(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in out)


def epoch_batches(
    queries: np.ndarray,
    codes: np.ndarray,
    batch_size: int,
    seed: int = 0,
    records: list[PairRecord] | None = None,
    tbs_options: TBSOptions | None = None,
) -> dict[str, list[np.ndarray]]:
    """Epoch 0's batches of the random and the TBS sampler for these fixed embeddings (what
    ``codesearch batches`` computes); the ``records`` (row i = pair i) give the text keys by
    which TBS drops same-text edges."""
    random = RandomSampler(len(queries), batch_size, seed)
    keys = (
        None
        if records is None
        else (text_keys([r.query for r in records]), text_keys([r.code for r in records]))
    )
    tbs, _ = tbs_batches(
        queries, codes, batch_size=batch_size, options=tbs_options, seed=seed, text_keys=keys
    )
    return {
        "tbs": tbs,
        "random": [b.anchors for b in random.batches()],
    }


def loss_mask(records: list[PairRecord], batch: np.ndarray) -> np.ndarray:
    """(k, k) bool, True where the training loss drops code j as a negative of query i: j != i
    and the two pairs share their query or their code text (``loss.false_negative_mask``)."""
    pairs = [records[i] for i in batch]
    same = false_negative_mask(
        torch.from_numpy(text_keys([r.query for r in pairs])),
        torch.from_numpy(text_keys([r.code for r in pairs])),
    ).numpy()
    np.fill_diagonal(same, False)
    return same


def _negatives(
    queries: np.ndarray, codes: np.ndarray, batch: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(sims (k, k) float64, negative (k, k) bool: i != j and not masked)."""
    sims = queries[batch].astype(np.float64) @ codes[batch].astype(np.float64).T
    negative = ~np.eye(len(batch), dtype=bool)
    if mask is not None:
        negative &= ~mask
    return sims, negative


def off_diagonal_mean(
    queries: np.ndarray, codes: np.ndarray, batch: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Mean <q_i, c_j> over the batch's in-batch negatives (i != j), leaving out the (i, j)
    where ``mask`` (k, k) is True; nan when no negative is left."""
    batch = np.asarray(batch, dtype=np.int64)
    if len(batch) < 2:
        raise ValueError(f"a batch needs at least 2 pairs to have negatives, got {len(batch)}")
    sims, negative = _negatives(queries, codes, batch, mask)
    return float(sims[negative].mean()) if negative.any() else float("nan")


def example_batches(
    queries: np.ndarray,
    codes: np.ndarray,
    batches: dict[str, list[np.ndarray]],
    records: list[PairRecord] | None = None,
) -> dict[str, np.ndarray]:
    """For each sampler, its full-size batch with the highest mean off-diagonal similarity
    (the same rule for every sampler, so the examples compare like with like). With
    ``records``, the negatives the loss masks (``loss_mask``) do not count, so a batch of
    copies of one query, which gives the loss no negative at all, is not the example."""
    out = {}
    for name, epoch in batches.items():
        size = max(len(b) for b in epoch)

        def score(batch: np.ndarray) -> float:
            mask = None if records is None else loss_mask(records, batch)
            value = off_diagonal_mean(queries, codes, batch, mask)
            return -np.inf if np.isnan(value) else value

        out[name] = max((b for b in epoch if len(b) == size), key=score)
    return out


# --- tables ------------------------------------------------------------------------------------


def shorten(text: str, width: int = 60, keep_end: bool = False) -> str:
    """One line of at most ``width`` characters: its start, or with ``keep_end`` its end."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return "..." + text[len(text) - width + 3 :] if keep_end else text[: width - 3] + "..."


def batch_table(
    records: list[PairRecord],
    queries: np.ndarray,
    codes: np.ndarray,
    batch: np.ndarray,
    width: int = 60,
) -> pd.DataFrame:
    """One row per pair of the batch, in batch order, as the loss sees it: the query and its
    func_name (shortened to ``width`` and to the last ``width // 2`` characters), the
    similarity to its own code, how many of the batch's other codes the loss masks for it
    (same query or code text), the hardest unmasked negative (the other code most similar to
    the query; nan if all are masked) with its func_name, and the mean similarity to the
    unmasked negatives. ``attrs["mean_off_diagonal"]`` holds the batch's mean over all its
    unmasked negatives."""
    batch = np.asarray(batch, dtype=np.int64)
    mask = loss_mask(records, batch)
    sims, negative = _negatives(queries, codes, batch, mask)
    k = len(batch)
    scores = np.where(negative, sims, -np.inf)
    hardest = scores.argmax(axis=1)
    has = negative.any(axis=1)
    hardest_names = [
        shorten(records[batch[j]].func_name, width // 2, True) if h else ""
        for j, h in zip(hardest, has, strict=True)
    ]
    table = pd.DataFrame(
        {
            "query": [shorten(records[i].query, width) for i in batch],
            "func_name": [shorten(records[i].func_name, width // 2, True) for i in batch],
            "own code": np.diag(sims),
            "masked": mask.sum(axis=1),
            "hardest negative": np.where(has, scores[np.arange(k), hardest], np.nan),
            "its func_name": hardest_names,
            "mean negative": np.where(
                has, (sims * negative).sum(axis=1) / np.maximum(negative.sum(axis=1), 1), np.nan
            ),
        }
    ).round(3)
    table.attrs["mean_off_diagonal"] = off_diagonal_mean(queries, codes, batch, mask)
    return table


def side_by_side(tables: dict[str, pd.DataFrame], rows: int | None = None) -> pd.DataFrame:
    """The tables next to each other (row r = the r-th pair of each batch; the first ``rows``
    only, if given), columns keyed by sampler and that batch's mean off-diagonal similarity
    (over the whole batch)."""
    return pd.concat(
        {
            f"{name} (mean off-diagonal {t.attrs['mean_off_diagonal']:.3f})": t
            if rows is None
            else t.head(rows)
            for name, t in tables.items()
        },
        axis=1,
    )


def sampler_summary(
    queries: np.ndarray,
    codes: np.ndarray,
    batches: dict[str, list[np.ndarray]],
    scale: float = 20.0,
) -> pd.DataFrame:
    """Per sampler, over the whole epoch: L^Global, L^Train, their gap and the hardness (mean
    in-batch negative similarity), from ``diagnostics.assignment_diagnostics``: as the
    trainer's ``diag_*`` columns, every candidate counts (no masking)."""
    rows = {
        name: assignment_diagnostics(queries, codes, epoch, scale)
        for name, epoch in batches.items()
    }
    table = pd.DataFrame(rows).T.round(4)
    table.insert(0, "batches", [len(batches[name]) for name in table.index])
    return table
