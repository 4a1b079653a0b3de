"""Data layer: one pair-record schema, readers into it, and prepared data directories."""
