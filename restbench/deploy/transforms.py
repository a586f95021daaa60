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


def fast_fft_length(n: int) -> int:
    """The smallest length >= ``n`` whose only prime factors are 2, 3 and 5 (fast for pocketfft
    and cuFFT; 13,500 for Blanco's padded 12,000-sample window instead of 16,384)."""
    best = 1 << (max(1, int(n)) - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class FIRFilter(nn.Module):
    """Zero-phase filtering by a symmetric (linear-phase) FIR applied centred.

    Input ``(n, c, t)``; output the same shape. The signal is reflect-padded by half the filter
    length on each side (edge padding when it is too short to reflect), so the output is
    aligned with the input. The taps are a non-persistent buffer: not trained, not saved with
    the network's state_dict.

    ``method``: ``"conv"`` is a plain conv1d (what exports to TFLite); ``"fft"`` computes the
    same linear convolution by FFT with the filter's spectrum cached per FFT length, device and
    dtype (for Blanco's 661 taps on 12,000 samples: ~5x faster than conv1d at batch 1 and ~40x
    at batch 64 on one CPU thread, equal up to float rounding, ~1e-6 relative); ``"auto"``
    (default) uses the FFT in eager PyTorch (prediction, corruption, attacks) and conv1d while
    ``torch.export`` / ``torch.jit`` traces the module, so the exported graph holds only
    standard ops. Both are differentiable with respect to the input.
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
        self._spectra: dict[tuple, torch.Tensor] = {}  # (nfft, device, dtype) -> rfft of the taps

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
            # A circular convolution of length >= the padded signal equals the linear one from
            # sample k - 1 on (the wrapped tail lands before it), which is all we keep.
            nfft = fast_fft_length(z.shape[-1])
            y = torch.fft.irfft(torch.fft.rfft(z, nfft) * self.spectrum(nfft, z.device, z.dtype), nfft)
            y = y[..., k - 1 : k - 1 + t]
        return y.reshape(n, c, t)

    def spectrum(self, nfft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``rfft(taps, nfft)``, computed once per (nfft, device, dtype) and cached.

        Made outside inference mode so a spectrum first computed under ``torch.inference_mode``
        can still be saved for backward by a later differentiated call (PGD through the filter).
        """
        key = (int(nfft), str(device), dtype)
        cached = self._spectra.get(key)
        if cached is None:
            with torch.inference_mode(False), torch.no_grad():
                cached = torch.fft.rfft(self.taps.to(device=device, dtype=dtype).view(-1).clone(), nfft)
            self._spectra[key] = cached
        return cached


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
