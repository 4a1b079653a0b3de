"""The markdown tables of a report and the number formats they share with its sentences."""

from __future__ import annotations

import numpy as np

from codesearch.report.summary import DENSITY_KEYS, by_epoch, comparisons, describe_machine


def num(value: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals; "–" for None."""
    return "–" if value is None else f"{value:.{digits}f}"


def mean_pm(cell: dict) -> str:
    if cell["mean"] is None:
        return "missing"
    return num(cell["mean"]) + ("" if cell["std"] is None else f" ± {num(cell['std'])}")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
    ]


def signed(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"


def interval(b: dict | None) -> str:
    return "–" if b is None else f"{signed(b['diff'])} [{signed(b['low'])}, {signed(b['high'])}]"


def t_interval(t: dict | None) -> str:
    """``interval`` of a ``compare_over_seeds`` result; the bare mean and why where it has
    no interval (one seed, or seeds that all agree)."""
    if t is not None and t["low"] is None:
        why = "one seed" if t["n"] < 2 else "every seed the same"
        return f"{signed(t['diff'])} (no interval: {why})"
    return interval(t)


def p_value(value: float | None) -> str:
    return "–" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def _density(series: dict, epoch: int) -> str:
    """'2.0 / 81% / 12% (3%)' for one epoch of the graph series; '–' on random epochs."""
    value = {k: by_epoch(series, k).get(epoch) for k in DENSITY_KEYS}
    if value["graph_edges_per_pair"] is None:
        return "–"
    return (
        f"{value['graph_edges_per_pair']:.1f} / {value['graph_isolated_share']:.0%} / "
        f"{value['graph_neighbour_in_batch']:.0%} "
        f"({value['graph_neighbour_in_random_batch']:.0%})"
    )


def mrr_table(g: dict, metric: str) -> list[str]:
    """MRR per language and arm (mean ± std over seeds) and their average, with the
    published numbers beside the random baseline where the group has them."""
    samplers = g["samplers"]
    n_seeds = sorted({c["n_seeds"] for c in g["average"].values()})
    lines = [
        f"{metric}, mean ± sample std over seeds (seeds per sampler: "
        f"{', '.join(map(str, n_seeds))}; no std with one seed).",
        "",
    ]
    machines = machine_lines(
        g.get("machines", {}), {"training": "training", "evaluation": "evaluation"}
    )
    lines += [*machines, ""] if machines else []
    rows = [[lang, *(mean_pm(g["mrr"][lang][s]) for s in samplers)] for lang in g["languages"]]
    rows.append(["**average**", *(mean_pm(g["average"][s]) for s in samplers)])
    header = ["language", *samplers]
    published = g.get("published")
    if published:  # beside the random baseline: did it reproduce, before any TBS difference?
        at = samplers.index("random") + 2 if "random" in samplers else 1
        header.insert(at, "published")
        numbers = [published["mrr"].get(lang) for lang in g["languages"]]
        mean = None if None in numbers else float(np.mean(numbers))
        for row, number in zip(rows, [*numbers, mean], strict=True):
            row.insert(at, num(number, 1))
    if "zero_shot" in g:  # a reference beside the arms, outside their tests
        zero = g["zero_shot"]
        header.insert(1, "zero-shot")
        numbers = [*(zero["mrr"][lang] for lang in g["languages"]), zero["average"]] if zero else []
        for row, number in zip(rows, numbers or [None] * len(rows), strict=True):
            row.insert(1, "missing" if number is None else num(number))
    lines += table(header, rows)
    if published:
        lines += [f"published: {published['source']}", ""]
    if "zero_shot" in g:
        lines += [zero_shot_note(g["zero_shot"]), ""]
    return lines


def zero_shot_note(zero: dict | None) -> str:
    """What the zero-shot column is, and where it ran."""
    if zero is None:
        return "zero-shot: the untrained base model's evaluation is missing."
    return (
        f"zero-shot: `{zero['model']}` evaluated untrained, once (deterministic), with the "
        f"group's lengths ({describe_machine(zero.get('machine'))}); a reference, not part of "
        "the comparisons."
    )


def machine_lines(machines: dict, labels: dict[str, str]) -> list[str]:
    """'- trained: bf16 on ... (9 cells); no on ... (6 cells)' for each kind in ``labels``."""
    return [
        f"- {label}: " + "; ".join(f"{line} ({n} cells)" for line, n in machines[kind].items())
        for kind, label in labels.items()
        if machines.get(kind)
    ]


def compared_pairs(g: dict) -> list[tuple[str, str]]:
    """The (arm, baseline) pairs of a group that have an interval in some language."""
    return [
        (arm, base)
        for arm, base in comparisons(g["samplers"], g.get("compare"))
        if any(f"{arm}-{base}" in b for b in g["bootstrap"].values())
    ]


def comparison_row(label: str, lang: str, entry: dict | None, t: dict | None) -> list[str]:
    """One language (or the average) of one comparison: seeds (t) first, then queries."""
    return [
        label,
        lang,
        t_interval(t),
        "–" if t is None else p_value(t["p"]),
        "–" if t is None else p_value(t.get("p_holm")),
        "–" if t is None else p_value(t["p_sign_flip"]),
        "–" if t is None else ("yes" if t["resolved"] else "no"),
        "" if t is None else ", ".join(signed(v) for v in t["per_seed"].values()),
        "" if entry is None else interval(entry),
        "" if entry is None else num(entry["n"], 0),
    ]


def comparison_table(g: dict, confidence: float) -> list[str]:
    """Each compared pair per language and averaged over languages: the paired t over seeds
    (primary) and the query bootstrap (test-set noise only); [] without a pair."""
    pairs = compared_pairs(g)
    if not pairs:
        return []
    lines = [
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
        rows += [comparison_row(label, lang, entry, t) for lang, entry, t in entries]
    header = ["comparison", "language", "seeds: paired t", "p", "p Holm", "p sign-flip"]
    header += ["resolved", "per seed", "queries", "test queries"]
    return lines + table(header, rows)


def _per_epoch(caption: str, series: dict, cell, epochs: list[int]) -> list[str]:
    """A caption and a table of one row per arm, ``cell(series, epoch)`` per epoch column."""
    rows = [[s, *(cell(t, e) for e in epochs)] for s, t in series.items()]
    return [caption, "", *table(["sampler", *(f"epoch {e}" for e in epochs)], rows)]


def _pair(first: str, second: str, digits: int):
    """'first / second' of one epoch of two series."""
    return lambda t, e: (
        f"{num(by_epoch(t, first).get(e), digits)} / {num(by_epoch(t, second).get(e), digits)}"
    )


def epoch_time_table(g: dict, epochs: list[int]) -> list[str]:
    """Seconds per epoch (in the sampler), the total and the ratio over random."""
    shared = (
        f" Cells ran {g['jobs']} at a time ({g['threads']} thread(s) each), so "
        "these times include contention between cells; `make bench` measures the "
        "overhead side by side."
        if g.get("jobs", 1) > 1
        else ""
    )
    lines = [
        "Seconds per epoch (of which in the sampler), summed over languages, mean "
        "over seeds; epochs numbered as in metrics.jsonl." + shared,
        "",
    ]
    rows = []
    for s, t in g["epoch_time"].items():
        seconds, in_sampler = by_epoch(t, "seconds"), by_epoch(t, "sampler_seconds")
        rows.append(
            [
                s,
                *(f"{num(seconds.get(e), 1)} ({num(in_sampler.get(e), 1)})" for e in epochs),
                num(t["total_seconds"], 1),
                num(t["overhead_vs_random"]),
            ]
        )
    return lines + table(["sampler", *(f"epoch {e}" for e in epochs), "total", "× random"], rows)


def epoch_tables(g: dict) -> list[str]:
    """Time, the gap, the anchors the mask empties and the TBS graph, per epoch; [] when no
    training log was read."""
    epochs = sorted({e for t in g["epoch_time"].values() for e in t["epochs"]})
    if not epochs:
        return []
    lines = epoch_time_table(g, epochs)
    lines += _per_epoch(
        "Gap L^Global − L^Train per epoch, mean over seeds and languages: without "
        "the false-negative mask / with it (the loss the model trains on leaves out "
        "candidates with the anchor's query or code text):",
        g["gap"],
        _pair("diag_gap", "diag_gap_masked", 3),
        epochs,
    )
    if any(t.get("diag_anchors_no_negatives") for t in g["gap"].values()):
        lines += _per_epoch(
            "Anchors the mask leaves with no negative / with fewer than half of "
            "their in-batch negatives, per epoch (summed over languages, mean over "
            "seeds):",
            g["gap"],
            _pair("diag_anchors_no_negatives", "diag_anchors_under_half_negatives", 1),
            epochs,
        )
    graphs = {s: t for s, t in g["gap"].items() if any(t.get("graph_edges_per_pair") or [])}
    if graphs:
        lines += _per_epoch(
            "The TBS graph per epoch, mean over seeds and languages: edges per pair / "
            "share of pairs without an edge / share of pairs with a graph neighbour in "
            "their batch, under TBS and (in brackets) under that epoch's random order:",
            graphs,
            _density,
            epochs,
        )
    return lines
