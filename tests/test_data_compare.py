"""``restbench data compare A B``: per-stage amplitude and relative band power of two datasets side
by side, and a reference stager's macro-F1 on each (docs/REALISM.md).

The numbers are checked on signals whose answer is known: sines of one frequency per stage land in
their band, a sine of amplitude a has RMS a/sqrt(2), at any sampling rate. The data are small:
sleep-synth with three half-hour nights, and an edf-folder of three generated recordings.
"""

import importlib.util
import itertools
import json
import math

import edfio
import numpy as np
import pytest
from click.testing import CliRunner

from restbench.cli import cli, main
from restbench.data.compare import (
    BANDS_HZ,
    TOTAL_HZ,
    compare_profiles,
    markdown,
    relative_band_power,
    stage_profile,
)
from restbench.plugins.contract import STAGES, DatasetOptions
from restbench.plugins.registry import get_registry

#: One sine per stage: (frequency Hz, amplitude uV). Each frequency lies inside one band, away
#: from its edges, and makes whole cycles in a 30-s epoch.
SINES = {"W": (10.0, 20.0), "N1": (6.0, 30.0), "N2": (14.0, 40.0), "N3": (2.0, 80.0), "REM": (22.0, 10.0)}
BAND_OF = {"W": "alpha", "N1": "theta", "N2": "sigma", "N3": "delta", "REM": "beta"}
EPOCHS_PER_STAGE = 8
SYNTH = ["--dataset-option-a", "n_nights=3", "--dataset-option-a", "hours=0.5"]


def sine_epochs(freq, amp, sfreq, n=3, noise=0.0, seed=0):
    t = np.arange(int(30 * sfreq)) / sfreq
    rng = np.random.default_rng(seed)
    return np.stack([amp * np.sin(2 * np.pi * freq * t + k) + noise * rng.standard_normal(len(t)) for k in range(n)])


def write_recordings(root, sfreq=200.0, n_recordings=3):
    """``p0K.edf`` (channel ``EEG Fpz-Cz`` at ``sfreq``) with ``p0K.txt`` hypnograms: each recording
    runs W, N1, N2, N3, REM, EPOCHS_PER_STAGE epochs each, every stage its own sine."""
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(30 * EPOCHS_PER_STAGE * sfreq)) / sfreq
    for k in range(1, n_recordings + 1):
        signal = np.concatenate([amp * np.sin(2 * np.pi * freq * t) for freq, amp in SINES.values()])
        edfio.Edf([edfio.EdfSignal(signal, sfreq, label="EEG Fpz-Cz", physical_dimension="uV",
                                   physical_range=(-500, 500))], data_record_duration=30).write(root / f"p0{k}.edf")
        (root / f"p0{k}.txt").write_text("".join(f"{stage}\n" * EPOCHS_PER_STAGE for stage in STAGES))
    return root


@pytest.fixture(scope="module")
def sines_dir(tmp_path_factory):
    return write_recordings(tmp_path_factory.mktemp("sines") / "data")


def compare(args, tmp_path):
    result = CliRunner().invoke(cli, ["data", "compare", *args, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    return result


def one_line_error(args, tmp_path, capsys):
    """Run the console entry point; returns (exit code, stderr), checking the error is one line."""
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "compare", *args, "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return exit_info.value.code, err


# --------------------------------------------------------------------------- the numbers


@pytest.mark.parametrize("sfreq", [100.0, 128.0, 250.0])
@pytest.mark.parametrize("stage", list(SINES))
def test_a_sine_lands_in_its_band_at_any_rate(stage, sfreq):
    freq, amp = SINES[stage]
    shares = relative_band_power(sine_epochs(freq, amp, sfreq, noise=0.5), sfreq)
    assert set(shares) == set(BANDS_HZ)
    assert np.all(shares[BAND_OF[stage]] > 0.95), (stage, shares)
    total = sum(shares.values())
    np.testing.assert_allclose(total, 1.0, atol=1e-12)  # the bands tile 0.5-30 Hz


def test_band_edges_tile_the_total_and_flat_epochs_give_nan():
    edges = sorted(BANDS_HZ.values())
    assert edges[0][0] == TOTAL_HZ[0] and edges[-1][1] == TOTAL_HZ[1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(edges))
    shares = relative_band_power(np.full((2, 3000), 7.0), 100.0)  # constant: no power after the mean goes
    assert all(np.isnan(v).all() for v in shares.values())
    with pytest.raises(ValueError, match="expected"):
        relative_band_power(np.zeros(3000), 100.0)


def test_stage_profile_of_known_sines(sines_dir, tmp_path):
    ds = get_registry().get("datasets", "edf-folder")
    data = ds.prepare(DatasetOptions(data_dir=sines_dir, cache_dir=tmp_path / "cache", extra={"sfreq": 200.0}))
    profile = stage_profile(data, "all")
    assert profile["sfreq"] == 200.0 and profile["n_recordings"] == 3 and profile["split"] == "all"
    n_scored = 0
    for stage, (freq, amp) in SINES.items():
        row = profile["stages"][stage]
        n_scored += row["n_epochs"]
        assert row["rms_uv"] == pytest.approx(amp / math.sqrt(2), rel=0.01)  # a sine's RMS
        assert row["relative_power"][BAND_OF[stage]] > 0.95
        assert all(0.0 <= v <= 1.0 for v in row["relative_power"].values())
    assert n_scored == len(data.window_end)  # every scored epoch of every split, once
    # a split is a subset: the test split's epochs are those of its subject
    test = stage_profile(data, "test")
    assert test["n_recordings"] == 1 and sum(r["n_epochs"] for r in test["stages"].values()) < n_scored
    with pytest.raises(ValueError, match="unknown split"):
        stage_profile(data, "everything")


def test_compare_profiles_ratio_and_markdown(sines_dir, tmp_path):
    ds = get_registry().get("datasets", "edf-folder")
    low = ds.prepare(DatasetOptions(data_dir=sines_dir, cache_dir=tmp_path / "cache", extra={"sfreq": 100.0}))
    high = ds.prepare(DatasetOptions(data_dir=sines_dir, cache_dir=tmp_path / "cache", extra={"sfreq": 200.0}))
    result = compare_profiles(stage_profile(low), stage_profile(high))
    for stage in STAGES:  # the same recordings at two rates: the same numbers
        row = result["stages"][stage]
        assert row["rms_uv"]["ratio_b_over_a"] == pytest.approx(1.0, abs=0.01)
        assert row["relative_power"][BAND_OF[stage]]["a"] == pytest.approx(row["relative_power"][BAND_OF[stage]]["b"],
                                                                           abs=0.01)
    text = markdown(result)
    assert "| W | " in text and "alpha 8-12 Hz" in text and "100 Hz" in text and "200 Hz" in text
    assert "Stager" not in text  # no stager scores given, no stager section


# --------------------------------------------------------------------------- the command


def test_compare_sleep_synth_with_an_edf_folder_json_and_markdown(sines_dir, tmp_path):
    out = tmp_path / "report" / "compare.md"
    out.parent.mkdir()
    args = ["sleep-synth", "edf-folder", *SYNTH, "--data-dir-b", str(sines_dir), "--dataset-option-b", "sfreq=200",
            "--out", str(out)]
    data = json.loads(compare([*args, "--json"], tmp_path).output)
    assert set(data) == {"split", "definitions", "a", "b", "stages", "stager"}
    assert data["stager"] is None and data["split"] == "all"
    assert data["a"]["dataset"] == "sleep-synth" and data["a"]["sfreq"] == 100.0 and data["a"]["n_recordings"] == 3
    assert data["b"]["dataset"] == "edf-folder" and data["b"]["sfreq"] == 200.0
    assert data["definitions"]["bands_hz"]["sigma"] == [12.0, 16.0] and data["definitions"]["total_hz"] == [0.5, 30.0]
    assert list(data["stages"]) == list(STAGES)
    for stage, (freq, amp) in SINES.items():
        row = data["stages"][stage]
        assert set(row) == {"n_epochs", "rms_uv", "relative_power"}
        assert row["n_epochs"]["a"] > 0 and row["n_epochs"]["b"] > 0
        assert row["rms_uv"]["b"] == pytest.approx(amp / math.sqrt(2), rel=0.01)
        assert row["rms_uv"]["ratio_b_over_a"] == pytest.approx(row["rms_uv"]["b"] / row["rms_uv"]["a"])
        assert row["relative_power"][BAND_OF[stage]]["b"] > 0.95
        assert all(0.0 <= row["relative_power"][band]["a"] <= 1.0 for band in BANDS_HZ)
    # sleep-synth is sleep EEG: its delta share rises from wake to N3
    delta = {s: data["stages"][s]["relative_power"]["delta"]["a"] for s in STAGES}
    assert delta["W"] < delta["N2"] < delta["N3"]
    page = out.read_text()
    assert page.startswith("# Data comparison: A = sleep-synth, B = edf-folder")
    assert f"| N3 | {data['stages']['N3']['n_epochs']['a']:,} |" in page and "Welch" in page
    assert sorted(p.name for p in out.parent.iterdir()) == ["compare.md"]  # written atomically: no temporary left
    text = compare(args, tmp_path).output  # the terminal tables
    assert all(word in text for word in ("Median epoch RMS", "Relative band power", "delta", "REM"))


@pytest.mark.skipif(importlib.util.find_spec("yasa") is None, reason="yasa not installed (pip install 'restbench[yasa]')")
def test_stager_scores_each_dataset(tmp_path):
    """YASA's classifier stages sleep-synth far better than recordings whose labels say nothing
    about the signal (noise, stages shuffled against it), and scores every scored epoch."""
    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for k in range(1, 4):
        n = 5 * EPOCHS_PER_STAGE
        edfio.Edf([edfio.EdfSignal(rng.normal(0, 15, int(n * 30 * 100)), 100.0, label="EEG Fpz-Cz",
                                   physical_dimension="uV", physical_range=(-500, 500))],
                  data_record_duration=30).write(noise / f"p0{k}.edf")
        (noise / f"p0{k}.txt").write_text("".join(f"{STAGES[i]}\n" for i in rng.integers(0, 5, n)))
    args = ["sleep-synth", "edf-folder", *SYNTH, "--data-dir-b", str(noise), "--stager", "yasa", "--json",
            "--out", str(tmp_path / "r.md")]
    data = json.loads(compare(args, tmp_path).output)
    a, b = data["stager"]["a"], data["stager"]["b"]
    for score, side in ((a, "a"), (b, "b")):
        assert score["stager"] == "yasa" and score["split"] == "all"
        assert score["n_windows"] == sum(row["n_epochs"][side] for row in data["stages"].values())
        assert set(score["per_class_f1"]) == set(STAGES) and 0.0 <= score["macro_f1"] <= 1.0
        assert np.asarray(score["confusion_counts"]).sum() == score["n_windows"]
    assert a["n_nights"] == 3 and b["n_nights"] == 3
    assert a["macro_f1"] > 0.4 and b["macro_f1"] < 0.3 and a["macro_f1"] > b["macro_f1"] + 0.2, (a, b)
    page = (tmp_path / "r.md").read_text()
    assert "## Stager: yasa" in page and f"{a['macro_f1']:.3f}" in page


# --------------------------------------------------------------------------- one-line errors


def test_unknown_dataset_and_missing_folder(tmp_path, capsys, sines_dir):
    code, err = one_line_error(["sleep-synth", "sleep-snyth", *SYNTH], tmp_path, capsys)
    assert code == 2 and "DATASET_B: unknown dataset id 'sleep-snyth'" in err and "sleep-synth" in err
    code, err = one_line_error(["edf-folder", "sleep-synth", "--data-dir-a", str(tmp_path / "nowhere")], tmp_path, capsys)
    assert code == 2 and err.startswith("error: DATASET_A: dataset 'edf-folder': no data directory at")
    assert "(here: --data-dir-a," in err  # the dataset's own message, with the side's option names
    code, err = one_line_error(["sleep-synth", "edf-folder", *SYNTH, "--data-dir-b", str(sines_dir),
                                "--dataset-option-b", "colour=blue"], tmp_path, capsys)
    assert code == 2 and "colour" in err
    code, err = one_line_error(["sleep-synth", "sleep-synth", "--split", "tset"], tmp_path, capsys)
    assert code == 2 and "--split" in err and "test" in err


def test_stager_errors_name_the_option(tmp_path, capsys, sines_dir, monkeypatch):
    base = ["sleep-synth", "edf-folder", *SYNTH, "--data-dir-b", str(sines_dir)]
    code, err = one_line_error([*base, "--stager", "yassa"], tmp_path, capsys)
    assert code == 2 and "--stager: unknown method id 'yassa'" in err and "yasa" in err
    code, err = one_line_error([*base, "--stager", "sors"], tmp_path, capsys)  # trains a network: not a stager
    assert code == 2 and "--stager sors: not a reference stager" in err
    if importlib.util.find_spec("yasa") is not None:
        assert "yasa" in err.split("reference methods:")[1]
        # YASA needs more than 80 Hz: a 64 Hz dataset is refused with the reason
        code, err = one_line_error([*base, "--dataset-option-b", "sfreq=64", "--stager", "yasa"], tmp_path, capsys)
        assert code == 2 and "--stager yasa: cannot stage dataset 'edf-folder'" in err and "80 Hz" in err
    # yasa not installed: what to install, on one line
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "yasa" else real_find_spec(name, *a, **k))
    code, err = one_line_error([*base, "--stager", "yasa"], tmp_path, capsys)
    assert code == 2 and "--stager yasa:" in err and "pip install 'restbench[yasa]'" in err
