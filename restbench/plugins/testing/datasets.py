"""Conformance checks for datasets and the :class:`SleepData` they prepare."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from restbench.data.sleep_data import (
    SleepData,
    training_stats,
)
from restbench.plugins.contract import (
    STAGES,
    DatasetOptions,
    PluginError,
)
from restbench.plugins.testing.common import (
    _NEEDS_FILES,
    EPOCH_S,
    PROFILE,
    CheckResult,
    plugin_options,
)


def check_dataset(ds) -> CheckResult:
    """Prepare 3 subjects into a fresh cache (with the smoke profile's options), check every
    :class:`SleepData` invariant, that ``n_subjects`` is honoured, and that preparing again
    gives the same data and fingerprint. A dataset whose files are not on this machine (a
    PluginError naming missing files, a data directory or a download) is skipped."""
    result = CheckResult()
    extra = plugin_options(ds)
    if extra is None:
        extra = dict((getattr(ds, "profile_options", None) or {}).get(PROFILE, {}))
    with tempfile.TemporaryDirectory() as tmp:
        options = DatasetOptions(cache_dir=Path(tmp), n_subjects=3, extra=extra)
        try:
            data = ds.prepare(options)
        except PluginError as exc:
            if any(word in str(exc).lower() for word in _NEEDS_FILES):
                return result.skip(f"prepare needs data this machine does not have: {exc}")
            return CheckResult([f"prepare raised: {exc}"])
        if not isinstance(data, SleepData):
            return CheckResult([f"prepare must return restbench SleepData, got {type(data).__name__}"])
        result.merge(check_sleep_data(data))
        if len(set(data.recording_subject)) > 3:
            result.append(f"n_subjects=3 must cap the subjects, got {len(set(data.recording_subject))}")
        again = ds.prepare(options)
        same = (
            isinstance(again, SleepData) and again.fingerprint == data.fingerprint and again.split == data.split
            and np.array_equal(again.labels, data.labels) and np.array_equal(again.window_end, data.window_end)
            and again.signal.shape == data.signal.shape and np.array_equal(again.signal, data.signal)
        )
        if not same:
            result.append("preparing twice with the same options must give the same data, split and fingerprint")
    return result


def check_sleep_data(data: SleepData) -> CheckResult:
    """Invariants every prepared dataset must hold (the toy data, any dataset's output)."""
    problems = CheckResult()
    signal = data.signal
    if not isinstance(signal, np.ndarray) or signal.dtype != np.float32 or signal.ndim != 2:
        return CheckResult(["signal must be a float32 array (n_epochs, samples_per_epoch)"])
    n, samples = signal.shape
    if n == 0:
        return CheckResult(["signal holds no epoch"])
    sfreq = data.sfreq
    if not isinstance(sfreq, (int, float)) or not np.isfinite(sfreq) or sfreq <= 0:
        problems.append(f"sfreq must be a positive number of Hz, got {sfreq!r}")
    elif abs(samples - EPOCH_S * sfreq) > 1:
        problems.append(f"epochs must be 30 s: {samples} samples at {sfreq:g} Hz are {samples / sfreq:g} s")
    if not all(np.isfinite(signal[i : i + 4096]).all() for i in range(0, n, 4096)):
        problems.append("signal has NaN/inf")

    labels, recording = np.asarray(data.labels), np.asarray(data.recording)
    if labels.shape != (n,) or recording.shape != (n,):
        return problems.merge(["labels/recording must have one entry per epoch"])
    if labels.dtype.kind not in "iu" or recording.dtype.kind not in "iu":
        return problems.merge(["labels and recording must be integer arrays"])
    if labels.min() < 0 or labels.max() >= len(STAGES):
        problems.append("labels must be 0..4 (W, N1, N2, N3, REM)")
    if len(data.recording_subject) != len(data.recordings):
        problems.append("recording_subject must name one subject per recording")
    if recording.min() < 0 or recording.max() >= len(data.recordings):
        return problems.merge(["recording must index into recordings"])
    starts = recording[np.r_[0, np.flatnonzero(np.diff(recording)) + 1]]
    if len(starts) != len(set(starts.tolist())):
        problems.append("each recording's epochs must be stored together, end to end")

    context = data.context
    ends = np.asarray(data.window_end)
    if not isinstance(context, (int, np.integer)) or context < 1:
        return problems.merge([f"context must be a positive number of epochs, got {context!r}"])
    if ends.ndim != 1 or (len(ends) and ends.dtype.kind not in "iu"):
        return problems.merge(["window_end must be a 1-d integer array"])
    if len(ends) == 0:
        problems.append("no valid window")
    elif ends.min() < context - 1 or ends.max() >= n:
        problems.append("a window end leaves no room for its context epochs or lies past the last epoch")
    else:
        if np.any(np.diff(ends) <= 0):
            problems.append("window_end must be sorted and unique")
        if any(np.any(recording[ends - k] != recording[ends]) for k in range(1, context)):
            problems.append("a window spans two recordings")
        x, y = data.get(ends[:3])
        if x.shape != (min(3, len(ends)), 1, context * samples) or x.dtype != np.float32:
            problems.append("get() must give float32 windows (n, 1, context * samples_per_epoch)")
        elif not np.array_equal(x[0, 0, -samples:], signal[ends[0]], equal_nan=True) or not np.array_equal(y, labels[ends[:3]]):
            problems.append("get() must end each window with its scored epoch and return that epoch's label")

    if set(data.split) != {"train", "val", "test"}:
        problems.append("split must have exactly the keys train, val, test")
    subjects = [s for part in data.split.values() for s in part]
    if len(subjects) != len(set(subjects)):
        problems.append("a subject is in more than one split")
    if set(subjects) != set(data.recording_subject):
        problems.append("split must cover every subject exactly once")
    train_rec = [i for i, s in enumerate(data.recording_subject) if s in set(data.split.get("train", ()))]
    if not train_rec:
        problems.append("the train split has no recording")

    stats = data.stats
    values = [getattr(stats, k, None) for k in ("mean", "sigma", "min", "max")]
    if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
        problems.append("training stats must be finite numbers (mean, sigma, min, max)")
    elif not (stats.sigma > 0 and stats.min <= stats.mean <= stats.max):
        problems.append("training stats must have sigma > 0 and min <= mean <= max")
    elif train_rec:
        ref = training_stats(signal, np.flatnonzero(np.isin(recording, train_rec)))
        slack = 0.1 * ref.sigma + 1e-3
        if (abs(stats.mean - ref.mean) > slack or abs(stats.sigma - ref.sigma) > slack
                or stats.min < ref.min - 1e-3 or stats.max > ref.max + 1e-3):
            problems.append(
                f"training stats must describe the training split: got mean {stats.mean:.3g}, sigma {stats.sigma:.3g}, "
                f"range [{stats.min:.3g}, {stats.max:.3g}]; its epochs give mean {ref.mean:.3g}, sigma {ref.sigma:.3g}, "
                f"range [{ref.min:.3g}, {ref.max:.3g}]"
            )
    if not isinstance(data.fingerprint, str) or not data.fingerprint:
        problems.append("fingerprint must be set")
    return problems
