"""Batch samplers by name: ``--sampler random`` is a lookup in SAMPLERS, not an if-chain."""

from __future__ import annotations

from codesearch.errors import UserError
from codesearch.samplers.base import Batch, BatchSampler, chunk, local_slice
from codesearch.samplers.hardneg import HardNegativeSampler
from codesearch.samplers.random import RandomSampler
from codesearch.samplers.tbs import TBSSampler

SAMPLERS: dict[str, type[BatchSampler]] = {
    RandomSampler.name: RandomSampler,
    TBSSampler.name: TBSSampler,
    HardNegativeSampler.name: HardNegativeSampler,
}


def sampler_class(name: str) -> type[BatchSampler]:
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}': expected one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


__all__ = [
    "SAMPLERS",
    "Batch",
    "BatchSampler",
    "HardNegativeSampler",
    "RandomSampler",
    "TBSSampler",
    "chunk",
    "local_slice",
    "sampler_class",
]
