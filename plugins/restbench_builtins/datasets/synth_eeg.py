"""Synthetic single-channel (Fpz-Cz-like) sleep EEG for ``sleep-synth``, in microvolts.

A night is the sum of
- an aperiodic (1/f^1.6) background and band-limited rhythms (delta 0.5-2 Hz, theta 4-7.5 Hz, alpha at the
  subject's own frequency, sigma, beta, and EMG-like 25-45 Hz activity) whose amplitudes follow
  the stage of each 30-s epoch through smooth envelopes;
- transient events drawn at stage-dependent rates: blinks and saccades (W; the frontal
  electrode picks up eye movements), slow eye movements and vertex waves (N1), sleep spindles
  (11-16 Hz) and K-complexes (N2, fewer in N3), sawtooth-wave trains and rapid eye movements
  (REM), movement bursts (W);
- a white noise floor.

The task is meant to be hard in the way real data is: N1 epochs mix W (with less alpha) and
REM content; epochs beside a stage change carry part of the neighbouring stage; a continuous
"depth" drifts within a stage; slow-wave amplitude declines across the night; subjects differ in
overall amplitude, band balance, alpha and spindle frequency, artefact and noise levels.
Everything is drawn from the ``numpy`` generator passed in (deterministic given its seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from restbench.api import STAGES
from restbench_builtins.datasets.common import EPOCH_S

# Band -> (low Hz, high Hz); "alpha" and "sigma" are centred on the subject's own frequencies.
BANDS = ("pink", "delta", "theta", "alpha", "sigma", "beta", "emg")
# RMS amplitude (uV) of each band in each stage (rows W, N1, N2, N3, REM), for an average subject.
# N1 is set between W-with-less-alpha and REM; its own marks are theta and vertex waves.
# Calibrated (generator version 2) so that per-stage median epoch RMS and relative band power fall
# in the ranges tests/test_synth_realism.py gives for Fpz-Cz sleep EEG (sources cited there):
# Fpz-Cz is a short bipolar derivation, so amplitudes are well below central-mastoid ones, N3 is
# ~1.4x N2 (not ~2x), wake ~0.8x N2, frontal wake alpha and all beta are small.
BAND_UV = np.array(
    [
        # pink delta theta alpha sigma beta emg
        [4.0, 2.5, 3.2, 2.6, 1.2, 1.3, 2.5],  # W (alpha scaled per epoch by eyes closed/open)
        [5.5, 6.0, 4.5, 2.2, 1.2, 1.3, 1.0],  # N1
        [6.0, 11.0, 4.5, 1.4, 1.8, 1.0, 0.7],  # N2
        [7.0, 18.0, 5.0, 1.0, 1.5, 0.25, 0.3],  # N3
        [6.5, 6.0, 5.5, 2.0, 1.1, 1.3, 0.3],  # REM (frontal EEG sees little of the atonia)
    ]
)
# Power of the aperiodic background falls as 1/f**BACKGROUND_EXPONENT (scalp sleep EEG is
# steeper than 1/f; with 1/f the background alone put too much power in beta).
BACKGROUND_EXPONENT = 1.6
# How each band follows the within-stage depth: + deeper sleep grows it, - shrinks it.
DEPTH_SIGN = np.array([0.3, 1.0, 0.5, -1.0, 0.3, -0.6, -0.8])

# Events per minute in each stage (rows W, N1, N2, N3, REM).
EVENTS = ("blink", "saccade", "sem", "vertex", "spindle", "kcomplex", "sawtooth", "rem", "movement")
EVENT_RATE_PER_MIN = np.array(
    [
        # blink saccade sem vertex spindle kcomplex sawtooth rem movement
        [10.0, 4.0, 0.3, 0.1, 0.0, 0.05, 0.0, 0.0, 0.4],  # W
        [1.5, 0.6, 1.5, 1.2, 0.5, 0.3, 0.3, 0.8, 0.1],  # N1
        [0.0, 0.0, 0.1, 0.3, 4.0, 1.3, 0.0, 0.0, 0.02],  # N2
        [0.0, 0.0, 0.0, 0.0, 1.5, 0.6, 0.0, 0.0, 0.01],  # N3
        [0.2, 0.0, 0.2, 0.1, 0.2, 0.05, 1.0, 3.5, 0.05],  # REM
    ]
)

# Median peak amplitude (uV) of each event kind (a lognormal spread around it), before the
# subject's scale; "movement" is the RMS of its muscle burst.
EVENT_UV = {"blink": 50.0, "saccade": 26.0, "rem": 40.0, "sem": 30.0, "vertex": 40.0, "spindle": 16.0,
            "kcomplex": 60.0, "sawtooth": 30.0, "movement": 25.0}


@dataclass(frozen=True)
class SubjectProfile:
    """How one synthetic subject differs from the average (all multiplicative unless in Hz)."""

    scale: float  # overall amplitude (skull, electrode impedance)
    band_gain: tuple[float, ...]  # per band, BANDS order
    event_rate_gain: tuple[float, ...]  # per event kind, EVENTS order
    event_amp_gain: tuple[float, ...]
    alpha_hz: float
    spindle_hz: float
    noise_uv: float  # white-noise floor RMS
    depth_sd: float  # how much the within-stage depth moves the bands


def subject_profile(rng: np.random.Generator) -> SubjectProfile:
    """Draw a subject: amplitude scale, band balance, rhythm frequencies, artefact levels."""
    return SubjectProfile(
        scale=float(rng.lognormal(0.0, 0.22)),
        band_gain=tuple(float(g) for g in rng.lognormal(0.0, 0.22, len(BANDS))),
        event_rate_gain=tuple(float(g) for g in rng.lognormal(0.0, 0.35, len(EVENTS))),
        event_amp_gain=tuple(float(g) for g in rng.lognormal(0.0, 0.25, len(EVENTS))),
        alpha_hz=float(np.clip(rng.normal(10.0, 0.8), 8.0, 12.0)),
        spindle_hz=float(np.clip(rng.normal(13.0, 0.8), 11.0, 15.5)),
        noise_uv=float(rng.uniform(0.5, 2.0)),
        depth_sd=float(rng.uniform(0.2, 0.35)),
    )


def _band_edges(profile: SubjectProfile) -> list[tuple[float, float]]:
    a, s = profile.alpha_hz, profile.spindle_hz
    return [(0.3, 45.0), (0.5, 2.0), (4.0, 7.5), (a - 1.0, a + 1.0), (s - 1.0, s + 1.0), (16.0, 25.0), (25.0, 45.0)]


def _band_noise(rng: np.random.Generator, n: int, sfreq: float, lo: float, hi: float, pink: bool) -> np.ndarray:
    """Unit-RMS Gaussian noise (float32) with a flat (or 1/f for ``pink``) spectrum in lo..hi Hz.

    Drawn in the frequency domain, only over the band's bins (most of a night's spectrum is
    zero for a narrow band), and scaled to unit RMS there (Parseval), not in the time domain.
    """
    from scipy import fft

    taper = 0.25  # Hz of linear roll-off at each edge, so the band has no ringing cliff
    df = sfreq / n
    i0 = max(int(np.ceil((lo - taper) / df)), 1)
    i1 = min(int((hi + taper) / df) + 1, n // 2)
    freqs = np.arange(i0, i1, dtype=np.float32) * np.float32(df)
    gain = np.clip((freqs - (lo - taper)) / (2 * taper), 0, 1) * np.clip(((hi + taper) - freqs) / (2 * taper), 0, 1)
    if pink:
        gain = gain / np.maximum(freqs, lo) ** np.float32(BACKGROUND_EXPONENT / 2)
    noise = rng.standard_normal((2, i1 - i0), dtype=np.float32)
    band = (noise[0] + 1j * noise[1]) * gain
    rms = np.sqrt(2.0 * np.sum(np.abs(band) ** 2, dtype=np.float64)) / n  # Parseval for irfft
    spectrum = np.zeros(n // 2 + 1, dtype=np.complex64)
    spectrum[i0:i1] = band / np.float32(rms + 1e-30)
    return fft.irfft(spectrum, n)


def _stage_weights(stages: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-epoch mixture of stage templates (n_epochs, 5): N1 mixes W and REM; epochs beside
    a stage change carry part of the neighbouring stage."""
    n = len(stages)
    w = np.zeros((n, len(STAGES)))
    w[np.arange(n), stages] = 1.0
    n1 = np.flatnonzero(stages == 1)
    a, b = rng.uniform(0.15, 0.5, len(n1)), rng.uniform(0.0, 0.35, len(n1))
    w[n1] *= (1.0 - a - b)[:, None]
    w[n1, 0] += a
    w[n1, 4] += b
    mixed = w.copy()
    for shift in (-1, 1):  # blend with the previous (shift -1) and the next (+1) epoch
        idx = np.arange(n) + shift
        ok = (idx >= 0) & (idx < n)
        change = np.zeros(n, dtype=bool)
        change[ok] = stages[idx[ok]] != stages[ok]
        frac = rng.uniform(0.0, 0.45 if shift < 0 else 0.3, n) * change
        mixed[change] = (1 - frac[change, None]) * mixed[change] + frac[change, None] * w[idx[change]]
    return mixed


def _smooth_envelope(per_epoch: np.ndarray, smooth_s: int = 4) -> np.ndarray:
    """Epoch-wise values ``(n_epochs, k)`` -> per-second values ``(n_seconds + 1, k)``, smoothed
    over ``smooth_s`` seconds so stage changes fade in rather than switch at the boundary."""
    per_second = np.repeat(per_epoch, int(EPOCH_S), axis=0)
    padded = np.pad(per_second, ((smooth_s, smooth_s + 1), (0, 0)), mode="edge")
    csum = np.cumsum(padded, axis=0)
    smooth = (csum[smooth_s:] - csum[:-smooth_s]) / smooth_s
    return smooth[smooth_s // 2 : smooth_s // 2 + len(per_second) + 1]


def _apply_envelope(x: np.ndarray, env_per_second: np.ndarray, sfreq: float) -> np.ndarray:
    """``x`` times the per-second envelope, linearly interpolated to every sample."""
    spsec = int(sfreq)
    frac = (np.arange(spsec, dtype=np.float32) / spsec)[None, :]
    e0, e1 = env_per_second[:-1, None], env_per_second[1:, None]
    return (x.reshape(-1, spsec) * (e0 + (e1 - e0) * frac)).ravel()


def _gauss(t: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((t - mu) / sd) ** 2)


def _event(kind: str, rng: np.random.Generator, sfreq: float, profile: SubjectProfile) -> np.ndarray:
    """One event's waveform in uV (before the subject's amplitude scale)."""
    if kind == "blink":  # frontal positive deflection, ~0.3 s
        t = np.arange(int(0.6 * sfreq)) / sfreq
        return rng.lognormal(np.log(EVENT_UV["blink"]), 0.3) * _gauss(t, 0.3, 0.08)
    if kind in ("saccade", "rem"):  # fast rise, slower return; sign = gaze direction
        t = np.arange(int(1.2 * sfreq)) / sfreq
        amp = rng.lognormal(np.log(EVENT_UV[kind]), 0.35) * rng.choice([-1.0, 1.0])
        return amp * (1 - np.exp(-t / 0.03)) * np.exp(-t / rng.uniform(0.3, 0.7))
    if kind == "sem":  # slow eye movement: a 1-3 s half wave
        d = rng.uniform(1.0, 3.0)
        t = np.arange(int(d * sfreq)) / sfreq
        return rng.lognormal(np.log(EVENT_UV["sem"]), 0.3) * rng.choice([-1.0, 1.0]) * np.sin(np.pi * t / d)
    if kind == "vertex":  # sharp negative wave, ~0.2 s
        t = np.arange(int(0.5 * sfreq)) / sfreq
        return -rng.lognormal(np.log(EVENT_UV["vertex"]), 0.3) * _gauss(t, 0.25, 0.05)
    if kind == "spindle":  # 11-16 Hz waxing-waning burst, 0.5-2 s
        d = rng.uniform(0.5, 2.0)
        t = np.arange(int(d * sfreq)) / sfreq
        f = profile.spindle_hz + rng.normal(0, 0.4)
        return rng.lognormal(np.log(EVENT_UV["spindle"]), 0.3) * np.hanning(len(t)) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    if kind == "kcomplex":  # sharp negative then slow positive, ~1 s, > 75 uV peak to peak
        t = np.arange(int(1.4 * sfreq)) / sfreq
        amp = rng.lognormal(np.log(EVENT_UV["kcomplex"]), 0.3)
        return amp * (-_gauss(t, 0.35, 0.09) + 0.65 * _gauss(t, 0.8, 0.2))
    if kind == "sawtooth":  # 3-8 triangular waves at 2-4 Hz
        f, n_waves = rng.uniform(2.0, 4.0), int(rng.integers(3, 9))
        t = np.arange(int(n_waves / f * sfreq)) / sfreq
        phase = (t * f) % 1.0
        wave = np.where(phase < 0.8, phase / 0.8, (1.0 - phase) / 0.2) - 0.5  # slow rise, sharp fall
        return rng.lognormal(np.log(EVENT_UV["sawtooth"]), 0.3) * wave * np.hanning(len(t)) ** 0.3
    if kind == "movement":  # 1-5 s burst of broadband muscle activity with a baseline shift
        d = rng.uniform(1.0, 5.0)
        n = int(d * sfreq)
        burst = rng.standard_normal(n) * rng.lognormal(np.log(EVENT_UV["movement"]), 0.4)
        drift = rng.normal(0, 60) * np.sin(np.pi * np.arange(n) / n)
        return (burst + drift) * np.hanning(n) ** 0.2
    raise ValueError(kind)


def generate_night(
    stages: np.ndarray, profile: SubjectProfile, rng: np.random.Generator, sfreq: float = 100.0, movement: np.ndarray | None = None
) -> np.ndarray:
    """EEG in microvolts (float32) for a night whose 30-s epochs have ``stages`` (0..4).

    ``stages`` covers the whole recording (wake before and after sleep included); epochs
    flagged in ``movement`` (scored "Movement time") carry strong movement artefacts.
    """
    n_epochs = len(stages)
    spe = int(EPOCH_S * sfreq)
    n = n_epochs * spe
    weights = _stage_weights(stages, rng)

    # Per-epoch band amplitudes: stage mixture (in power), depth, slow-wave decline, jitter.
    amp = np.sqrt(weights @ BAND_UV**2)
    depth = np.zeros(n_epochs)
    shocks = rng.standard_normal(n_epochs)
    for i in range(1, n_epochs):  # AR(1): depth drifts over a few minutes
        depth[i] = 0.85 * depth[i - 1] + np.sqrt(1 - 0.85**2) * shocks[i]
    amp *= np.exp(profile.depth_sd * depth[:, None] * DEPTH_SIGN[None, :])
    amp *= rng.lognormal(0.0, 0.2, amp.shape)
    sleep = np.flatnonzero(stages >= 1)
    decline = np.ones(n_epochs)
    if len(sleep):  # slow-wave activity is highest early in the night
        frac = np.clip((np.arange(n_epochs) - sleep[0]) / max(sleep[-1] - sleep[0], 1), 0, 1)
        decline = 1.25 - 0.5 * frac
    amp[:, 1] *= decline
    wake_alpha = rng.uniform(0.2, 1.6, n_epochs)  # eyes closed (much alpha) .. open (little)
    amp[:, 3] *= np.where(stages == 0, wake_alpha, 1.0)
    amp *= np.asarray(profile.band_gain)[None, :]

    env = _smooth_envelope(amp.astype(np.float32))
    x = np.zeros(n, dtype=np.float32)
    for j, (band, (lo, hi)) in enumerate(zip(BANDS, _band_edges(profile))):
        x += _apply_envelope(_band_noise(rng, n, sfreq, lo, hi, pink=band == "pink"), env[:, j], sfreq)

    # Transient events, drawn per epoch from the epoch's stage mixture.
    blink_scale = np.where(stages == 0, np.clip(1.8 - wake_alpha, 0.1, None), 1.0)  # eyes open blink more
    rates = weights @ EVENT_RATE_PER_MIN * np.asarray(profile.event_rate_gain)[None, :] * (EPOCH_S / 60.0)
    rates[:, EVENTS.index("blink")] *= blink_scale
    # events cluster (phasic vs tonic REM, spindle-rich vs poor minutes): overdispersed counts
    rates *= rng.gamma(1.0, 1.0, rates.shape)
    if movement is not None:
        rates[np.asarray(movement, dtype=bool), EVENTS.index("movement")] += 4.0
    counts = rng.poisson(rates)
    for k, kind in enumerate(EVENTS):
        gain = profile.event_amp_gain[k]
        for epoch in np.repeat(np.arange(n_epochs), counts[:, k]):
            wave = _event(kind, rng, sfreq, profile) * gain
            if kind == "kcomplex" or kind == "spindle":
                wave *= decline[epoch] ** 0.5
            start = epoch * spe + int(rng.integers(0, spe))
            stop = min(start + len(wave), n)
            x[start:stop] += wave[: stop - start]

    x = x * np.float32(profile.scale) + rng.standard_normal(n, dtype=np.float32) * np.float32(profile.noise_uv)
    return x
