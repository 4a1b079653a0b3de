"""The `make reproduce` driver: run a profile's cells, keep grid.json current, write the report.

The groups' zero-shot evaluations (``reference``) run first, one at a time; then groups run
one after the other, each ``jobs`` cells at a time; a cell (or zero-shot evaluation) whose
evaluation file exists is done and skipped (grid.json keeps its timings), a failed one is
reported by id and retried by the next run.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from tqdm.auto import tqdm

from codesearch.data.prepared import load_manifest, write_json_atomic
from codesearch.errors import UserError
from codesearch.reproduce.cells import (
    Cell,
    CellFailed,
    Children,
    log_tail,
    plan_cells,
    run_cell,
    write_group_configs,
)
from codesearch.reproduce.profile import Profile, load_profile, slice_profile
from codesearch.reproduce.reference import Reference, plan_references, run_reference


def grid_record(
    profile: Profile,
    cells: list[Cell],
    state: dict[str, dict],
    wall_seconds: float,
    references: list[Reference] | None = None,
) -> dict:
    """grid.json: the profile, its groups and every cell's paths and state; ``references``
    (the zero-shot evaluations) only where a group has one."""
    return {
        "profile": profile.name,
        "description": profile.description,
        "profile_file": str(profile.path),
        "data": profile.data_path,
        "protocol": profile.protocol,
        "groups": {name: group.record() for name, group in profile.groups.items()},
        "cells": [
            {
                "id": cell.id,
                "group": cell.group,
                "sampler": cell.sampler,
                "seed": cell.seed,
                "languages": cell.languages,
                "run_dir": str(cell.run_dir),
                "eval": str(cell.eval_path),
                "log": str(cell.log_path),
                **state[cell.id],
            }
            for cell in cells
        ],
        **({"references": [r.record(state[r.id]) for r in references]} if references else {}),
        "wall_seconds": wall_seconds,
    }


def prepare_data(profile: Profile) -> None:
    """Run the profile's prepare command when its data directory has no manifest."""
    if (Path(profile.data_path) / "manifest.json").is_file():
        load_manifest(profile.data_path)
        return
    if profile.prepare is None:
        raise UserError(
            f"{profile.data_path}: no prepared data (manifest.json) and the profile "
            f"{profile.path} has no data.prepare command"
        )
    print(f"preparing {profile.data_path}: {shlex.join(profile.prepare)}", flush=True)
    code = subprocess.call(profile.prepare)
    if code != 0 or not (Path(profile.data_path) / "manifest.json").is_file():
        raise UserError(
            f"{profile.data_path}: the prepare command failed (exit {code}): "
            f"{shlex.join(profile.prepare)}"
        )


def shared_pools(cells: list[Cell]) -> list[list[Cell]]:
    """Groups run one after the other, each with its own parallelism; consecutive groups with
    the same ``jobs`` and ``threads`` share one pool, so the next group's cells start in a
    slot that the last cells of the previous group leave free (the ``local`` grid's odd
    number of MiniLM cells would otherwise leave a core idle for a whole cell)."""
    pools: list[list[Cell]] = []
    for cell in cells:
        last = pools[-1][-1] if pools else None
        if last is not None and (last.jobs, last.threads) == (cell.jobs, cell.threads):
            pools[-1].append(cell)
        else:
            pools.append([cell])
    return pools


def run_group(
    profile: Profile,
    cells: list[Cell],
    state: dict[str, dict],
    children: Children,
    bar: tqdm,
    save_grid: Callable[[], dict],
) -> list[Cell]:
    """Run cells of one parallelism, ``jobs`` at a time, in order; updates ``state``, returns
    the failed cells."""
    failed = []
    with ThreadPoolExecutor(max_workers=cells[0].jobs) as pool:
        pending = {pool.submit(run_cell, profile, cell, children): cell for cell in cells}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    cell = pending.pop(future)
                    try:
                        state[cell.id] = {"status": "done", **future.result()}
                        bar.write(
                            f"done {cell.id}: train {state[cell.id]['train_seconds']:.0f} "
                            f"s, evaluate {state[cell.id]['eval_seconds']:.0f} s"
                        )
                    except CellFailed as exc:
                        state[cell.id] = {"status": "failed", "error": str(exc)}
                        failed.append(cell)
                        bar.write(
                            f"FAILED {cell.id} ({exc}); log {cell.log_path}:\n"
                            f"{log_tail(cell.log_path)}"
                        )
                    bar.update(1)
                    save_grid()
        except BaseException:
            # Before the pool's shutdown waits for its threads: stop every running cell (the
            # trainer checkpoints on SIGTERM) and start no other.
            children.stop_all()
            raise
    return failed


def run_references(
    references: list[Reference],
    state: dict[str, dict],
    children: Children,
    bar: tqdm,
    save_grid: Callable[[], dict],
) -> list[Reference]:
    """Run the zero-shot evaluations one after the other, before the cells (each has its
    group's whole share of threads); updates ``state``, returns the failed ones."""
    failed = []
    for reference in references:
        try:
            state[reference.id] = {"status": "done", **run_reference(reference, children)}
            bar.write(f"done {reference.id}: evaluate {state[reference.id]['eval_seconds']:.0f} s")
        except CellFailed as exc:
            state[reference.id] = {"status": "failed", "error": str(exc)}
            failed.append(reference)
            bar.write(
                f"FAILED {reference.id} ({exc}); log {reference.log_path}:\n"
                f"{log_tail(reference.log_path)}"
            )
        save_grid()
    return failed


def previous_cells(path: Path) -> list[dict]:
    """The cell rows (and zero-shot reference rows) of an earlier grid.json, for the timings
    of finished cells; which cells are finished comes from their evaluation files, so a
    damaged grid.json costs only those timings (one warning) and is rewritten."""
    if not path.is_file():
        return []
    try:
        grid = json.loads(path.read_text(encoding="utf-8"))
        rows = grid.get("cells")
        if not isinstance(rows, list):
            raise TypeError("no list of cells")
        references = grid.get("references")
        rows = rows + (references if isinstance(references, list) else [])
    except (ValueError, TypeError, AttributeError) as error:
        print(
            f"warning: {path}: unreadable ({error}); it is rewritten, without the timings of "
            "the cells already done",
            file=sys.stderr,
        )
        return []
    return [row for row in rows if isinstance(row, dict)]


def cell_states(cells: list[Cell | Reference], grid_path: Path) -> dict[str, dict]:
    """{cell id: state}: "done" where the evaluation file exists (with the timings an earlier
    grid.json kept), else "pending"; the same for zero-shot references."""
    state = {
        cell.id: {"status": "done" if cell.eval_path.is_file() else "pending"} for cell in cells
    }
    for row in previous_cells(grid_path):
        if row.get("id") in state and state[row["id"]]["status"] == "done":
            state[row["id"]].update(
                {k: row[k] for k in ("train_seconds", "eval_seconds") if k in row}
            )
    return state


def run_profile(
    profile_path: str | Path,
    runs_root: str | Path | None = None,
    results_dir: str | Path | None = None,
    report: bool = True,
    progress: bool = True,
    languages: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Run every unfinished cell of a profile (or of its ``slice_profile`` to some languages
    and seeds), then write the report; returns grid.json."""
    profile = slice_profile(load_profile(profile_path), languages, seeds)
    runs_root = Path(runs_root or Path("runs") / profile.name)
    results_dir = Path(results_dir or Path("results") / profile.name)
    prepare_data(profile)
    write_group_configs(profile, runs_root)
    cells = plan_cells(profile, runs_root, results_dir)
    references = plan_references(profile, results_dir)
    state = cell_states([*references, *cells], results_dir / "grid.json")
    todo = [c for c in cells if state[c.id]["status"] != "done"]
    todo_references = [r for r in references if state[r.id]["status"] != "done"]
    start = time.perf_counter()

    def save_grid() -> dict:
        grid = grid_record(profile, cells, state, time.perf_counter() - start, references)
        write_json_atomic(results_dir / "grid.json", grid)
        return grid

    results_dir.mkdir(parents=True, exist_ok=True)
    save_grid()
    done_before = len(cells) - len(todo)
    zero_shot = (
        f" and {len(references)} zero-shot evaluation(s) ({len(todo_references)} to run)"
        if references
        else ""
    )
    print(
        f"{profile.name}: {len(cells)} cells, {done_before} already done, {len(todo)} to run"
        f"{zero_shot} (logs in {results_dir / 'logs'})",
        flush=True,
    )
    children = Children()
    bar = tqdm(
        total=len(cells),
        initial=done_before,
        desc=f"reproduce {profile.name}",
        unit="cell",
        disable=not progress,
        dynamic_ncols=True,
    )
    failed: list[Cell | Reference] = []
    try:
        failed += run_references(todo_references, state, children, bar, save_grid)
        for pool_cells in shared_pools(todo):
            failed += run_group(profile, pool_cells, state, children, bar, save_grid)
    finally:
        bar.close()
    grid = save_grid()
    if report:
        from codesearch.report import write_report  # not at the top: report imports reproduce

        write_report(results_dir)
        print(f"report: {results_dir / 'report.md'}", flush=True)
    if failed:
        raise UserError(
            f"{len(failed)} cell(s) failed: {', '.join(c.id for c in failed)}; "
            f"see {results_dir / 'logs'}; rerun to retry them"
        )
    return grid
