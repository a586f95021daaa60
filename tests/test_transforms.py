"""The test-time band-pass filter and the deployed pipeline."""

import math

import pytest
import torch
from torch import nn

from restbench.deploy.transforms import BandPass, FIRFilter, deploy

SFREQ, N_TIMES = 100.0, 12000


def sine(freq, n=N_TIMES, sfreq=SFREQ, amp=50.0):
    t = torch.arange(n, dtype=torch.float32) / sfreq
    return (amp * torch.sin(2 * math.pi * freq * t + 0.3)).view(1, 1, n)


def rms(x):
    return x.pow(2).mean().sqrt().item()


@pytest.fixture(scope="module")
def bandpass():
    return BandPass().build(SFREQ)


def test_passes_10hz_and_blocks_0p1hz_and_45hz(bandpass):
    middle = slice(1000, N_TIMES - 1000)  # away from the padded edges
    with torch.no_grad():
        x = sine(10.0)
        y = bandpass(x)
        assert y.shape == x.shape
        # zero phase and unit gain: the output sits on the input sample by sample
        assert (y - x)[..., middle].abs().max().item() < 0.01 * 50
        assert rms(y) == pytest.approx(rms(x), rel=0.01)  # edges included, reflect padding
        for freq, max_ratio in ((0.1, 0.01), (45.0, 0.01), (0.2, 0.01)):
            x = sine(freq)
            assert rms(bandpass(x)[..., middle]) < max_ratio * rms(x[..., middle]), freq
        # a DC offset is removed entirely
        assert bandpass(torch.full((1, 1, N_TIMES), 30.0)).abs().max().item() < 0.05


def test_gradients_flow_and_no_trainable_parameters(bandpass):
    x = torch.randn(2, 1, 2000, requires_grad=True)
    bandpass(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert list(bandpass.parameters()) == [] and bandpass.state_dict() == {}


def test_filter_design_and_config():
    taps = BandPass().taps(SFREQ)
    assert len(taps) == 661 and len(BandPass().taps(125.0)) == 825
    assert BandPass().build(SFREQ).macs_per_window(12000) == 661 * 12000
    cfg = BandPass(low=0.3, high=35.0).config()
    assert cfg["low_hz"] == 0.3 and cfg["high_hz"] == 35.0 and "zero" in cfg["phase"]
    with pytest.raises(ValueError):
        BandPass(low=40.0, high=0.5)
    with pytest.raises(ValueError):
        FIRFilter([1.0, 2.0, 3.0])  # not symmetric
    # short inputs (shorter than half the filter) still work, with edge padding
    assert BandPass().build(SFREQ)(torch.randn(1, 1, 200)).shape == (1, 1, 200)


def test_deploy_puts_transforms_before_net_in_eval_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(1, 2, 5), nn.BatchNorm1d(2), nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(4, 1, 3000)
    net(x)
    net.train()
    pipe = deploy(net, [BandPass()], SFREQ)
    assert not pipe.training and not net.training and pipe[-1] is net
    with torch.no_grad():
        assert torch.equal(pipe(x), net(BandPass().build(SFREQ)(x)))
    plain = deploy(net, [], SFREQ)
    with torch.no_grad():
        assert torch.equal(plain(x), net(x))


def test_fft_and_conv_paths_agree_and_export_uses_conv():
    taps = BandPass().taps(SFREQ)
    x = torch.randn(3, 1, 4000) * 30
    with torch.no_grad():
        fast = FIRFilter(taps, method="fft")(x)
        conv = FIRFilter(taps, method="conv")(x)
        auto = FIRFilter(taps)(x)
    assert (fast - conv).abs().max().item() < 1e-5 * conv.abs().max().item() and torch.equal(auto, fast)
    graph = str(torch.export.export(FIRFilter(taps), (x,)).graph)
    assert "conv1d" in graph and "fft" not in graph


def microvolt_windows(n=4, n_times=N_TIMES, seed=0):
    """Sleep-EEG-like windows in uV: stage sinusoids and noise (make_sleep_data at 100 Hz, 12,000
    samples) on a per-window DC offset and a slow electrode drift, as an unfiltered Fpz-Cz has."""
    from restbench.plugins.testing import make_sleep_data

    data = make_sleep_data(n_subjects=3, epochs_per_subject=8, samples_per_epoch=n_times // 4, sfreq=SFREQ, seed=seed)
    x, _ = data.get(data.window_end[:n])
    rng = torch.Generator().manual_seed(seed)
    t = torch.arange(n_times, dtype=torch.float32) / SFREQ
    offset = (torch.rand(n, 1, 1, generator=rng) - 0.5) * 200.0  # up to +-100 uV
    drift = 40.0 * torch.sin(2 * math.pi * 0.02 * t + torch.rand(n, 1, 1, generator=rng) * 6.0)
    return torch.from_numpy(x) + offset + drift


def max_rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_fft_path_equals_exported_conv_on_microvolt_windows_outputs_and_gradients():
    """The FFT path (what eager prediction, corruption and PGD run) is the exported conv1d up to
    float rounding, for the outputs and for the input gradients an attack follows."""
    taps = BandPass().taps(SFREQ)
    fft, conv = FIRFilter(taps, method="fft"), FIRFilter(taps, method="conv")
    x = microvolt_windows()
    assert x.abs().max() > 50  # realistic scale, offsets included
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    outputs, grads = {}, {}
    for name, layer in (("fft", fft), ("conv", conv)):
        xg = x.clone().requires_grad_(True)
        y = layer(xg)
        (y * weights).sum().backward()  # the gradient is the filter's adjoint applied to the weights
        outputs[name], grads[name] = y.detach(), xg.grad
    assert max_rel(outputs["fft"], outputs["conv"]) < 1e-4
    assert max_rel(grads["fft"], grads["conv"]) < 1e-4
    assert torch.allclose(outputs["fft"], outputs["conv"], rtol=1e-4, atol=1e-4 * outputs["conv"].abs().max().item())
    # the gradient is not trivially small or equal to the weights: the filter shapes it
    assert max_rel(grads["conv"], weights) > 0.1
    # other lengths reuse the same module: each FFT length gets its own cached spectrum
    for n_times in (3000, 12000, 700, 12000):
        xs = x[:2, :, :n_times]
        with torch.no_grad():
            assert max_rel(fft(xs), conv(xs)) < 1e-4, n_times
    assert len(fft._spectra) == 3  # one per distinct FFT length, reused on the repeat


def test_fft_spectrum_first_made_in_inference_mode_still_differentiates():
    """A filter first used under torch.inference_mode (latency timing, prediction) must still
    give gradients afterwards (PGD through Blanco's filter)."""
    layer = BandPass().build(SFREQ)
    x = microvolt_windows(n=2)
    with torch.inference_mode():
        first = layer(x)
    xg = x.clone().requires_grad_(True)
    layer(xg).pow(2).mean().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    assert torch.allclose(layer(x).detach(), first)


def test_auto_is_fft_in_eager_and_conv_in_the_exported_graph():
    taps = BandPass().taps(SFREQ)
    auto = FIRFilter(taps)
    x = microvolt_windows(n=1)
    with torch.no_grad():
        assert torch.equal(auto(x), FIRFilter(taps, method="fft")(x))
    exported = torch.export.export(auto, (x,))
    ops = str(exported.graph)
    assert "conv1d" in ops and "fft" not in ops
    with torch.no_grad():
        assert max_rel(exported.module()(x), FIRFilter(taps, method="conv")(x)) < 1e-6
