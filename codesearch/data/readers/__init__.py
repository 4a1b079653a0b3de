"""Readers that turn an external data source into a prepared data directory."""
