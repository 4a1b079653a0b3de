"""Shared test helpers: tiny records and prepared directories, no network."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from codesearch.data.schema import PairRecord, make_id  # noqa: E402


def make_record(
    i: int,
    language: str = "python",
    split: str = "train",
    repo: str | None = None,
    query: str | None = None,
    code: str | None = None,
) -> PairRecord:
    repo = repo or f"pkg{i % 7}"
    return PairRecord(
        id=make_id(language, repo, str(i)),
        language=language,
        repo=repo,
        path=f"m{i}.py",
        func_name=f"f{i}",
        query=query or f"Return the value number {i} of the table.",
        code=code or f"def f{i}(x):\n    y = x + {i}\n    return y * {i}\n",
        url="",
        split=split,
    )


@pytest.fixture
def record_factory():
    return make_record


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from tiny_data import write_tiny_data

    return write_tiny_data(tmp_path_factory.mktemp("tiny") / "data")


TINY_PROFILE = """\
name: tiny
description: tests, nbow on the tiny data, one epoch
data:
  path: {data}
protocol: codebase
groups:
  nbow:
    languages: [python]
    samplers: [random, hardneg, tbs]
    seeds: [0]
    jobs: 2
    threads: 1
    config:
      model: {{encoder: nbow}}
      train: {{epochs: 1, batch_size: 16, lr: 0.01, mixed_precision: "no"}}
"""


def write_tiny_profile(path, data) -> str:
    path.write_text(TINY_PROFILE.format(data=data), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory, tiny_data):
    """`make reproduce` on a tiny profile: root/runs/tiny/..., root/results/tiny/ (returned)."""
    from codesearch.reproduce import run_profile

    root = tmp_path_factory.mktemp("reproduce")
    profile = write_tiny_profile(root / "tiny.yaml", tiny_data)
    run_profile(profile, root / "runs" / "tiny", root / "results" / "tiny", progress=False)
    return root / "results" / "tiny"
