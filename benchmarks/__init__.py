"""Benchmarks for dedup (run them as scripts: python benchmarks/accuracy.py)."""
