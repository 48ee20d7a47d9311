"""Labelled near-duplicate corpora for testing and benchmarking dedup (see corpora/README.md)."""
