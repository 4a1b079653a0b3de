"""The sentences of a report: what a group trained and the facts read off its tables (no
conclusions written in advance)."""

from __future__ import annotations

from codesearch.report.summary import DENSITY_KEYS, comparisons
from codesearch.report.tables import p_value, signed, t_interval


def describe_model(group: dict) -> str:
    """What a group trained: the nbow encoder only borrows the named model's tokenizer."""
    if group.get("encoder") == "nbow":
        return f"encoder nbow from scratch, tokenizer of {group['model']}"
    return f"model {group['model']}, encoder {group.get('encoder')}"


def verdict(t: dict) -> str:
    """The words of the primary test: resolved, or not resolved with N seeds and what the
    design could have detected."""
    text = f"{t_interval(t)} (paired t over {t['n']} seeds, p {p_value(t['p'])}; sign-flip p " + (
        f"{p_value(t['p_sign_flip'])})"
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


def _averages(group: dict) -> list[str]:
    average = {s: a["mean"] for s, a in group["average"].items() if a["mean"] is not None}
    if not average:
        return []
    return [
        "Averaged over languages: "
        + ", ".join(f"{s} {v:.2f}" for s, v in average.items())
        + f"; highest: {max(average, key=average.get)}."
    ]


def _against_published(group: dict, metric: str = "mrr") -> list[str]:
    """Did the random baseline reproduce the published numbers (``metric``: mrr, or spearman
    for an sts group)?"""
    published = group.get("published")
    if not published or "random" not in group["samplers"] or metric not in published:
        return []
    diffs = {
        lang: group[metric][lang]["random"]["mean"] - published[metric][lang]
        for lang in group["languages"]
        if lang in published[metric] and group[metric][lang]["random"]["mean"] is not None
    }
    if not diffs:
        return []
    return [
        f"Our random baseline minus the published numbers ({published['source']}): "
        + ", ".join(f"{lang} {signed(d)}" for lang, d in diffs.items())
        + "; read the sampler differences against a baseline that reproduced."
    ]


def _comparison(group: dict, arm: str, base: str, confidence: float) -> list[str]:
    """arm − base: how many languages the t interval resolves, the average's verdict, and
    what test-set noise alone would separate."""
    key = f"{arm}-{base}"
    rows = {lang: b[key] for lang, b in group["bootstrap"].items() if key in b}
    if not rows:
        return []
    facts = []
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
        facts.append(f"Averaged over languages, {arm} − {base}: {verdict(overall)}.")
    queries = [lang for lang, b in rows.items() if b["low"] > 0 or b["high"] < 0]
    facts.append(
        f"Test-set noise alone (queries) would separate {arm} and {base} in "
        f"{len(queries)} of {len(rows)} languages; it leaves training noise out."
    )
    return facts


def _overheads(group: dict) -> list[str]:
    overheads = {
        s: t["overhead_vs_random"]
        for s, t in group["epoch_time"].items()
        if s != "random" and t["overhead_vs_random"] is not None
    }
    if not overheads:
        return []
    return [
        "Total epoch time relative to random: "
        + ", ".join(f"{s} {r:.2f}x" for s, r in overheads.items())
        + "."
    ]


def _gaps(group: dict) -> list[str]:
    """The last epoch's gap per arm, without and with the false-negative mask."""
    facts = []
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
    return facts


def _graphs(group: dict) -> list[str]:
    """The last TBS epoch's graph density, per arm that built a graph."""
    facts = []
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


def training_facts(group: dict) -> list[str]:
    """Epoch time over random, the last gaps and the TBS graph: the same for every metric."""
    return _overheads(group) + _gaps(group) + _graphs(group)


def reading(group: dict, confidence: float) -> list[str]:
    """Facts read off the tables (no conclusions written in advance)."""
    if group.get("metric") == "spearman":
        return sts_reading(group, confidence)
    facts = _averages(group) + _against_published(group)
    for arm, base in comparisons(group["samplers"], group.get("compare")):
        facts += _comparison(group, arm, base, confidence)
    return facts + training_facts(group)


def _sts_levels(group: dict) -> list[str]:
    """Spearman of each arm (the one language, or the average over languages) and how far
    fine-tuning moved it from the zero-shot reference."""
    languages = group["languages"]
    if len(languages) == 1:
        where = f"{languages[0]} (all test pairs)"
        means = {s: a["mean"] for s, a in group["spearman"][languages[0]].items()}
        zero = (group.get("zero_shot") or {}).get("spearman", {}).get(languages[0])
    else:
        where = "averaged over languages"
        means = {s: a["mean"] for s, a in group["average"].items()}
        zero = (group.get("zero_shot") or {}).get("average")
    means = {s: v for s, v in means.items() if v is not None}
    if not means:
        return []
    levels = ([f"zero-shot {zero:.2f}"] if zero is not None else []) + [
        f"{s} {v:.2f}" for s, v in means.items()
    ]
    facts = [
        f"Spearman x 100 on {where}: {', '.join(levels)}; highest fine-tuned: "
        f"{max(means, key=means.get)}."
    ]
    if zero is not None:
        facts.append(
            "Fine-tuned minus zero-shot Spearman (mean over seeds): "
            + ", ".join(f"{s} {signed(v - zero)}" for s, v in means.items())
            + "."
        )
    return facts


def _sts_comparison(group: dict, arm: str, base: str, confidence: float) -> list[str]:
    """arm − base in Spearman points: each language's verdict over seeds, how many genres
    the t interval resolves, and what test-set noise alone (pairs) would separate."""
    key = f"{arm}-{base}"
    facts = []
    for lang, tests in group["bootstrap"].items():
        entry = tests.get(key)
        if entry is None:
            continue
        t = entry.get("seeds")
        if t and t["n"] >= 2:
            facts.append(f"On {lang} (all pairs), Spearman {arm} − {base}: {verdict(t)}.")
        genres = {
            g: tests_[key]["seeds"]
            for g, tests_ in group["genre_tests"].get(lang, {}).items()
            if key in tests_
        }
        n = next(iter(genres.values()))["n"] if genres else 0
        if n >= 2:
            above = [g for g, t in genres.items() if t["resolved"] and t["low"] > 0]
            below = [g for g, t in genres.items() if t["resolved"] and t["high"] < 0]
            facts.append(
                f"Per genre, the {confidence:.0%} paired t interval over {n} seeds of {arm} − "
                f"{base} excludes 0 in {len(above) + len(below)} of {len(genres)} ({arm} "
                f"higher: {', '.join(above) or 'none'}; lower: {', '.join(below) or 'none'})."
            )
        if "low" in entry:
            separated = entry["low"] > 0 or entry["high"] < 0
            facts.append(
                f"Test-set noise alone (bootstrap over the {entry['n']:,} test pairs) would "
                f"{'' if separated else 'not '}separate {arm} and {base} on {lang}; it leaves "
                "training noise out."
            )
    overall = group.get("bootstrap_average", {}).get(key, {}).get("seeds")
    if overall and overall["n"] >= 2:
        facts.append(f"Averaged over languages, Spearman {arm} − {base}: {verdict(overall)}.")
    return facts


def sts_reading(group: dict, confidence: float) -> list[str]:
    """The facts of an sts group: Spearman instead of MRR, genres instead of languages."""
    facts = _sts_levels(group) + _against_published(group, "spearman")
    for arm, base in comparisons(group["samplers"], group.get("compare")):
        facts += _sts_comparison(group, arm, base, confidence)
    return facts + training_facts(group)
