"""The content of results.json: MRR per language and arm over seeds, the comparisons of arms
(``codesearch.significance``), epoch and sampler time, the gap and graph series per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codesearch.errors import UserError
from codesearch.metrics import reciprocal_ranks
from codesearch.report.load import gold_scores
from codesearch.report.sts_summary import (
    GoldScores,
    comparison_tests,
    spearman_tables,
    validation_series,
    zero_shot_row,
)
from codesearch.reproduce.profile import Group
from codesearch.reproduce.reference import ZERO_SHOT
from codesearch.run_dir import package_versions
from codesearch.significance import compare_over_seeds, holm, mean_std, paired_bootstrap

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


MRR_METHOD = (
    "seeds (primary): paired t over per-seed differences, exact sign-flip p, Holm-adjusted p "
    "across languages; queries (test-set noise only): Efron percentile bootstrap paired over "
    "queries (RR averaged over seeds); MRR points"
)
STS_METHOD = (
    "seeds (primary): paired t over per-seed differences, exact sign-flip p, Holm-adjusted p "
    "across languages (per genre: across the language's genres); pairs (test-set noise only): "
    "Efron percentile bootstrap over test pairs, every seed's Spearman of both arms recomputed "
    "on each resample and averaged over seeds; Spearman x 100 points"
)


def gold_split(done: list[dict]) -> str:
    """The split the cells were evaluated on (test unless they say otherwise)."""
    return next(iter(sorted({c["result"].get("split", "test") for c in done})), "test")


def _mean_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def by_epoch(series: dict, key: str) -> dict:
    """{epoch: value} of one per-epoch series."""
    return dict(zip(series["epochs"], series[key], strict=True))


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


def epoch_series(cells: list[dict], languages: list[str], key: str, combine: str) -> dict:
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
            mrr[lang][sampler] = {**mean_std(values), "per_seed": values, "seeds": seeds}
        average[sampler] = mean_std([float(np.mean(list(p.values()))) for p in points])
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


def time_and_gap(by_sampler: dict[str, list[dict]], languages: list[str]) -> tuple[dict, dict]:
    """Epoch and sampler seconds per epoch, the overhead over random (total epoch seconds
    over the seeds both have complete logs for) and the diag_* series per epoch."""
    random_totals = {
        c["seed"]: _total_epoch_seconds(c, languages) for c in by_sampler.get("random", [])
    }
    epoch_time, gap = {}, {}
    for sampler, cells in by_sampler.items():
        if not cells:
            continue
        seconds = epoch_series(cells, languages, "epoch_seconds", "sum")
        known = [v for v in seconds["values"] if v is not None]
        totals = {c["seed"]: _total_epoch_seconds(c, languages) for c in cells}
        seeds = [k for k in totals if totals[k] is not None and random_totals.get(k)]
        overhead = (
            sum(totals[k] for k in seeds) / sum(random_totals[k] for k in seeds) if seeds else None
        )
        epoch_time[sampler] = {
            "epochs": seconds["epochs"],
            "seconds": seconds["values"],
            "sampler_seconds": epoch_series(cells, languages, "sampler_seconds", "sum")["values"],
            "per_language": seconds["per_language"],
            "total_seconds": float(sum(known)) if known else None,
            "overhead_vs_random": overhead,
        }
        series = {k: epoch_series(cells, languages, k, "mean") for k in (*GAP_KEYS, *DENSITY_KEYS)}
        series.update({k: epoch_series(cells, languages, k, "sum") for k in COUNT_KEYS})
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


def count_machines(cells: list[dict]) -> dict[str, dict[str, int]]:
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


def _zero_shot_mrr(reference: dict | None, languages: list[str]) -> dict | None:
    """A code-search group's zero-shot evaluation as one row of MRR points; None if not
    done."""
    if reference is None or reference.get("status") != "done":
        return None
    rows = reference["result"]["languages"]
    mrr = {lang: 100 * float(reciprocal_ranks(rows[lang]["ranks"]).mean()) for lang in languages}
    return {
        "model": reference.get("model") or reference["result"].get("model"),
        "mrr": mrr,
        "average": float(np.mean(list(mrr.values()))),
        "machine": reference["result"].get("machine"),
    }


def _summarize_group(
    group: Group,
    cells: list[dict],
    bootstrap: dict,
    reference: dict | None = None,
    protocol: str = "codebase",
    gold: GoldScores | None = None,
) -> dict:
    """One group's entry of results.json: MRR (or for the sts protocol, Spearman: ``gold``
    gives the test pairs' gold scores for the bootstrap over pairs), the comparisons, time,
    gap and machines; ``zero_shot`` (the reference row) only for a group that has one."""
    languages = group.languages
    samplers = [*group.samplers, *sorted({c["sampler"] for c in cells} - set(group.samplers))]
    by_sampler = {
        s: sorted((c for c in cells if c["sampler"] == s), key=lambda c: c["seed"])
        for s in samplers
    }
    epoch_time, gap = time_and_gap(by_sampler, languages)
    common = {
        "model": group.model,
        "encoder": group.encoder,
        "published": group.published,
        "jobs": group.jobs,
        "threads": group.threads,
        "languages": languages,
        "samplers": samplers,
        "seeds": group.seeds,
        "compare": group.compare,
    }
    if protocol == "sts":
        pairs = comparisons([s for s in samplers if by_sampler[s]], group.compare)
        return {
            **common,
            "metric": "spearman",
            **spearman_tables(by_sampler, languages),
            **({"zero_shot": zero_shot_row(reference, languages)} if group.zero_shot else {}),
            **comparison_tests(by_sampler, languages, pairs, bootstrap, gold or _no_gold),
            "valid": validation_series(by_sampler, languages, epoch_series),
            "epoch_time": epoch_time,
            "gap": gap,
            "machines": count_machines(cells),
        }
    mrr, average = _mrr_tables(by_sampler, languages)
    intervals, average_intervals = _intervals(by_sampler, languages, bootstrap, group.compare)
    return {
        **common,
        "mrr": mrr,
        "average": average,
        "bootstrap": intervals,
        "bootstrap_average": average_intervals,
        "epoch_time": epoch_time,
        "gap": gap,
        "machines": count_machines(cells),
        **({"zero_shot": _zero_shot_mrr(reference, languages)} if group.zero_shot else {}),
    }


def _no_gold(language: str, ids: list[str]) -> tuple[None, str]:
    return None, "no gold scores given"


def _absent_cells(grid: dict) -> list[dict]:
    """Cells a group plans that grid.json does not list (e.g. a profile grown since), and
    zero-shot references likewise."""
    listed = {(c["group"], c["sampler"], c["seed"]) for c in grid["cells"]}
    absent = [
        {"id": f"{name}__{label}__seed{s}", "status": "absent"}
        for name, group in grid["groups"].items()
        for label, arm in group.arms.items()
        for s in arm.seeds
        if (name, label, s) not in listed
    ]
    referenced = {r["group"] for r in grid.get("references", [])}
    return absent + [
        {"id": f"{name}__{ZERO_SHOT}", "status": "absent"}
        for name, group in grid["groups"].items()
        if group.zero_shot and name not in referenced
    ]


def _gold_loader(grid: dict, done: list[dict], data_hash, results_dir: Path) -> GoldScores:
    """gold(language, pair ids) for the sts bootstrap over pairs: the scores from the data
    directory of grid.json, on the split the cells were evaluated on."""
    splits = {c["result"].get("split", "test") for c in done}
    if len(splits) > 1:
        raise UserError(f"cells were evaluated on different splits: {', '.join(sorted(splits))}")
    split = gold_split(done)

    def gold(language: str, ids: list[str]):
        return gold_scores(grid.get("data"), language, split, ids, data_hash, results_dir)

    return gold


def summarize_grid(
    grid: dict,
    results_dir: str | Path,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """The content of results.json from ``load_grid``'s grid (see ``codesearch.report`` for
    the protocols)."""
    protocol = grid.get("protocol", "codebase")
    references = grid.get("references", [])
    done = [c for c in grid["cells"] if c["status"] == "done"]
    missing = [
        {"id": c["id"], "status": c["status"]}
        for c in [*references, *grid["cells"]]
        if c["status"] != "done"
    ]
    missing += _absent_cells(grid)
    done_references = {r["group"]: r for r in references if r["status"] == "done"}
    hashes = {c["id"]: c["result"].get("data_hash") for c in [*done_references.values(), *done]}
    if len(set(hashes.values())) > 1:
        raise UserError(
            "cells were evaluated on different data (data_hash): "
            + ", ".join(f"{cid}={h}" for cid, h in hashes.items())
        )
    data_hash = next(iter(hashes.values()), None)
    bootstrap = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    sts = protocol == "sts"
    gold = _gold_loader(grid, done, data_hash, Path(results_dir)) if sts else None
    groups = {
        name: _summarize_group(
            group,
            [c for c in done if c["group"] == name],
            bootstrap,
            done_references.get(name),
            protocol,
            gold,
        )
        for name, group in grid["groups"].items()
    }
    return {
        "profile": grid.get("profile"),
        "description": grid.get("description"),
        "results_dir": str(results_dir),
        "data": grid.get("data"),
        "data_hash": data_hash,
        "protocol": protocol,
        **(
            {"metric": "spearman", "split": gold_split(done)} if sts else {"mrr_cutoff": MRR_CUTOFF}
        ),
        "std": "sample standard deviation over seeds (ddof=1); null with one seed",
        "bootstrap": {"method": STS_METHOD if sts else MRR_METHOD, **bootstrap},
        "wall_seconds": grid.get("wall_seconds"),
        "cells": {"done": [c["id"] for c in done], "missing": missing},
        "missing_metrics": grid.get("missing_metrics", []),
        "packages": package_versions(),
        "machines": count_machines(done),
        "groups": groups,
    }
