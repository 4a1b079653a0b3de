"""Shared test helpers: tiny records and prepared directories, no network."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from codesearch.data.schema import PairRecord, make_id  # noqa: E402


def make_record(i: int, language: str = "python", split: str = "train", repo: str | None = None,
                query: str | None = None, code: str | None = None) -> PairRecord:
    repo = repo or f"pkg{i % 7}"
    return PairRecord(
        id=make_id(language, repo, str(i)), language=language, repo=repo, path=f"m{i}.py",
        func_name=f"f{i}", query=query or f"Return the value number {i} of the table.",
        code=code or f"def f{i}(x):\n    y = x + {i}\n    return y * {i}\n", url="", split=split)


@pytest.fixture
def record_factory():
    return make_record


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    from tiny_data import write_tiny_data

    return write_tiny_data(tmp_path_factory.mktemp("tiny") / "data")
