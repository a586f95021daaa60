"""The sleep-synth dataset: determinism, genuine Sleep-EDF files, stage content, difficulty."""

import hashlib

import mne
import numpy as np
import pytest
from scipy.signal import welch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from restbench.api import DatasetOptions, UsageError
from restbench.plugins.options import NOT_IN_PAPER, Option, fill_options
from restbench_builtins.datasets import synth_stage_model
from restbench_builtins.datasets.sleep_edf_format import EXCLUDED_ANNOTATIONS, STAGE_OF_ANNOTATION
from restbench_builtins.datasets.sleep_synth import SleepSynth, ensure_nights, night_folder, synth_night

BANDS_HZ = {"delta": (0.5, 2), "theta": (4, 8), "alpha": (8, 12), "sigma": (11, 16), "emg": (25, 45)}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Eight 2-hour nights through the whole path (generate, write EDF, read back, cache)."""
    cache = tmp_path_factory.mktemp("synth-cache")
    return SleepSynth().prepare(DatasetOptions(cache_dir=cache, extra={"n_nights": 8, "hours": 2}))


def band_power(signal):
    f, p = welch(np.asarray(signal, dtype=np.float64), fs=100, nperseg=400, axis=1)
    return {name: p[:, (f >= lo) & (f < hi)].sum(axis=1) for name, (lo, hi) in BANDS_HZ.items()}, p.sum(axis=1)


def test_generation_is_deterministic_per_seed_and_night():
    a = synth_night(0, 3, 1.0)
    b = synth_night(0, 3, 1.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], synth_night(1, 3, 1.0)[2])
    assert not np.array_equal(a[2], synth_night(0, 4, 1.0)[2])
    stages, movement, x = a
    assert x.dtype == np.float32 and len(x) == len(stages) * 3000 == 120 * 3000


def test_writes_genuine_sleep_edf_files(tmp_path):
    sources = ensure_nights(tmp_path, 2, data_seed=0, hours=1.0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4011E0-PSG.edf", "SC4011EH-Hypnogram.edf"]
    assert [s.recording for s in sources] == ["SC4001", "SC4011"]
    raw = mne.io.read_raw_edf(tmp_path / "SC4001E0-PSG.edf", verbose="error")
    assert raw.ch_names == ["EEG Fpz-Cz"] and raw.info["sfreq"] == 100.0
    uv = raw.get_data()[0] * 1e6
    assert 5 < uv.std() < 150, "microvolt-scale EEG"
    notes = mne.read_annotations(tmp_path / "SC4001EC-Hypnogram.edf")
    assert set(notes.description) <= set(STAGE_OF_ANNOTATION) | set(EXCLUDED_ANNOTATIONS)
    # like the real files, a trailing 'Sleep stage ?' starts at the end of the PSG and runs past it
    assert notes.description[-1] == "Sleep stage ?" and notes.onset[-1] == pytest.approx(raw.n_times / 100.0)


def test_more_nights_keep_the_existing_ones(tmp_path):
    options = DatasetOptions(cache_dir=tmp_path, extra={"n_nights": 3, "hours": 1})
    small = SleepSynth().prepare(options)
    folder = night_folder(tmp_path, 0, 1.0)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    bigger = SleepSynth().prepare(DatasetOptions(cache_dir=tmp_path, extra={"n_nights": 4, "hours": 1}))
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    assert all(after[name] == digest for name, digest in before.items())
    assert len(after) == 8 and bigger.recordings == ["SC4001", "SC4011", "SC4021", "SC4031"]
    np.testing.assert_array_equal(np.asarray(bigger.signal[: len(small.labels)]), np.asarray(small.signal))
    capped = SleepSynth().prepare(DatasetOptions(cache_dir=tmp_path, n_subjects=1, extra={"n_nights": 3, "hours": 1}))
    assert capped.recordings == ["SC4001"]


def test_dataset_shape_and_provenance(nights):
    assert nights.sfreq == 100.0 and nights.n_times == 12_000 and nights.signal.dtype == np.float32
    assert len(nights.recordings) == 8 and len(set(nights.recording_subject)) == 8
    counts = nights.stage_counts()["total"]
    assert all(counts[s] > 20 for s in counts), counts
    assert nights.info["generator"].startswith("restbench sleep-synth") and nights.info["hours"] == 2
    assert "ODC-By" in nights.info["stage_model_source"]


def test_stage_specific_content(nights):
    power, total = band_power(nights.signal)
    labels = nights.labels

    def median(values, stage):
        return float(np.median(values[labels == stage]))

    rel_alpha = power["alpha"] / total
    assert median(rel_alpha, 0) > 1.5 * median(rel_alpha, 2)  # alpha in wake
    assert median(power["emg"], 0) > 3 * median(power["emg"], 4)  # muscle tone: wake >> REM atonia
    assert median(power["theta"] / total, 1) > median(power["theta"] / total, 0)  # theta in N1
    assert median(power["sigma"], 2) > 1.5 * median(power["sigma"], 4)  # spindles in N2
    assert median(power["delta"], 3) > 2 * median(power["delta"], 2) > median(power["delta"], 4)
    p2p = np.ptp(np.asarray(nights.signal), axis=1)
    assert np.mean(p2p[labels == 3] > 75) > 0.9  # high-amplitude slow waves in N3
    rms = np.sqrt(np.mean(np.asarray(nights.signal, dtype=np.float64) ** 2, axis=1))
    assert 8 < median(rms, 4) < median(rms, 3) < 150  # microvolt scale, REM low, N3 high


def test_night_structure_n3_early_rem_late():
    model = synth_stage_model.load()
    rng = np.random.default_rng(0)
    n3_early = n3_late = rem_early = rem_late = 0
    first_rem_min = []
    for _ in range(40):
        stages = model.sample(rng, 7 * 120)
        thirds = np.array_split(stages, 3)
        n3_early += np.sum(thirds[0] == 3)
        n3_late += np.sum(thirds[2] == 3)
        rem_early += np.sum(thirds[0] == 4)
        rem_late += np.sum(thirds[2] == 4)
        rem = np.flatnonzero(stages == 4)
        if len(rem):
            first_rem_min.append(rem[0] / 2)
    assert n3_early > 2.5 * n3_late and rem_late > 1.5 * rem_early  # real fixtures: 4.5x and 2.3x
    assert 45 < np.median(first_rem_min) < 150  # first REM after about one cycle


def test_task_is_hard_like_real_data_with_n1_hardest(nights):
    """Band powers of the window's 4 epochs + logistic regression, subject-wise 4-fold: far from
    perfect, and N1 (mixing wake and REM) the worst class, as on real recordings."""
    power, total = band_power(nights.signal)
    feats = np.log(np.column_stack([*power.values(), *(p / total for p in power.values())]))
    ends = nights.window_end
    x = np.concatenate([feats[ends - k] for k in range(4)], axis=1)
    y = nights.labels[ends]
    subject = nights.subject_of_epoch()[ends]
    pred = np.empty_like(y)
    for fold in np.array_split(np.unique(subject), 4):
        test = np.isin(subject, fold)
        scaler = StandardScaler().fit(x[~test])
        clf = LogisticRegression(max_iter=500).fit(scaler.transform(x[~test]), y[~test])
        pred[test] = clf.predict(scaler.transform(x[test]))
    per_class = f1_score(y, pred, average=None)
    assert 0.5 < per_class.mean() < 0.92, per_class
    assert per_class.argmin() == 1, per_class


def test_declares_typed_options_and_is_the_default_dataset():
    declared = {o.name: o for o in SleepSynth.options}
    assert all(isinstance(o, Option) for o in SleepSynth.options)
    assert list(declared) == ["n_nights", "hours", "data_seed"]
    assert (declared["n_nights"].type, declared["n_nights"].default) == (int, 20)
    assert (declared["n_nights"].minimum, declared["n_nights"].maximum) == (3, 100)
    assert (declared["hours"].type, declared["hours"].default) == (float, 8.0)
    assert (declared["data_seed"].type, declared["data_seed"].default) == (int, 0)
    # synthetic-data knobs: the paper has no value for them, so they never count as deviations
    assert all(o.paper is NOT_IN_PAPER for o in SleepSynth.options)
    assert all(o.help for o in SleepSynth.options)
    assert SleepSynth.default is True and not hasattr(SleepSynth, "profile_options")


def test_hours_has_per_profile_defaults():
    assert fill_options(SleepSynth.options, {}, "sleep-synth")["hours"] == 8.0
    assert fill_options(SleepSynth.options, {}, "sleep-synth", profile="paper")["hours"] == 8.0
    assert fill_options(SleepSynth.options, {}, "sleep-synth", profile="quick")["hours"] == 3.0
    assert fill_options(SleepSynth.options, {}, "sleep-synth", profile="smoke")["hours"] == 1.0
    # a value the user gives wins over the profile's, and strings are typed
    resolved = fill_options(SleepSynth.options, {"hours": "2", "n_nights": "5"}, "sleep-synth", profile="smoke")
    assert resolved == {"n_nights": 5, "hours": 2.0, "data_seed": 0}
    # resolving again (the dataset does, after the harness) changes nothing
    assert fill_options(SleepSynth.options, resolved, "sleep-synth") == resolved


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"hours": "abc"}, r"sleep-synth\.hours: expected a number, got 'abc'"),
        ({"hours": "0.1"}, r"sleep-synth\.hours: 0\.1 is below the minimum 0\.5"),
        ({"hours": 30}, r"sleep-synth\.hours: 30\.0 is above the maximum 24"),
        ({"n_nights": "2.5"}, r"sleep-synth\.n_nights: expected an integer, got 2\.5"),
        ({"n_nights": 2}, r"sleep-synth\.n_nights: 2 is below the minimum 3"),
        ({"n_nights": 101}, r"sleep-synth\.n_nights: 101 is above the maximum 100"),
        ({"data_seed": -1}, r"sleep-synth\.data_seed: -1 is below the minimum 0"),
        ({"channel": "EEG"}, r"plugin 'sleep-synth' has no option 'channel'; valid: sleep-synth\.n_nights, sleep-synth\.hours, sleep-synth\.data_seed"),
    ],
)
def test_bad_options_are_one_line_usage_errors(tmp_path, extra, match):
    with pytest.raises(UsageError, match=match) as err:
        SleepSynth().prepare(DatasetOptions(cache_dir=tmp_path, extra=extra))
    assert "\n" not in str(err.value)
    assert not any(tmp_path.iterdir()), "nothing is generated before the options are checked"


def test_unknown_protocol(tmp_path):
    with pytest.raises(UsageError, match="unknown protocol"):
        SleepSynth().prepare(DatasetOptions(cache_dir=tmp_path, protocol="paper"))
    with pytest.raises(UsageError, match="n_subjects=0: must be at least 1"):
        SleepSynth().prepare(DatasetOptions(cache_dir=tmp_path, n_subjects=0))
