"""Evaluation: metrics and statistics of predictions under corruption."""
