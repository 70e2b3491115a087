"""The benchmark behind docs/performance.md: `make bench` (see bench/run.py)."""
