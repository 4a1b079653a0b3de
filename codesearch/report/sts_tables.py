"""The markdown tables of an sts group (``sts_summary``): Spearman x 100 per language and genre
with the zero-shot reference column, the comparisons per language and genre, and the
validation Spearman per epoch."""

from __future__ import annotations

from codesearch.report.tables import (
    compared_pairs,
    comparison_row,
    machine_lines,
    mean_pm,
    num,
    table,
    zero_shot_note,
)


def _aligned(header: list[str], rows: list[list[str]], text_columns: int) -> list[str]:
    """``table`` with its first ``text_columns`` columns left-aligned."""
    lines = table(header, rows)
    lines[1] = "|" + "---|" * text_columns + "---:|" * (len(header) - text_columns)
    return lines


def spearman_table(g: dict, metric: str) -> list[str]:
    """Spearman x 100 per language (**all** its pairs) and per genre, mean ± std over seeds per
    arm, the zero-shot reference beside them; an average row over several languages."""
    samplers = g["samplers"]
    n_seeds = sorted({c["n_seeds"] for c in g["average"].values()})
    lines = [
        f"{metric}, mean ± sample std over seeds (seeds per sampler: "
        f"{', '.join(map(str, n_seeds))}; no std with one seed), overall and per genre.",
        "",
    ]
    machines = machine_lines(
        g.get("machines", {}), {"training": "training", "evaluation": "evaluation"}
    )
    lines += [*machines, ""] if machines else []
    zero = g.get("zero_shot")
    with_zero = "zero_shot" in g  # the group has a zero-shot reference (None: not done)

    def reference(number: float | None) -> list[str]:
        if not with_zero:
            return []
        return ["missing" if zero is None or number is None else num(number)]

    rows = []
    for lang in g["languages"]:
        counts = g["n_pairs"].get(lang, {})
        rows.append(
            [
                lang,
                "**all**",
                f"{counts.get('all', 0):,}",
                *reference(zero["spearman"].get(lang) if zero else None),
                *(mean_pm(g["spearman"][lang][s]) for s in samplers),
            ]
        )
        for genre, arms in g["genres"][lang].items():
            rows.append(
                [
                    "",
                    genre,
                    f"{counts.get(genre, 0):,}",
                    *reference(zero["genres"][lang].get(genre) if zero else None),
                    *(mean_pm(arms[s]) for s in samplers),
                ]
            )
    if len(g["languages"]) > 1:
        rows.append(
            [
                "**average**",
                "",
                "",
                *reference(zero["average"] if zero else None),
                *(mean_pm(g["average"][s]) for s in samplers),
            ]
        )
    header = ["language", "genre", "pairs", *(["zero-shot"] if with_zero else []), *samplers]
    published = g.get("published")
    if published:  # beside the random baseline, on each language's all-pairs row
        at = header.index("random") + 1 if "random" in samplers else 3
        header.insert(at, "published")
        numbers = {lang: published["spearman"].get(lang) for lang in g["languages"]}
        for row in rows:
            row.insert(at, num(numbers[row[0]], 2) if row[1] == "**all**" else "")
    lines += _aligned(header, rows, 2)
    if published:
        lines += [f"published: {published['source']}", ""]
    if with_zero:
        lines += [zero_shot_note(zero), ""]
    return lines


def sts_comparison_table(g: dict, confidence: float) -> list[str]:
    """Each compared pair per language and genre (and over languages): the paired t over
    seeds (primary) and the bootstrap over test pairs (test-set noise only); [] without a
    pair."""
    pairs = compared_pairs(g)
    if not pairs:
        return []
    no_bootstrap = g.get("no_pair_bootstrap")
    lines = [
        "Differences in Spearman x 100 points. **seeds** (primary): paired t over the per-seed "
        f"differences, {confidence:.0%} interval, its p Holm-adjusted across the languages "
        "(genre rows: across the genres of their language), and the exact sign-flip p (which "
        "cannot go below 2/2^seeds); **resolved** only when the t interval excludes 0. "
        f"**pairs** ({confidence:.0%}, test-set noise only): bootstrap over the test pairs, "
        "every seed's Spearman of both arms recomputed on each resample and averaged over "
        "seeds (a correlation has no per-pair terms of its own to resample)."
        + (" The zero-shot reference is in no comparison." if "zero_shot" in g else "")
        + (f" No bootstrap over pairs: {no_bootstrap}." if no_bootstrap else ""),
        "",
    ]
    rows = []
    for arm, base in pairs:
        key, label = f"{arm}-{base}", f"{arm} − {base}"
        for lang, tests in g["bootstrap"].items():
            entry = tests.get(key)
            if entry is None:
                continue
            row = comparison_row(label, lang, entry if "low" in entry else None, entry.get("seeds"))
            rows.append([*row[:2], "**all**", *row[2:]])
            for genre, genre_tests in g["genre_tests"].get(lang, {}).items():
                t = genre_tests.get(key, {}).get("seeds")
                row = comparison_row(label, lang, None, t)
                rows.append([*row[:2], genre, *row[2:]])
        overall = g.get("bootstrap_average", {}).get(key)
        if overall:
            row = comparison_row(label, "**average**", None, overall["seeds"])
            rows.append([*row[:2], "", *row[2:]])
    header = ["comparison", "language", "genre", "seeds: paired t", "p", "p Holm", "p sign-flip"]
    header += ["resolved", "per seed", "pairs", "test pairs"]
    return lines + _aligned(header, rows, 3)


def validation_table(g: dict) -> list[str]:
    """The validation score x 100 per epoch and arm (the trainer's ``valid_spearman``, or
    ``valid_mrr`` for code pairs), mean over seeds; [] when no training log was read."""
    series = {s: v for s, v in g.get("valid", {}).items() if v["epochs"]}
    epochs = sorted({e for v in series.values() for e in v["epochs"]})
    if not epochs:
        return []
    name = {"valid_spearman": "Spearman x 100", "valid_mrr": "MRR x 100"}  # code pairs: MRR
    what = " / ".join(sorted({name.get(v["key"], v["key"]) for v in series.values()}))
    rows = [
        [s, *(num(dict(zip(v["epochs"], v["valid"], strict=True)).get(e)) for e in epochs)]
        for s, v in series.items()
    ]
    return [
        f"Validation {what} per epoch (the valid split's first data.max_valid_queries pairs, "
        "as the trainer scores them to keep its best model), mean over seeds:",
        "",
        *table(["sampler", *(f"epoch {e}" for e in epochs)], rows),
    ]
