"""Wearable / home-EEG artifacts: the ``artifact`` suite, beyond the paper.

Six artifacts that a forehead EEG headband or patch recorded at home actually shows, each at
three severities in physical units (microvolts, seconds), so a number means the same thing on
every dataset and does not depend on the data's statistics:

===================  ==============================================  =====================
id                   what                                            severity (low/med/high)
===================  ==============================================  =====================
``powerline``        mains pick-up, 50 Hz (option 60) + harmonics    10 / 30 / 100 uV peak
``emg``              muscle bursts, 20-45 Hz band-limited noise      10 / 25 / 50 uV RMS,
                                                                     2 / 4 / 8 bursts/min
``electrode-pop``    step + exponential decay (tau 0.1-1 s)          50 / 150 / 400 uV,
                                                                     1 / 2 / 4 per window
``baseline-wander``  0.05-0.5 Hz drift (respiration, sweat)          20 / 60 / 150 uV peak
``dropout``          flat-line signal loss                           1.5 / 4.5 / 9 s per
                                                                     30-s epoch (5/15/30 %)
``saturation``       amplifier clipping at +-level                   200 / 100 / 50 uV
===================  ==============================================  =====================

Amplitudes are set against sleep EEG itself (background 10-50 uV, slow waves up to ~200 uV
peak-to-peak at Fpz-Cz), so "low" is visible but mild and "high" rivals or exceeds the signal.

Each artifact is drawn independently for every window from the given numpy ``rng``, in a fixed
order, so the same rng state gives the same batch. The random draws do not
depend on the severity: for the same rng state a higher severity scales the same artifact up or
adds events to it (bursts, pops and flat segments are nested), which makes severities
comparable and the perturbation grow monotonically. Windows of consecutive epochs overlap in
time, but each window gets its own artifact, like the paper's Gaussian and shot noise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from restbench.api import NOT_IN_PAPER, Option, UsageError, hookimpl
from restbench_builtins.corruptions.common import CorruptionBase, like, severities, to_numpy

if TYPE_CHECKING:  # numpy and scipy are imported where a batch is corrupted, not to list corruptions
    import numpy as np

_ROWS = 256  # windows per chunk for the vectorised parts (bounds float64 temporaries)


def _rows(x) -> tuple[np.ndarray, np.ndarray]:
    """(values in the input shape, the same memory as (n_windows, n_times))."""
    values = to_numpy(x)
    if values.ndim == 0 or values.shape[-1] < 2:
        raise UsageError("artifact corruptions need batches shaped (n, 1, n_times)")
    return values, values.reshape(-1, values.shape[-1])


def _sfreq(sfreq: float) -> float:
    sfreq = float(sfreq)
    if not sfreq > 0:
        raise UsageError(f"artifact corruptions need a positive sampling rate, got {sfreq}")
    return sfreq


class ArtifactBase(CorruptionBase):
    """Common part of the artifact suite: suite name and ``settings`` (severity value and unit,
    the level's other parameters from :meth:`parameters`, and the resolved options)."""

    suite = "artifact"
    citation = None

    def settings(self, severity, options=None) -> dict:
        sev = self.severity(severity)
        out = {"value": sev.value, "unit": sev.unit}
        out.update(self.parameters(sev.level))
        out.update(self.resolved(options))
        return out

    def parameters(self, level: int) -> dict:
        """Everything besides the severity value that the artifact at ``level`` uses."""
        return {}


# --------------------------------------------------------------------------- powerline

#: Harmonic number -> amplitude relative to the fundamental (odd harmonics dominate: rectifier
#: loads draw peaky currents).
POWERLINE_HARMONICS = {2: 0.1, 3: 0.3, 4: 0.05, 5: 0.15}
#: Grid frequency deviation in normal operation (European and US grids stay within +-50 mHz).
GRID_DEVIATION_HZ = 0.05


class Powerline(ArtifactBase):
    """Mains interference: a sinusoid at the grid frequency plus harmonics.

    Severity is the fundamental's peak amplitude in uV (capacitive pick-up on a dry or loose
    electrode with no driven-right-leg reaches tens to hundreds of uV). Each window gets a
    random grid frequency ``f0 +- 50 mHz`` and random phases. Harmonics ``k * f0`` enter only
    when they lie below Nyquist by more than the grid deviation (higher ones are assumed
    removed by the recorder's anti-alias filter). The fundamental is always kept, even when it
    is not below Nyquist, because it is the component that leaks through in practice; it is
    then sampled as-is:

    * 50 Hz at 100 Hz sampling (Sleep-EDF) sits at Nyquist: the samples alternate in sign,
      ``(-1)^n A cos(2 pi d t + phi)``, with an amplitude set by the sampling phase that beats
      slowly with the grid deviation ``d``; a window can therefore see anywhere between 0 and
      the full amplitude (on average A / sqrt(2) RMS, as for any sinusoid).
    * 60 Hz (option ``powerline.hz=60``) at 100 Hz sampling aliases to 40 Hz.
    * At 125 Hz (SHHS) 50 and 60 Hz lie below Nyquist; their harmonics do not.
    """

    id = "powerline"
    description = "Mains interference 50 Hz (option powerline.hz=60) + harmonics below Nyquist; 10 / 30 / 100 uV peak"
    severities = severities((10.0, 30.0, 100.0), "uV peak")
    options = (Option("hz", float, 50.0, "mains frequency in Hz (50 in Europe, 60 in the Americas)", choices=(50.0, 60.0),
                      paper=NOT_IN_PAPER),)

    def _mains(self, options) -> float:
        return self.resolved(options)["hz"]

    def harmonics(self, sfreq: float, mains_hz: float) -> dict[int, float]:
        """Harmonic number -> relative amplitude of the components used at ``sfreq``."""
        nyquist = sfreq / 2.0
        kept = {1: 1.0}
        for k, rel in POWERLINE_HARMONICS.items():
            if k * (mains_hz + GRID_DEVIATION_HZ) < nyquist:
                kept[k] = rel
        return kept

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev, sfreq, mains = self.severity(severity), _sfreq(sfreq), self._mains(options)
        values, rows = _rows(x)
        n, n_times = rows.shape
        harmonics = self.harmonics(sfreq, mains)
        ks = np.array(list(harmonics), dtype=np.float64)
        rel = np.array(list(harmonics.values()), dtype=np.float64)
        deviation = rng.uniform(-GRID_DEVIATION_HZ, GRID_DEVIATION_HZ, size=n)
        phases = rng.uniform(0.0, 2 * np.pi, size=(n, len(POWERLINE_HARMONICS) + 1))[:, : len(ks)]
        t = np.arange(n_times) / sfreq
        for start in range(0, n, _ROWS):
            sl = slice(start, start + _ROWS)
            freq = (mains + deviation[sl])[:, None, None] * ks[None, :, None]  # (rows, k, 1)
            wave = np.cos(2 * np.pi * freq * t[None, None, :] + phases[sl][:, :, None])
            rows[sl] += (sev.value * np.einsum("k,rkt->rt", rel, wave)).astype(np.float32)
        return like(values, x)

    def settings(self, severity, options=None) -> dict:
        out = super().settings(severity, options)
        out.update(
            {
                "harmonics_relative_amplitude": {str(k): v for k, v in POWERLINE_HARMONICS.items()},
                "harmonics_rule": "k * f0 below Nyquist (fundamental always, aliased if not)",
                "grid_deviation_hz": GRID_DEVIATION_HZ,
            }
        )
        return out


# --------------------------------------------------------------------------- EMG

EMG_BAND_HZ = (20.0, 45.0)
EMG_BURST_S = (0.5, 2.0)
EMG_RAMP_S = 0.1


class EMG(ArtifactBase):
    """Muscle bursts (jaw clenching, bruxism, movement arousals): 20-45 Hz band-limited noise
    switched on in bursts of 0.5-2 s (0.1-s raised-cosine ramps).

    Severity is the RMS inside a burst in uV (frontal EMG is tens of uV) together with the burst
    rate: 10 uV / 2 per min, 25 uV / 4 per min, 50 uV / 8 per min. The band's upper edge is
    capped at 0.45 x the sampling rate (see :func:`emg_band_hz`). Candidate bursts are drawn at the highest rate and each
    level keeps a nested subset, so a higher level has the same bursts plus more.
    """

    id = "emg"
    description = "Muscle-artifact bursts: 20-45 Hz noise, 0.5-2 s bursts; 10 / 25 / 50 uV RMS at 2 / 4 / 8 bursts/min"
    severities = severities((10.0, 25.0, 50.0), "uV RMS")
    rates_per_min = {1: 2.0, 2: 4.0, 3: 8.0}

    def parameters(self, level: int) -> dict:
        return {
            "bursts_per_min": self.rates_per_min[level],
            "burst_s": list(EMG_BURST_S),
            "band_hz": list(EMG_BAND_HZ),
            "ramp_s": EMG_RAMP_S,
        }

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np
        from scipy import signal as sps

        sev, sfreq = self.severity(severity), _sfreq(sfreq)
        values, rows = _rows(x)
        n, n_times = rows.shape
        sos = sps.butter(4, emg_band_hz(sfreq), btype="bandpass", fs=sfreq, output="sos")
        max_rate = max(self.rates_per_min.values())
        keep_fraction = self.rates_per_min[sev.level] / max_rate
        duration_min = n_times / sfreq / 60.0
        counts = rng.poisson(max_rate * duration_min, size=n)
        ramp = max(1, int(round(EMG_RAMP_S * sfreq)))
        for start in range(0, n, _ROWS):
            idx = range(start, min(n, start + _ROWS))
            noise = rng.standard_normal((len(idx), n_times))
            noise = sps.sosfiltfilt(sos, noise, axis=-1)
            noise /= np.sqrt(np.mean(noise**2, axis=-1, keepdims=True)) + 1e-12
            for j, i in enumerate(idx):
                envelope = np.zeros(n_times)
                lengths = rng.uniform(*EMG_BURST_S, size=counts[i]) * sfreq
                onsets = rng.uniform(0.0, 1.0, size=counts[i]) * (n_times - lengths)
                keep = rng.uniform(size=counts[i]) < keep_fraction
                for onset, length in zip(onsets[keep], lengths[keep]):
                    a, b = int(onset), int(onset + length)
                    envelope[a:b] = np.maximum(envelope[a:b], _burst(b - a, ramp))
                rows[i] += (sev.value * envelope * noise[j]).astype(np.float32)
        return like(values, x)


def emg_band_hz(sfreq: float) -> tuple[float, float]:
    """The muscle band at ``sfreq``: 20-45 Hz, the upper edge capped at 0.45 x sfreq. Below
    about 56 Hz sampling no muscle band fits under Nyquist; there (toy data only) the band is
    scaled to 0.2-0.45 x sfreq so the corruption still runs."""
    high = min(EMG_BAND_HZ[1], 0.45 * sfreq)
    if high >= EMG_BAND_HZ[0] + 5.0:
        return EMG_BAND_HZ[0], high
    return 0.2 * sfreq, 0.45 * sfreq


def _burst(length: int, ramp: int) -> np.ndarray:
    """A flat-topped envelope of ``length`` samples with raised-cosine ramps (no clicks)."""
    import numpy as np

    env = np.ones(length)
    r = min(ramp, length // 2)
    if r > 0:
        up = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        env[:r] = up
        env[length - r :] = up[::-1]
    return env


# --------------------------------------------------------------------------- electrode pop

POP_TAU_S = (0.1, 1.0)


class ElectrodePop(ArtifactBase):
    """Electrode pops: a sudden step of +-A uV when the electrode-skin contact shifts, decaying
    back exponentially with a time constant drawn log-uniformly in 0.1-1 s.

    Severity is the step in uV (pops reach hundreds of uV) and the number per window:
    50 uV x 1, 150 uV x 2, 400 uV x 4. Onsets are uniform in the window, signs random; a
    higher level keeps the lower level's pops and adds more.
    """

    id = "electrode-pop"
    description = "Electrode pops: step + exponential decay (tau 0.1-1 s); 50 uV x 1 / 150 uV x 2 / 400 uV x 4 per window"
    severities = severities((50.0, 150.0, 400.0), "uV step")
    counts = {1: 1, 2: 2, 3: 4}

    def parameters(self, level: int) -> dict:
        return {"pops_per_window": self.counts[level], "tau_s": list(POP_TAU_S), "shape": "step, exponential decay"}

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev, sfreq = self.severity(severity), _sfreq(sfreq)
        values, rows = _rows(x)
        n, n_times = rows.shape
        most = max(self.counts.values())
        onsets = rng.integers(0, n_times, size=(n, most))
        taus = np.exp(rng.uniform(np.log(POP_TAU_S[0]), np.log(POP_TAU_S[1]), size=(n, most))) * sfreq
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n, most))
        k = self.counts[sev.level]
        for i in range(n):
            pops = np.zeros(n_times)
            for onset, tau, sign in zip(onsets[i, :k], taus[i, :k], signs[i, :k]):
                pops[onset:] += sign * np.exp(-np.arange(n_times - onset) / tau)
            rows[i] += (sev.value * pops).astype(np.float32)
        return like(values, x)


# --------------------------------------------------------------------------- baseline wander

WANDER_BAND_HZ = (0.05, 0.5)
WANDER_COMPONENTS = 3


class BaselineWander(ArtifactBase):
    """Slow baseline drift (respiration moving the head and cables at 0.2-0.3 Hz, sweat and
    skin-potential changes at 0.05-0.1 Hz): a sum of three sinusoids with frequencies drawn
    log-uniformly in 0.05-0.5 Hz, random phases and weights, scaled so that the drift's peak
    absolute value over the window equals the severity (20 / 60 / 150 uV).
    """

    id = "baseline-wander"
    description = "Slow baseline drift from 3 sinusoids in 0.05-0.5 Hz (respiration, sweat); 20 / 60 / 150 uV peak"
    severities = severities((20.0, 60.0, 150.0), "uV peak")

    def parameters(self, level: int) -> dict:
        return {"band_hz": list(WANDER_BAND_HZ), "components": WANDER_COMPONENTS, "scaled_to": "peak |drift| per window"}

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev, sfreq = self.severity(severity), _sfreq(sfreq)
        values, rows = _rows(x)
        n, n_times = rows.shape
        lo, hi = np.log(WANDER_BAND_HZ[0]), np.log(WANDER_BAND_HZ[1])
        freqs = np.exp(rng.uniform(lo, hi, size=(n, WANDER_COMPONENTS)))
        phases = rng.uniform(0.0, 2 * np.pi, size=(n, WANDER_COMPONENTS))
        weights = rng.uniform(0.5, 1.0, size=(n, WANDER_COMPONENTS))
        t = np.arange(n_times) / sfreq
        for start in range(0, n, _ROWS):
            sl = slice(start, start + _ROWS)
            drift = np.einsum(
                "rk,rkt->rt", weights[sl], np.cos(2 * np.pi * freqs[sl][:, :, None] * t + phases[sl][:, :, None])
            )
            drift /= np.abs(drift).max(axis=-1, keepdims=True) + 1e-12
            rows[sl] += (sev.value * drift).astype(np.float32)
        return like(values, x)


# --------------------------------------------------------------------------- dropout

DROPOUT_SEGMENTS = 3


class Dropout(ArtifactBase):
    """Signal loss (a lost wireless packet run, a lifted electrode): flat-line segments.

    Severity is the seconds of flat line per 30-s epoch, 1.5 / 4.5 / 9 s (5 / 15 / 30 % of the
    window), split over three segments, one in each third of the window, with random lengths and
    positions (a higher level lengthens the same segments). The flat value is option
    ``dropout_fill``: ``"zero"`` (default: 0 uV, how EDF files and most recorders store
    missing data) or ``"hold"`` (the last sample before the gap repeated, how some wireless
    streams fill lost packets; the first sample when the gap opens the window).
    """

    id = "dropout"
    description = "Flat-line signal loss in 3 segments, 1.5 / 4.5 / 9 s per 30-s epoch (5 / 15 / 30 %); fill zero (or hold)"
    severities = severities((1.5, 4.5, 9.0), "s per 30-s epoch")
    options = (Option("fill", str, "zero", "what a dropped-out stretch holds", choices=("zero", "hold"), paper=NOT_IN_PAPER),)

    def parameters(self, level: int) -> dict:
        value = self.severities[level - 1].value
        return {"fraction_of_window": value / 30.0, "segments": DROPOUT_SEGMENTS}

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev = self.severity(severity)
        fill = self.resolved(options)["fill"]
        if fill not in ("zero", "hold"):
            raise UsageError("corruption 'dropout': dropout_fill must be 'zero' or 'hold'")
        values, rows = _rows(x)
        n, n_times = rows.shape
        max_fraction = max(s.value for s in self.severities) / 30.0
        fraction = sev.value / 30.0
        shares = rng.dirichlet(np.ones(DROPOUT_SEGMENTS), size=n)
        positions = rng.uniform(size=(n, DROPOUT_SEGMENTS))
        third = n_times // DROPOUT_SEGMENTS
        for i in range(n):
            for k in range(DROPOUT_SEGMENTS):
                # each segment fits in its third even at the highest level: no overlap, no clipping
                longest = int(round(max_fraction * n_times * shares[i, k]))
                length = int(round(fraction * n_times * shares[i, k]))
                a = k * third + int(positions[i, k] * max(0, third - longest))
                b = min(n_times, a + length)
                if b > a:
                    rows[i, a:b] = 0.0 if fill == "zero" else rows[i, max(a - 1, 0)]
        return like(values, x)


# --------------------------------------------------------------------------- saturation


class Saturation(ArtifactBase):
    """Amplifier saturation: the signal clipped at +-level uV (a low-cost front end with a small
    input range, or a large electrode offset eating the headroom). A lower level is more severe:
    200 uV clips only large slow waves and artifacts, 50 uV clips ordinary background activity.
    Deterministic: the rng is not used.
    """

    id = "saturation"
    description = "Amplifier clipping at +-200 / 100 / 50 uV (lower level = more severe)"
    severities = severities((200.0, 100.0, 50.0), "uV clip level")

    def apply(self, x, severity, stats, rng, *, y=None, model=None, sfreq=100.0, options=None):
        import numpy as np

        sev = self.severity(severity)
        values = to_numpy(x)
        np.clip(values, -sev.value, sev.value, out=values)
        return like(values, x)


@hookimpl
def register_corruptions(register):
    for corruption in (Powerline(), EMG(), ElectrodePop(), BaselineWander(), Dropout(), Saturation()):
        register(corruption)
