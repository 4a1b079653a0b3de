"""HardNegativeSampler: exclusions, anchors, determinism, rank window, refresh, state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codesearch.config import RunConfig, SamplerConfig
from codesearch.config_sources import apply_overrides
from codesearch.errors import UserError
from codesearch.samplers import RandomOptions, RandomSampler, batches_digest, sampler_class
from codesearch.samplers.hardneg import HardNegativeOptions, HardNegativeSampler

N, D = 60, 12


def make_data(seed: int = 0):
    """Embeddings where equal code texts have equal code embeddings (so duplicates are each
    other's nearest neighbours) and equal query texts have equal query embeddings."""
    rng = np.random.default_rng(seed)
    code_keys = rng.integers(0, 35, N).astype(np.int64)  # many duplicate code texts
    query_keys = rng.integers(100, 140, N).astype(np.int64)  # many duplicate queries
    code_base, query_base = rng.normal(size=(200, D)), rng.normal(size=(200, D))
    codes = code_base[code_keys]
    queries = query_base[query_keys - 100] + 0.7 * code_base[code_keys]
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return unit(queries), unit(codes), query_keys, code_keys


def make_sampler(keys=True, embed_calls=None, margin=None, **options):
    q, c, qk, ck = make_data()
    sampler = HardNegativeSampler(N, 8, seed=3, options=HardNegativeOptions(**options))
    if margin is not None:
        sampler.margin = margin
    if keys:
        sampler.set_text_keys(qk, ck)

    def embed():
        if embed_calls is not None:
            embed_calls.append(sampler.epoch)
        return q, c

    return sampler, embed


def reference_ranking(i: int, keys: bool = True) -> list[int]:
    """Slow reference: codes by similarity to query i, with the documented exclusions, as code
    keys (copies of a code text tie, so which index represents a text is arbitrary)."""
    q, c, qk, ck = make_data()
    ranked = [int(j) for j in np.argsort(-(c @ q[i]), kind="stable")]
    if not keys:
        return [ck[j] for j in ranked if j != i]
    bad_texts = {ck[j] for j in range(N) if j == i or ck[j] == ck[i] or qk[j] == qk[i]}
    out, seen = [], set()
    for j in ranked:
        if ck[j] not in bad_texts and ck[j] not in seen:
            out.append(ck[j])
            seen.add(ck[j])
    return out


def epoch_batches(sampler, embed, epoch):
    sampler.set_epoch(epoch)
    sampler.prepare(embed)
    return sampler.batches()


def test_registry_and_config_construct_it():
    assert sampler_class("hardneg") is HardNegativeSampler
    config = SamplerConfig.from_dict(
        {"name": "hardneg", "hardneg_negatives": 2, "hardneg_ranks": "2:5"}
    )
    options = config.options["hardneg"]
    assert isinstance(options, HardNegativeOptions)
    sampler = sampler_class("hardneg")(N, 8, seed=0, options=options)
    got = (sampler.options.negatives, sampler.lo, sampler.depth, sampler.options.every)
    assert got == (2, 2, 5, 1)


def test_mined_negatives_are_never_the_positive_a_duplicate_or_the_same_query():
    _, _, qk, ck = make_data()
    sampler, embed = make_sampler(negatives=3, ranks="1:6")
    for epoch in range(3):
        batches = epoch_batches(sampler, embed, epoch)
        mined = sampler.sample(epoch)
        for i in range(N):
            for j in mined[i][mined[i] >= 0]:
                assert j != i and ck[j] != ck[i] and qk[j] != qk[i]
                assert not ((ck == ck[j]) & (qk == qk[i])).any()  # no copy paired with query i
        for batch in batches:
            extras, anchors = batch.extra_codes, batch.anchors
            assert len(extras) > 0
            assert not np.isin(extras, anchors).any()
            assert not np.isin(ck[extras], ck[anchors]).any()  # no copy of an anchor's code
            assert len(set(ck[extras])) == len(extras)  # deduplicated by code text
            expected = set(mined[anchors].ravel()) - {-1}
            assert set(extras) <= expected


def test_top_rank_matches_the_slow_reference():
    sampler, embed = make_sampler(negatives=1, ranks="1:1")
    epoch_batches(sampler, embed, 0)
    mined = sampler.sample(0)
    _, _, _, ck = make_data()
    assert [ck[mined[i, 0]] for i in range(N)] == [reference_ranking(i)[0] for i in range(N)]


def test_the_table_holds_the_reference_ranks_even_when_exclusions_exceed_the_margin():
    # margin 0 with many duplicates forces the deeper re-search
    sampler, embed = make_sampler(ranks="1:10", margin=0)
    epoch_batches(sampler, embed, 0)
    _, _, _, ck = make_data()
    for i in range(N):
        assert ck[sampler.table[i]].tolist() == reference_ranking(i)[:10]


def test_without_keys_only_the_positive_is_excluded():
    sampler, embed = make_sampler(keys=False, ranks="1:4")
    epoch_batches(sampler, embed, 0)
    _, _, _, ck = make_data()
    for i in range(N):
        assert ck[sampler.table[i]].tolist() == reference_ranking(i, keys=False)[:4]
    # duplicates of the positive code are the nearest codes here, so they do get mined
    assert any(ck[sampler.table[i, 0]] == ck[i] for i in range(N))


def test_every_pair_is_an_anchor_once_and_anchors_are_the_random_batches():
    sampler, embed = make_sampler(negatives=2, ranks="1:4")
    random = RandomSampler(N, 8, seed=3)
    for epoch in range(3):
        batches = epoch_batches(sampler, embed, epoch)
        anchors = np.concatenate([b.anchors for b in batches])
        assert sorted(anchors.tolist()) == list(range(N))
        assert len(sampler) == len(batches) == len(list(sampler))
        random.set_epoch(epoch)
        assert all(
            np.array_equal(a.anchors, b.anchors) for a, b in zip(batches, random, strict=True)
        )


def test_same_seed_and_epoch_give_the_same_batches():
    a, embed_a = make_sampler(negatives=2, ranks="2:8")
    b, embed_b = make_sampler(negatives=2, ranks="2:8")
    for epoch in (0, 1):
        for x, y in zip(
            epoch_batches(a, embed_a, epoch), epoch_batches(b, embed_b, epoch), strict=True
        ):
            assert np.array_equal(x.anchors, y.anchors)
            assert np.array_equal(x.extra_codes, y.extra_codes)
    first = [x.extra_codes.tolist() for x in epoch_batches(a, embed_a, 0)]
    second = [x.extra_codes.tolist() for x in epoch_batches(a, embed_a, 1)]
    assert first != second


def test_rank_window_sampling_stays_in_the_window_and_uses_all_of_it():
    sampler, embed = make_sampler(negatives=2, ranks="3:6")
    seen = {i: set() for i in range(N)}
    _, _, _, ck = make_data()
    for epoch in range(8):
        epoch_batches(sampler, embed, epoch)
        mined = sampler.sample(epoch)
        for i in range(N):
            window = reference_ranking(i)[2:6]
            picks = [int(ck[j]) for j in mined[i] if j >= 0]
            assert len(picks) == min(2, len(window)) and len(set(picks)) == len(picks)
            assert set(picks) <= set(window)
            seen[i].update(picks)
    assert sum(len(s) == 4 for s in seen.values()) > N // 2  # uniform over ranks 3..6


def test_window_narrower_than_l_is_widened_to_the_top_l():
    sampler, embed = make_sampler(negatives=3, ranks="1:1")
    epoch_batches(sampler, embed, 0)
    mined = sampler.sample(0)
    _, _, _, ck = make_data()
    for i in range(N):
        assert set(ck[mined[i]].tolist()) == set(reference_ranking(i)[:3])


def test_fewer_surviving_neighbours_than_asked():
    # 10 pairs, all with one of two code texts: each anchor has exactly one other text left
    rng = np.random.default_rng(1)
    q = rng.normal(size=(10, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    sampler = HardNegativeSampler(10, 4, options=HardNegativeOptions(negatives=3, ranks="1:5"))
    sampler.set_text_keys(np.arange(10), np.arange(10) % 2)
    sampler.set_epoch(0)
    sampler.prepare(lambda: (q, q))
    mined = sampler.sample(0)
    assert ((mined >= 0).sum(axis=1) == 1).all()
    assert all(mined[i, 0] % 2 != i % 2 for i in range(10))
    for batch in sampler:  # an extra is never a copy of an anchor's code text
        parities = set((batch.anchors % 2).tolist())
        assert len(batch.extra_codes) == 2 - len(parities)


def test_refresh_every_two_epochs_skips_embedding_on_odd_epochs():
    calls = []
    sampler, embed = make_sampler(embed_calls=calls, negatives=1, ranks="1:4", every=2)
    tables = []
    for epoch in range(5):
        epoch_batches(sampler, embed, epoch)
        tables.append(sampler.table.copy())
        assert sampler.timings["mining"] >= 0 and "sampling" in sampler.timings
    assert calls == [0, 2, 4]
    assert np.array_equal(tables[0], tables[1]) and sampler.table_epoch == 4


def test_state_round_trip_replays_without_embedding():
    sampler, embed = make_sampler(negatives=2, ranks="2:6", every=2)
    expected = epoch_batches(sampler, embed, 0)
    state = json.loads(json.dumps(sampler.state_dict()))  # JSON-serialisable

    def no_embed():
        raise AssertionError("a resumed run must not re-embed")

    for epoch, want in ((0, expected), (1, None)):
        resumed, _ = make_sampler(negatives=2, ranks="2:6", every=2)
        resumed.load_state_dict(state)
        got = epoch_batches(resumed, no_embed, epoch)
        if want is None:  # epoch 1 reuses epoch 0's table
            want = epoch_batches(sampler, embed, 1)
        for x, y in zip(got, want, strict=True):
            assert np.array_equal(x.anchors, y.anchors)
            assert np.array_equal(x.extra_codes, y.extra_codes)


def test_state_with_a_shallower_table_is_mined_again():
    sampler, embed = make_sampler(ranks="1:2")
    epoch_batches(sampler, embed, 0)
    deeper, embed_deeper = make_sampler(embed_calls=(calls := []), ranks="1:5")
    deeper.load_state_dict(sampler.state_dict())
    epoch_batches(deeper, embed_deeper, 0)
    assert calls == [0]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"ranks": "0:3"}, "sampler.hardneg_ranks must be 'lo:hi' with 1 <= lo <= hi"),
        ({"ranks": "4:2"}, "sampler.hardneg_ranks must be 'lo:hi' with 1 <= lo <= hi"),
        ({"ranks": "a:b"}, "sampler.hardneg_ranks must be 'lo:hi'"),
        ({"ranks": "5"}, "sampler.hardneg_ranks must be 'lo:hi'"),
        ({"negatives": 0}, "sampler.hardneg_negatives must be a finite number >= 1"),
        ({"every": 0}, "sampler.hardneg_every must be"),
        ({"backend": "gpu"}, "sampler.hardneg_backend must be one of auto, exact, faiss"),
    ],
)
def test_bad_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        HardNegativeSampler(N, 8, options=HardNegativeOptions(**options))
    ((key, value),) = options.items()
    with pytest.raises(UserError, match=message):  # through the config: one-line UserError
        apply_overrides(RunConfig(), {f"sampler.hardneg_{key}": value}, "test")


def test_bad_keys_and_missing_embeddings_raise():
    sampler = HardNegativeSampler(N, 8)
    with pytest.raises(ValueError, match="text keys"):
        sampler.set_text_keys(np.zeros(N - 1), np.zeros(N))
    with pytest.raises(ValueError, match="embed function"):
        sampler.prepare(None)
    q = np.ones((N - 1, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="must return two"):
        sampler.prepare(lambda: (q, q))


def test_length_and_needs_embeddings_are_known_before_preparing():
    sampler, embed = make_sampler(every=2)
    assert len(sampler) == len(RandomSampler(N, 8)) == 8
    assert sampler.needs_embeddings()
    epoch_batches(sampler, embed, 0)
    assert not sampler.needs_embeddings()
    sampler.set_epoch(1)
    assert not sampler.needs_embeddings()
    sampler.set_epoch(2)
    assert sampler.needs_embeddings()


def test_state_of_another_data_size_raises():
    sampler, embed = make_sampler()
    epoch_batches(sampler, embed, 0)
    other = HardNegativeSampler(N + 1, 8, seed=3)
    with pytest.raises(ValueError, match="pairs, this run has"):
        other.load_state_dict(sampler.state_dict())


# --- the equal-cost control: random batches with uniform extra codes ------------------------


def random_extra_sampler(extra_codes: int, keys: bool = True) -> RandomSampler:
    _, _, qk, ck = make_data()
    options = RandomOptions(extra_codes=extra_codes)
    sampler = RandomSampler(N, 8, seed=3, options=options)
    if keys:
        sampler.set_text_keys(qk, ck)
    return sampler


def test_random_extra_codes_follow_the_exclusions_and_keep_the_random_anchors():
    _, _, qk, ck = make_data()
    plain, extra = random_extra_sampler(0), random_extra_sampler(2)
    config = apply_overrides(RunConfig(), {"sampler.random_extra_codes": "2"}, "test")
    assert config.sampler.options["random"].extra_codes == 2
    for epoch in range(3):
        plain.set_epoch(epoch)
        extra.set_epoch(epoch)
        assert all(b.extra_codes is None for b in plain.batches())
        drawn = set()
        for p, batch in zip(plain.batches(), extra.batches(), strict=True):
            np.testing.assert_array_equal(p.anchors, batch.anchors)  # the same anchors
            extras, anchors = batch.extra_codes, batch.anchors
            assert len(extras) > 0 and len(extras) <= 2 * len(anchors)
            assert not np.isin(ck[extras], ck[anchors]).any()  # no positive nor its copy
            assert len(set(ck[extras])) == len(extras)  # deduplicated by code text
            # no extra is paired anywhere in the data with an anchor's query text: checked
            # per anchor on the per-anchor draws below
            drawn.update(extras.tolist())
        assert len(drawn) > N // 3  # spread over the data, not a few favourites
    from codesearch.samplers.random import uniform_extras

    table = uniform_extras(N, 3, np.random.default_rng(0), qk, ck)
    for i in range(N):
        row = table[i][table[i] >= 0]
        assert len(row) == 3 and len(set(ck[row])) == 3
        for j in row:
            assert j != i and ck[j] != ck[i] and qk[j] != qk[i]
            assert not ((ck == ck[j]) & (qk == qk[i])).any()


def test_random_extra_codes_are_reproducible_and_change_with_the_epoch():
    a, b = random_extra_sampler(1), random_extra_sampler(1)
    a.set_epoch(1)
    b.set_epoch(1)
    assert batches_digest(a.batches()) == batches_digest(b.batches())
    b.set_epoch(2)
    assert batches_digest(a.batches()) != batches_digest(b.batches())
    without_keys = random_extra_sampler(1, keys=False)
    without_keys.set_epoch(0)
    for batch in without_keys.batches():
        assert not np.isin(batch.extra_codes, batch.anchors).any()
        assert len(set(batch.extra_codes)) == len(batch.extra_codes)


@pytest.mark.parametrize("value", ["-1", "x", "1.5"])
def test_random_extra_codes_must_be_a_count(value):
    with pytest.raises(UserError, match="random_extra_codes"):
        apply_overrides(RunConfig(), {"sampler.random_extra_codes": value}, "test")
