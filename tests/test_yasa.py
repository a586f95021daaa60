"""YASA's pretrained sleep stager as a reference method: its features are YASA's own, and its row
appears in a smoke summary, evaluated on the same test windows and corruptions as a trained model."""

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from restbench.cli import cli
from restbench.records.schema import validate_record, validate_run

if any(importlib.util.find_spec(name) is None for name in ("yasa", "lightgbm")):
    pytest.skip("yasa is not installed (pip install 'restbench[yasa]')", allow_module_level=True)


def night(n_epochs: int = 10, sfreq: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(n_epochs * 30 * sfreq)) / sfreq
    return 30 * np.sin(2 * np.pi * 2 * t) + 10 * np.sin(2 * np.pi * 10 * t) * (t > 150) + rng.normal(0, 8, len(t))


def test_per_epoch_features_are_yasas_own():
    import mne
    import yasa

    from restbench_builtins.methods.yasa_stager import epoch_features

    signal = night()
    raw = mne.io.RawArray(signal[None] * 1e-6, mne.create_info(["EEG"], 100.0, "eeg"), verbose=False)
    theirs = yasa.SleepStaging(raw, "EEG").get_features()
    ours = epoch_features(signal[None, None], 100.0, 10)  # the whole 10-epoch night as one window
    raw_columns = [c for c in theirs.columns if c.startswith("eeg_") and not c.endswith("_norm")]
    assert sorted(raw_columns) == sorted(ours.columns)
    for column in raw_columns:  # (a zero crossing may flip with MNE's volts -> microvolts round trip)
        np.testing.assert_allclose(ours[column].to_numpy(), theirs[column].to_numpy(), rtol=1e-5,
                                   atol=1 if column == "eeg_nzc" else 1e-8, err_msg=column)


def test_the_classifier_gets_exactly_its_features_and_smoothing_is_yasas():
    import pandas as pd

    from restbench_builtins.methods.yasa import YasaReference
    from restbench_builtins.methods.yasa_stager import epoch_features, feature_table, smoothed

    reference = YasaReference()
    x = np.stack([night(4)[None], night(4)[None] * 0.5]).astype(np.float32)
    table = feature_table(x, 100.0, 4, [0, 0], [5, 6], [10, 10])
    assert list(table.columns) == sorted(reference.classifier.feature_name_)
    assert table["time_norm"].tolist() == pytest.approx([5 / 9, 6 / 9])
    features = epoch_features(x, 100.0, 4)
    centred, past = smoothed(features, 4)
    first = features.iloc[:4].reset_index(drop=True)
    pd.testing.assert_series_equal(past.iloc[0], first.mean(), check_names=False)  # the past 2 min = 4 epochs
    yasa_centred = first.rolling(window=15, center=True, min_periods=1, win_type="triang").mean().iloc[-1]
    pd.testing.assert_series_equal(centred.iloc[0], yasa_centred, check_names=False)
    assert reference.available(10.0) == (False, "YASA needs a sampling rate above 80 Hz; the data has 10 Hz")


@pytest.fixture(scope="module")
def yasa_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("yasa") / "run"
    result = CliRunner().invoke(cli, ["run", "--methods", "plain,yasa", "--corruptions", "gaussian,pgd", "--profile",
                                      "smoke", "--exporters", "", "--runners", "torch-cpu", "--set",
                                      "torch-cpu.repetitions=2", "--run-dir", str(run_dir), "--quiet", "--no-figures"])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    return run_dir, result.output


def test_yasas_row_appears_in_a_smoke_summary(yasa_run):
    run_dir, output = yasa_run
    info = json.loads((run_dir / "run.json").read_text())
    validate_run(info)
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for record in records:
        validate_record(record)
    cells = {(r["method"], r["corruption"], r["severity"]) for r in records if r["record_type"] == "robustness"}
    plain = {c[1:] for c in cells if c[0] == "plain"}
    ours = {c[1:] for c in cells if c[0] == "yasa"}
    assert ours == {c for c in plain if c[0] != "pgd"}  # the same cells, except the white-box attack
    assert not any(r["method"] == "yasa" for r in records if r["record_type"] == "training")
    same_windows = {r["method"]: r["n_windows"] for r in records if r["record_type"] == "robustness"
                    and r["corruption"] == "gaussian" and r["severity"] == 3}
    assert same_windows["yasa"] == same_windows["plain"]
    eff = next(r for r in records if r["record_type"] == "efficiency" and r["method"] == "yasa")
    assert eff["params"] > 100_000 and eff["size_kb"] > 1000 and eff["mflops"] == 0 and "LightGBM" in eff["note"]
    assert any(r["record_type"] == "latency" and r["method"] == "yasa" and r["runner"] == "torch-cpu" for r in records)
    assert "what users run today" in info["method_recipes"]["yasa"]["description"]
    assert info["method_recipes"]["yasa"]["reference"]["reference"] == "yasa"
    summary = (run_dir / "summary.md").read_text()
    assert any(line.startswith("| yasa ") for line in summary.splitlines())
    with np.load(run_dir / "artifacts" / "predictions" / "yasa-seed0.npz") as npz:
        assert {"true", "torch/clean/0", "torch/gaussian/3"} <= set(npz.files)
        assert (npz["torch/clean/0"] == npz["true"]).mean() > 0.2  # it stages the synthetic nights above chance


def test_all_with_yasa_selects_every_entry_and_the_reference():
    from restbench.plugins.registry import get_registry

    registry = get_registry()
    everything = [m.id for m in registry.resolve("methods", "all,yasa")]
    assert "yasa" in everything and "yasa" not in [m.id for m in registry.resolve("methods", "all")]
    assert everything[:-1] == [m.id for m in registry.resolve("methods", "all")]


def test_yasas_row_appears_in_a_leaderboard(yasa_run, tmp_path):
    run_dir, _ = yasa_run
    info = json.loads((run_dir / "run.json").read_text())
    assert info["method_recipes"]["yasa"]["corruptions_left_out"] == ["pgd"]
    result = CliRunner().invoke(cli, ["leaderboard", "build", str(run_dir), "--out", str(tmp_path / "board")])
    assert result.exit_code == 0, (result.output[-2000:], result.exception)
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert any(line.startswith("| yasa |") for line in board.splitlines())
