"""YASA's pretrained sleep stager applied to restbench's test windows (see :mod:`.yasa` for the protocol).

The features are YASA 0.8's own (``yasa.SleepStaging.fit``: 0.4-30 Hz band-pass, per-30-s-epoch
statistics, relative band powers and their ratios, absolute power, permutation entropy, Higuchi
and Petrosian fractal dimensions; then a centred triangular 7.5-min and a past 2-min rolling mean,
each robust-scaled per night, and the time of night), computed with the same functions, for every
epoch of every window at once. Heavy imports (numpy, scipy, pandas, mne, antropy, yasa, torch)
happen inside the functions.
"""

from __future__ import annotations

import os
from typing import Any

from restbench.api import EPOCH_S, PluginError

#: YASA's classes in restbench's stage order (W, N1, N2, N3, REM).
YASA_STAGES = ("W", "N1", "N2", "N3", "R")
BANDS = [(0.4, 1, "sdelta"), (1, 4, "fdelta"), (4, 8, "theta"), (8, 12, "alpha"), (12, 16, "sigma"), (16, 30, "beta")]
FREQ_BROAD = (0.4, 30.0)
SF = 100.0  # YASA resamples everything to 100 Hz
CENTRED_EPOCHS, PAST_EPOCHS = 15, 4  # 7.5 min centred (triangular weights), 2 min past


def classifier_path() -> str:
    """The EEG-only LightGBM classifier shipped inside the yasa package (newest version)."""
    import glob
    import re

    import yasa

    found = glob.glob(os.path.join(os.path.dirname(yasa.__file__), "classifiers", "clf_eeg_lgb_*.joblib"))
    if not found:
        raise PluginError("yasa: no clf_eeg_lgb_*.joblib classifier in the installed yasa package")
    return max(found, key=lambda f: tuple(int(v) for v in re.findall(r"_lgb_([\d.]+)\.joblib$", f)[0].split(".")))


def load_classifier():
    import warnings

    import joblib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's pickle-compatibility notice
        return joblib.load(classifier_path())


def epoch_features(x, sfreq: float, context: int):
    """YASA's per-epoch features of every epoch of every window: a DataFrame with ``n * context``
    rows (window-major, the scored epoch last in each window) and YASA's ``eeg_*`` columns.

    ``x``: ``(n, 1, context * 30 * sfreq)`` microvolts. Each window is band-passed on its own
    (YASA filters the whole night; the filter's edge effects are the price of per-window input)."""
    import antropy as ant
    import numpy as np
    import pandas as pd
    import scipy.signal as sp_sig
    from mne.filter import filter_data, resample
    from scipy.integrate import trapezoid
    from yasa import bandpower_from_psd_ndarray

    data = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if abs(sfreq - SF) > 1e-9:
        data = resample(data, up=SF, down=sfreq, npad="auto", axis=-1, verbose=False)
    per_epoch = int(round(EPOCH_S * SF))
    data = filter_data(data, SF, l_freq=FREQ_BROAD[0], h_freq=FREQ_BROAD[1], verbose=False)
    epochs = data[:, : context * per_epoch].reshape(len(data) * context, per_epoch)

    hmob, hcomp = ant.hjorth_params(epochs, axis=1)
    q = np.quantile(epochs, [0.25, 0.75], axis=1)
    dev = epochs - epochs.mean(axis=1, keepdims=True)
    dev2 = dev**2
    m2 = dev2.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        skew = (dev2 * dev).mean(axis=1) / m2**1.5
        kurt = (dev2**2).mean(axis=1) / m2**2 - 3
    feat = {"std": np.std(epochs, ddof=1, axis=1), "iqr": q[1] - q[0], "skew": skew, "kurt": kurt,
            "nzc": ant.num_zerocross(epochs, axis=1), "hmob": hmob, "hcomp": hcomp}
    freqs, psd = sp_sig.welch(epochs, SF, window="hamming", nperseg=int(5 * SF), average="median")
    bp = bandpower_from_psd_ndarray(psd, freqs, bands=BANDS)
    for j, (_, _, band) in enumerate(BANDS):
        feat[band] = bp[j]
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = feat["sdelta"] + feat["fdelta"]
        feat["dt"] = delta / feat["theta"]
        feat["ds"] = delta / feat["sigma"]
        feat["db"] = delta / feat["beta"]
        feat["at"] = feat["alpha"] / feat["theta"]
    broad = np.logical_and(freqs >= FREQ_BROAD[0], freqs <= FREQ_BROAD[1])
    feat["abspow"] = trapezoid(psd[:, broad], dx=freqs[1] - freqs[0])
    feat["perm"] = np.apply_along_axis(ant.perm_entropy, axis=1, arr=epochs, normalize=True)
    feat["higuchi"] = np.apply_along_axis(ant.higuchi_fd, axis=1, arr=epochs)
    feat["petrosian"] = ant.petrosian_fd(epochs, axis=1)
    return pd.DataFrame(feat).add_prefix("eeg_")


def smoothed(features, context: int):
    """For the scored (last) epoch of each window: YASA's centred 7.5-min triangular rolling mean
    and past 2-min rolling mean, over the epochs the window holds (the centred one sees no future
    epoch: a window ends at its scored epoch). Returns ``(centred, past)`` DataFrames, one row
    per window, computed with pandas exactly as YASA does on a night cut at the scored epoch."""
    import numpy as np
    import pandas as pd

    n = len(features) // context
    centred, past = [], []
    window = np.arange(context)
    for i in range(n):
        part = features.iloc[i * context : (i + 1) * context].set_axis(window)
        centred.append(part.rolling(window=CENTRED_EPOCHS, center=True, min_periods=1, win_type="triang").mean()
                       .iloc[-1])
        past.append(part.rolling(window=PAST_EPOCHS, min_periods=1).mean().iloc[-1])
    return pd.DataFrame(centred).reset_index(drop=True), pd.DataFrame(past).reset_index(drop=True)


def feature_table(x, sfreq: float, context: int, night, epoch, night_epochs):
    """The classifier's input, one row per window: the scored epoch's features, its smoothed
    features robust-scaled (5-95 % quantile range) per night over the night's windows given here,
    and the time of night. ``night``: a night id per window; ``epoch``: the scored epoch's index
    in its night; ``night_epochs``: epochs in that night."""
    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import robust_scale

    features = epoch_features(x, sfreq, context)
    scored = features.iloc[context - 1 :: context].reset_index(drop=True)
    centred, past = smoothed(features, context)
    night = np.asarray(night)
    for frame in (centred, past):
        for value in np.unique(night):
            rows = np.flatnonzero(night == value)
            frame.iloc[rows] = robust_scale(frame.iloc[rows].to_numpy(), quantile_range=(5, 95))
    times = np.asarray(epoch, dtype=np.float64) * EPOCH_S
    last = (np.asarray(night_epochs, dtype=np.float64) - 1) * EPOCH_S
    extra = pd.DataFrame({"time_hour": times / 3600, "time_norm": np.where(last > 0, times / np.maximum(last, 1e-9), 0.0)})
    table = pd.concat([scored, centred.add_suffix("_c7min_norm"), past.add_suffix("_p2min_norm"), extra], axis=1)
    return table.astype(np.float32).sort_index(axis=1)


def stage_probabilities(classifier, table):
    """``(n, 5)`` probabilities in restbench's stage order (W, N1, N2, N3, REM)."""
    import numpy as np

    proba = classifier.predict_proba(table[classifier.feature_name_])
    order = [list(classifier.classes_).index(s) for s in YASA_STAGES]
    return np.asarray(proba, dtype=np.float64)[:, order]


def make_module(classifier, sfreq: float, context: int):
    """A torch module mapping windows ``(n, 1, n_times)`` to log-probabilities ``(n, 5)``, for the
    runners that time a PyTorch module: the same features and classifier per window, scaled over
    the batch it is given (timing calls it one window at a time)."""
    import numpy as np
    import torch

    class YasaStager(torch.nn.Module):
        """YASA's feature extraction and LightGBM classifier behind a module interface (no
        parameters, not differentiable: white-box attacks do not apply)."""

        def __init__(self) -> None:
            super().__init__()
            self.sfreq, self.context = float(sfreq), int(context)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = len(x)
            table = feature_table(x.detach().cpu().numpy(), self.sfreq, self.context, np.zeros(n), np.full(n, 480),
                                  np.full(n, 960))
            proba = stage_probabilities(classifier, table)
            return torch.from_numpy(np.log(np.clip(proba, 1e-12, 1.0)).astype(np.float32))

    return YasaStager().eval()


def classifier_size(classifier) -> dict[str, Any]:
    """Size figures for the efficiency record: nodes of every tree, the shipped file's size."""
    trees = classifier.booster_.dump_model()["tree_info"]
    return {"trees": len(trees), "nodes": int(sum(2 * t["num_leaves"] - 1 for t in trees)),
            "size_kb": os.path.getsize(classifier_path()) / 1024, "file": os.path.basename(classifier_path())}
