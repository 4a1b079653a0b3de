"""assignment_diagnostics against a direct computation; `codesearch embed` and `batches`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from codesearch.cli import main
from codesearch.diagnostics import assignment_diagnostics, batch_loss, train_losses
from codesearch.samplers import Batch


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_embeddings(n: int = 30, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = unit(rng.normal(size=(n, d)))
    return unit(codes + 0.8 * rng.normal(size=(n, d))), codes


def direct(queries, codes, batches, scale):
    """Per-anchor loops in float64: the definitions of docs/method.md."""
    q, c = queries.astype(np.float64), codes.astype(np.float64)

    def nll(i, candidates):
        logits = scale * c[candidates] @ q[i]
        top = logits.max()
        return top + np.log(np.exp(logits - top).sum()) - scale * q[i] @ c[i]

    l_global = np.mean([nll(i, np.arange(len(q))) for i in range(len(q))])
    train, sims = [], []
    for batch in batches:
        candidates = list(batch.anchors) + list(
            batch.extra_codes if batch.extra_codes is not None else []
        )
        for i in batch.anchors:
            train.append(nll(i, candidates))
            sims += [q[i] @ c[j] for j in candidates if j != i]
    return {
        "l_global": l_global,
        "l_train": np.mean(train),
        "gap": l_global - np.mean(train),
        "hardness": np.mean(sims),
    }


@pytest.mark.parametrize("with_extras", [False, True])
def test_assignment_diagnostics_match_a_direct_computation(with_extras):
    queries, codes = random_embeddings()
    order = np.random.default_rng(1).permutation(30)
    batches = [Batch(order[i : i + 7]) for i in range(0, 30, 7)]  # sizes 7,7,7,7,2
    if with_extras:
        for b, extra in zip(
            batches, ([order[10], order[20]], [order[0]], [], [order[29]], [1]), strict=True
        ):
            b.extra_codes = np.array([e for e in extra if e not in b.anchors], dtype=np.int64)
    got = assignment_diagnostics(queries, codes, batches, scale=20.0)
    want = direct(queries, codes, batches, 20.0)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
    assert got["gap"] >= 0
    if with_extras:  # extras are more candidates: a larger training loss, a smaller gap
        plain = assignment_diagnostics(queries, codes, [b.anchors for b in batches], 20.0)
        assert got["l_train"] > plain["l_train"] and got["gap"] < plain["gap"]


def test_masked_gap_equals_a_hand_computation():
    """Four pairs, scale 1; pairs 0 and 1 share their query text, so each masks the other."""
    queries = unit(np.array([[1.0, 0.2], [1.0, 0.3], [0.1, 1.0], [0.4, 1.0]]))
    codes = unit(np.array([[1.0, 0.0], [0.9, 0.4], [0.0, 1.0], [0.5, 0.8]]))
    query_keys, code_keys = np.array([7, 7, 8, 9]), np.array([1, 2, 3, 4])
    s = queries.astype(np.float64) @ codes.astype(np.float64).T  # (4, 4), scale 1

    def nll(i, candidates):
        return -s[i, i] + np.log(sum(np.exp(s[i, j]) for j in candidates))

    # L^Global with the mask: 0 and 1 lose each other, 2 and 3 keep all four codes
    l_global = np.mean(
        [nll(0, [0, 2, 3]), nll(1, [1, 2, 3]), nll(2, [0, 1, 2, 3]), nll(3, [0, 1, 2, 3])]
    )
    # batches {0, 1} and {2, 3}: anchors 0 and 1 have no unmasked negative, so loss 0
    l_train = np.mean([0.0, 0.0, nll(2, [2, 3]), nll(3, [2, 3])])
    got = assignment_diagnostics(queries, codes, [[0, 1], [2, 3]], 1.0, query_keys, code_keys)
    assert got["l_global_masked"] == pytest.approx(l_global, rel=1e-6)
    assert got["l_train_masked"] == pytest.approx(l_train, rel=1e-6)
    assert got["gap_masked"] == pytest.approx(l_global - l_train, rel=1e-6)
    assert got["anchors_no_negatives"] == 2 and got["anchors_under_half_negatives"] == 2
    train = train_losses(queries, codes, [[0, 1], [2, 3]], 1.0, query_keys, code_keys)
    assert train == {
        "l_train": got["l_train"],
        "hardness": got["hardness"],
        "l_train_masked": got["l_train_masked"],
        "anchors_no_negatives": 2,
        "anchors_under_half_negatives": 2,
    }
    assert set(train_losses(queries, codes, [[0, 1], [2, 3]], 1.0)) == {"l_train", "hardness"}
    # unmasked, the duplicate counts as the hardest negative: a smaller gap than masked
    assert got["gap"] < got["gap_masked"]
    # with distinct texts the masked numbers are the plain ones
    plain = assignment_diagnostics(
        queries, codes, [[0, 1], [2, 3]], 1.0, np.arange(4), np.arange(4)
    )
    assert plain["gap_masked"] == pytest.approx(plain["gap"], rel=1e-6)
    assert plain["anchors_no_negatives"] == plain["anchors_under_half_negatives"] == 0


def test_without_extras_it_is_the_plain_batch_loss():
    queries, codes = random_embeddings()
    batches = [np.arange(i, i + 10) for i in range(0, 30, 10)]
    plain = batch_loss(queries, codes, batches, 5.0)
    assert train_losses(queries, codes, batches, 5.0)["l_train"] == plain
    assert plain == pytest.approx(
        direct(queries, codes, [Batch(b) for b in batches], 5.0)["l_train"]
    )
    assert batch_loss(
        queries, codes, [Batch(b, np.empty(0, dtype=np.int64)) for b in batches], 5.0
    ) == pytest.approx(plain)
    # with extras batch_loss is the l_train of train_losses too
    with_extras = [Batch(b, np.array([(b[0] + 10) % 30])) for b in batches]
    assert batch_loss(queries, codes, with_extras, 5.0) == pytest.approx(
        direct(queries, codes, with_extras, 5.0)["l_train"]
    )
    assert batch_loss(queries, codes, with_extras, 5.0) > plain


def test_bad_loss_input_raises():
    queries, codes = random_embeddings()
    with pytest.raises(ValueError, match="scale must be > 0"):
        batch_loss(queries, codes, [Batch(np.arange(3), np.array([4]))], 0.0)
    with pytest.raises(ValueError, match="no anchors"):
        batch_loss(queries, codes, [Batch(np.array([], dtype=np.int64), np.array([4]))], 20.0)


# --- command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embeddings(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "train.npz"
    assert (
        main(
            [
                "embed",
                "--model",
                "minilm",
                "--data",
                str(tiny_data),
                "--language",
                "python",
                "--split",
                "train",
                "--out",
                str(out),
                "--max-pairs",
                "80",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_embed_writes_rows_in_split_order_with_keys(embeddings, tiny_data):
    from codesearch.data.prepared import load_records
    from codesearch.data.training_data import subsample, text_keys

    records = subsample(load_records(tiny_data, "python", "train"), 80, 0)
    with np.load(embeddings) as npz:
        assert npz["queries"].shape == npz["codes"].shape == (80, 384)
        assert npz["queries"].dtype == np.float32
        assert npz["ids"].tolist() == [r.id for r in records]
        assert np.array_equal(npz["code_keys"], text_keys([r.code for r in records]))
        assert np.array_equal(npz["query_keys"], text_keys([r.query for r in records]))
        assert np.allclose(np.linalg.norm(npz["codes"], axis=1), 1, atol=1e-4)
        assert json.loads(str(npz["meta"]))["split"] == "train"


@pytest.mark.parametrize(
    "sampler, flags",
    [
        ("random", []),
        ("hardneg", ["--hardneg-negatives", "2", "--hardneg-ranks", "1:4"]),
        ("tbs", []),
        ("tbs", ["--tbs-graph", "knn", "--tbs-knn", "4", "--tbs-knn-backend", "exact"]),
    ],
)
def test_batches_end_to_end(embeddings, tmp_path, capsys, sampler, flags):
    out = tmp_path / "batches.json"
    capsys.readouterr()
    assert (
        main(
            [
                "batches",
                "--embeddings",
                str(embeddings),
                "--sampler",
                sampler,
                "--batch-size",
                "16",
                "--seed",
                "1",
                "--out",
                str(out),
                *flags,
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["sampler"], result["n"], result["batch_size"]) == (sampler, 80, 16)
    saved = json.loads(out.read_text())
    assert sorted(i for b in saved["batches"] for i in b) == list(range(80))
    with np.load(embeddings) as npz:
        q, c = npz["queries"], npz["codes"]
    extras = saved.get("extras", [None] * len(saved["batches"]))
    batches = [
        Batch(np.array(b), None if e is None else np.array(e, dtype=np.int64))
        for b, e in zip(saved["batches"], extras, strict=True)
    ]
    want = assignment_diagnostics(q, c, batches, 20.0)
    for key in ("l_global", "l_train", "gap", "hardness"):
        assert result[key] == pytest.approx(want[key], rel=1e-6)
    assert result["gap"] >= 0 and result["seconds"] >= 0
    if sampler == "tbs":
        assert "extras" not in saved and set(result["timings"]) >= {"rcm", "total"}
    if sampler == "hardneg":
        assert "extras" in saved and result["extras_per_batch"] > 0
        assert set(result["timings"]) >= {"mining", "sampling"}
        random = json.loads(_run_json(embeddings, capsys, "random"))
        # mined negatives are harder than random in-batch ones
        assert result["hardness"] > random["hardness"]
        assert result["gap"] < random["gap"]


def _run_json(embeddings, capsys, sampler):
    capsys.readouterr()
    assert (
        main(
            [
                "batches",
                "--embeddings",
                str(embeddings),
                "--sampler",
                sampler,
                "--batch-size",
                "16",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    return capsys.readouterr().out


def _write_npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _bad_inputs(tmp_path):
    ok = np.ones((6, 4), dtype=np.float32)
    return {
        "missing": (["--embeddings", str(tmp_path / "nope.npz")], "no such embeddings file"),
        "not_npz": (["--embeddings", str(_text(tmp_path / "x.npz"))], "not a readable .npz"),
        "no_codes": (
            ["--embeddings", str(_write_npz(tmp_path / "a.npz", queries=ok))],
            "has no codes array",
        ),
        "shape": (
            ["--embeddings", str(_write_npz(tmp_path / "b.npz", queries=ok, codes=ok[:5]))],
            "must both be (N, d)",
        ),
        "keys": (
            [
                "--embeddings",
                str(_write_npz(tmp_path / "c.npz", queries=ok, codes=ok, code_keys=np.arange(5))),
            ],
            "code_keys has shape",
        ),
        "too_big": (
            [
                "--embeddings",
                str(_write_npz(tmp_path / "d.npz", queries=ok, codes=ok)),
                "--batch-size",
                "7",
            ],
            "between 1 and the number of pairs",
        ),
        "scale": (["--embeddings", str(tmp_path / "d.npz"), "--scale", "0"], "--scale"),
        "sampler": (
            ["--embeddings", str(tmp_path / "d.npz"), "--sampler", "nope"],
            "unknown sampler",
        ),
        "range": (
            [
                "--embeddings",
                str(tmp_path / "d.npz"),
                "--sampler",
                "hardneg",
                "--hardneg-range",
                "5:1",
            ],
            "sampler.hardneg_ranks must be 'lo:hi' with 1 <= lo <= hi",
        ),
        "ranks": (
            [
                "--embeddings",
                str(tmp_path / "d.npz"),
                "--sampler",
                "hardneg",
                "--hardneg-ranks",
                "5:1",
            ],
            "sampler.hardneg_ranks must be 'lo:hi' with 1 <= lo <= hi",
        ),
        "tbs": (
            ["--embeddings", str(tmp_path / "d.npz"), "--sampler", "tbs", "--tbs-graph", "ring"],
            "sampler.tbs_graph must be one of quantile, knn; got 'ring'",
        ),
    }


def _text(path):
    path.write_text("not an npz")
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not_npz",
        "no_codes",
        "shape",
        "keys",
        "too_big",
        "scale",
        "sampler",
        "range",
        "ranks",
        "tbs",
    ],
)
def test_bad_batches_input_is_one_line_exit_2(tmp_path, capsys, case):
    args, message = _bad_inputs(tmp_path)[case]
    if "--batch-size" not in args:
        args = [*args, "--batch-size", "2"]
    capsys.readouterr()
    assert main(["batches", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-pairs", "0"], "--max-pairs"),
        (["--batch-size", "0"], "--batch-size"),
        (["--language", "cobol"], "unknown language"),
        (["--split", "nope"], "no split"),
        (["--out", "{tmp}"], "is a directory; the embeddings file needs a file path"),
    ],
)
def test_bad_embed_input_is_one_line_exit_2(tiny_data, tmp_path, capsys, flags, message):
    args = {
        "--model": "minilm",
        "--data": str(tiny_data),
        "--language": "python",
        "--out": str(tmp_path / "e.npz"),
    }
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        args[flag] = value.replace("{tmp}", str(tmp_path))
    capsys.readouterr()
    assert main(["embed", *[x for kv in args.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "e.npz").exists()


def test_embed_of_an_empty_split_is_one_line_exit_2(tmp_path, capsys, record_factory):
    from codesearch.data.prepared import PreparedWriter

    with PreparedWriter(tmp_path / "data") as writer:
        writer.write_split("python", "train", [])
        writer.write_split("python", "valid", [record_factory(1, split="valid")])
        writer.finish()
    capsys.readouterr()
    assert (
        main(
            [
                "embed",
                "--model",
                "minilm",
                "--data",
                str(tmp_path / "data"),
                "--language",
                "python",
                "--out",
                str(tmp_path / "e.npz"),
            ]
        )
        == 2
    )
    assert "no records to embed" in capsys.readouterr().err


def test_evaluate_checks_its_out_path_before_encoding(tiny_data, tmp_path, capsys, monkeypatch):
    import codesearch.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "evaluate", lambda *a, **k: pytest.fail("encoded"))
    (tmp_path / "file").write_text("x")
    for out, message in (
        (tmp_path, "is a directory"),
        (tmp_path / "file" / "r.json", "is not a directory"),
    ):
        capsys.readouterr()
        assert main(["evaluate", "--data", str(tiny_data), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
