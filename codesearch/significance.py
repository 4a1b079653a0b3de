"""Is one sampler better than another? Tests over seeds that hold at small seed counts.

The unit of replication is the training seed: seed k of two arms shares its training subset and
initialisation, so the per-seed differences d_1..d_S of a metric (e.g. MRR points) are the
data. The primary test is the paired t over them (Student; the small-sample answer, with S - 1
degrees of freedom), with an exact sign-flip permutation p-value beside it (Fisher; it assumes
only that each d_k is symmetric about 0 under the null, but with S seeds it cannot go below
2 / 2^S, i.e. 0.25 at S = 3). Across languages the t p-values are adjusted by Holm's step-down
method. ``tests/test_significance.py`` measures the t interval's coverage by simulation
(seed noise dominant, 3 and 8 seeds) and shows that a percentile bootstrap over seeds, the
interval this module replaced, under-covers at those counts.

The query-level paired bootstrap (``paired_bootstrap``) is a secondary interval: it resamples
test queries for fixed trained models, so it measures test-set noise only, never training noise.
A correlation has no per-query terms to resample, so for Spearman's rho (STS-B) the secondary
interval resamples the test pairs instead (``paired_spearman_bootstrap``): each resample
recomputes every seed's rho of both arms on the same pairs.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

_BOOTSTRAP_CHUNK_ELEMENTS = 2**22  # resampled indices held at once (16 MiB as int32)
EXACT_SIGN_FLIPS = 16  # up to 2^16 sign patterns enumerated; more seeds: a seeded sample


def mean_std(values: list[float]) -> dict:
    """Mean and sample std (ddof=1) over seeds; std None with fewer than two seeds."""
    if not values:
        return {"mean": None, "std": None, "n_seeds": 0}
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std, "n_seeds": len(values)}


def paired_t(differences, confidence: float = 0.95) -> dict:
    """Student's paired t over per-seed differences.

    Returns ``{"diff", "low", "high", "p", "n", "sd"}``: the mean difference, its two-sided
    ``confidence`` interval mean ± t_{(1+c)/2, n-1} sd / sqrt(n), the two-sided p-value of
    mean = 0, the number of seeds and the sample sd (ddof=1). With one seed, or seeds that
    all agree exactly, the interval and p are None (no variance to scale by)."""
    d = _differences(differences)
    _check_confidence(confidence)
    n, mean = d.size, float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else None
    if sd is None or sd <= 1e-12 * max(1.0, abs(mean)):  # one seed, or seeds that agree
        sd = None if sd is None else 0.0
        return {"diff": mean, "low": None, "high": None, "p": None, "n": n, "sd": sd}
    se = sd / np.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return {"diff": mean, "low": mean - half, "high": mean + half, "p": p, "n": n, "sd": sd}


def sign_flip_p(differences, samples: int = 100_000, seed: int = 0) -> float:
    """Two-sided permutation p-value of mean = 0: the share of sign patterns (d_k -> ±d_k)
    whose |mean| is at least the observed one. Exact (all 2^n patterns) for n <= 16 seeds,
    otherwise ``samples`` random patterns plus the observed one."""
    d = _differences(differences)
    observed = abs(d.mean())
    if d.size <= EXACT_SIGN_FLIPS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))  # (2^n, n)
        means = np.abs(signs @ d) / d.size
        return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(samples, d.size))
    means = np.abs(signs @ d) / d.size
    return float((1 + np.sum(means >= observed - 1e-12 * max(1.0, observed))) / (samples + 1))


def holm(pvalues: dict[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjustment of a family of p-values (None stays None, and is not
    counted in the family): the k-th smallest of m becomes max over j <= k of
    min(1, (m - j + 1) p_(j))."""
    known = sorted((p, key) for key, p in pvalues.items() if p is not None)
    adjusted: dict[str, float | None] = {key: None for key in pvalues}
    running = 0.0
    for rank, (p, key) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        adjusted[key] = running
    return adjusted


def detectable_effect(
    sd: float | None, n: int, confidence: float = 0.95, power: float = 0.8
) -> float | None:
    """The smallest true mean difference that a two-sided paired t test at ``confidence``
    detects with probability ``power`` when the per-seed sd is ``sd`` (the usual
    approximation (t_{(1+c)/2, n-1} + t_{power, n-1}) sd / sqrt(n)). None without an sd."""
    if not sd or n < 2:
        return None
    _check_confidence(confidence)
    t_sum = stats.t.ppf((1 + confidence) / 2, n - 1) + stats.t.ppf(power, n - 1)
    return float(t_sum * sd / np.sqrt(n))


def compare_over_seeds(per_seed: dict, confidence: float = 0.95) -> dict:
    """The primary comparison of two arms from ``{seed: difference}``: the paired t
    (``paired_t``), the sign-flip p (``sign_flip_p``), the smallest effect the design could
    detect (``detectable_effect``) and ``resolved``: True when the t interval excludes 0."""
    seeds = list(per_seed)
    values = [float(per_seed[k]) for k in seeds]
    result = paired_t(values, confidence)
    resolved = result["low"] is not None and (result["low"] > 0 or result["high"] < 0)
    return {
        **result,
        "p_sign_flip": sign_flip_p(values),
        "detectable": detectable_effect(result["sd"], result["n"], confidence),
        "resolved": bool(resolved),
        "per_seed": dict(zip(seeds, values, strict=True)),
    }


def paired_bootstrap(
    a, b, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Efron percentile bootstrap of ``mean(a - b)``, paired: each resample draws query
    indices with replacement and uses the same indices for ``a`` and ``b``. Test-set noise
    only: ``a`` and ``b`` are per-query scores of fixed models.

    Returns ``{"diff", "low", "high", "n"}``; the interval holds the central ``confidence``
    share of the resampled means. Resamples go in chunks of at most 2**22 indices.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-d of the same length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("paired_bootstrap needs at least one pair")
    if n_resamples < 1:
        raise ValueError("need n_resamples >= 1")
    _check_confidence(confidence)
    diff = a - b  # pairing: resampling queries resamples their differences
    n = diff.size
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)  # (chunk, n)
        means[start:stop] = diff[idx].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"diff": float(diff.mean()), "low": float(low), "high": float(high), "n": int(n)}


def resampled_ranks(values, counts: np.ndarray) -> np.ndarray:
    """The average rank (ties share their mean rank, as Spearman's rho ranks them) of each of
    n values within each resample, a resample being a row of ``counts`` (rows, n): how many
    times each value was drawn. Returns (rows, n) float64; no sorting per resample."""
    _, group = np.unique(np.asarray(values, dtype=np.float64), return_inverse=True)
    order = np.argsort(group, kind="stable")
    if group.max() + 1 == group.size:  # distinct values: each is its own group
        per_group = counts[:, order].astype(np.float64)
    else:
        starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
        per_group = np.add.reduceat(counts[:, order], starts, axis=1).astype(np.float64)
    ranks = np.cumsum(per_group, axis=1)
    ranks -= (per_group - 1) / 2  # the mean of the ranks below + 1 .. below + count
    return ranks[:, group]


def _spearman_factory(gold_ranks: np.ndarray, counts: np.ndarray):
    """rho(ranks): Spearman's rho of each resample between the gold ranks and ``ranks``: the
    Pearson r of the rank rows, each pair weighted by how many times it was drawn (the mean rank
    of n drawn values is (n + 1) / 2 whatever the ties); NaN where a side is constant."""
    centre = (counts.sum(axis=1, keepdims=True) + 1) / 2
    weighted_gold = counts * (gold_ranks - centre)
    gold_norm = np.sqrt(np.sum(weighted_gold * (gold_ranks - centre), axis=1))

    def rho(ranks: np.ndarray) -> np.ndarray:
        ranks = ranks - centre
        norm = np.sqrt(np.einsum("ij,ij,ij->i", counts, ranks, ranks, dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.einsum("ij,ij->i", weighted_gold, ranks) / (gold_norm * norm)

    return rho


def paired_spearman_bootstrap(
    gold, a, b, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Efron percentile bootstrap over test pairs of the difference in Spearman's rho x 100
    between two arms, each averaged over its seeds: ``gold`` (n,) the gold scores, ``a`` and
    ``b`` (seeds, n) each seed's predicted similarity of the same n pairs. Each resample draws
    n pairs with replacement, the same draw for the gold scores and every seed of both arms,
    and recomputes each rho on it (the repeated pairs tie, and share their average rank). Test-
    set noise only: the models are fixed.

    Returns ``{"diff", "low", "high", "n"}`` (n: pairs); resamples with an undefined rho (a
    constant draw) are left out. Resamples go in chunks of about 2**22 pair counts."""
    gold = np.asarray(gold, dtype=np.float64)
    a, b = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (a, b))
    n = gold.size
    if gold.ndim != 1 or n < 2 or a.ndim != 2 or b.ndim != 2 or {a.shape[1], b.shape[1]} != {n}:
        raise ValueError(
            f"need gold (n,) with n >= 2 and arms (seeds, n), got {gold.shape}, {a.shape}, "
            f"{b.shape}"
        )
    if n_resamples < 1:
        raise ValueError("need n_resamples >= 1")
    _check_confidence(confidence)

    def mean_diff(counts: np.ndarray) -> np.ndarray:
        """Per resample, mean rho of a's seeds minus mean rho of b's seeds, x 100."""
        rho = _spearman_factory(resampled_ranks(gold, counts), counts)
        return 100 * (
            np.mean([rho(resampled_ranks(row, counts)) for row in a], axis=0)
            - np.mean([rho(resampled_ranks(row, counts)) for row in b], axis=0)
        )

    diff = float(mean_diff(np.ones((1, n), dtype=np.int64))[0])  # the test set itself
    rng = np.random.default_rng(seed)
    rows = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    diffs = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int64)  # (chunk, n) draws
        flat = idx + n * np.arange(stop - start)[:, None]
        counts = np.bincount(flat.ravel(), minlength=(stop - start) * n).reshape(-1, n)
        diffs[start:stop] = mean_diff(counts)
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        raise ValueError("every resample drew constant scores: no interval")
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return {"diff": diff, "low": float(low), "high": float(high), "n": int(n)}


def _differences(values) -> np.ndarray:
    d = np.asarray(values, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"need a non-empty 1-d list of per-seed differences, got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("per-seed differences must be finite numbers")
    return d


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
