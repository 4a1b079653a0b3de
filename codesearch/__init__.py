"""codesearch: Tail Batch Sampling (arXiv 2210.12874) for contrastive code search."""

__version__ = "0.1.0"
