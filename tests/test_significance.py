"""The tests over seeds: coverage by simulation, exact values on small hand-made cases."""

import numpy as np
import pytest
from scipy import stats

from codesearch.significance import (
    compare_over_seeds,
    detectable_effect,
    holm,
    paired_bootstrap,
    paired_t,
    sign_flip_p,
)

TRUE_EFFECT = 0.5  # MRR points
SEED_SD = 1.0  # training noise per seed: dominant
QUERY_SD = 0.05  # test-set noise of one seed's mean difference


def _simulated_seed_differences(n_seeds: int, experiments: int, seed: int) -> np.ndarray:
    """(experiments, n_seeds) per-seed mean differences with a known effect."""
    rng = np.random.default_rng(seed)
    training = rng.normal(0, SEED_SD, size=(experiments, n_seeds))
    test_set = rng.normal(0, QUERY_SD, size=(experiments, n_seeds))
    return TRUE_EFFECT + training + test_set


def _seed_percentile_bootstrap(d: np.ndarray, rng, resamples: int = 2000) -> tuple[float, float]:
    """The replaced interval's seed level: a percentile bootstrap of the mean over seeds
    drawn with replacement (with no query noise the two-level version reduces to it)."""
    draws = rng.integers(0, d.size, size=(resamples, d.size))
    return tuple(np.percentile(d[draws].mean(axis=1), [2.5, 97.5]))


@pytest.mark.parametrize("n_seeds", [3, 5, 8])  # 5: the sts profile
def test_paired_t_covers_the_true_effect_at_small_seed_counts(n_seeds):
    experiments = _simulated_seed_differences(n_seeds, 400, seed=n_seeds)
    covered = [(r := paired_t(d))["low"] <= TRUE_EFFECT <= r["high"] for d in experiments]
    assert np.mean(covered) >= 0.93
    rng = np.random.default_rng(0)
    old = [
        lo <= TRUE_EFFECT <= hi
        for lo, hi in (_seed_percentile_bootstrap(d, rng) for d in experiments)
    ]
    assert np.mean(old) < 0.93  # the percentile bootstrap over seeds under-covers
    if n_seeds == 3:
        assert np.mean(old) < 0.85


def test_paired_t_matches_scipy():
    d = [0.54, -0.05, 0.08]
    ours = paired_t(d)
    ref = stats.ttest_1samp(d, 0.0)
    low, high = ref.confidence_interval(0.95)
    assert ours["p"] == pytest.approx(ref.pvalue)
    assert (ours["low"], ours["high"]) == pytest.approx((low, high))
    assert ours["n"] == 3 and ours["sd"] == pytest.approx(np.std(d, ddof=1))


def test_paired_t_without_variance_gives_no_interval():
    assert paired_t([0.3])["low"] is None
    same = paired_t([0.2, 0.2, 0.2])
    assert same["low"] is None and same["p"] is None and same["diff"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="finite"):
        paired_t([1.0, float("nan")])
    with pytest.raises(ValueError, match="non-empty"):
        paired_t([])


def test_sign_flip_is_exact_and_floors_at_two_over_two_to_the_n():
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)  # all positive: the floor
    assert sign_flip_p([1.0, -1.0]) == pytest.approx(1.0)
    # 4 seeds, 16 patterns: |mean| >= |obs| for the identity, the all-flip, and the patterns
    # that flip only the smallest value (|1+2+3-0.5| = 5.5 < 6.5): 2 of 16 plus those
    d = [3.0, 2.0, 1.0, 0.5]
    signs = np.array(np.meshgrid(*[[1, -1]] * 4)).reshape(4, -1).T
    expected = np.mean(np.abs(signs @ d) >= abs(np.sum(d)) - 1e-12)
    assert sign_flip_p(d) == pytest.approx(expected)
    # beyond the exact limit: a sampled p close to the t test's on many seeds
    rng = np.random.default_rng(1)
    many = rng.normal(0.3, 1.0, size=40)
    assert sign_flip_p(many) == pytest.approx(paired_t(many)["p"], abs=0.05)


def test_holm_step_down():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert adjusted["a"] == pytest.approx(0.03)  # 3 x 0.01
    assert adjusted["c"] == pytest.approx(0.06)  # 2 x 0.03
    assert adjusted["b"] == pytest.approx(0.06)  # max(1 x 0.04, 0.06): monotone
    assert adjusted["d"] is None
    assert holm({"a": 0.6, "b": 0.7}) == {"a": 1.0, "b": 1.0}


def test_detectable_effect_shrinks_with_seeds():
    three, eight = detectable_effect(1.0, 3), detectable_effect(1.0, 8)
    assert three > eight > 0
    # t_{0.975, 7} + t_{0.8, 7} = 2.365 + 0.896
    assert eight == pytest.approx((2.3646 + 0.8960) / np.sqrt(8), rel=1e-3)
    assert detectable_effect(None, 3) is None and detectable_effect(1.0, 1) is None


def test_compare_over_seeds_words_follow_the_interval():
    resolved = compare_over_seeds({1: 0.5, 2: 0.6, 3: 0.55, 4: 0.45})
    assert resolved["resolved"] and resolved["low"] > 0
    assert resolved["per_seed"] == {1: 0.5, 2: 0.6, 3: 0.55, 4: 0.45}
    unresolved = compare_over_seeds({1: 0.54, 2: -0.05, 3: 0.08})
    assert not unresolved["resolved"] and unresolved["low"] < 0 < unresolved["high"]
    assert unresolved["p_sign_flip"] == pytest.approx(0.5)
    assert not compare_over_seeds({1: 0.3})["resolved"]


def test_paired_bootstrap_is_paired_over_queries():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    b = a - 0.1 + rng.normal(0, 0.01, 500)  # a beats b on every query by about 0.1
    r = paired_bootstrap(a, b, n_resamples=2000)
    assert r["low"] > 0.09 and r["high"] < 0.11 and r["n"] == 500
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap(a, b[:10])
