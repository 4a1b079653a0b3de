"""notebooks/compare_samplers.ipynb executed (nbclient) on a tiny results directory, and
codesearch.batch_view on hand-made embeddings and on the tiny run's models."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from codesearch import batch_view
from codesearch.data.prepared import load_records
from codesearch.data.training_data import subsample
from codesearch.errors import UserError
from codesearch.samplers import TBSOptions

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_samplers.ipynb"
BATCH_SIZE = 16


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch) -> str:
    """A "python3" kernel spec that runs this interpreter (the venv's), found first through
    JUPYTER_PATH whatever other python3 kernels the machine has."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "codesearch tests",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    return "python3"


def outputs(nb) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


# --- the notebook ------------------------------------------------------------------------------


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'os.environ.get("CODESEARCH_RESULTS"' in code[0].source


@pytest.mark.slow
def test_notebook_executes_on_a_tiny_results_dir(tiny_results, python3_kernel, monkeypatch):
    monkeypatch.setenv("CODESEARCH_RESULTS", str(tiny_results))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name=python3_kernel,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"the notebook failed:\n{error}")
    outs = outputs(nb)
    assert not [o for o in outs if o.output_type == "error"]
    data = [o.get("data", {}) for o in outs if o.output_type in ("display_data", "execute_result")]
    assert any("text/markdown" in d for d in data), "no report markdown"
    assert any("image/png" in d for d in data), "no plot"
    tables = [d["text/html"] for d in data if "<table" in d.get("text/html", "")]
    assert any(
        "tbs (mean off-diagonal" in t and "random (mean off-diagonal" in t for t in tables
    ), "no side-by-side batch table"
    assert any("l_global" in t for t in tables), "no sampler summary"
    printed = "".join(o.get("text", "") for o in outs if o.output_type == "stream")
    assert "model of cell nbow__random__seed0:" in printed and "python/best" in printed
    assert (tiny_results / "report.md").is_file()  # write_report ran


# --- batch_view on hand-made embeddings --------------------------------------------------------


def clustered(
    n_clusters: int = 8, size: int = 8, dim: int = 32, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries and codes in tight clusters of ``size`` pairs, shuffled: (q, c, cluster of i)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, dim))
    label = rng.permutation(np.repeat(np.arange(n_clusters), size))
    q = centers[label] + noise * rng.normal(size=(len(label), dim))
    c = centers[label] + noise * rng.normal(size=(len(label), dim))
    unit = [(x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32) for x in (q, c)]
    return unit[0], unit[1], label


def test_tbs_example_batch_is_harder_than_the_random_one():
    q, c, label = clustered()
    options = TBSOptions(graph="knn", knn=7, knn_backend="exact", same_text_edges="keep")
    batches = batch_view.epoch_batches(q, c, 8, seed=1, tbs_options=options)
    assert sorted(np.concatenate(batches["tbs"]).tolist()) == list(range(64))
    assert sorted(np.concatenate(batches["random"]).tolist()) == list(range(64))
    examples = batch_view.example_batches(q, c, batches)
    assert len(set(label[examples["tbs"]])) == 1  # TBS gathered one cluster
    tbs = batch_view.off_diagonal_mean(q, c, examples["tbs"])
    random = batch_view.off_diagonal_mean(q, c, examples["random"])
    assert tbs > 0.9 and random < 0.5
    summary = batch_view.sampler_summary(q, c, batches)
    assert summary.loc["tbs", "hardness"] > summary.loc["random", "hardness"]
    assert summary.loc["tbs", "gap"] < summary.loc["random", "gap"]
    assert summary.loc["tbs", "batches"] == 8


def test_example_batches_skip_a_short_last_batch():
    q, c, label = clustered(n_clusters=2, size=4)
    a, b = np.flatnonzero(label == 0), np.flatnonzero(label == 1)
    mixed = [np.array([a[0], b[0], b[1]]), np.array([a[1], b[2], b[3]])]
    short = a[2:]  # one cluster: the hardest batch, but shorter than the others
    assert batch_view.off_diagonal_mean(q, c, short) > 0.9
    chosen = batch_view.example_batches(q, c, {"x": [*mixed, short]})["x"]
    assert len(chosen) == 3 and batch_view.off_diagonal_mean(q, c, chosen) < 0.5


def test_batch_table_rows_and_hardest_negative(record_factory):
    records = [record_factory(i, query=f"query {i} " + "word " * 30) for i in range(3)]
    records[1] = dataclasses.replace(records[1], func_name="Module.Class." + "y" * 40)
    q = np.eye(3, 4, dtype=np.float32)  # q_0, q_1, q_2 = e0, e1, e2
    c = np.array([[1, 0, 0, 0], [0.6, 0.8, 0, 0], [0, 0.8, 0.6, 0]], dtype=np.float32)
    table = batch_view.batch_table(records, q, c, np.array([2, 0, 1]), width=20)
    assert len(table) == 3
    assert table["func_name"].tolist() == ["f2", "f0", "..." + "y" * 7]
    assert table["query"].str.len().max() <= 20 and table["query"][0].endswith("...")
    assert table["own code"].tolist() == pytest.approx([0.6, 1.0, 0.8])
    assert table["masked"].tolist() == [0, 0, 0]
    # q_2 = e2 sees codes 0 (sim 0) and 1 (sim 0); q_0 = e0 sees 1 (0.6) and 2 (0)
    assert table["hardest negative"].tolist() == pytest.approx([0.0, 0.6, 0.8])
    assert table["its func_name"].tolist()[2] == "f2"
    mean = (0 + 0 + 0.6 + 0 + 0 + 0.8) / 6
    assert table.attrs["mean_off_diagonal"] == pytest.approx(mean)
    assert table["mean negative"].mean() == pytest.approx(mean, abs=1e-3)
    both = batch_view.side_by_side({"tbs": table, "random": table})
    assert len(both) == 3 and both.columns.nlevels == 2
    assert len(batch_view.side_by_side({"tbs": table}, rows=2)) == 2
    assert f"tbs (mean off-diagonal {mean:.3f})" in both.columns.get_level_values(0)


def test_batch_table_leaves_out_the_negatives_the_loss_masks(record_factory):
    # pairs 0 and 1 share their query, pairs 1 and 2 their code: the loss drops those negatives
    records = [
        record_factory(0, query="same query here"),
        record_factory(1, query="same query here", code="def same(): pass"),
        record_factory(2, code="def same(): pass"),
        record_factory(3),
    ]
    mask = batch_view.loss_mask(records, np.arange(4))
    expected = np.zeros((4, 4), dtype=bool)
    expected[0, 1] = expected[1, 0] = expected[1, 2] = expected[2, 1] = True
    assert (mask == expected).all()
    q = np.eye(4, dtype=np.float32)
    c = np.eye(4, dtype=np.float32)
    c[1] = c[2] = q[0] * 0.8 + q[3] * 0.6  # codes 1 and 2 are closest to query 0
    table = batch_view.batch_table(records, q, c, np.arange(4))
    assert table["masked"].tolist() == [1, 2, 1, 0]
    assert table["hardest negative"][0] == pytest.approx(0.8)  # code 2; code 1 is masked
    assert table["its func_name"][0] == "f2"
    assert np.isnan(batch_view.off_diagonal_mean(q, c, np.array([0, 1]), mask[:2, :2]))
    # a batch of copies of one query gives the loss no negatives: never the example
    copies = [record_factory(i, query="Update properties of this object") for i in range(4)]
    batches = {"x": [np.array([0, 1]), np.array([2, 3])]}
    q2 = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    c2 = np.array([[1, 0], [1, 0], [1, 0], [0.6, 0.8]], dtype=np.float32)
    assert batch_view.example_batches(q2, c2, batches)["x"].tolist() == [0, 1]
    chosen = batch_view.example_batches(q2, c2, batches, copies[:2] + records[2:])
    assert chosen["x"].tolist() == [2, 3]


def test_off_diagonal_mean_needs_two_pairs():
    q, c, _ = clustered(n_clusters=1, size=2)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        batch_view.off_diagonal_mean(q, c, np.array([0]))


# --- batch_view on the tiny run ----------------------------------------------------------------


def test_choose_run_and_embed(tiny_results, tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # grid.json paths resolve against the results' repository root
    run = batch_view.choose_run(tiny_results)
    assert run.cell == "nbow__random__seed0" and run.language == "python"
    assert run.batch_size == BATCH_SIZE and run.tbs_options.quantile == 0.999
    assert run.data == tiny_data and run.run_dir.is_dir()
    tbs = batch_view.choose_run(tiny_results, group="nbow", sampler="tbs", language="py")
    assert tbs.cell == "nbow__tbs__seed0" and tbs.run_dir.name == "tbs-seed0"
    assert tbs.model == tbs.run_dir / "python" / "best"
    assert f"cell nbow__tbs__seed0: {tbs.model}" in tbs.describe()

    records = batch_view.sample_pairs(run.data, "python", 40, seed=3)
    assert records == subsample(load_records(tiny_data, "python", "train"), 40, 3)
    model, tokenizer = batch_view.load_run_model(run.run_dir, "python")
    queries, codes = batch_view.unit_embeddings(model, tokenizer, records)
    assert queries.shape == codes.shape == (40, model.dim) and queries.dtype == np.float32
    assert np.allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    assert isinstance(run.tbs_options, TBSOptions)
    batches = batch_view.epoch_batches(
        queries, codes, run.batch_size, 0, records, tbs_options=run.tbs_options
    )
    examples = batch_view.example_batches(queries, codes, batches)
    table = batch_view.batch_table(records, queries, codes, examples["tbs"])
    assert len(table) == BATCH_SIZE


def test_choose_run_errors(tiny_results, tmp_path):
    with pytest.raises(UserError, match="no grid.json"):
        batch_view.choose_run(tmp_path)
    with pytest.raises(UserError, match="no done cell of group 'nbow' with sampler 'bogus'"):
        batch_view.choose_run(tiny_results, sampler="bogus")
    with pytest.raises(UserError, match="has no model for 'ruby'"):
        batch_view.choose_run(tiny_results, language="ruby")
    grid = json.loads((tiny_results / "grid.json").read_text())
    grid["cells"][0]["run_dir"] = "runs/tiny/nbow/missing"
    moved = tmp_path / "results" / "moved"
    moved.mkdir(parents=True)
    (moved / "grid.json").write_text(json.dumps(grid))
    with pytest.raises(UserError, match="'runs/tiny/nbow/missing' does not exist"):
        batch_view.choose_run(moved)


def test_load_run_model_needs_a_run_directory(tmp_path):
    with pytest.raises(UserError, match="not a training run directory"):
        batch_view.load_run_model(tmp_path, "python")
