"""Benchmarks: `make bench` runs every scenario side by side (see bench/__main__.py)."""
