"""Evaluation: metrics of predictions under corruption, the statistics the reports state (intervals,
paired tests), and what a network costs (parameters, size, MACs, FLOPs)."""
