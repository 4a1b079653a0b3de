"""Reading a results directory: grid.json, each done cell's evaluation JSON, run_info.json
and the epoch rows of its training logs (``metrics.jsonl``), the zero-shot references'
evaluations, and for the sts protocol the gold scores of the evaluated pairs (from the data
directory, for the bootstrap over pairs)."""

from __future__ import annotations

from pathlib import Path

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.prepared import read_json_object
from codesearch.errors import DataError, UserError
from codesearch.reproduce.profile import Group


def grid_path_candidates(path: str | Path, results_dir: str | Path) -> list[Path]:
    """Where a grid.json path may be: absolute, or relative to the repository root the driver
    ran in (the parent of ``results/``, as the layout has it), or to the current directory."""
    path = Path(path)
    if path.is_absolute():
        return [path]
    return [Path(results_dir).resolve().parent.parent / path, Path.cwd() / path]


def _resolve(path: str, results_dir: Path) -> Path:
    """The first candidate that exists, else the first (reported missing by the caller)."""
    candidates = grid_path_candidates(path, results_dir)
    return next((p for p in candidates if p.exists()), candidates[0])


def _epoch_row(obj, path: str, line: int) -> dict | None:
    if not isinstance(obj, dict):
        raise DataError("expected a JSON object", path, line)
    if obj.get("event") != "epoch":
        return None
    if not isinstance(obj.get("epoch"), int):
        raise DataError("epoch row without an integer epoch", path, line, "epoch")
    graph = obj.get("sampler_graph")
    if isinstance(graph, dict):  # flat keys for the per-epoch series
        obj.update({f"graph_{k}": v for k, v in graph.items() if isinstance(v, (int, float))})
    return obj


def read_epoch_rows(path: Path) -> list[dict]:
    """Epoch rows of one metrics.jsonl, sorted by epoch; a resumed run can log an epoch
    twice, and the last row per (task, epoch) wins."""
    rows: dict[tuple, dict] = {}
    for row in read_jsonl(path, _epoch_row):
        rows[(row.get("task"), row.get("epoch"))] = row
    return sorted(rows.values(), key=lambda r: r["epoch"])


def _check_eval(result: dict, path: Path, languages: list[str], protocol: str) -> None:
    """The lists the report reads: query ids and ranks, or (sts) pair ids, cosines and the
    Spearman numbers overall and per genre."""
    sts = protocol == "sts"
    ids_key, values_key = ("pair_ids", "cosines") if sts else ("query_ids", "ranks")
    if sts and result.get("protocol") != "sts":
        raise UserError(f"{path}: not an sts evaluation (protocol {result.get('protocol')!r})")
    for language in languages:
        entry = result.get("languages", {}).get(language)
        if not isinstance(entry, dict):
            raise UserError(f"{path}: no results for language '{language}'")
        if sts and (
            not isinstance(entry.get("spearman"), (int, float))
            or not isinstance(entry.get("genres"), dict)
        ):
            raise UserError(f"{path}: language '{language}' needs 'spearman' and 'genres'")
        ids, ranks = entry.get(ids_key), entry.get(values_key)
        if (
            not isinstance(ids, list)
            or not isinstance(ranks, list)
            or not ranks
            or len(ids) != len(ranks)
        ):
            raise UserError(
                f"{path}: language '{language}' needs equally long, non-empty "
                f"'{ids_key}' and '{values_key}' lists"
            )
        if len(set(ids)) != len(ids):
            raise UserError(
                f"{path}: language '{language}' has duplicate {'pair' if sts else 'query'} ids"
            )


def load_grid(results_dir: str | Path) -> dict:
    """grid.json with its groups read into ``Group``s and each done cell's files attached:
    ``cell["result"]`` (the evaluate JSON), ``cell["run_info"]`` and ``cell["epochs"]``
    ({language: epoch rows}, {} where the run directory is absent, e.g. results copied without
    runs/). Also ``grid["missing_metrics"]``, and ``grid["references"]`` (the zero-shot rows,
    [] where there are none) with each done one's ``result``."""
    results_dir = Path(results_dir)
    grid_path = results_dir / "grid.json"
    grid = read_json_object(grid_path)
    if not isinstance(grid.get("groups"), dict) or not isinstance(grid.get("cells"), list):
        raise UserError(f"{grid_path}: needs a 'groups' object and a 'cells' list")
    for name, spec in grid["groups"].items():
        if not isinstance(spec, dict) or not all(
            isinstance(spec.get(k), list) for k in ("languages", "samplers")
        ):
            raise UserError(f"{grid_path}: group '{name}' needs 'languages' and 'samplers' lists")
    grid["groups"] = {name: Group.from_record(spec) for name, spec in grid["groups"].items()}
    protocol = grid.get("protocol", "codebase")
    grid["missing_metrics"] = []
    for number, cell in enumerate(grid["cells"]):
        lacking = [
            k
            for k in ("id", "group", "sampler", "seed", "status")
            if not isinstance(cell, dict) or k not in cell
        ]
        if lacking:
            raise UserError(f"{grid_path}: cell {number} has no '{lacking[0]}'")
        if cell["group"] not in grid["groups"]:
            raise UserError(f"{grid_path}: cell {cell['id']} names unknown group '{cell['group']}'")
        if cell["status"] == "done":
            languages = grid["groups"][cell["group"]].languages
            grid["missing_metrics"] += _attach_files(cell, languages, results_dir, protocol)
    grid["references"] = _load_references(grid, grid_path, results_dir, protocol)
    return grid


def _attach_files(cell: dict, languages: list[str], results_dir: Path, protocol: str) -> list[str]:
    """Attach a done cell's evaluation, run_info and epoch rows; returns the missing logs."""
    eval_path = results_dir / "cells" / f"{cell['id']}.json"
    if not eval_path.is_file() and cell.get("eval"):
        eval_path = _resolve(cell["eval"], results_dir)
    cell["result"] = read_json_object(eval_path)
    _check_eval(cell["result"], eval_path, languages, protocol)
    run_dir = _resolve(cell.get("run_dir", ""), results_dir)
    try:  # only for the machine lines: a run moved or damaged says "not recorded"
        info = run_dir / "run_info.json"
        cell["run_info"] = read_json_object(info) if info.is_file() else {}
    except UserError:
        cell["run_info"] = {}
    cell["epochs"] = {}
    missing = []
    for language in languages:
        path = run_dir / language / "metrics.jsonl"
        if path.is_file():
            cell["epochs"][language] = read_epoch_rows(path)
        else:
            missing.append(str(path))
    return missing


def _load_references(grid: dict, grid_path: Path, results_dir: Path, protocol: str) -> list:
    """grid.json's zero-shot rows, each done one with its evaluation attached."""
    references = grid.get("references", [])
    if not isinstance(references, list):
        raise UserError(f"{grid_path}: 'references' must be a list")
    for number, row in enumerate(references):
        lacking = [
            k for k in ("id", "group", "status") if not isinstance(row, dict) or k not in row
        ]
        if lacking:
            raise UserError(f"{grid_path}: reference {number} has no '{lacking[0]}'")
        if row["group"] not in grid["groups"]:
            raise UserError(f"{grid_path}: {row['id']} names unknown group '{row['group']}'")
        if row["status"] == "done":
            path = results_dir / "cells" / f"{row['id']}.json"
            if not path.is_file() and row.get("eval"):
                path = _resolve(row["eval"], results_dir)
            row["result"] = read_json_object(path)
            _check_eval(row["result"], path, grid["groups"][row["group"]].languages, protocol)
    return references


def gold_scores(
    data: str | None,
    language: str,
    split: str,
    ids: list[str],
    data_hash: str | None,
    results_dir: Path,
) -> tuple[list[float] | None, str]:
    """The gold scores of the pairs ``ids`` of a language's split in the prepared data
    directory ``data`` (as grid.json names it) whose hash is the cells' ``data_hash``: (scores
    in the order of ids, ""), or (None, why) where the directory, its hash or a pair does not
    match; the evaluation files keep only the cosines."""
    from codesearch.data.prepared import load_manifest, load_records

    path = _resolve(data, results_dir) if data else None
    if path is None or not (path / "manifest.json").is_file():
        return None, f"no prepared data at {data}"
    try:
        if load_manifest(path).get("data_hash") != data_hash:
            return None, f"{path} is not the data the cells were evaluated on (data_hash)"
        scores = {r.id: r.score for r in load_records(path, language, split)}
    except (UserError, DataError) as error:
        return None, str(error)
    missing = [i for i in ids if scores.get(i) is None]
    if missing:
        return None, f"{path}: {len(missing)} evaluated pairs have no gold score there"
    return [float(scores[i]) for i in ids], ""
