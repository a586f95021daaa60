"""Training precision: ``auto`` picks bf16 only where the device computes it natively, a bf16 phase
really runs under autocast and is as deterministic as fp32, and the resolved precision is what a
run records (so resuming on a machine where ``auto`` picks otherwise is refused)."""

import numpy as np
import pytest
import torch

from restbench.api import Phase
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import make_sleep_data
from restbench.run import profiles
from restbench.run.plan import RunRequest, resolve_plan
from restbench.training import precision
from restbench.training.loop import train_phase
from restbench.training.regularizers import SpectralRegularizer

KNOBS = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32, "max_train_windows": 96,
         "max_val_windows": 64}


def cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 {flags}\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    return path


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, monkeypatch):
    assert "avx512_bf16" in precision.cpu_flags(cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert precision.cpu_flags(tmp_path / "absent") == set()
    for flags, expected in (("avx512f avx512_bf16", "bf16"), ("amx_bf16 amx_tile", "bf16"), ("avx512f", "fp32")):
        path = cpuinfo(tmp_path, flags)
        monkeypatch.setattr(precision, "cpu_flags", lambda p=path: _flags(p))
        assert precision.resolve_precision("auto", "cpu") == expected, flags
        assert precision.resolve_precision("fp32", "cpu") == "fp32"
        assert precision.resolve_precision("bf16", "cpu") == "bf16"


def _flags(path):
    return set(path.read_text().split("flags\t\t:", 1)[1].splitlines()[0].split())


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv1d(1, 8, 25, stride=4, padding=12), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
        torch.nn.Conv1d(8, 8, 9, stride=4, padding=4), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5))


@pytest.fixture(scope="module")
def toy():
    return make_sleep_data(n_subjects=8, epochs_per_subject=40)


def weights(result):
    return torch.cat([v.flatten().float() for v in result.state_dict.values()])


def test_bf16_training_runs_under_autocast_and_repeats_exactly(toy):
    seen = []

    def step(model, x, y, ctx):
        model.train()
        out = model(x)
        seen.append(out.dtype)
        return torch.nn.functional.cross_entropy(out, y)

    train_phase(small_net(), toy, Phase(step=step), {**KNOBS, "precision": "bf16"}, 0, 1, [])
    assert set(seen) == {torch.bfloat16}
    seen.clear()
    train_phase(small_net(), toy, Phase(step=step), {**KNOBS, "precision": "fp32"}, 0, 1, [])
    assert set(seen) == {torch.float32}

    phase = Phase(regularizers=[SpectralRegularizer(1e-3)])
    a = train_phase(small_net(), toy, phase, {**KNOBS, "precision": "bf16"}, 0, 2, [])
    b = train_phase(small_net(), toy, phase, {**KNOBS, "precision": "bf16"}, 0, 2, [])
    c = train_phase(small_net(), toy, phase, {**KNOBS, "precision": "fp32"}, 0, 2, [])
    assert torch.equal(weights(a), weights(b))  # same seed, same machine: same weights
    assert not torch.equal(weights(a), weights(c))  # and bf16 really changed the arithmetic
    assert all(v.dtype == torch.float32 for k, v in a.state_dict.items() if v.is_floating_point())
    assert np.isfinite(a.history[-1]["loss"])


def test_the_plan_records_the_resolved_precision(monkeypatch):
    registry = get_registry()
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision, "native_bf16", lambda device_type, n=native: n)
        plan = resolve_plan(RunRequest(methods=["sors"], profile="quick", overrides={"device": "cpu"}), registry)
        assert plan.knobs["precision"] == expected
        assert any("precision" in line for line in plan.deviations) == (expected == "bf16")
    plan = resolve_plan(RunRequest(methods=["sors"], profile="smoke"), registry)
    assert plan.knobs["precision"] == "fp32"  # tests and the paper profile train in fp32 everywhere
    assert profiles.resolve("paper")["precision"] == "fp32"
