"""Tail Batch Sampling: the ordering, the graphs, the sampler's epoch / resume contract (the
benchmark's tiny run is in test_benchmarks.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from graph_helpers import bandwidth

from codesearch import diagnostics
from codesearch.config import RunConfig, SamplerConfig
from codesearch.config_sources import apply_overrides
from codesearch.errors import UserError
from codesearch.samplers import (
    RandomSampler,
    TBSOptions,
    TBSSampler,
    chunk,
    graphs,
    knn,
    sampler_class,
)
from codesearch.samplers.graphs import (
    graph_density,
    knn_graph,
    neighbour_in_batch_share,
    quantile_threshold,
    rcm_order,
    threshold_graph,
)
from codesearch.samplers.knn import as_embeddings, topk_neighbors
from codesearch.samplers.tbs import batches_from_permutation, tbs_batches

SCALE = 20.0


def clustered(
    n_clusters: int = 40,
    size: int = 25,
    dim: int = 32,
    seed: int = 0,
    spread: float = 0.6,
    noise: float = 0.3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-norm (queries, codes, cluster labels): pairs around cluster centres, rows shuffled
    so that the data's own order carries no cluster structure."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    labels = rng.permutation(np.repeat(np.arange(n_clusters), size))
    latent = centres[labels] + spread * rng.standard_normal((len(labels), dim))
    q = latent + noise * rng.standard_normal(latent.shape)
    c = latent + noise * rng.standard_normal(latent.shape)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return q.astype(np.float32), c.astype(np.float32), labels


@pytest.fixture(scope="module")
def data():
    return clustered()


@pytest.fixture(scope="module")
def random_gap(data):
    q, c, _ = data
    order = np.random.default_rng(0).permutation(len(q))
    return gap(q, c, chunk(order, 32))


def gap(q: np.ndarray, c: np.ndarray, batches: list[np.ndarray]) -> float:
    return diagnostics.global_loss(q, c, SCALE) - diagnostics.batch_loss(q, c, batches, SCALE)


class CountingEmbed:
    def __init__(self, q: np.ndarray, c: np.ndarray):
        self.q, self.c, self.calls = q, c, 0

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        return self.q, self.c


def failing_embed() -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError("embed() must not be called here")


def tbs_order(q, c, seed: int = 0, text_keys=None, **options) -> tuple[np.ndarray, dict]:
    """pi and the info of ``tbs_batches`` (same-text edges kept unless text keys are given)."""
    if text_keys is None:
        options.setdefault("same_text_edges", "keep")
    _, info = tbs_batches(
        q, c, batch_size=32, options=TBSOptions(**options), seed=seed, text_keys=text_keys
    )
    return info["permutation"], info


def anchors(sampler: TBSSampler) -> list[list[int]]:
    return [b.anchors.tolist() for b in sampler]


# --- the method ---------------------------------------------------------------------------------


def test_tbs_gap_is_smaller_than_random(data, random_gap):
    q, c, labels = data
    order, info = tbs_order(q, c, quantile=0.99)
    assert info["tau_exact"] and info["edges"] > 0
    batches = chunk(order, 32)
    assert gap(q, c, batches) < 0.4 * random_gap
    same = np.mean([np.mean(labels[b][:, None] == labels[b][None, :]) for b in batches])
    assert same > 0.4  # random batches: about 1/40


def test_rcm_narrows_the_bandwidth(data):
    q, c, _ = data
    order, info = tbs_order(q, c, quantile=0.99)
    graph = info["adjacency"] + info["adjacency"].T
    before = bandwidth(graph)
    assert before > 900  # the rows are shuffled: edges span the whole matrix
    assert bandwidth(graph, order) < 0.3 * before


def test_permutation_orders_every_pair_once_and_is_deterministic(data):
    q, c, _ = data
    first, _ = tbs_order(q, c, quantile=0.99, seed=3)
    again, _ = tbs_order(q, c, quantile=0.99, seed=3)
    other, _ = tbs_order(q, c, quantile=0.99, seed=4)
    assert np.array_equal(np.sort(first), np.arange(len(q)))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)  # the relabelling breaks ties differently


def test_default_quantile_graph_excludes_the_diagonal(data):
    q, c, _ = data
    _, info = tbs_order(q, c)  # q = 0.999: N^2 / 1000 = N entries
    adjacency = info["adjacency"]
    assert adjacency.diagonal().sum() == 0
    # the positives S_ii fill most of that tail, so most pairs have no edge at this small N
    assert info["edges"] < len(q) and info["isolated"] > len(q) // 2


def test_empty_graph_gives_a_random_order():
    q = np.ones((50, 4), dtype=np.float32) / 2  # every S_ij equal: nothing lies above tau
    order, info = tbs_order(q, q)
    assert info["edges"] == 0 and info["isolated"] == 50
    assert np.array_equal(np.sort(order), np.arange(50))
    assert not np.array_equal(order, np.arange(50))


def test_knn_and_quantile_give_similar_gaps(data, random_gap):
    q, c, _ = data
    quantile_order, _ = tbs_order(q, c, quantile=0.99)
    knn_order, info = tbs_order(q, c, graph="knn", knn=8, knn_backend="exact")
    assert info["backend"] == "exact" and info["edges"] == 8 * len(q)
    quantile_gap, knn_gap = gap(q, c, chunk(quantile_order, 32)), gap(q, c, chunk(knn_order, 32))
    assert knn_gap < 0.4 * random_gap
    assert abs(quantile_gap - knn_gap) < 0.15 * random_gap  # measured: 0.02 to 0.08


def test_sampled_threshold_gives_the_exact_graph(data, monkeypatch):
    q, c, _ = data
    exact_tau, exact = quantile_threshold(q, c, 0.99)
    sampled_tau, sampled = quantile_threshold(q, c, 0.99, exact_limit=0, samples=4_000_000)
    assert exact and not sampled
    assert abs(sampled_tau - exact_tau) < 0.01
    exact_graph, sampled_graph = (
        threshold_graph(q, c, exact_tau),
        threshold_graph(q, c, sampled_tau),
    )
    both = exact_graph.multiply(sampled_graph).nnz
    assert both / (exact_graph.nnz + sampled_graph.nnz - both) > 0.9  # Jaccard of edge sets
    monkeypatch.setattr(graphs, "EXACT_QUANTILE_LIMIT", 0)
    monkeypatch.setattr(graphs, "THRESHOLD_SAMPLES", 4_000_000)
    _, info = tbs_order(q, c, quantile=0.99)
    assert not info["tau_exact"] and abs(info["tau"] - exact_tau) < 0.01


def test_tiled_graphs_match_a_dense_reference(data, monkeypatch):
    q, c, _ = data
    # several column tiles, a ragged last one (the graph's and the search's)
    monkeypatch.setattr(graphs, "COL_TILE", 96)
    monkeypatch.setattr(knn, "COL_TILE", 96)
    s = q @ c.T
    tau = float(np.quantile(s, 0.99))
    dense = (s > tau) & ~np.eye(len(q), dtype=bool)
    graph = threshold_graph(q, c, tau, block_size=70)
    assert np.array_equal(graph.toarray().astype(bool), dense)
    scores, found = topk_neighbors(q, c, 5, backend="exact", block_size=70)
    reference = np.argsort(-s, axis=1, kind="stable")[:, :5]
    assert np.array_equal(found, reference)
    assert np.allclose(scores, np.take_along_axis(s, reference, 1), atol=1e-5)


def test_knn_graph_has_m_codes_per_query_and_no_self_loop(data):
    q, c, _ = data
    graph = knn_graph(q, c, m=6, backend="exact")
    assert np.all(np.diff(graph.indptr) == 6)
    assert graph.diagonal().sum() == 0
    s = q @ c.T
    np.fill_diagonal(s, -np.inf)
    assert np.array_equal(
        np.sort(graph.indices.reshape(-1, 6), axis=1),
        np.sort(np.argsort(-s, axis=1)[:, :6], axis=1),
    )


def test_faiss_and_exact_knn_agree():
    q, c, _ = clustered(80, 25, dim=64, seed=1)
    _, exact = topk_neighbors(q, c, 10, backend="exact")
    scores, approx = topk_neighbors(q, c, 10, backend="faiss")
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert recall >= 0.95
    # the quantised search's candidates are re-scored exactly, best first
    assert np.allclose(scores, np.einsum("nd,nkd->nk", q, c[approx]), atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)
    order, info = tbs_order(q, c, graph="knn", knn=8, knn_backend="faiss")
    assert info["backend"] == "faiss"
    assert np.array_equal(np.sort(order), np.arange(len(q)))


def test_auto_backend_is_exact_for_small_data(data):
    q, c, _ = data
    _, info = tbs_order(q, c, graph="knn", knn=4)
    assert info["backend"] == "exact"
    assert knn.resolve_backend("auto", knn.AUTO_FAISS_MIN) == "faiss"


def test_rcm_order_undoes_a_shuffled_band():
    n = 200
    band = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) == 1  # a path 0-1-...-199
    shuffle = np.random.default_rng(0).permutation(n)
    graph = sp.csr_array(band[np.ix_(shuffle, shuffle)].astype(np.int8))
    order, stats = rcm_order(graph, seed=1)
    assert stats == {"symmetric_edges": 2 * (n - 1), "isolated": 0}  # already symmetric
    assert bandwidth(graph, order) == 1


# --- the sampler --------------------------------------------------------------------------------


def unique_keys(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Text keys of n pairs whose queries and codes are all different."""
    return np.arange(n, dtype=np.int64), np.arange(n, 2 * n, dtype=np.int64)


def make_tbs(n: int, batch_size: int, seed: int = 0, min_last: int = 1, **options) -> TBSSampler:
    """A TBS sampler over synthetic pairs with distinct texts (as the trainer sets them)."""
    sampler = TBSSampler(n, batch_size, seed, min_last, options=TBSOptions(**options))
    sampler.set_text_keys(*unique_keys(n))
    return sampler


def test_registry_and_config_options_build_the_sampler():
    config = SamplerConfig.from_dict({"name": "tbs", "tbs_graph": "knn", "tbs_every": 3})
    options = config.options["tbs"]
    assert isinstance(options, TBSOptions)
    sampler = sampler_class("tbs")(100, 10, seed=1, options=options)
    assert isinstance(sampler, TBSSampler)
    assert sampler.options.every == 3 and sampler.options.graph == "knn"
    assert sampler.options.embeddings == "fresh" and not sampler.wants_cached_embeddings


@pytest.mark.parametrize("n, batch_size, min_last", [(1000, 32, 1), (1000, 32, 9), (1000, 40, 2)])
def test_every_pair_is_an_anchor_once_per_epoch(data, n, batch_size, min_last):
    q, c, _ = data
    sampler = make_tbs(n, batch_size, seed=0, min_last=min_last, quantile=0.99)
    embed = CountingEmbed(q[:n], c[:n])
    for epoch in range(2):
        sampler.set_epoch(epoch)
        sampler.prepare(embed)
        batches = anchors(sampler)
        assert len(sampler) == len(batches)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(len(b) >= min_last for b in batches)
    assert embed.calls == 2
    assert set(sampler.timings) == {"threshold", "graph", "rcm", "chunk", "total"}
    assert sampler.last_info["edges"] > 0


def test_same_seed_epoch_and_embeddings_give_the_same_batches(data):
    q, c, _ = data

    def batches(seed: int, epoch: int) -> list[list[int]]:
        sampler = make_tbs(len(q), 32, seed=seed, quantile=0.99)
        sampler.set_epoch(epoch)
        sampler.prepare(CountingEmbed(q, c))
        return anchors(sampler)

    assert batches(0, 1) == batches(0, 1)
    assert batches(0, 1) != batches(0, 2)
    assert batches(0, 1) != batches(1, 1)
    expected, _ = tbs_batches(
        q,
        c,
        batch_size=32,
        options=TBSOptions(quantile=0.99),
        seed=0,
        epoch=1,
        text_keys=unique_keys(len(q)),
    )
    assert batches(0, 1) == [b.tolist() for b in expected]


def test_batches_keep_rcm_order_without_shuffle(data):
    q, c, _ = data
    order, _ = tbs_order(q, c, quantile=0.99, seed=0)
    sampler = make_tbs(len(q), 32, quantile=0.99, shuffle_batches=False)
    sampler.prepare(CountingEmbed(q, c))
    assert np.array_equal(np.concatenate(anchors(sampler)), order)


def test_every_two_reuses_the_permutation_without_embedding(data):
    q, c, _ = data
    sampler = make_tbs(len(q), 32, seed=0, quantile=0.99, every=2)
    embed = CountingEmbed(q, c)
    seen = {}
    for epoch in range(4):
        sampler.set_epoch(epoch)
        assert sampler.needs_embeddings() == (epoch % 2 == 0)
        sampler.prepare(embed)
        assert embed.calls == epoch // 2 + 1
        seen[epoch] = anchors(sampler)
    assert "threshold" not in sampler.timings  # epoch 3 only chunked
    assert seen[1] != seen[0]  # the order of the batches is reshuffled ...
    assert sorted(seen[1]) == sorted(seen[0])  # ... but they are the same batches


def test_state_round_trip_mid_epoch_replays_batches_without_embedding(data):
    q, c, _ = data
    sampler = make_tbs(len(q), 32, seed=5, quantile=0.99, every=2)
    embed = CountingEmbed(q, c)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        sampler.prepare(embed)
    state = json.loads(json.dumps(sampler.state_dict()))  # what a checkpoint keeps
    resumed = make_tbs(len(q), 32, seed=5, quantile=0.99, every=2)
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    resumed.prepare(failing_embed)
    assert anchors(resumed) == anchors(sampler)
    # the next epoch (odd: reuses pi) needs no embeddings either, and matches the original
    for s in (sampler, resumed):
        s.set_epoch(3)
        s.prepare(failing_embed)
    assert anchors(resumed) == anchors(sampler)
    # an even epoch recomputes from fresh embeddings
    resumed.set_epoch(4)
    resumed.prepare(embed)
    assert embed.calls == 2


def test_state_saved_at_epoch_end_recomputes_the_next_epoch(data):
    q, c, _ = data
    sampler = make_tbs(len(q), 32, seed=5, quantile=0.99)
    sampler.prepare(CountingEmbed(q, c))
    resumed = make_tbs(len(q), 32, seed=5, quantile=0.99)
    resumed.load_state_dict(json.loads(json.dumps(sampler.state_dict())))
    embed = CountingEmbed(q, c)
    resumed.set_epoch(1)
    resumed.prepare(embed)
    assert embed.calls == 1


def test_state_of_an_unprepared_sampler_round_trips():
    state = make_tbs(100, 10).state_dict()
    assert state["batches"] is None and state["permutation"] is None
    resumed = make_tbs(100, 10)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    assert resumed.needs_embeddings()


# --- warm start and same-text edges ---------------------------------------------------------------


def test_epochs_before_start_epoch_are_the_random_samplers_batches(data):
    q, c, _ = data
    sampler = make_tbs(len(q), 32, seed=4, quantile=0.99, start_epoch=2, every=2)
    random = RandomSampler(len(q), 32, seed=4)
    embed = CountingEmbed(q, c)
    seen = {}
    for epoch in range(5):
        sampler.set_epoch(epoch)
        random.set_epoch(epoch)
        assert sampler.needs_embeddings() == (epoch in (2, 4))
        sampler.prepare(embed if epoch >= 2 else failing_embed)
        seen[epoch] = anchors(sampler)
        assert (seen[epoch] == [b.anchors.tolist() for b in random]) == (epoch < 2)
    assert embed.calls == 2  # epochs 2 and 4: every=2 counts from the start epoch
    assert sorted(seen[3]) == sorted(seen[2])
    expected, _ = tbs_batches(
        q,
        c,
        batch_size=32,
        options=TBSOptions(quantile=0.99),
        seed=4,
        epoch=2,
        text_keys=unique_keys(len(q)),
    )
    assert seen[2] == [b.tolist() for b in expected]


def same_text_data():
    """20 pairs; pairs 0-4 share one query text (a templated docstring) and 5-7 one code
    text, each group with near-identical embeddings, so their mutual edges are the tail."""
    q, c, _ = clustered(n_clusters=4, size=5, dim=8, seed=3)
    q, c = q.copy(), c.copy()
    q[1:5] = q[0] + 0.01 * np.arange(1, 5)[:, None]
    c[1:5] = q[0]
    c[6:8] = c[5]
    q[6:8] = c[5]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    query_keys = np.array([100] * 5 + list(range(5, 20)))
    code_keys = np.array(list(range(5)) + [200] * 3 + list(range(8, 20)))
    return q, c, (query_keys, code_keys)


def same_text_edges(adjacency, keys) -> int:
    graph = sp.coo_array(adjacency)
    query_keys, code_keys = keys
    return int(
        (
            (query_keys[graph.row] == query_keys[graph.col])
            | (code_keys[graph.row] == code_keys[graph.col])
        ).sum()
    )


@pytest.mark.parametrize("graph", ["quantile", "knn"])
def test_drop_leaves_no_same_text_edge(graph):
    q, c, keys = same_text_data()
    options = {
        "quantile": 0.9,
        "graph": graph,
        "knn": 3,
        "knn_backend": "exact",
    }
    _, kept = tbs_order(q, c, **options)
    _, dropped = tbs_order(q, c, text_keys=keys, **options)
    assert same_text_edges(kept["adjacency"], keys) > 0  # the data make such edges
    assert same_text_edges(dropped["adjacency"], keys) == 0
    assert dropped["same_text_edges_dropped"] == same_text_edges(kept["adjacency"], keys)
    assert dropped["edges"] == kept["edges"] - dropped["same_text_edges_dropped"]


def test_sampler_drops_by_default_and_keeps_on_request():
    q, c, keys = same_text_data()
    for mode, expect_dropped in (("drop", True), ("keep", False)):
        sampler = TBSSampler(len(q), 4, options=TBSOptions(quantile=0.9, same_text_edges=mode))
        sampler.set_text_keys(*keys)
        sampler.prepare(CountingEmbed(q, c))
        assert (sampler.last_info["same_text_edges_dropped"] > 0) == expect_dropped
    with pytest.raises(UserError, match="needs the query and code text keys"):
        TBSSampler(len(q), 4, options=TBSOptions(quantile=0.9)).prepare(CountingEmbed(q, c))


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, match",
    [
        ({"graph": "dense"}, "sampler.tbs_graph must be one of quantile, knn; got 'dense'"),
        ({"quantile": 1.0}, r"sampler.tbs_quantile must be a finite number in \(0, 1\); got 1.0"),
        ({"quantile": 0.0}, "sampler.tbs_quantile must be"),
        ({"knn": 0}, "sampler.tbs_knn must be"),
        ({"knn_backend": "hnsw"}, "sampler.tbs_knn_backend must be"),
        ({"block_size": 0}, "sampler.tbs_block_size must be"),
        ({"embeddings": "stale"}, "sampler.tbs_embeddings must be"),
        ({"every": 0}, "sampler.tbs_every must be"),
        ({"start_epoch": -1}, "sampler.tbs_start_epoch must be a finite number >= 0"),
        ({"same_text_edges": "merge"}, "sampler.tbs_same_text_edges must be one of drop, keep"),
    ],
)
def test_bad_options_are_value_errors_and_user_errors_through_the_config(option, match):
    with pytest.raises(ValueError, match=match):
        make_tbs(100, 10, **option)
    ((key, value),) = option.items()
    with pytest.raises(UserError, match=match):
        apply_overrides(RunConfig(), {f"sampler.tbs_{key}": value}, "test")


def test_graph_functions_reject_bad_arguments(data):
    q, c, _ = data
    # the quantile, threshold_graph's block_size and knn_graph's m are TBSOptions' checks
    # (test_bad_options_are_value_errors_and_user_errors_through_the_config)
    with pytest.raises(ValueError, match="samples must be"):
        quantile_threshold(q, c, 0.9, exact_limit=0, samples=0)
    with pytest.raises(ValueError, match="block_size must be"):
        topk_neighbors(q, c, 3, block_size=0)
    with pytest.raises(ValueError, match="knn backend must be one of"):
        topk_neighbors(q, c, 3, backend="annoy")
    with pytest.raises(ValueError, match="k must be in"):
        topk_neighbors(q, c, len(c) + 1)
    with pytest.raises(ValueError, match="same d"):
        topk_neighbors(q, c[:, :5], 3)
    with pytest.raises(ValueError, match="both be"):
        as_embeddings(q, c[:10])
    with pytest.raises(ValueError, match="batch_size must be"):
        batches_from_permutation(np.arange(10), 0)


def test_sampler_needs_embed_and_the_right_number_of_pairs(data):
    q, c, _ = data
    sampler = make_tbs(len(q), 32)
    with pytest.raises(ValueError, match="call prepare"):
        list(sampler)
    with pytest.raises(ValueError, match="returned 10 pairs"):
        sampler.prepare(CountingEmbed(q[:10], c[:10]))


def test_load_state_rejects_another_data_size(data):
    state = make_tbs(100, 10).state_dict()
    with pytest.raises(ValueError, match="has 100 pairs"):
        make_tbs(200, 10).load_state_dict(state)


def test_the_device_path_is_the_cpu_path_on_the_cpu(data):
    """The sampler's similarity work runs on its ``device`` (the training device: a GPU's tiles
    in training there); on the CPU that same code gives the same graph, top-k and batches."""
    import torch

    from codesearch.samplers.knn import resolve_backend

    q, c, _ = data
    dense = (q.astype(np.float64) @ c.astype(np.float64).T > 0.5) & ~np.eye(len(q), dtype=bool)
    for device in ("cpu", torch.device("cpu")):
        graph = threshold_graph(q, c, 0.5, block_size=64, device=device)
        assert np.array_equal(graph.toarray().astype(bool), dense)
        _, found = topk_neighbors(q, c, 5, backend="exact", block_size=64, device=device)
        assert np.array_equal(found, topk_neighbors(q, c, 5, backend="exact")[1])
    options = TBSOptions(quantile=0.99, same_text_edges="keep")
    on_cpu = TBSSampler(len(q), 32, seed=1, options=options, device=torch.device("cpu"))
    on_cpu.prepare(CountingEmbed(q, c))
    default = TBSSampler(len(q), 32, seed=1, options=options)
    default.prepare(CountingEmbed(q, c))
    assert [b.anchors.tolist() for b in on_cpu] == [b.anchors.tolist() for b in default]
    # on a GPU, "auto" searches exactly there instead of building a faiss index on the host
    assert resolve_backend("auto", 10**6, "cuda") == "exact"
    assert resolve_backend("auto", 10**6, "cpu") in ("faiss", "exact")


# --- how much structure the graph gives the batches -------------------------------------------


def test_graph_density_on_a_hand_made_graph():
    # six pairs, edges 0->1 and 3->2: pairs 4 and 5 are isolated
    adjacency = sp.csr_array((np.ones(2, dtype=np.int8), ([0, 3], [1, 2])), shape=(6, 6))
    together = [np.array([0, 1, 2]), np.array([3, 4, 5])]  # 0 and 1 share a batch; 2, 3 not
    apart = [np.array([0, 2, 4]), np.array([1, 3, 5])]  # no edge inside a batch
    density = graph_density(adjacency, 2, together, apart)
    assert density == {
        "edges_per_pair": pytest.approx(2 / 6),
        "isolated_pairs": 2,
        "isolated_share": pytest.approx(2 / 6),
        "neighbour_in_batch": pytest.approx(2 / 6),
        "neighbour_in_random_batch": 0.0,
    }
    # an edge counts both ways: the code side (2) has its neighbour (3) in the batch too
    assert neighbour_in_batch_share(
        adjacency, [np.array([2, 3]), np.array([0, 4]), np.array([1, 5])]
    ) == pytest.approx(2 / 6)
    # a self loop is not a neighbour
    loop = sp.csr_array((np.ones(1, dtype=np.int8), ([4], [4])), shape=(6, 6))
    assert neighbour_in_batch_share(loop, together) == 0.0


def test_sampler_reports_density_and_warns_once_when_most_pairs_are_isolated(data):
    q, c, _ = data
    n = len(q)
    sparse = make_tbs(n, 25, quantile=0.9999)  # about 0.1 edges per pair
    sparse.set_epoch(0)
    sparse.prepare(lambda: (q, c))
    stats = sparse.graph_stats
    assert stats["edges_per_pair"] == pytest.approx(sparse.last_info["edges"] / n)
    assert stats["isolated_pairs"] == sparse.last_info["isolated"] and stats["isolated_share"] > 0.5
    warning = sparse.density_warning()
    assert f"{stats['isolated_pairs']} pairs" in warning and "sampler.tbs_quantile" in warning
    assert sparse.density_warning() is None  # once
    dense = make_tbs(n, 25, quantile=1 - 16 / n)
    dense.set_epoch(0)
    dense.prepare(lambda: (q, c))
    stats = dense.graph_stats
    assert stats["edges_per_pair"] == pytest.approx(16, rel=0.2)
    assert stats["isolated_share"] < 0.5 and dense.density_warning() is None
    # TBS puts most pairs next to a graph neighbour; random batches far fewer
    assert stats["neighbour_in_batch"] > 2 * stats["neighbour_in_random_batch"]
    # the density survives a checkpoint (a resumed epoch logs it too)
    restored = make_tbs(n, 25, quantile=1 - 16 / n)
    restored.load_state_dict(json.loads(json.dumps(dense.state_dict())))
    assert restored.graph_stats == stats
    assert RandomSampler(n, 25).graph_stats == {} and RandomSampler(n, 25).density_warning() is None
