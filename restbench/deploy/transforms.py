"""Fixed test-time input transforms that become part of the deployed model.

A transform is an object with ``build(sfreq) -> nn.Module`` and ``config() -> dict``. The
module is a plain, differentiable PyTorch layer with no trainable parameters, so white-box
attacks go through it and it exports to TFLite with the network (:func:`deploy`).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def fir_numtaps(sfreq: float, transition_hz: float) -> int:
    """Odd FIR length for a Hamming-window design with the given transition width
    (``3.3 * sfreq / transition_hz``, the usual rule of thumb, as MNE uses)."""
    n = int(math.ceil(3.3 * sfreq / transition_hz))
    return n + 1 if n % 2 == 0 else n


FIR_METHODS = ("auto", "conv", "fft")


class FIRFilter(nn.Module):
    """Zero-phase filtering by a symmetric (linear-phase) FIR applied centred.

    Input ``(n, c, t)``; output the same shape. The signal is reflect-padded by half the filter
    length on each side (edge padding when it is too short to reflect), so the output is
    aligned with the input. The taps are a non-persistent buffer: not trained, not saved with
    the network's state_dict.

    ``method``: ``"conv"`` is a plain conv1d (what exports to TFLite); ``"fft"`` computes the
    same linear convolution by FFT, about 30x faster on CPU for long filters and equal up to
    float rounding (~1e-6 relative); ``"auto"`` (default) uses the FFT in eager PyTorch and
    conv1d while ``torch.export`` / ``torch.jit`` traces the module, so the exported graph
    holds only standard ops. Both are differentiable.
    """

    def __init__(self, taps: np.ndarray, method: str = "auto") -> None:
        super().__init__()
        taps = np.asarray(taps, dtype=np.float64)
        if taps.ndim != 1 or len(taps) % 2 == 0 or not np.allclose(taps, taps[::-1]):
            raise ValueError("FIRFilter needs an odd-length symmetric filter (zero phase when centred)")
        if method not in FIR_METHODS:
            raise ValueError(f"FIRFilter: unknown method {method!r}; choose from {FIR_METHODS}")
        self.method = method
        self.pad = len(taps) // 2
        self.register_buffer("taps", torch.tensor(taps, dtype=torch.float32).view(1, 1, -1), persistent=False)

    def _use_conv(self) -> bool:
        if self.method != "auto":
            return self.method == "conv"
        return torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.jit.is_scripting()

    def macs_per_window(self, n_times: int, channels: int = 1) -> int:
        """Multiply-adds of the exported (conv1d) filter on one window: taps per output sample.
        Forward hooks on nn.Conv1d do not see this functional conv, so counters should ask."""
        return int(self.taps.shape[-1]) * int(n_times) * int(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t = x.shape
        z = x.reshape(n * c, 1, t)
        mode = "reflect" if t > self.pad else "replicate"
        z = F.pad(z, (self.pad, self.pad), mode=mode)
        taps = self.taps.to(z.dtype)
        if self._use_conv():
            y = F.conv1d(z, taps)
        else:
            k = taps.shape[-1]
            size = z.shape[-1] + k - 1
            nfft = 1 << (size - 1).bit_length()
            spectrum = torch.fft.rfft(z, nfft) * torch.fft.rfft(taps.view(-1), nfft)
            # full linear convolution; the centred window starts k - 1 samples in
            y = torch.fft.irfft(spectrum, nfft)[..., k - 1 : k - 1 + t]
        return y.reshape(n, c, t)


class BandPass:
    """Blanco et al.'s test-time band-pass, ``low``-``high`` Hz (default 0.5-40).

    A Hamming-window FIR (scipy ``firwin``) with cutoffs (-6 dB points) at ``low`` and
    ``high`` and a ``transition_hz`` wide transition band around each (default 0.5 Hz):
    661 taps at 100 Hz, 825 at 125 Hz. Response at 100 Hz: -6 dB at 0.5 and 40 Hz, passband
    0.75-39.75 Hz flat within 0.02 dB, at least 52 dB attenuation below 0.25 Hz and above
    40.25 Hz (-65 dB at 0.1 Hz, -68 dB at 45 Hz). Applied zero-phase (see :class:`FIRFilter`);
    as exported (conv1d) it costs ``taps`` multiply-adds per sample (7.9 M per 12,000-sample
    window); eager PyTorch computes the same filter by FFT. When
    ``high`` is at or above Nyquist the filter is a high-pass at ``low``.
    """

    id = "band-pass"

    def __init__(self, low: float = 0.5, high: float = 40.0, transition_hz: float = 0.5, method: str = "auto") -> None:
        if not 0 < low < high:
            raise ValueError(f"BandPass: need 0 < low < high, got low={low}, high={high}")
        if transition_hz <= 0:
            raise ValueError(f"BandPass: transition_hz must be positive, got {transition_hz}")
        if method not in FIR_METHODS:
            raise ValueError(f"BandPass: unknown method {method!r}; choose from {FIR_METHODS}")
        self.low, self.high, self.transition_hz = float(low), float(high), float(transition_hz)
        self.method = method  # how it is computed, not what: left out of config()

    def taps(self, sfreq: float) -> np.ndarray:
        """The filter taps for a sampling rate (Hz)."""
        from scipy.signal import firwin  # scipy only where a filter is designed

        numtaps = fir_numtaps(sfreq, self.transition_hz)
        if self.high >= sfreq / 2:
            return firwin(numtaps, self.low, pass_zero=False, fs=sfreq, window="hamming")
        return firwin(numtaps, [self.low, self.high], pass_zero=False, fs=sfreq, window="hamming")

    def build(self, sfreq: float) -> nn.Module:
        """The filter layer for inputs sampled at ``sfreq`` Hz (see :class:`FIRFilter`)."""
        if self.low >= sfreq / 2:
            raise ValueError(f"BandPass: low cutoff {self.low} Hz is above Nyquist for sfreq {sfreq} Hz")
        return FIRFilter(self.taps(sfreq), method=self.method)

    def config(self) -> dict:
        return {
            "name": self.id,
            "low_hz": self.low,
            "high_hz": self.high,
            "transition_hz": self.transition_hz,
            "design": "FIR firwin hamming, numtaps = 3.3 * sfreq / transition_hz (odd)",
            "phase": "zero (symmetric FIR applied centred, reflect padding)",
        }


def deploy(net: nn.Module, transforms: Iterable, sfreq: float) -> nn.Sequential:
    """The deployed pipeline: every transform's layer, then ``net``, in eval mode.

    ``net`` is the last element (``pipeline[-1]``); the transforms add no parameters.
    """
    layers = [t.build(sfreq) for t in transforms]
    pipeline = nn.Sequential(*layers, net)
    ref = next(iter(net.parameters()), None)
    if ref is not None:
        pipeline = pipeline.to(ref.device)
    return pipeline.eval()
