"""Two datasets side by side, stage by stage: amplitude and spectral shape (``restbench data compare``).

What the numbers are, exactly:

- **Epochs.** The scored epochs of ``split``: the last 30-s epoch of each of the split's windows
  (:meth:`SleepData.windows`), or of every split's windows for ``split="all"``. The same epochs
  :func:`restbench.data.scale.stage_rms` and the test windows' labels use.
- **Amplitude.** Per stage, the median over its epochs of the epoch's RMS after removing the
  epoch's mean (:func:`restbench.data.scale.epoch_rms`), in uV.
- **Relative band power.** Per epoch, a Welch PSD (``scipy.signal.welch``: 4-s Hann segments with
  50 % overlap, mean of the segments' periodograms, the epoch's mean removed; 0.25 Hz bins) summed
  over the bins of each band ``[low, high)`` Hz of :data:`BANDS_HZ` and divided by the sum over
  :data:`TOTAL_HZ` (0.5-30 Hz, which the bands tile); per stage the median over its epochs. An
  epoch's five shares sum to 1; the medians need not. The rate does not matter (any rate above
  60 Hz covers 30 Hz), so two datasets at different rates compare directly.

:func:`stage_profile` measures one dataset, :func:`compare_profiles` puts two side by side with
the B/A amplitude ratio, :func:`markdown` renders the comparison (plus any per-dataset stager
scores a caller adds, :mod:`restbench.studies.realism`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from restbench.data.scale import epoch_rms
from restbench.data.sleep_data import SPLITS, STAGES, SleepData

#: The bands, in Hz, ``[low, high)``: the usual sleep-EEG bands (YASA's, with slow and fast delta merged).
BANDS_HZ: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 12.0), "sigma": (12.0, 16.0), "beta": (16.0, 30.0),
}
#: What relative band power is relative to, Hz ``[low, high)``.
TOTAL_HZ = (0.5, 30.0)
#: Welch segment length in seconds (0.25 Hz resolution, 14 half-overlapping segments per 30-s epoch).
WELCH_SEGMENT_S = 4.0
#: ``split`` values :func:`scored_epochs` accepts.
SPLIT_CHOICES = (*SPLITS, "all")
_CHUNK = 2048  # epochs per block: bounded memory on memory-mapped signals


def scored_epochs(data: SleepData, split: str = "all") -> np.ndarray:
    """Indices of the scored epochs (window ends) of ``split`` (``train``, ``val``, ``test`` or ``all``), sorted."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_CHOICES}")
    if split != "all":
        return data.windows(split)
    return np.sort(np.concatenate([data.windows(s) for s in SPLITS])).astype(np.int64)


def relative_band_power(epochs: np.ndarray, sfreq: float) -> dict[str, np.ndarray]:
    """Each row's share of its 0.5-30 Hz power in every band of :data:`BANDS_HZ` (module docstring):
    ``{band: (n,) float64}``; rows with no power in 0.5-30 Hz get NaN."""
    from scipy.signal import welch

    x = np.asarray(epochs, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"relative_band_power: expected (n_epochs, samples), got shape {x.shape}")
    nperseg = min(round(WELCH_SEGMENT_S * sfreq), x.shape[1])
    freqs, psd = welch(x, fs=float(sfreq), window="hann", nperseg=nperseg, noverlap=nperseg // 2,
                       detrend="constant", average="mean", axis=1)
    total = psd[:, (freqs >= TOTAL_HZ[0]) & (freqs < TOTAL_HZ[1])].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {band: np.where(total > 0, psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) / total, np.nan)
                for band, (lo, hi) in BANDS_HZ.items()}


def stage_profile(data: SleepData, split: str = "all") -> dict[str, Any]:
    """One dataset's per-stage numbers over the scored epochs of ``split``.

    Returns ``{"dataset", "fingerprint", "sfreq", "split", "n_recordings", "stages": {stage:
    {"n_epochs", "rms_uv", "relative_power": {band: median share}}}}``; a stage with no epochs has
    ``n_epochs`` 0 and None for the rest.
    """
    ends = scored_epochs(data, split)
    labels = np.asarray(data.labels[ends])
    rms = np.empty(len(ends), dtype=np.float64)
    shares = {band: np.empty(len(ends), dtype=np.float64) for band in BANDS_HZ}
    for start in range(0, len(ends), _CHUNK):
        chunk = np.asarray(data.signal[ends[start : start + _CHUNK]])
        rms[start : start + len(chunk)] = epoch_rms(chunk)
        for band, values in relative_band_power(chunk, float(data.sfreq)).items():
            shares[band][start : start + len(chunk)] = values
    stages: dict[str, Any] = {}
    for i, stage in enumerate(STAGES):
        sel = labels == i
        n = int(sel.sum())
        stages[stage] = {
            "n_epochs": n,
            "rms_uv": float(np.median(rms[sel])) if n else None,
            "relative_power": {band: (float(np.nanmedian(v[sel])) if n and np.isfinite(v[sel]).any() else None)
                               for band, v in shares.items()},
        }
    return {"dataset": data.name, "fingerprint": data.fingerprint, "sfreq": float(data.sfreq), "split": split,
            "n_recordings": len(np.unique(data.recording[ends])) if len(ends) else 0, "stages": stages}


def _ratio(a: float | None, b: float | None) -> float | None:
    return b / a if a and b is not None else None


def compare_profiles(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two :func:`stage_profile` results side by side: ``{"split", "definitions", "a", "b",
    "stages": {stage: {"n_epochs": {"a", "b"}, "rms_uv": {"a", "b", "ratio_b_over_a"},
    "relative_power": {band: {"a", "b"}}}}}``."""
    stages = {}
    for stage in STAGES:
        sa, sb = a["stages"][stage], b["stages"][stage]
        stages[stage] = {
            "n_epochs": {"a": sa["n_epochs"], "b": sb["n_epochs"]},
            "rms_uv": {"a": sa["rms_uv"], "b": sb["rms_uv"], "ratio_b_over_a": _ratio(sa["rms_uv"], sb["rms_uv"])},
            "relative_power": {band: {"a": sa["relative_power"][band], "b": sb["relative_power"][band]}
                               for band in BANDS_HZ},
        }
    return {"split": a["split"], "definitions": definitions(),
            "a": {k: v for k, v in a.items() if k != "stages"}, "b": {k: v for k, v in b.items() if k != "stages"},
            "stages": stages}


def definitions() -> dict[str, Any]:
    """The settings behind the numbers, as data (recorded with every comparison)."""
    return {"epochs": "scored epochs (window ends) of the split", "rms": "median over epochs of the epoch's RMS, "
            "mean removed, uV", "psd": f"Welch, {WELCH_SEGMENT_S:g}-s Hann segments, 50% overlap, mean",
            "bands_hz": {band: list(edges) for band, edges in BANDS_HZ.items()}, "total_hz": list(TOTAL_HZ),
            "relative_power": "median over epochs of band power / 0.5-30 Hz power"}


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def markdown(comparison: dict[str, Any], stagers: dict[str, dict[str, Any]] | None = None) -> str:
    """The comparison as a Markdown page; ``stagers`` (``{"a": score, "b": score}``, see
    :func:`restbench.studies.realism.stager_score`) adds each dataset's stager macro-F1."""
    a, b = comparison["a"], comparison["b"]
    lines = [f"# Data comparison: A = {a['dataset']}, B = {b['dataset']}", "",
             (f"Split: {comparison['split']}. A: {a['sfreq']:g} Hz, {a['n_recordings']} recordings "
              f"(fingerprint {a['fingerprint']}). B: {b['sfreq']:g} Hz, {b['n_recordings']} recordings "
              f"(fingerprint {b['fingerprint']})."), "",
             "## Amplitude: median epoch RMS (uV)", "",
             "| stage | epochs A | epochs B | RMS A | RMS B | B / A |", "|---|---:|---:|---:|---:|---:|"]
    for stage, row in comparison["stages"].items():
        rms = row["rms_uv"]
        lines.append(f"| {stage} | {row['n_epochs']['a']:,} | {row['n_epochs']['b']:,} | {_num(rms['a'], '.1f')} | "
                     f"{_num(rms['b'], '.1f')} | {_num(rms['ratio_b_over_a'], '.2f')} |")
    bands = list(BANDS_HZ)
    lines += ["", "## Relative band power: median share of 0.5-30 Hz power (A / B)", "",
              "| stage | " + " | ".join(f"{band} {lo:g}-{hi:g} Hz" for band, (lo, hi) in BANDS_HZ.items()) + " |",
              "|---|" + "---:|" * len(bands)]
    for stage, row in comparison["stages"].items():
        rel = row["relative_power"]
        lines.append(f"| {stage} | " + " | ".join(f"{_num(rel[band]['a'], '.2f')} / {_num(rel[band]['b'], '.2f')}"
                                                  for band in bands) + " |")
    if stagers:
        first = next(iter(stagers.values()))
        lines += ["", f"## Stager: {first['stager']} (clean macro-F1 on the split's scored epochs)", "",
                  "| dataset | windows | macro-F1 | accuracy | kappa | " + " | ".join(f"F1 {s}" for s in STAGES) + " |",
                  "|---|---:|---:|---:|---:|" + "---:|" * len(STAGES)]
        for side in ("a", "b"):
            if side in stagers:
                s = stagers[side]
                lines.append(f"| {side.upper()} {comparison[side]['dataset']} | {s['n_windows']:,} | {s['macro_f1']:.3f} | "
                             f"{s['accuracy']:.3f} | {s['kappa']:.3f} | "
                             + " | ".join(f"{s['per_class_f1'][st]:.2f}" for st in STAGES) + " |")
    d = comparison["definitions"]
    lines += ["", (f"Epochs: {d['epochs']}. RMS: {d['rms']}. PSD: {d['psd']}; bands [low, high) Hz; relative "
                   f"power: {d['relative_power']} (an epoch's shares sum to 1, the medians need not)."), ""]
    return "\n".join(lines)
