"""Batch samplers by name: ``--sampler random`` is a lookup in SAMPLERS, not an if-chain.

A sampler is one module here: its class (``BatchSampler``'s interface, a ``name`` and, when it
has options, an ``Options`` dataclass from which the config keys ``sampler.<name>_<field>`` and
the flags ``--<name>-<field>`` are generated) and one line in SAMPLERS below. These modules
import only numpy; the similarity search (``knn``, ``graphs``: torch, scipy, faiss) is loaded
when a sampler first computes batches. TBS reads in three files: ``tbs`` (options, sampler and
``tbs_batches``, steps numbered as in docs/method.md), ``graphs`` and ``knn``.
"""

from __future__ import annotations

from codesearch.errors import UserError
from codesearch.samplers.base import Batch, BatchSampler, batches_digest, chunk, local_slice
from codesearch.samplers.hardneg import HardNegativeOptions, HardNegativeSampler
from codesearch.samplers.random import RandomOptions, RandomSampler
from codesearch.samplers.tbs import TBSOptions, TBSSampler

SAMPLERS: dict[str, type[BatchSampler]] = {
    cls.name: cls for cls in (RandomSampler, TBSSampler, HardNegativeSampler)
}


def sampler_class(name: str) -> type[BatchSampler]:
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}': expected one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name]


__all__ = [
    "SAMPLERS",
    "Batch",
    "BatchSampler",
    "HardNegativeOptions",
    "HardNegativeSampler",
    "RandomOptions",
    "RandomSampler",
    "TBSOptions",
    "TBSSampler",
    "batches_digest",
    "chunk",
    "local_slice",
    "sampler_class",
]
