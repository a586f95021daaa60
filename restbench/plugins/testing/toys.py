"""Toy data and registries for plugin tests: a class-separable :class:`SleepData` built in
memory in milliseconds, and a fresh process-wide registry for a ``with`` block."""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from restbench.data.sleep_data import (
    SleepData,
    compute_window_ends,
    fingerprint,
    subject_split,
    training_stats,
)
from restbench.plugins.contract import (
    STAGES,
)
from restbench.plugins.registry import Registry, reset_registry

# Dominant frequency per stage, so a tiny model can learn the toy task.
_STAGE_HZ = {0: 10.0, 1: 6.0, 2: 13.0, 3: 1.5, 4: 4.0}


def make_sleep_data(n_subjects: int = 6, epochs_per_subject: int = 40, samples_per_epoch: int = 300,
                    sfreq: float = 10.0, seed: int = 0, context: int = 4) -> SleepData:
    """A small in-memory dataset: each epoch is a stage-specific sinusoid plus noise (uV).

    The defaults give 30-s epochs at 10 Hz (300 samples) so a window has 1,200 samples.
    """
    rng = np.random.default_rng(seed)
    n = n_subjects * epochs_per_subject
    t = np.arange(samples_per_epoch) / sfreq
    labels = np.empty(n, dtype=np.int64)
    signal = np.empty((n, samples_per_epoch), dtype=np.float32)
    stage = 0
    for i in range(n):
        if rng.random() < 0.3:  # sticky stages, like a night
            stage = int(rng.integers(0, len(STAGES)))
        labels[i] = stage
        amp = 60.0 if stage == 3 else 25.0
        signal[i] = amp * np.sin(2 * np.pi * _STAGE_HZ[stage] * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 8.0, samples_per_epoch)
    recording = np.repeat(np.arange(n_subjects, dtype=np.int32), epochs_per_subject)
    contiguous = np.ones(n, dtype=bool)
    recordings = [f"toy{i:02d}" for i in range(n_subjects)]
    ends = compute_window_ends(np.ones(n, dtype=bool), recording, contiguous, context)
    split = subject_split(recordings, seed)
    train_rec = [i for i, r in enumerate(recordings) if r in split["train"]]
    stats = training_stats(signal, np.flatnonzero(np.isin(recording, train_rec)))
    return SleepData(
        name="toy", signal=signal, labels=labels, recording=recording, recordings=recordings,
        recording_subject=list(recordings), window_end=ends, split=split, stats=stats, sfreq=sfreq,
        context=context, fingerprint=fingerprint("toy", n_subjects, epochs_per_subject, samples_per_epoch, seed),
        info={"generator": "restbench.plugins.testing.make_sleep_data"}, contiguous=contiguous,
    )


@contextlib.contextmanager
def registry_with(*plugins: object, entry_points: bool = True) -> Iterator[Registry]:
    """A fresh registry (installed plugins unless ``entry_points=False``) plus ``plugins``.

    Each extra plugin is a module or object with ``@restbench.hookimpl`` functions. The previous
    process-wide registry is restored afterwards.
    """
    from restbench.plugins import registry as plugin_module

    previous = plugin_module._REGISTRY
    registry = Registry()
    if entry_points:
        registry.load_entry_points()
    for plugin in plugins:
        registry.add_plugin(plugin)
    reset_registry(registry)
    try:
        yield registry
    finally:
        reset_registry(previous)
