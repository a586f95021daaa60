"""The built-in corruptions: paper suite (gaussian, gaussian-shifted, shot, pgd) and artifacts."""

import numpy as np
import pytest
import torch
from torch import nn

from restbench.api import PluginError, Severity, UsageError
from restbench.data.sleep_data import TrainingStats
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import check_corruption

SFREQ = 100.0
N_TIMES = 12000  # 4 x 30 s at 100 Hz, as Sleep-EDF
STATS = TrainingStats(mean=-0.8, sigma=35.0, min=-400.0, max=420.0)
PAPER = {"gaussian": "paper", "shot": "paper", "pgd": "paper", "gaussian-shifted": "variant"}
ARTIFACTS = ["powerline", "emg", "electrode-pop", "baseline-wander", "dropout", "saturation"]
RANDOM_FREE = {"saturation"}  # clipping draws nothing from the rng


def corruption(cid):
    return get_registry().get("corruptions", cid)


def eeg(n=8, n_times=N_TIMES, seed=0, sfreq=SFREQ):
    """Sleep-EEG-like windows: a 1.5 Hz slow wave (up to 220 uV: movement and large delta) + 10 Hz alpha + noise, in uV."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    amp = rng.uniform(20, 220, size=(n, 1, 1))
    x = amp * np.sin(2 * np.pi * 1.5 * t + rng.uniform(0, 6.3, size=(n, 1, 1)))
    x = x + 15 * np.sin(2 * np.pi * 10 * t) + rng.normal(0, 10, size=(n, 1, n_times))
    return torch.tensor(x, dtype=torch.float32)


def tiny_model(n_times):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 4, 9, stride=4, padding=4), nn.ReLU(), nn.AdaptiveAvgPool1d(8), nn.Flatten(), nn.Linear(32, 5)
    ).eval()


def run(cid, x, level, seed=0, **kw):
    c = corruption(cid)
    if c.needs_model:
        kw.setdefault("model", tiny_model(x.shape[-1]))
        kw.setdefault("y", torch.arange(len(x)) % 5)
    return c.apply(x.clone(), c.severities[level - 1], STATS, np.random.default_rng(seed), sfreq=SFREQ, **kw)


# ------------------------------------------------------------------ all corruptions


def test_registered_with_suites_and_pass_conformance():
    found = get_registry().all("corruptions")
    for cid, suite in {**PAPER, **{a: "artifact" for a in ARTIFACTS}}.items():
        c = found[cid]
        assert c.suite == suite
        assert [s.level for s in c.severities] == [1, 2, 3]
        assert [s.name for s in c.severities] == ["low", "medium", "high"]
        assert c.needs_model == (cid == "pgd")
        assert check_corruption(c) == [], cid
    # the paper table has 3 corruptions x 3 severities = 9 cells
    assert sum(len(c.severities) for c in found.values() if c.suite == "paper") == 9


@pytest.mark.parametrize("cid", list(PAPER) + ARTIFACTS)
def test_shape_dtype_determinism_and_severity_order(cid):
    x = eeg(n=6, n_times=3000) if cid == "pgd" else eeg()
    original = x.clone()
    norms = []
    for level in (1, 2, 3):
        out = run(cid, x, level, seed=1)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        assert torch.equal(out, run(cid, x, level, seed=1)), "same seed must give the same batch"
        if cid not in RANDOM_FREE:
            assert not torch.equal(out, run(cid, x, level, seed=2)), "another seed must differ"
        norms.append(float((out - x).norm()))
    assert torch.equal(x, original), "apply must not modify its input"
    assert norms[0] > 0 and norms[0] < norms[1] < norms[2], norms


@pytest.mark.parametrize("cid", ["gaussian", "emg", "powerline"])
def test_severity_given_by_name_or_level_and_bad_severity_rejected(cid):
    c = corruption(cid)
    x = eeg(n=2)
    a = c.apply(x, c.severities[1], STATS, np.random.default_rng(0), sfreq=SFREQ)
    b = c.apply(x, "medium", STATS, np.random.default_rng(0), sfreq=SFREQ)
    d = c.apply(x, 2, STATS, np.random.default_rng(0), sfreq=SFREQ)
    assert torch.equal(a, b) and torch.equal(a, d)
    with pytest.raises(UsageError):
        c.apply(x, 7, STATS, np.random.default_rng(0), sfreq=SFREQ)
    with pytest.raises(UsageError):
        c.apply(x, Severity(2, "medium", 123.0, "uV"), STATS, np.random.default_rng(0), sfreq=SFREQ)


# ------------------------------------------------------------------ paper suite


@pytest.mark.parametrize("level,c_g", [(1, 0.1), (2, 0.2), (3, 0.3)])
def test_gaussian_std_is_c_g_sigma_train_and_zero_mean(level, c_g):
    x = eeg()
    noise = (run("gaussian", x, level) - x).double()
    assert float(noise.std()) == pytest.approx(c_g * STATS.sigma, rel=0.01)
    assert abs(float(noise.mean())) < 0.02 * STATS.sigma
    # the noise follows the training sigma it is given, not the batch's own spread
    wide = TrainingStats(mean=0.0, sigma=2 * STATS.sigma, min=STATS.min, max=STATS.max)
    c = corruption("gaussian")
    noise2 = c.apply(x, c.severities[level - 1], wide, np.random.default_rng(0)) - x
    assert float(noise2.double().std()) == pytest.approx(2 * c_g * STATS.sigma, rel=0.01)
    assert corruption("gaussian").settings(level)["c_g"] == c_g


def test_gaussian_shifted_adds_the_training_mean():
    stats = TrainingStats(mean=12.5, sigma=30.0, min=-300.0, max=300.0)
    c = corruption("gaussian-shifted")
    x = eeg()
    noise = (c.apply(x, c.severities[2], stats, np.random.default_rng(0)) - x).double()
    assert float(noise.mean()) == pytest.approx(12.5, abs=0.1)
    assert float(noise.std()) == pytest.approx(0.3 * 30.0, rel=0.01)


@pytest.mark.parametrize("level,c_s", [(1, 5000.0), (2, 2500.0), (3, 1000.0)])
def test_shot_noise_stays_in_training_range_and_has_poisson_spread(level, c_s):
    stats = TrainingStats(mean=0.0, sigma=30.0, min=-300.0, max=320.0)
    c = corruption("shot")
    x = eeg()
    x[0, 0, :10] = 500.0  # test values outside the training range end up clipped into it
    x[1, 0, :10] = -500.0
    out = c.apply(x, c.severities[level - 1], stats, np.random.default_rng(0))
    assert float(out.min()) >= stats.min and float(out.max()) <= stats.max
    assert torch.all(out[0, 0, :10] == stats.max) and torch.all(out[1, 0, :10] == stats.min)
    # Var(Poisson(lam) / c_s) = lam / c_s^2 = X_norm / c_s, in uV: span^2 * X_norm / c_s
    span = stats.max - stats.min
    inside = slice(20, None)
    x_norm = ((x[:, :, inside] - stats.min) / span).double()
    expected_var = float((span**2 * x_norm / c_s).mean())
    observed_var = float(((out - x)[:, :, inside].double() ** 2).mean())
    assert observed_var == pytest.approx(expected_var, rel=0.05)


def test_pgd_stays_in_eps_ball_and_data_range_and_raises_the_loss():
    x = eeg(n=10, n_times=3000)
    y = torch.arange(10) % 5
    model = tiny_model(3000)
    stats = TrainingStats(mean=0.0, sigma=40.0, min=float(x.min()) + 20.0, max=float(x.max()) - 20.0)
    c = corruption("pgd")
    loss = nn.CrossEntropyLoss()
    with torch.no_grad():
        clean_loss = float(loss(model(x), y))
    inside = (x >= stats.min) & (x <= stats.max)
    for sev in c.severities:
        adv = c.apply(x, sev, stats, np.random.default_rng(0), y=y, model=model, sfreq=SFREQ)
        delta = (adv - x).abs()
        assert float(delta.max()) <= sev.value + 1e-4
        assert float(adv[inside].min()) >= stats.min - 1e-4 and float(adv[inside].max()) <= stats.max + 1e-4
        with torch.no_grad():
            assert float(loss(model(adv), y)) > clean_loss
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())


def test_pgd_settings_and_options():
    c = corruption("pgd")
    s = c.settings(c.severities[1])
    assert s["eps_uv"] == 6.0 and s["steps"] == 10 and s["restarts"] == 0 and s["random_start"] is True
    assert s["step_size_uv"] == pytest.approx(2.5 * 6.0 / 10) and s["norm"] == "linf" and s["setting"] == "standard"
    with pytest.raises(UsageError, match="plugin 'pgd' has no option 'emg_other'"):
        c.settings(c.severities[2], {"emg_other": 1})  # a corruption is handed only its own options
    s = c.settings(c.severities[2], {"steps": 20, "restarts": 2})
    assert s["steps"] == 20 and s["restarts"] == 2 and s["step_size_uv"] == pytest.approx(2.5 * 12.0 / 20)
    s = c.settings(c.severities[0], {"setting": "authors-code"})
    assert s["step_size_uv"] == pytest.approx(0.01) and s["setting"] == "authors-code"
    assert c.settings(c.severities[0], {"step_size": 0.5})["step_size_uv"] == 0.5
    with pytest.raises(UsageError):
        c.settings(c.severities[0], {"stepz": 3})
    with pytest.raises(UsageError):
        c.settings(c.severities[0], {"setting": "nope"})
    with pytest.raises(UsageError):
        c.settings(c.severities[0], {"steps": "many"})
    x = eeg(n=2, n_times=3000)
    with pytest.raises(PluginError):
        c.apply(x, c.severities[0], STATS, np.random.default_rng(0))  # no model, no labels
    # the released code's 0.01-uV steps barely leave the uniform random start (mean |delta| about
    # eps / 2), while the standard steps of 2.5 eps / steps push most samples to the eps boundary
    model, y = tiny_model(3000), torch.tensor([0, 1])
    eps = c.severities[2].value
    weak = c.apply(x, c.severities[2], STATS, np.random.default_rng(0), y=y, model=model,
                   options={"setting": "authors-code"})
    strong = c.apply(x, c.severities[2], STATS, np.random.default_rng(0), y=y, model=model)
    weak_delta, strong_delta = (weak - x).abs(), (strong - x).abs()
    assert float(weak_delta.max()) <= eps + 1e-4 and float(strong_delta.max()) <= eps + 1e-4
    assert float(weak_delta.mean()) == pytest.approx(eps / 2, rel=0.05)
    assert float(strong_delta.mean()) > 0.8 * eps


# ------------------------------------------------------------------ artifact suite


def _spectrum(delta, sfreq):
    d = delta.double().numpy().reshape(-1, delta.shape[-1])
    power = (np.abs(np.fft.rfft(d, axis=-1)) ** 2).sum(axis=0)
    return np.fft.rfftfreq(d.shape[-1], 1 / sfreq), power


def test_powerline_frequencies_and_aliasing():
    c = corruption("powerline")
    # 125 Hz (SHHS): 50 Hz is below Nyquist, its harmonics are not; amplitude is the peak
    x = eeg(n=4, n_times=15000, sfreq=125.0)
    delta = c.apply(x, c.severities[2], STATS, np.random.default_rng(0), sfreq=125.0) - x
    freqs, power = _spectrum(delta, 125.0)
    assert abs(freqs[np.argmax(power)] - 50.0) < 0.1
    assert float(delta.abs().max()) == pytest.approx(100.0, rel=0.02)
    assert c.harmonics(125.0, 50.0) == {1: 1.0}
    assert set(c.harmonics(500.0, 50.0)) == {1, 2, 3, 4}  # 250 Hz is not below 250 Hz + drift
    # 100 Hz: 50 Hz sits at Nyquist, so consecutive samples alternate in sign
    x = eeg(n=4)
    delta = (c.apply(x, c.severities[2], STATS, np.random.default_rng(0), sfreq=100.0) - x).double()
    products = delta[..., 1:] * delta[..., :-1]
    assert float((products <= 1e-3).double().mean()) > 0.99
    assert float(delta.abs().max()) <= 100.0 + 1e-3
    # 60 Hz mains at 100 Hz sampling aliases to 40 Hz
    delta = c.apply(x, c.severities[2], STATS, np.random.default_rng(0), sfreq=100.0, options={"hz": 60}) - x
    freqs, power = _spectrum(delta, 100.0)
    assert abs(freqs[np.argmax(power)] - 40.0) < 0.1
    with pytest.raises(UsageError):
        c.apply(x, 1, STATS, np.random.default_rng(0), options={"hz": 55})


def test_emg_is_band_limited_bursts_at_the_stated_rms():
    c = corruption("emg")
    x = eeg(n=16)
    delta = c.apply(x, c.severities[2], STATS, np.random.default_rng(3), sfreq=SFREQ) - x
    freqs, power = _spectrum(delta, SFREQ)
    in_band = (freqs >= 18) & (freqs <= 47)
    assert power[in_band].sum() > 0.95 * power.sum()
    d = delta.double().numpy().ravel()
    active = np.abs(d) > 0
    assert 0.0 < active.mean() < 0.6  # bursts, not continuous noise
    # RMS inside bursts (flat tops dominate) is close to the severity's 50 uV
    assert np.sqrt(np.mean(d[active] ** 2)) == pytest.approx(50.0, rel=0.2)
    assert c.settings(3)["bursts_per_min"] == 8.0


def test_electrode_pop_steps_and_decays():
    c = corruption("electrode-pop")
    x = eeg(n=6)
    for sev, count in zip(c.severities, (1, 2, 4)):
        delta = (c.apply(x, sev, STATS, np.random.default_rng(5), sfreq=SFREQ) - x).double()
        jumps = (delta[..., 1:] - delta[..., :-1]).abs() > 0.5 * sev.value
        first = delta[..., :1].abs() > 0.5 * sev.value  # a pop can start on the first sample
        assert (jumps.sum(dim=-1) + first.sum(dim=-1)).max() <= count
        assert float(delta.abs().max()) <= count * sev.value + 1e-3
        assert float(delta.abs().max()) >= 0.9 * sev.value
        # exponential decay: the deviation dies out, the tail sits near zero on average
        assert float(delta.abs().mean()) < 0.1 * sev.value * count


def test_baseline_wander_peak_and_band():
    c = corruption("baseline-wander")
    x = eeg(n=6)
    delta = c.apply(x, c.severities[1], STATS, np.random.default_rng(0), sfreq=SFREQ) - x
    peaks = delta.abs().amax(dim=-1)
    assert torch.allclose(peaks, torch.full_like(peaks, 60.0), rtol=1e-3)
    freqs, power = _spectrum(delta, SFREQ)
    assert power[freqs <= 0.6].sum() > 0.98 * power.sum()


@pytest.mark.parametrize("fill", ["zero", "hold"])
def test_dropout_flat_fraction_and_fill(fill):
    c = corruption("dropout")
    x = eeg(n=6)
    for sev in c.severities:
        out = c.apply(x, sev, STATS, np.random.default_rng(0), sfreq=SFREQ, options={"fill": fill})
        flat = torch.zeros_like(out, dtype=torch.bool)
        flat[..., 1:] = out[..., 1:] == out[..., :-1]
        changed = out != x
        fraction = float(changed.double().mean())
        assert fraction == pytest.approx(sev.value / 30.0, abs=0.01)
        assert torch.all(flat[changed]) or fill == "zero"
        if fill == "zero":
            assert torch.all(out[changed] == 0.0)
    with pytest.raises(UsageError):
        c.apply(x, 1, STATS, np.random.default_rng(0), options={"fill": "nan"})


def test_saturation_clips_at_level():
    c = corruption("saturation")
    x = eeg(n=6)
    for sev in c.severities:
        out = c.apply(x, sev, STATS, np.random.default_rng(0))
        assert float(out.abs().max()) <= sev.value
        keep = x.abs() <= sev.value
        assert torch.equal(out[keep], x[keep])
    assert [s.value for s in c.severities] == [200.0, 100.0, 50.0]  # lower level = more severe


def test_artifacts_run_at_toy_sampling_rates():
    # the smoke profile's synthetic data is sampled at 10 Hz: no artifact may refuse it
    x = eeg(n=2, n_times=1200, sfreq=10.0)
    for cid in ARTIFACTS:
        out = corruption(cid).apply(x, 3, STATS, np.random.default_rng(0), sfreq=10.0)
        assert out.shape == x.shape and torch.isfinite(out).all()
