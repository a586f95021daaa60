"""Deployment: test-time transforms, the format-agnostic export check (exporter plugins write the
files) and the latency methodology; what a network costs is :mod:`restbench.evaluation.cost`."""
