"""The data's own scale: per-stage amplitude of the training split and noise levels relative to it.

Every epsilon and noise level of the protocol is in microvolts or relative to the training
statistics (docs/PROTOCOL.md, "Units"), so what a level means depends on the data: a 10 uV
L-infinity attack is small against real N3 delta but as large as the alpha, theta and beta cues
that separate W, N1 and REM. :func:`stage_rms` gives each stage's typical amplitude and
:func:`relative_levels` expresses corruption severities as a fraction of it; ``restbench data
info`` prints both.

Definitions. A stage's amplitude is the median, over the training split's scored epochs of that
stage (the last 30-s epoch of each training window), of the epoch's RMS after removing the
epoch's mean, in uV. A severity is turned into uV by its unit (:func:`severity_uv`): ``uV`` as is
(an L-infinity radius: every sample moves by at most that, and a sign-like perturbation, which
PGD tends to produce, has RMS equal to it), ``x sigma_train`` times the training sigma (the
standard deviation of additive noise, i.e. its RMS). Other units (e.g. shot noise's photon
count, whose size depends on the signal) are not converted.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from restbench.data.sleep_data import STAGES, SleepData, TrainingStats

#: Units :func:`severity_uv` converts to microvolts, and what the number then is.
UV_UNITS = {"uV": "L-inf radius", "x sigma_train": "noise std"}


def epoch_rms(epochs: np.ndarray) -> np.ndarray:
    """RMS (uV) of each row of ``epochs`` ``(n, samples)`` after removing the row's mean (float64)."""
    x = np.asarray(epochs, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"epoch_rms: expected (n_epochs, samples), got shape {x.shape}")
    return x.std(axis=1)


def stage_rms(data: SleepData, split: str = "train") -> dict[str, float | None]:
    """Median epoch RMS (uV) per stage over the scored epochs of ``split``'s windows; None for a
    stage the split does not have."""
    ends = data.windows(split)
    labels = data.labels[ends]
    rms = np.empty(len(ends), dtype=np.float64)
    for start in range(0, len(ends), 4096):  # bounded memory on memory-mapped signals
        chunk = ends[start : start + 4096]
        rms[start : start + len(chunk)] = epoch_rms(data.signal[chunk])
    out: dict[str, float | None] = {}
    for i, stage in enumerate(STAGES):
        sel = rms[labels == i]
        out[stage] = float(np.median(sel)) if sel.size else None
    return out


def severity_uv(value: float, unit: str, stats: TrainingStats) -> float | None:
    """A severity's size in microvolts from its unit (module docstring), or None if the unit
    does not convert."""
    if unit == "uV":
        return float(value)
    if unit == "x sigma_train":
        return float(value) * float(stats.sigma)
    return None


def relative_levels(
    levels: Iterable[tuple[str, float, str]], rms: dict[str, float | None], stats: TrainingStats
) -> list[dict[str, Any]]:
    """Each ``(label, value, unit)`` level in uV and as a fraction of every stage's median RMS.

    Returns one dict per level: ``label``, ``value``, ``unit``, ``uv`` (None when the unit does not
    convert), ``kind`` (``UV_UNITS``' description or None) and ``of_stage_rms`` ``{stage: uv / rms}``
    (None where either is missing).
    """
    rows = []
    for label, value, unit in levels:
        uv = severity_uv(value, unit, stats)
        rel = {s: (uv / r if uv is not None and r else None) for s, r in rms.items()}
        rows.append({"label": label, "value": float(value), "unit": unit, "uv": uv, "kind": UV_UNITS.get(unit),
                     "of_stage_rms": rel})
    return rows


def data_scale(data: SleepData, levels: Iterable[tuple[str, float, str]], split: str = "train") -> dict[str, Any]:
    """Plain-data summary: ``split``, ``stage_rms_uv``, ``sigma_train_uv`` and ``levels``
    (:func:`relative_levels`)."""
    rms = stage_rms(data, split)
    return {
        "split": split,
        "stage_rms_uv": rms,
        "sigma_train_uv": float(data.stats.sigma),
        "levels": relative_levels(levels, rms, data.stats),
    }


#: The band whose power separates wake from sleep in single-channel EEG (and which broadband noise fills).
BETA_HZ = (15.0, 30.0)


def band_power(epochs: np.ndarray, sfreq: float, band: tuple[float, float]) -> np.ndarray:
    """Mean periodogram power (uV^2 per bin) of each row of ``epochs`` inside ``band`` Hz."""
    x = np.asarray(epochs, dtype=np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(x, axis=1)) ** 2 / x.shape[1]
    freqs = np.fft.rfftfreq(x.shape[1], 1.0 / sfreq)
    inside = (freqs >= band[0]) & (freqs < band[1])
    return power[:, inside].mean(axis=1)


def measured_levels(data: SleepData, corruptions: Iterable[Any], per_stage: int = 48, seed: int = 0) -> list[dict[str, Any]]:
    """What each model-free corruption level actually adds, measured on ``per_stage`` training windows
    of every stage (the same windows for every level): the median RMS (uV) of the change in the
    scored epoch, as a fraction of the stage's median RMS, and the change's beta (15-30 Hz) power
    as a multiple of the stage's own. Levels whose unit does not convert to uV (shot noise scales
    with the signal) get a size this way too; white-box attacks (``needs_model``) are left out.
    """
    import torch

    rng = np.random.default_rng([seed, 5])
    ends = data.windows("train")
    labels = data.labels[ends]
    chosen = {s: np.sort(rng.choice(ends[labels == i], min(per_stage, int((labels == i).sum())), replace=False))
              for i, s in enumerate(STAGES) if (labels == i).any()}
    rms = stage_rms(data)
    n_epoch = int(data.samples_per_epoch)
    rows = []
    for corruption in corruptions:
        if getattr(corruption, "needs_model", False):
            continue
        for severity in corruption.severities:
            added_rms, beta_ratio = {}, {}
            for stage, stage_ends in chosen.items():
                x, _ = data.get(stage_ends)
                noisy = corruption.apply(torch.from_numpy(x), severity, data.stats, np.random.default_rng([seed, 6]),
                                         sfreq=float(data.sfreq)).numpy()
                clean_epoch = x[:, 0, -n_epoch:]
                change = noisy[:, 0, -n_epoch:].astype(np.float64) - clean_epoch
                added_rms[stage] = float(np.median(epoch_rms(change)))
                own = band_power(clean_epoch, float(data.sfreq), BETA_HZ)
                beta_ratio[stage] = float(np.median(band_power(change, float(data.sfreq), BETA_HZ) / np.maximum(own, 1e-12)))
            rows.append({"label": f"{corruption.id} {severity.name}", "added_rms_uv": added_rms,
                         "of_stage_rms": {s: (added_rms[s] / rms[s] if rms.get(s) else None) for s in added_rms},
                         "beta_power_ratio": beta_ratio})
    return rows
