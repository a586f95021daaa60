"""Prepared data: :class:`SleepData` (signal, labels, windows, split, training statistics) and
the content-addressed epoch cache datasets store it in."""

from restbench.data.sleep_data import SPLITS, STAGES, SleepData, TrainingStats

__all__ = ["STAGES", "SPLITS", "SleepData", "TrainingStats"]
