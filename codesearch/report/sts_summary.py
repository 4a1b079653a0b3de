"""The Spearman part of an sts group's results.json (protocol sts: STS-B, ``codesearch.sts_eval``):
Spearman's rho x 100 per language and per genre, mean and sample std over seeds; the zero-shot
reference beside the arms (one evaluation, outside the tests); and the comparisons of the MRR
tables (``codesearch.significance``): the paired t over per-seed differences with its Holm-
adjusted p (overall: across languages; per genre: across the language's genres) and the exact
sign-flip p; as the test-set-noise interval, in place of the bootstrap over queries that a
correlation has no per-query terms for, the bootstrap over test pairs
(``paired_spearman_bootstrap``: every seed's rho of both arms recomputed on each resample)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from codesearch.errors import UserError
from codesearch.significance import (
    compare_over_seeds,
    holm,
    mean_std,
    paired_spearman_bootstrap,
)

# (language, pair ids) -> (gold scores in that order, "") or (None, why there are none)
GoldScores = Callable[[str, list[str]], tuple[list[float] | None, str]]


def _over_seeds(cells: list[dict], number: Callable[[dict], float]) -> dict:
    """mean_std over the cells (one per seed) of ``number(result)``, with the per-seed values."""
    values = [float(number(cell["result"])) for cell in cells]
    return {**mean_std(values), "per_seed": values, "seeds": [cell["seed"] for cell in cells]}


def genre_names(cells: list[dict], language: str) -> list[str]:
    """The genres of a language's test pairs, sorted (the same in every cell)."""
    return sorted({g for c in cells for g in c["result"]["languages"][language]["genres"]})


def spearman_tables(by_sampler: dict[str, list[dict]], languages: list[str]) -> dict:
    """Spearman x 100 per language ("spearman"), per language and genre ("genres"), and the
    per-seed average over languages ("average"), each {arm: mean/std over seeds}; the pair
    counts ("n_pairs": {language: {"all": n, genre: n}})."""
    cells = [c for arm_cells in by_sampler.values() for c in arm_cells]
    genres = {lang: genre_names(cells, lang) for lang in languages}
    first = cells[0]["result"]["languages"] if cells else {}
    return {
        "spearman": {
            lang: {
                arm: _over_seeds(arm_cells, lambda r, lang=lang: r["languages"][lang]["spearman"])
                for arm, arm_cells in by_sampler.items()
            }
            for lang in languages
        },
        "genres": {
            lang: {
                genre: {
                    arm: _over_seeds(
                        arm_cells,
                        lambda r, lang=lang, genre=genre: r["languages"][lang]["genres"][genre][
                            "spearman"
                        ],
                    )
                    for arm, arm_cells in by_sampler.items()
                }
                for genre in genres[lang]
            }
            for lang in languages
        },
        "average": {
            arm: mean_std(
                [
                    float(
                        np.mean([c["result"]["languages"][lang]["spearman"] for lang in languages])
                    )
                    for c in arm_cells
                ]
            )
            for arm, arm_cells in by_sampler.items()
        },
        "n_pairs": {
            lang: {
                "all": first[lang]["n_pairs"],
                **{g: first[lang]["genres"][g]["n_pairs"] for g in genres[lang]},
            }
            for lang in first
            if lang in languages
        },
    }


def zero_shot_row(reference: dict | None, languages: list[str]) -> dict | None:
    """The zero-shot evaluation as one row: its model, Spearman x 100 per language, per genre
    and averaged over languages, and the precision and machine it ran on; None if not done."""
    if reference is None or reference.get("status") != "done":
        return None
    result = reference["result"]
    rows = result["languages"]
    return {
        "model": reference.get("model") or result.get("model"),
        "spearman": {lang: rows[lang]["spearman"] for lang in languages},
        "genres": {
            lang: {g: entry["spearman"] for g, entry in sorted(rows[lang]["genres"].items())}
            for lang in languages
        },
        "average": float(np.mean([rows[lang]["spearman"] for lang in languages])),
        "machine": result.get("machine"),
    }


def _aligned_cosines(cells: list[dict], language: str) -> tuple[list[str], dict]:
    """(pair ids, {arm: {seed: cosines in that order}}); UserError if two cells scored
    different pairs."""
    order = cells[0]["result"]["languages"][language]["pair_ids"]
    position = {pid: i for i, pid in enumerate(order)}
    per_arm: dict[str, dict[int, np.ndarray]] = {}
    for cell in cells:
        entry = cell["result"]["languages"][language]
        if set(entry["pair_ids"]) != position.keys():
            raise UserError(
                f"{language}: cells {cells[0]['id']} and {cell['id']} were evaluated on "
                "different pairs"
            )
        cos = np.empty(len(order))
        cos[[position[p] for p in entry["pair_ids"]]] = entry["cosines"]
        per_arm.setdefault(cell["sampler"], {})[cell["seed"]] = cos
    return order, per_arm


def _seed_tests(by_sampler: dict, pairs: list, number: Callable, confidence: float) -> dict:
    """{"arm-base": compare_over_seeds of ``number(result)`` on the seeds both arms have}."""
    out = {}
    for arm, base in pairs:
        a = {c["seed"]: number(c["result"]) for c in by_sampler[arm]}
        b = {c["seed"]: number(c["result"]) for c in by_sampler[base]}
        seeds = sorted(set(a) & set(b))
        if seeds:
            out[f"{arm}-{base}"] = compare_over_seeds({k: a[k] - b[k] for k in seeds}, confidence)
    return out


def _holm_across(tests: dict[str, dict], key: str) -> None:
    """Holm-adjust one comparison's p across the family ``tests`` ({member: {key: t}})."""
    adjusted = holm({m: t[key]["p"] for m, t in tests.items() if key in t})
    for member, p in adjusted.items():
        tests[member][key]["p_holm"] = p


def comparison_tests(
    by_sampler: dict[str, list[dict]],
    languages: list[str],
    pairs: list[tuple[str, str]],
    bootstrap: dict,
    gold: GoldScores,
) -> dict:
    """Per language {"arm-base": bootstrap over pairs (where the gold scores are at hand) +
    "seeds"}, per genre {"arm-base": {"seeds"}}, and over the languages' average; the reason
    there is no bootstrap over pairs, if there is none."""
    confidence = bootstrap["confidence"]
    present = {arm: cells for arm, cells in by_sampler.items() if cells}
    pairs = [(a, b) for a, b in pairs if a in present and b in present]
    cells = [c for arm_cells in present.values() for c in arm_cells]
    tests: dict = {lang: {} for lang in languages}
    genre_tests: dict = {lang: {} for lang in languages}
    no_bootstrap = ""
    for lang in languages:
        seeds = _seed_tests(
            present, pairs, lambda r, lang=lang: r["languages"][lang]["spearman"], confidence
        )
        order, cosines = _aligned_cosines(cells, lang) if pairs else ([], {})
        scores, why = gold(lang, order) if pairs else (None, "")
        no_bootstrap = no_bootstrap or why
        for arm, base in pairs:
            key = f"{arm}-{base}"
            entry = {}
            if scores is not None:
                entry = paired_spearman_bootstrap(
                    scores,
                    [cosines[arm][k] for k in sorted(cosines[arm])],
                    [cosines[base][k] for k in sorted(cosines[base])],
                    **bootstrap,
                )
            tests[lang][key] = {**entry, **({"seeds": seeds[key]} if key in seeds else {})}
        for genre in genre_names(cells, lang):
            genre_tests[lang][genre] = {
                key: {"seeds": t}
                for key, t in _seed_tests(
                    present,
                    pairs,
                    lambda r, lang=lang, g=genre: r["languages"][lang]["genres"][g]["spearman"],
                    confidence,
                ).items()
            }
        for key in {k for t in genre_tests[lang].values() for k in t}:
            _holm_across({g: t[key] for g, t in genre_tests[lang].items() if key in t}, "seeds")
    for key in {k for t in tests.values() for k in t}:
        _holm_across({lang: t[key] for lang, t in tests.items() if key in t}, "seeds")
    average = {}
    if len(languages) > 1:
        average = _seed_tests(
            present,
            pairs,
            lambda r: float(np.mean([r["languages"][lang]["spearman"] for lang in languages])),
            confidence,
        )
    return {
        "bootstrap": tests,
        "genre_tests": genre_tests,
        "bootstrap_average": {key: {"seeds": t} for key, t in average.items()},
        "no_pair_bootstrap": no_bootstrap or None,
    }


def validation_series(by_sampler: dict[str, list[dict]], languages: list[str], series) -> dict:
    """{arm: {"epochs", "valid"}}: the validation score per epoch x 100, mean over seeds and
    languages: ``valid_mrr`` where the training logged it, else ``valid_spearman`` (sentence
    pairs); ``series`` is ``summary.epoch_series``."""
    out = {}
    for arm, cells in by_sampler.items():
        rows = [r for c in cells for rs in c["epochs"].values() for r in rs]
        key = "valid_mrr" if any("valid_mrr" in r for r in rows) else "valid_spearman"
        values = series(cells, languages, key, "mean")
        out[arm] = {
            "epochs": values["epochs"],
            "valid": [None if v is None else 100 * v for v in values["values"]],
            "key": key,
        }
    return out
