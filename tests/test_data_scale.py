"""restbench.data.scale: per-stage amplitude of the training split and noise levels relative to it."""

import ast
import inspect

import numpy as np
import pytest

import restbench.data.scale as scale
from restbench.data.scale import data_scale, epoch_rms, relative_levels, severity_uv, stage_rms
from restbench.data.sleep_data import STAGES, SleepData, TrainingStats


def toy_data():
    """Two recordings (subjects a: train, b: test), 1 window epoch context; each epoch a sine of
    known amplitude on a DC offset, so its RMS (mean removed) is amplitude / sqrt(2)."""
    t = np.arange(3000) / 100.0
    amps = {0: [10.0, 12.0, 14.0], 1: [20.0], 2: [30.0, 40.0], 3: [60.0], 4: [8.0, 9.0]}
    rows, labels = [], []
    for stage, values in amps.items():
        for a in values:
            rows.append(50.0 + a * np.sin(2 * np.pi * 1.0 * t))
            labels.append(stage)
    n_train = len(rows)
    rows.append(1000.0 * np.sin(2 * np.pi * t))  # a huge test epoch must not count
    labels.append(0)
    signal = np.asarray(rows, dtype=np.float32)
    recording = np.array([0] * n_train + [1], dtype=np.int32)
    return SleepData(
        name="toy", signal=signal, labels=np.asarray(labels, dtype=np.int64), recording=recording,
        recordings=["A", "B"], recording_subject=["a", "b"], window_end=np.arange(len(rows), dtype=np.int64),
        split={"train": ["a"], "val": [], "test": ["b"]}, stats=TrainingStats(mean=0.0, sigma=25.0, min=-100.0, max=100.0),
        sfreq=100.0, context=1,
    ), amps


def test_epoch_rms_removes_the_mean():
    x = np.stack([5.0 + np.ones(100), -3.0 + np.r_[np.ones(50), -np.ones(50)]])
    np.testing.assert_allclose(epoch_rms(x), [0.0, 1.0])
    with pytest.raises(ValueError):
        epoch_rms(np.zeros(10))


def test_stage_rms_is_the_median_over_the_training_split():
    data, amps = toy_data()
    rms = stage_rms(data)
    for stage, values in amps.items():
        assert rms[STAGES[stage]] == pytest.approx(np.median(values) / np.sqrt(2), rel=1e-4)
    assert stage_rms(data, "test") == {"W": pytest.approx(1000 / np.sqrt(2), rel=1e-4), "N1": None, "N2": None,
                                       "N3": None, "REM": None}


def test_levels_in_uv_and_relative_to_each_stage():
    stats = TrainingStats(mean=1.0, sigma=30.0, min=-5.0, max=5.0)
    assert severity_uv(6.0, "uV", stats) == 6.0
    assert severity_uv(0.2, "x sigma_train", stats) == pytest.approx(6.0)
    assert severity_uv(1000.0, "photons (c_s)", stats) is None
    rms = {"W": 12.0, "N1": None, "N2": 24.0, "N3": 0.0, "REM": 6.0}
    rows = relative_levels([("attack medium", 6.0, "uV"), ("noise high", 0.3, "x sigma_train"), ("shot", 5.0, "c_s")], rms, stats)
    assert [r["uv"] for r in rows] == [6.0, pytest.approx(9.0), None]
    assert rows[0]["kind"] == "L-inf radius" and rows[1]["kind"] == "noise std" and rows[2]["kind"] is None
    assert rows[0]["of_stage_rms"] == {"W": 0.5, "N1": None, "N2": 0.25, "N3": None, "REM": 1.0}
    assert rows[1]["of_stage_rms"]["N2"] == pytest.approx(9.0 / 24.0)
    assert all(v is None for v in rows[2]["of_stage_rms"].values())


def test_data_scale_summary():
    data, amps = toy_data()
    out = data_scale(data, [("eps", 2.0, "uV")])
    assert out["split"] == "train" and out["sigma_train_uv"] == 25.0
    assert out["levels"][0]["of_stage_rms"]["N3"] == pytest.approx(2.0 / (60.0 / np.sqrt(2)), rel=1e-4)


def test_the_core_module_names_no_plugin():
    strings = {n.value for n in ast.walk(ast.parse(inspect.getsource(scale))) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    assert not strings & {"pgd", "gaussian", "shot", "sleep-synth", "sleep-edf"}


def test_data_info_shows_stage_amplitude_and_relative_noise(tmp_path):
    import json

    from click.testing import CliRunner

    from restbench.cli import cli

    args = ["data", "info", "sleep-synth", "--n-subjects", "3", "--dataset-option", "hours=1", "--cache-dir", str(tmp_path)]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert "median epoch RMS (uV)" in table.output and "L-inf radius" in table.output and "noise std" in table.output
    out = json.loads(CliRunner().invoke(cli, args + ["--json"]).output)["scale"]
    assert out["split"] == "train" and set(out["stage_rms_uv"]) == set(STAGES)
    by_label = {level["label"]: level for level in out["levels"]}
    # every registered corruption severity is listed; those in uV or x sigma_train are converted
    converted = [level for level in out["levels"] if level["unit"] in ("uV", "x sigma_train")]
    assert converted and all(level["uv"] is not None for level in converted)
    for level in converted:
        for stage, rel in level["of_stage_rms"].items():
            if out["stage_rms_uv"][stage]:
                assert rel == pytest.approx(level["uv"] / out["stage_rms_uv"][stage])
    assert len(by_label) == len(out["levels"])


def test_measured_levels_size_noise_by_what_it_adds():
    """White noise of std s adds RMS s to every stage and fills 15-30 Hz; a 1 Hz sine adds none
    there; a white-box attack is left out (it needs a model)."""
    import torch

    from restbench.api import Severity
    from restbench.data.scale import measured_levels

    data, amps = toy_data()

    class White:
        id, needs_model = "white", False
        severities = (Severity(1, "low", 5.0, "uV"), Severity(3, "high", 20.0, "uV"))

        def apply(self, x, severity, stats, rng, **kwargs):
            return x + torch.from_numpy(rng.normal(0.0, severity.value, x.shape).astype(np.float32))

    class Attack(White):
        id, needs_model = "attack", True

    rows = measured_levels(data, [White(), Attack()], per_stage=8)
    assert [r["label"] for r in rows] == ["white low", "white high"]
    rms = stage_rms(data)
    for row, std in zip(rows, (5.0, 20.0)):
        for stage in STAGES:
            assert row["added_rms_uv"][stage] == pytest.approx(std, rel=0.1)
            assert row["of_stage_rms"][stage] == pytest.approx(row["added_rms_uv"][stage] / rms[stage])
            assert row["beta_power_ratio"][stage] > 1e3  # the toy epochs are pure 1 Hz sines: no beta of their own
