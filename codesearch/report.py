"""The sampler comparison report: ``results/<profile>/`` -> report.md, results.json, plots/.

``python -m codesearch.report RESULTS_DIR`` reads the layout ``make reproduce`` writes
(grid.json, cells/<cell id>.json from ``codesearch evaluate --out``, and each cell's training
run directory) and summarises it per group:

- MRR per language and sampler in points (x100), recomputed from each query's gold rank with
  the codebase protocol's cutoff (reciprocal rank ``1/rank`` if ``rank <= 1000`` else 0,
  i.e. MRR@1000; ``codesearch.metrics.mrr``), as mean and sample standard deviation
  (ddof=1) over seeds; the std is null with one seed.
- every arm other than the baselines (random, hardneg) against each baseline, per language
  and averaged over languages (``codesearch.significance``). Primary: the paired t interval
  over per-seed differences (seed k of one arm against seed k of the other, which share their
  training subset and initialisation), its p-value Holm-adjusted across the group's languages,
  the exact sign-flip p, the smallest effect the design could detect, and "resolved" only
  when the t interval excludes 0. Secondary, test-set noise only: Efron's percentile
  bootstrap of the mean difference paired over queries (each query's reciprocal rank first
  averaged over the arm's seeds).
- epoch time and sampler time per epoch (``metrics.jsonl`` epoch rows), the overhead ratio
  over random, the L^Global - L^Train gap per epoch without and with the loss's false-negative
  mask, and the anchors that mask leaves without negatives (``diag_*``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from codesearch.data.jsonl_reader import read_jsonl
from codesearch.data.prepared import read_json_object, write_json_atomic
from codesearch.errors import DataError, UserError
from codesearch.metrics import reciprocal_ranks
from codesearch.run_dir import package_versions
from codesearch.significance import compare_over_seeds, holm, paired_bootstrap

MRR_CUTOFF = 1000
BASELINES = ("random", "hardneg")  # every other arm is compared with each of these
GAP_KEYS = (
    "diag_gap",
    "diag_l_global",
    "diag_l_train",
    "diag_gap_masked",
    "diag_l_global_masked",
    "diag_l_train_masked",
)
COUNT_KEYS = ("diag_anchors_no_negatives", "diag_anchors_under_half_negatives")
DENSITY_KEYS = (  # samplers.graphs.graph_density, per epoch (TBS epochs only)
    "graph_edges_per_pair",
    "graph_isolated_share",
    "graph_neighbour_in_batch",
    "graph_neighbour_in_random_batch",
)


def _mean_std(values: list[float]) -> dict:
    """Mean and sample std (ddof=1) over seeds; std None with fewer than two seeds."""
    if not values:
        return {"mean": None, "std": None, "n_seeds": 0}
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std, "n_seeds": len(values)}


def _mean_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _by_epoch(series: dict, key: str) -> dict:
    """{epoch: value} of one per-epoch series."""
    return dict(zip(series["epochs"], series[key], strict=True))


# --- loading ------------------------------------------------------------------------------


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


def _check_eval(result: dict, path: Path, languages: list[str]) -> None:
    for language in languages:
        entry = result.get("languages", {}).get(language)
        if not isinstance(entry, dict):
            raise UserError(f"{path}: no results for language '{language}'")
        ids, ranks = entry.get("query_ids"), entry.get("ranks")
        if (
            not isinstance(ids, list)
            or not isinstance(ranks, list)
            or not ranks
            or len(ids) != len(ranks)
        ):
            raise UserError(
                f"{path}: language '{language}' needs equally long, non-empty "
                "'query_ids' and 'ranks' lists"
            )
        if len(set(ids)) != len(ids):
            raise UserError(f"{path}: language '{language}' has duplicate query ids")


def load_grid(results_dir: str | Path) -> dict:
    """grid.json with each done cell's files attached: ``cell["result"]`` (the evaluate
    JSON) and ``cell["epochs"]`` ({language: epoch rows}, {} where the run directory is
    absent, e.g. results copied without runs/). Also ``grid["missing_metrics"]``."""
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
        if cell["status"] != "done":
            continue
        languages = grid["groups"][cell["group"]]["languages"]
        eval_path = results_dir / "cells" / f"{cell['id']}.json"
        if not eval_path.is_file() and cell.get("eval"):
            eval_path = _resolve(cell["eval"], results_dir)
        cell["result"] = read_json_object(eval_path)
        _check_eval(cell["result"], eval_path, languages)
        run_dir = _resolve(cell.get("run_dir", ""), results_dir)
        try:  # only for the machine lines: a run moved or damaged says "not recorded"
            info = run_dir / "run_info.json"
            cell["run_info"] = read_json_object(info) if info.is_file() else {}
        except UserError:
            cell["run_info"] = {}
        cell["epochs"] = {}
        for language in languages:
            path = run_dir / language / "metrics.jsonl"
            if path.is_file():
                cell["epochs"][language] = read_epoch_rows(path)
            else:
                grid["missing_metrics"].append(str(path))
    return grid


# --- summary ------------------------------------------------------------------------------


def _aligned_rr(cells: list[dict], language: str) -> dict[str, dict[int, np.ndarray]]:
    """{arm: {seed: per-query RR}}, every array in one query order; UserError if two cells
    ranked different query sets."""
    reference = cells[0]
    order = reference["result"]["languages"][language]["query_ids"]
    position = {qid: i for i, qid in enumerate(order)}
    per_arm: dict[str, dict[int, np.ndarray]] = {}
    for cell in cells:
        entry = cell["result"]["languages"][language]
        if set(entry["query_ids"]) != position.keys():
            raise UserError(
                f"{language}: cells {reference['id']} and {cell['id']} were "
                "evaluated on different query sets"
            )
        rr = np.empty(len(order))
        rr[[position[q] for q in entry["query_ids"]]] = reciprocal_ranks(entry["ranks"])
        per_arm.setdefault(cell["sampler"], {})[cell["seed"]] = rr
    return per_arm


def _epoch_series(cells: list[dict], languages: list[str], key: str, combine: str) -> dict:
    """Per epoch, the mean over seeds of ``key`` per language and, over languages, their
    sum (``combine="sum"``, times) or the mean over seeds and languages ("mean", gaps)."""
    epochs = sorted({r["epoch"] for c in cells for rows in c["epochs"].values() for r in rows})
    per_language = {}
    for language in languages:
        per_language[language] = [
            _mean_or_none(
                [
                    r.get(key)
                    for c in cells
                    for r in c["epochs"].get(language, [])
                    if r["epoch"] == e
                ]
            )
            for e in epochs
        ]
    total = []
    for i, e in enumerate(epochs):
        if combine == "sum":
            values = [per_language[lang][i] for lang in languages]
            total.append(None if None in values else float(sum(values)))
        else:
            total.append(
                _mean_or_none(
                    [
                        r.get(key)
                        for c in cells
                        for rows in c["epochs"].values()
                        for r in rows
                        if r["epoch"] == e
                    ]
                )
            )
    return {"epochs": epochs, "values": total, "per_language": per_language}


def _total_epoch_seconds(cell: dict, languages: list[str]) -> float | None:
    """Sum of epoch_seconds over a cell's languages and epochs; None if a log is missing."""
    if any(not cell["epochs"].get(lang) for lang in languages):
        return None
    return float(
        sum(r.get("epoch_seconds") or 0.0 for lang in languages for r in cell["epochs"][lang])
    )


def _mrr_tables(by_sampler: dict[str, list[dict]], languages: list[str]) -> tuple[dict, dict]:
    """{language: {sampler: mean/std over seeds}} and {sampler: mean/std over seeds of the
    per-seed average over languages}, in MRR points."""
    mrr: dict = {lang: {} for lang in languages}
    average = {}
    for sampler, cells in by_sampler.items():
        points = [
            {
                lang: 100
                * float(reciprocal_ranks(cell["result"]["languages"][lang]["ranks"]).mean())
                for lang in languages
            }
            for cell in cells
        ]  # one dict per seed
        seeds = [cell["seed"] for cell in cells]
        for lang in languages:
            values = [p[lang] for p in points]
            mrr[lang][sampler] = {**_mean_std(values), "per_seed": values, "seeds": seeds}
        average[sampler] = _mean_std([float(np.mean(list(p.values()))) for p in points])
    return mrr, average


def comparisons(arms: list[str], compare: list | None = None) -> list[tuple[str, str]]:
    """(arm, baseline) pairs: the group's own ``compare`` list where it has one (of the arms
    present), else every arm that is not a baseline against each baseline present."""
    if compare:
        return [(arm, base) for arm, base in compare if arm in arms and base in arms]
    return [
        (arm, base) for arm in arms if arm not in BASELINES for base in BASELINES if base in arms
    ]


def _intervals(
    by_sampler: dict[str, list[dict]], languages: list[str], bootstrap: dict, compare=None
) -> tuple[dict, dict]:
    """Per language {"arm-base": query-level bootstrap + "seeds" (``compare_over_seeds``, with
    "p_holm" across the languages)}, and {"arm-base": {"seeds": ...}} over the per-seed
    average of the languages; both on the seeds the two arms share."""
    present = [s for s, cells in by_sampler.items() if cells]
    pairs = comparisons(present, compare)
    if not pairs:
        return {}, {}
    confidence = bootstrap["confidence"]
    cells = [c for sampler_cells in by_sampler.values() for c in sampler_cells]
    rr = {lang: _aligned_rr(cells, lang) for lang in languages}
    intervals: dict = {lang: {} for lang in languages}
    average: dict = {}
    for arm, base in pairs:
        key = f"{arm}-{base}"
        seeds = sorted(set(rr[languages[0]][arm]) & set(rr[languages[0]][base]))
        per_seed_by_language = {}
        for lang in languages:
            a, b = rr[lang][arm], rr[lang][base]
            shared = seeds or None  # arms with different seed sets: compare on the shared ones
            entry = paired_bootstrap(
                100 * np.mean([a[k] for k in (shared or a)], axis=0),
                100 * np.mean([b[k] for k in (shared or b)], axis=0),
                **bootstrap,
            )
            if seeds:
                per_seed = {k: 100 * float(np.mean(a[k] - b[k])) for k in seeds}
                per_seed_by_language[lang] = per_seed
                entry["seeds"] = compare_over_seeds(per_seed, confidence)
            intervals[lang][key] = entry
        if seeds:
            adjusted = holm({lang: intervals[lang][key]["seeds"]["p"] for lang in languages})
            for lang in languages:
                intervals[lang][key]["seeds"]["p_holm"] = adjusted[lang]
            mean_over_languages = {
                k: float(np.mean([per_seed_by_language[lang][k] for lang in languages]))
                for k in seeds
            }
            average[key] = {"seeds": compare_over_seeds(mean_over_languages, confidence)}
    return intervals, average


def _time_and_gap(by_sampler: dict[str, list[dict]], languages: list[str]) -> tuple[dict, dict]:
    """Epoch and sampler seconds per epoch, the overhead over random (total epoch seconds
    over the seeds both have complete logs for) and the diag_* series per epoch."""
    random_totals = {
        c["seed"]: _total_epoch_seconds(c, languages) for c in by_sampler.get("random", [])
    }
    epoch_time, gap = {}, {}
    for sampler, cells in by_sampler.items():
        if not cells:
            continue
        seconds = _epoch_series(cells, languages, "epoch_seconds", "sum")
        known = [v for v in seconds["values"] if v is not None]
        totals = {c["seed"]: _total_epoch_seconds(c, languages) for c in cells}
        seeds = [k for k in totals if totals[k] is not None and random_totals.get(k)]
        overhead = (
            sum(totals[k] for k in seeds) / sum(random_totals[k] for k in seeds) if seeds else None
        )
        epoch_time[sampler] = {
            "epochs": seconds["epochs"],
            "seconds": seconds["values"],
            "sampler_seconds": _epoch_series(cells, languages, "sampler_seconds", "sum")["values"],
            "per_language": seconds["per_language"],
            "total_seconds": float(sum(known)) if known else None,
            "overhead_vs_random": overhead,
        }
        series = {k: _epoch_series(cells, languages, k, "mean") for k in (*GAP_KEYS, *DENSITY_KEYS)}
        series.update({k: _epoch_series(cells, languages, k, "sum") for k in COUNT_KEYS})
        gap[sampler] = {
            "epochs": series["diag_gap"]["epochs"],
            **{k: series[k]["values"] for k in (*GAP_KEYS, *COUNT_KEYS, *DENSITY_KEYS)},
            "per_language": series["diag_gap"]["per_language"],
            "per_language_masked": series["diag_gap_masked"]["per_language"],
        }
    return epoch_time, gap


def describe_machine(info: dict | None) -> str:
    """One line from a ``machine`` record (``codesearch.precision.machine_info``): 'no on AMD
    EPYC (AVX2, no native bf16), 1 thread'; records made before it existed say so."""
    if not isinstance(info, dict) or "precision" not in info:
        return "machine not recorded"
    where = info.get("gpu") or info.get("cpu_model") or "unknown CPU"
    native = "native bf16" if info.get("cpu_native_bf16") else "no native bf16"
    threads = info.get("threads")
    return (
        f"{info['precision']} on {where} ({info.get('cpu_capability', '?')}, {native}), "
        f"{threads} thread{'' if threads == 1 else 's'}"
    )


def _machines(cells: list[dict]) -> dict[str, dict[str, int]]:
    """How many cells trained and evaluated on each machine and precision."""
    out: dict[str, dict[str, int]] = {"training": {}, "evaluation": {}}
    for cell in cells:
        for kind, info in (
            ("training", cell.get("run_info", {}).get("machine")),
            ("evaluation", cell["result"].get("machine")),
        ):
            line = describe_machine(info)
            out[kind][line] = out[kind].get(line, 0) + 1
    return out


def _machine_lines(machines: dict, labels: dict[str, str]) -> list[str]:
    """'- trained: bf16 on ... (9 cells); no on ... (6 cells)' for each kind in ``labels``."""
    return [
        f"- {label}: " + "; ".join(f"{line} ({n} cells)" for line, n in machines[kind].items())
        for kind, label in labels.items()
        if machines.get(kind)
    ]


def _summarize_group(spec: dict, cells: list[dict], bootstrap: dict) -> dict:
    languages = spec["languages"]
    samplers = [*spec["samplers"], *sorted({c["sampler"] for c in cells} - set(spec["samplers"]))]
    by_sampler = {
        s: sorted((c for c in cells if c["sampler"] == s), key=lambda c: c["seed"])
        for s in samplers
    }
    mrr, average = _mrr_tables(by_sampler, languages)
    epoch_time, gap = _time_and_gap(by_sampler, languages)
    compare = spec.get("compare")
    intervals, average_intervals = _intervals(by_sampler, languages, bootstrap, compare)
    return {
        "model": spec.get("model"),
        "encoder": spec.get("encoder"),
        "published": spec.get("published"),
        "jobs": spec.get("jobs", 1),
        "threads": spec.get("threads"),
        "languages": languages,
        "samplers": samplers,
        "seeds": spec.get("seeds", []),
        "compare": compare,
        "mrr": mrr,
        "average": average,
        "bootstrap": intervals,
        "bootstrap_average": average_intervals,
        "epoch_time": epoch_time,
        "gap": gap,
        "machines": _machines(cells),
    }


def summarize_grid(
    grid: dict,
    results_dir: str | Path,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """The content of results.json (see the module docstring for the protocols)."""
    done = [c for c in grid["cells"] if c["status"] == "done"]
    missing = [
        {"id": c["id"], "status": c["status"]} for c in grid["cells"] if c["status"] != "done"
    ]
    listed = {(c["group"], c["sampler"], c["seed"]) for c in grid["cells"]}
    for name, spec in grid["groups"].items():
        for sampler in spec.get("samplers", []):
            arm = (spec.get("arms") or {}).get(sampler) or {}
            for s in arm.get("seeds") or spec.get("seeds", []):
                if (name, sampler, s) not in listed:
                    missing.append({"id": f"{name}__{sampler}__seed{s}", "status": "absent"})
    hashes = {c["id"]: c["result"].get("data_hash") for c in done}
    if len(set(hashes.values())) > 1:
        raise UserError(
            "cells were evaluated on different data (data_hash): "
            + ", ".join(f"{cid}={h}" for cid, h in hashes.items())
        )
    bootstrap = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    groups = {
        name: _summarize_group(spec, [c for c in done if c["group"] == name], bootstrap)
        for name, spec in grid["groups"].items()
    }
    return {
        "profile": grid.get("profile"),
        "description": grid.get("description"),
        "results_dir": str(results_dir),
        "data": grid.get("data"),
        "data_hash": next(iter(hashes.values()), None),
        "protocol": grid.get("protocol", "codebase"),
        "mrr_cutoff": MRR_CUTOFF,
        "std": "sample standard deviation over seeds (ddof=1); null with one seed",
        "bootstrap": {
            "method": "seeds (primary): paired t over per-seed differences, exact "
            "sign-flip p, Holm-adjusted p across languages; queries (test-set noise only): "
            "Efron percentile bootstrap paired over queries (RR averaged over seeds); MRR "
            "points",
            **bootstrap,
        },
        "wall_seconds": grid.get("wall_seconds"),
        "cells": {"done": [c["id"] for c in done], "missing": missing},
        "missing_metrics": grid.get("missing_metrics", []),
        "packages": package_versions(),
        "machines": _machines(done),
        "groups": groups,
    }


# --- plots --------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def plot_names(group: str) -> dict[str, str]:
    slug = _slug(group)
    return {
        "mrr": f"mrr_{slug}.png",
        "gap": f"gap_{slug}.png",
        "epoch_time": f"epoch_time_{slug}.png",
        "mrr_time": f"mrr_time_{slug}.png",
    }


def _figure(title: str, xlabel: str, ylabel: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    fig = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def _line_plot(series: dict, key: str, title: str, ylabel: str, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure(title, "epoch", ylabel)
    for sampler, entry in series.items():
        points = {e: v for e, v in _by_epoch(entry, key).items() if v is not None}
        if points:
            ax.plot(list(points), list(points.values()), marker="o", label=sampler)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ax.lines:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "nothing logged", ha="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)


def _mrr_time_plot(group: dict, title: str, path: Path) -> None:
    """Average MRR (mean ± std over seeds) against the arm's measured training time (total
    epoch seconds summed over languages, mean over seeds): methods at equal cost line up."""
    fig, ax = _figure(title, "training seconds (epochs, summed over languages)", "MRR (points)")
    for sampler in group["samplers"]:
        seconds = group["epoch_time"].get(sampler, {}).get("total_seconds")
        mrr = group["average"][sampler]
        if seconds is None or mrr["mean"] is None:
            continue
        ax.errorbar(seconds, mrr["mean"], yerr=mrr["std"] or 0.0, fmt="o", capsize=3)
        ax.annotate(sampler, (seconds, mrr["mean"]), textcoords="offset points", xytext=(4, 4))
    if not ax.lines:
        ax.text(0.5, 0.5, "no timed arm", ha="center", transform=ax.transAxes)
    fig.savefig(path, dpi=100)


def write_plots(summary: dict, out_dir: str | Path) -> list[Path]:
    """Per group: MRR bars with std error bars, gap per epoch, epoch time per epoch, MRR
    against training time."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for group, g in summary["groups"].items():
        names = {k: out_dir / v for k, v in plot_names(group).items()}
        fig, ax = _figure(f"{group}: MRR@{summary['mrr_cutoff']} over seeds", "", "MRR (points)")
        labels = [*g["languages"], "average"]
        width = 0.8 / max(len(g["samplers"]), 1)
        for i, sampler in enumerate(g["samplers"]):
            cells = [g["mrr"][lang][sampler] for lang in g["languages"]] + [g["average"][sampler]]
            heights = [np.nan if c["mean"] is None else c["mean"] for c in cells]
            errors = [c["std"] or 0.0 for c in cells]
            ax.bar(
                np.arange(len(labels)) + i * width,
                heights,
                width,
                yerr=errors,
                capsize=3,
                label=sampler,
            )
        ax.set_xticks(np.arange(len(labels)) + width * (len(g["samplers"]) - 1) / 2, labels)
        ax.legend()
        fig.savefig(names["mrr"], dpi=100)
        _line_plot(
            g["gap"],
            "diag_gap",
            f"{group}: L^Global - L^Train per epoch",
            "gap (mean over seeds and languages)",
            names["gap"],
        )
        _line_plot(
            g["epoch_time"],
            "seconds",
            f"{group}: epoch time",
            "seconds (summed over languages)",
            names["epoch_time"],
        )
        _mrr_time_plot(g, f"{group}: MRR against training time", names["mrr_time"])
        written += names.values()
    return written


# --- markdown -----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mean_pm(cell: dict) -> str:
    if cell["mean"] is None:
        return "missing"
    return _num(cell["mean"]) + ("" if cell["std"] is None else f" ± {_num(cell['std'])}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
    ]


def _signed(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"


def _interval(b: dict | None) -> str:
    return "–" if b is None else f"{_signed(b['diff'])} [{_signed(b['low'])}, {_signed(b['high'])}]"


def _density(series: dict, epoch: int) -> str:
    """'2.0 / 81% / 12% (3%)' for one epoch of the graph series; '–' on random epochs."""
    value = {k: _by_epoch(series, k).get(epoch) for k in DENSITY_KEYS}
    if value["graph_edges_per_pair"] is None:
        return "–"
    return (
        f"{value['graph_edges_per_pair']:.1f} / {value['graph_isolated_share']:.0%} / "
        f"{value['graph_neighbour_in_batch']:.0%} "
        f"({value['graph_neighbour_in_random_batch']:.0%})"
    )


def _t_interval(t: dict | None) -> str:
    """``_interval`` of a ``compare_over_seeds`` result; the bare mean and why where it has
    no interval (one seed, or seeds that all agree)."""
    if t is not None and t["low"] is None:
        why = "one seed" if t["n"] < 2 else "every seed the same"
        return f"{_signed(t['diff'])} (no interval: {why})"
    return _interval(t)


def _p(value: float | None) -> str:
    return "–" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _verdict(t: dict) -> str:
    """The words of the primary test: resolved, or not resolved with N seeds and what the
    design could have detected."""
    text = f"{_t_interval(t)} (paired t over {t['n']} seeds, p {_p(t['p'])}; sign-flip p " + (
        f"{_p(t['p_sign_flip'])})"
    )
    if t["resolved"]:
        return f"{text}: resolved, {'higher' if t['low'] > 0 else 'lower'}"
    detectable = t.get("detectable")
    reach = (
        f"; with this seed-to-seed spread the design detects about {detectable:.2f} points "
        "(80% power)"
        if detectable is not None
        else ""
    )
    return f"{text}: not resolved with {t['n']} seeds{reach}"


def _reading(group: dict, confidence: float) -> list[str]:
    """Facts read off the tables (no conclusions written in advance)."""
    facts = []
    average = {s: a["mean"] for s, a in group["average"].items() if a["mean"] is not None}
    if average:
        facts.append(
            "Averaged over languages: "
            + ", ".join(f"{s} {v:.2f}" for s, v in average.items())
            + f"; highest: {max(average, key=average.get)}."
        )
    published = group.get("published")
    if published and "random" in group["samplers"]:
        diffs = {
            lang: group["mrr"][lang]["random"]["mean"] - published["mrr"][lang]
            for lang in group["languages"]
            if lang in published["mrr"] and group["mrr"][lang]["random"]["mean"] is not None
        }
        if diffs:
            facts.append(
                f"Our random baseline minus the published numbers ({published['source']}): "
                + ", ".join(f"{lang} {_signed(d)}" for lang, d in diffs.items())
                + "; read the sampler differences against a baseline that reproduced."
            )
    for arm, base in comparisons(group["samplers"], group.get("compare")):
        key = f"{arm}-{base}"
        rows = {lang: b[key] for lang, b in group["bootstrap"].items() if key in b}
        if not rows:
            continue
        by_seeds = {lang: b["seeds"] for lang, b in rows.items() if b.get("seeds")}
        if by_seeds and next(iter(by_seeds.values()))["n"] >= 2:
            above = [lang for lang, t in by_seeds.items() if t["resolved"] and t["low"] > 0]
            below = [lang for lang, t in by_seeds.items() if t["resolved"] and t["high"] < 0]
            n = next(iter(by_seeds.values()))["n"]
            facts.append(
                f"Per language, the {confidence:.0%} paired t interval over {n} seeds of "
                f"{arm} − {base} excludes 0 in {len(above) + len(below)} of {len(by_seeds)} "
                f"({arm} higher: {', '.join(above) or 'none'}; lower: "
                f"{', '.join(below) or 'none'}); the others are not resolved with {n} seeds."
            )
        overall = group.get("bootstrap_average", {}).get(key, {}).get("seeds")
        if overall and overall["n"] >= 2:
            facts.append(f"Averaged over languages, {arm} − {base}: {_verdict(overall)}.")
        queries = [lang for lang, b in rows.items() if b["low"] > 0 or b["high"] < 0]
        facts.append(
            f"Test-set noise alone (queries) would separate {arm} and {base} in "
            f"{len(queries)} of {len(rows)} languages; it leaves training noise out."
        )
    overheads = {
        s: t["overhead_vs_random"]
        for s, t in group["epoch_time"].items()
        if s != "random" and t["overhead_vs_random"] is not None
    }
    if overheads:
        facts.append(
            "Total epoch time relative to random: "
            + ", ".join(f"{s} {r:.2f}x" for s, r in overheads.items())
            + "."
        )
    for key, what in (("diag_gap", "gap"), ("diag_gap_masked", "masked gap")):
        last = {
            s: g[key][-1] for s, g in group["gap"].items() if g.get(key) and g[key][-1] is not None
        }
        if last:
            facts.append(
                f"Last-epoch {what} L^Global − L^Train (smaller means batches closer "
                "to the global loss): "
                + ", ".join(f"{s} {v:.3f}" for s, v in last.items())
                + f"; smallest: {min(last, key=last.get)}."
            )
    for sampler, series in group["gap"].items():
        edges = [v for v in series.get("graph_edges_per_pair") or [] if v is not None]
        if edges:
            last = {k: [v for v in series[k] if v is not None][-1] for k in DENSITY_KEYS}
            facts.append(
                f"The {sampler} graph (last TBS epoch): {last['graph_edges_per_pair']:.1f} "
                f"edges per pair, {last['graph_isolated_share']:.0%} of pairs without an edge; "
                f"{last['graph_neighbour_in_batch']:.0%} of pairs shared their batch with a "
                f"graph neighbour ({last['graph_neighbour_in_random_batch']:.0%} under the "
                "random order)."
            )
    return facts


def describe_model(group: dict) -> str:
    """What a group trained: the nbow encoder only borrows the named model's tokenizer."""
    if group.get("encoder") == "nbow":
        return f"encoder nbow from scratch, tokenizer of {group['model']}"
    return f"model {group['model']}, encoder {group.get('encoder')}"


def _group_section(
    name: str, g: dict, metric: str, confidence: float, images: bool = True
) -> list[str]:
    samplers = g["samplers"]
    n_seeds = sorted({c["n_seeds"] for c in g["average"].values()})
    lines = [
        f"## Group `{name}` ({describe_model(g)})",
        "",
        f"{metric}, mean ± sample std over seeds (seeds per sampler: "
        f"{', '.join(map(str, n_seeds))}; no std with one seed).",
        "",
    ]
    machine_lines = _machine_lines(
        g.get("machines", {}), {"training": "training", "evaluation": "evaluation"}
    )
    lines += [*machine_lines, ""] if machine_lines else []
    rows = [[lang, *(_mean_pm(g["mrr"][lang][s]) for s in samplers)] for lang in g["languages"]]
    rows.append(["**average**", *(_mean_pm(g["average"][s]) for s in samplers)])
    header = ["language", *samplers]
    published = g.get("published")
    if published:  # beside the random baseline: did it reproduce, before any TBS difference?
        at = samplers.index("random") + 2 if "random" in samplers else 1
        header.insert(at, "published")
        numbers = [published["mrr"].get(lang) for lang in g["languages"]]
        mean = None if None in numbers else float(np.mean(numbers))
        for row, number in zip(rows, [*numbers, mean], strict=True):
            row.insert(at, _num(number, 1))
    lines += _table(header, rows)
    if published:
        lines += [f"published: {published['source']}", ""]

    pairs = [
        (arm, base)
        for arm, base in comparisons(samplers, g.get("compare"))
        if any(f"{arm}-{base}" in b for b in g["bootstrap"].values())
    ]
    if pairs:
        lines += [
            f"Differences in MRR points. **seeds** (primary): paired t over the per-seed "
            f"differences, {confidence:.0%} interval, its p Holm-adjusted across the languages, "
            "and the exact sign-flip p (which cannot go below 2/2^seeds); **resolved** only "
            f"when the t interval excludes 0. **queries** ({confidence:.0%}, test-set noise "
            "only): paired bootstrap over test queries, each query's reciprocal rank averaged "
            "over seeds.",
            "",
        ]
        rows = []
        for arm, base in pairs:
            key, label = f"{arm}-{base}", f"{arm} − {base}"
            entries = [(lang, b[key], b[key].get("seeds")) for lang, b in g["bootstrap"].items()]
            overall = g.get("bootstrap_average", {}).get(key)
            if overall:
                entries.append(("**average**", None, overall["seeds"]))
            for lang, entry, t in entries:
                rows.append(
                    [
                        label,
                        lang,
                        _t_interval(t),
                        "–" if t is None else _p(t["p"]),
                        "–" if t is None else _p(t.get("p_holm")),
                        "–" if t is None else _p(t["p_sign_flip"]),
                        "–" if t is None else ("yes" if t["resolved"] else "no"),
                        "" if t is None else ", ".join(_signed(v) for v in t["per_seed"].values()),
                        "" if entry is None else _interval(entry),
                        "" if entry is None else _num(entry["n"], 0),
                    ]
                )
        lines += _table(
            [
                "comparison",
                "language",
                "seeds: paired t",
                "p",
                "p Holm",
                "p sign-flip",
                "resolved",
                "per seed",
                "queries",
                "test queries",
            ],
            rows,
        )

    epochs = sorted({e for t in g["epoch_time"].values() for e in t["epochs"]})
    if epochs:
        shared = (
            f" Cells ran {g['jobs']} at a time ({g['threads']} thread(s) each), so "
            "these times include contention between cells; `make bench` measures the "
            "overhead side by side."
            if g.get("jobs", 1) > 1
            else ""
        )
        lines += [
            "Seconds per epoch (of which in the sampler), summed over languages, mean "
            "over seeds; epochs numbered as in metrics.jsonl." + shared,
            "",
        ]
        rows = []
        for s, t in g["epoch_time"].items():
            seconds, in_sampler = _by_epoch(t, "seconds"), _by_epoch(t, "sampler_seconds")
            rows.append(
                [
                    s,
                    *(f"{_num(seconds.get(e), 1)} ({_num(in_sampler.get(e), 1)})" for e in epochs),
                    _num(t["total_seconds"], 1),
                    _num(t["overhead_vs_random"]),
                ]
            )
        lines += _table(["sampler", *(f"epoch {e}" for e in epochs), "total", "× random"], rows)
        lines += [
            "Gap L^Global − L^Train per epoch, mean over seeds and languages: without "
            "the false-negative mask / with it (the loss the model trains on leaves out "
            "candidates with the anchor's query or code text):",
            "",
        ]
        rows = [
            [
                s,
                *(
                    f"{_num(_by_epoch(t, 'diag_gap').get(e), 3)} / "
                    f"{_num(_by_epoch(t, 'diag_gap_masked').get(e), 3)}"
                    for e in epochs
                ),
            ]
            for s, t in g["gap"].items()
        ]
        lines += _table(["sampler", *(f"epoch {e}" for e in epochs)], rows)
        if any(t.get("diag_anchors_no_negatives") for t in g["gap"].values()):
            lines += [
                "Anchors the mask leaves with no negative / with fewer than half of "
                "their in-batch negatives, per epoch (summed over languages, mean over "
                "seeds):",
                "",
            ]
            rows = [
                [
                    s,
                    *(
                        f"{_num(_by_epoch(t, 'diag_anchors_no_negatives').get(e), 1)} / "
                        f"{_num(_by_epoch(t, 'diag_anchors_under_half_negatives').get(e), 1)}"
                        for e in epochs
                    ),
                ]
                for s, t in g["gap"].items()
            ]
            lines += _table(["sampler", *(f"epoch {e}" for e in epochs)], rows)
        graphs = {s: t for s, t in g["gap"].items() if any(t.get("graph_edges_per_pair") or [])}
        if graphs:
            lines += [
                "The TBS graph per epoch, mean over seeds and languages: edges per pair / "
                "share of pairs without an edge / share of pairs with a graph neighbour in "
                "their batch, under TBS and (in brackets) under that epoch's random order:",
                "",
            ]
            rows = [[s, *(_density(t, e) for e in epochs)] for s, t in graphs.items()]
            lines += _table(["sampler", *(f"epoch {e}" for e in epochs)], rows)

    names = plot_names(name)
    if images:
        lines += [
            f"![MRR](plots/{names['mrr']}) ![gap](plots/{names['gap']}) "
            f"![epoch time](plots/{names['epoch_time']}) "
            f"![MRR against time](plots/{names['mrr_time']})",
            "",
        ]
    return lines + [
        "**How to read this.** " + " ".join(_reading(g, confidence) or ["No comparisons."]),
        "",
    ]


def format_report(summary: dict, images: bool = True) -> str:
    """report.md: per group the MRR table, bootstrap intervals, epoch time, gap, plots and
    a paragraph of facts read off them; then the missing cells and logs. ``images=False``
    leaves out the plot links (relative to the results directory), e.g. in a notebook."""
    metric = f"MRR@{summary['mrr_cutoff']} ({summary['protocol']} protocol)"
    wall = summary.get("wall_seconds")
    lines = [
        f"# Sampler comparison: profile `{summary['profile']}`",
        "",
        *([summary["description"], ""] if summary.get("description") else []),
        f"- data: `{summary['data']}` (data_hash `{summary['data_hash']}`)",
        f"- metric: {metric}, in points (x100)",
        f"- cells: {len(summary['cells']['done'])} done, "
        f"{len(summary['cells']['missing'])} missing; wall time "
        f"{_num(wall / 60 if wall is not None else None, 1)} min",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in summary["packages"].items()),
        *_machine_lines(
            summary.get("machines", {}), {"training": "trained", "evaluation": "evaluated"}
        ),
        "",
    ]
    for name, g in summary["groups"].items():
        lines += _group_section(name, g, metric, summary["bootstrap"]["confidence"], images)
    if summary["cells"]["missing"]:
        lines += [
            "## Missing cells",
            "",
            *(f"- `{c['id']}`: {c['status']}" for c in summary["cells"]["missing"]),
            "",
        ]
    if summary["missing_metrics"]:
        lines += [
            "## Missing training logs (no time or gap for these)",
            "",
            *(f"- `{p}`" for p in summary["missing_metrics"]),
            "",
        ]
    return "\n".join(lines)


# --- entry point --------------------------------------------------------------------------


def write_report(results_dir: str | Path) -> dict:
    """Load, summarise, write results.json (atomically), plots/ and report.md."""
    results_dir = Path(results_dir)
    summary = summarize_grid(load_grid(results_dir), results_dir)
    write_json_atomic(results_dir / "results.json", summary)
    write_plots(summary, results_dir / "plots")
    tmp = results_dir / "report.md.tmp"
    tmp.write_text(format_report(summary), encoding="utf-8")
    tmp.replace(results_dir / "report.md")
    return summary


if __name__ == "__main__":  # `python -m codesearch.report DIR` is `codesearch report DIR`
    from codesearch.cli import main

    sys.exit(main(["report", *sys.argv[1:]]))
