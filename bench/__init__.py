"""Benchmarks of the delivery service next to a bare HTTP client and two common peers.

Run everything with `make bench` (or `python -m bench`); `make bench-smoke` runs the same
code at sizes that finish in well under a minute. Every run writes a JSON record, a
Markdown table and PNG charts into `bench/results/`.
"""
