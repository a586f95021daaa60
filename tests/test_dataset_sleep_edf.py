"""The sleep-edf dataset: real hypnogram fixtures, pairing, trimming, gaps, protocols, bad input."""

import datetime as dt
import re
import shutil
from pathlib import Path

import edfio
import numpy as np
import pytest

from restbench.api import DatasetOptions, PluginError, UsageError
from restbench.data.sleep_data import training_stats
from restbench.plugins.options import NOT_IN_PAPER, deviations, fill_options
from restbench_builtins.datasets.common import MOVEMENT, BadRecording, trim_wake
from restbench_builtins.datasets.edf_io import check_signal
from restbench_builtins.datasets.sleep_edf import SleepEDF, find_files, pair_sources, protocol_recordings
from restbench_builtins.datasets.sleep_edf_format import hypnogram_stages, read_sleep_edf_pair

from conftest import shared_fixture  # noqa: E402  (tests/conftest.py: skip when absent, fail in CI)

FIXTURES = shared_fixture("sleep-edf-hypnograms")
needs_fixtures = pytest.mark.shared_fixture("sleep-edf-hypnograms")
START = dt.datetime(1989, 4, 24, 16, 13, 0)


def write_psg(path, seconds, *, sfreq=100.0, start=START, channel="EEG Fpz-Cz", signal=None):
    """A one-channel PSG; by default each 30-s epoch's mean encodes its index (in uV)."""
    n = int(seconds * sfreq)
    if signal is None:
        t = np.arange(n) / sfreq
        signal = np.floor(t / 30.0) + 10 * np.sin(2 * np.pi * 10 * t)
    edf = edfio.Edf(
        [edfio.EdfSignal(np.asarray(signal, float), sfreq, label=channel, physical_dimension="uV", physical_range=(-500, 500))],
        recording=edfio.Recording(startdate=start.date()),
        starttime=start.time(),
        data_record_duration=30,
    )
    edf.write(path)
    return path


def write_hypnogram(path, runs, start=START):
    """Hypnogram EDF+ from ``(text, n_epochs)`` runs starting at 0 s."""
    notes, onset = [], 0.0
    for text, n in runs:
        notes.append(edfio.EdfAnnotation(onset, n * 30.0, text))
        onset += n * 30.0
    edfio.Edf([], recording=edfio.Recording(startdate=start.date()), starttime=start.time(), annotations=notes).write(path)
    return path


# A 2-hour night: 50 min wake, sleep with a movement epoch and an unscored epoch, 40 min wake.
NIGHT = [
    ("Sleep stage W", 100),
    ("Sleep stage 1", 4),
    ("Sleep stage 2", 20),
    ("Movement time", 1),
    ("Sleep stage 3", 6),
    ("Sleep stage 4", 4),
    ("Sleep stage ?", 2),
    ("Sleep stage 2", 8),
    ("Sleep stage R", 10),
    ("Sleep stage W", 80),
    ("Sleep stage ?", 300),  # runs past the end of the PSG, as in the real files
]
NIGHT_PSG_S = (100 + 4 + 20 + 1 + 6 + 4 + 2 + 8 + 10 + 80) * 30.0


def write_night(folder, prefix="SC4001", scorer="C", **psg_kwargs):
    folder.mkdir(parents=True, exist_ok=True)
    write_hypnogram(folder / f"{prefix}E{scorer}-Hypnogram.edf", NIGHT)
    return write_psg(folder / f"{prefix}E0-PSG.edf", psg_kwargs.pop("seconds", NIGHT_PSG_S), **psg_kwargs)


def options(tmp_path, **kw):
    kw.setdefault("data_dir", tmp_path / "data")
    kw.setdefault("cache_dir", tmp_path / "cache")
    return DatasetOptions(**kw)


# --------------------------------------------------------------------------- real fixtures


@needs_fixtures
def test_fixture_hypnograms_trim_to_documented_totals():
    totals, movement = np.zeros(5, int), 0
    for path in sorted(FIXTURES.glob("*-Hypnogram.edf")):
        trimmed = trim_wake(hypnogram_stages(path)[0], 60)
        totals += np.bincount(trimmed[trimmed >= 0], minlength=5)
        movement += int(np.sum(trimmed == MOVEMENT))
    # fixtures README: all 20 files, trimmed: W 3656, N1 1689, N2 8927, N3 3074, REM 3693, movement 32
    assert totals.tolist() == [3656, 1689, 8927, 3074, 3693]
    assert movement == 32


@needs_fixtures
def test_sc4001_gives_841_epochs_and_838_windows(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    hyp = shutil.copy(FIXTURES / "SC4001EC-Hypnogram.edf", data_dir)
    start = dt.datetime(1989, 4, 24, 16, 13, 0)  # the hypnogram's own start
    rng = np.random.default_rng(0)
    psg = write_psg(data_dir / "SC4001E0-PSG.edf", 79_500, start=start, signal=rng.normal(0, 20, 7_950_000).clip(-400, 400))
    rec = read_sleep_edf_pair(psg, hyp)
    assert rec.signal.shape == (841, 3000) and rec.signal.dtype == np.float32
    assert rec.contiguous[1:].all(), "SC4001 has no excluded epoch inside the trimmed night"
    data = SleepEDF().prepare(options(tmp_path, n_subjects=1))
    assert len(data.window_end) == 838
    assert data.n_times == 12_000 and data.sfreq == 100.0
    assert sum(data.stage_counts()["total"].values()) == 838


@needs_fixtures
def test_pairs_on_prefix_whatever_the_scorer_letter(tmp_path):
    for name in ("SC4011EH-Hypnogram.edf", "SC4022EJ-Hypnogram.edf", "SC4032EP-Hypnogram.edf"):
        shutil.copy(FIXTURES / name, tmp_path)
    for prefix in ("SC4011", "SC4022", "SC4032"):
        (tmp_path / f"{prefix}E0-PSG.edf").write_bytes(b"")
    found = find_files(tmp_path)
    sources = pair_sources(found, [("SC4011", "SC401"), ("SC4022", "SC402"), ("SC4032", "SC403")])
    assert all(s.problem is None for s in sources)
    assert found["SC4022"]["hypnogram"].name == "SC4022EJ-Hypnogram.edf"


# --------------------------------------------------------------------------- labels and windows


def test_labels_trimming_and_gaps(tmp_path):
    psg = write_night(tmp_path)
    rec = read_sleep_edf_pair(psg, tmp_path / "SC4001EC-Hypnogram.edf")
    # 60 wake epochs (30 min) kept before sleep starts at epoch 100, 60 after the last REM epoch
    assert rec.epoch_index[0] == 40 and rec.epoch_index[-1] == 154 + 60 - 1 + 1
    assert 124 not in rec.epoch_index, "movement epoch excluded"
    assert 135 not in rec.epoch_index and 136 not in rec.epoch_index, "unscored epochs excluded"
    counts = np.bincount(rec.labels, minlength=5)
    assert counts.tolist() == [60 + 60, 4, 28, 10, 10]  # stages 3 and 4 merged into N3
    # contiguity breaks exactly after the excluded epochs
    breaks = rec.epoch_index[np.flatnonzero(~rec.contiguous)]
    assert breaks.tolist() == [40, 125, 137]


def test_windows_never_span_gaps_and_hold_the_right_epochs(tmp_path):
    write_night(tmp_path / "data")
    data = SleepEDF().prepare(options(tmp_path, n_subjects=1))
    assert data.signal.dtype == np.float32
    x, y = data.get(data.window_end)
    # each epoch's mean is its index in the recording: windows must be 4 consecutive epochs
    epoch_ids = np.round(x[:, 0].reshape(len(y), 4, 3000).mean(axis=2)).astype(int)
    assert (np.diff(epoch_ids, axis=1) == 1).all()
    assert not np.isin(epoch_ids, [124, 135, 136]).any()
    np.testing.assert_array_equal(y, data.labels[data.window_end])
    # kept epochs form 3 contiguous runs (40-123, 125-134, 137-214): 84-3 + 10-3 + 78-3 windows
    assert len(data.window_end) == 81 + 7 + 75


def test_protocols():
    paper = protocol_recordings("paper")
    assert len(paper) == 40 and all(n == 1 for _, n in paper)
    assert 36 not in {s for s, _ in paper} and 39 not in {s for s, _ in paper}
    assert paper[-1] == (41, 1)
    assert len(protocol_recordings("sleep-edf-20")) == 39
    sc78 = protocol_recordings("sleep-edf-78")
    assert len(sc78) == 153 and len({s for s, _ in sc78}) == 78
    assert protocol_recordings("sleep-edf-20", n_subjects=2) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    with pytest.raises(UsageError, match="sleep-edf-78"):
        protocol_recordings("sleep-edf-99")


def test_split_stats_and_cache(tmp_path):
    for k in range(3):
        write_night(tmp_path / "data", prefix=f"SC40{k}1")
    first = SleepEDF().prepare(options(tmp_path, n_subjects=3, seed=4))
    assert sorted(sum(first.split.values(), [])) == ["SC400", "SC401", "SC402"]
    assert all(len(v) == 1 for v in first.split.values())
    # statistics over the training subject's window epochs only
    train = first.windows("train")
    covered = np.unique((train[:, None] + np.arange(-3, 1)).ravel())
    want = training_stats(np.asarray(first.signal), covered)
    assert first.stats.sigma == pytest.approx(want.sigma, rel=1e-6) and first.stats.max == want.max
    # served from the cache the second time: same store, same fingerprint
    again = SleepEDF().prepare(options(tmp_path, n_subjects=3, seed=4))
    assert again.fingerprint == first.fingerprint and again.split == first.split
    assert again.info["cache_key"] == first.info["cache_key"]
    assert len(list((tmp_path / "cache" / "epochs").iterdir())) == 1
    # changed bytes in an input file: a new store
    write_psg(tmp_path / "data" / "SC4011E0-PSG.edf", NIGHT_PSG_S, signal=np.full(int(NIGHT_PSG_S * 100), 1.0) + np.sin(np.arange(int(NIGHT_PSG_S * 100))))
    changed = SleepEDF().prepare(options(tmp_path, n_subjects=3, seed=4))
    assert changed.info["cache_key"] != first.info["cache_key"]


# --------------------------------------------------------------------------- bad input


def test_missing_data_says_where_to_put_files(tmp_path):
    with pytest.raises(PluginError, match=r"(?s)3 of 3 recordings.*--data-dir.*--download"):
        SleepEDF().prepare(options(tmp_path, n_subjects=3))


def test_hypnogram_without_psg_and_the_reverse(tmp_path):
    write_night(tmp_path / "data", prefix="SC4001")
    write_hypnogram(tmp_path / "data" / "SC4011EH-Hypnogram.edf", NIGHT)  # no PSG
    write_psg(tmp_path / "data" / "SC4021E0-PSG.edf", 600)  # no hypnogram
    with pytest.raises(PluginError, match="SC4011EH-Hypnogram.edf: hypnogram without PSG"):
        SleepEDF().prepare(options(tmp_path, n_subjects=3))
    data = SleepEDF().prepare(options(tmp_path, n_subjects=3, skip_bad=True))
    assert data.recordings == ["SC4001"]
    reasons = {Path(s["file"]).name: s["reason"] for s in data.info["skipped"]}
    assert "hypnogram without PSG" in reasons["SC4011EH-Hypnogram.edf"]
    assert "PSG without hypnogram" in reasons["SC4021E0-PSG.edf"]


def _one_bad(tmp_path, make_bad, match, **opts):
    """Night SC4001 good, SC4011 made bad by ``make_bad(folder)``: error, then skip_bad."""
    folder = tmp_path / "data"
    write_night(folder, prefix="SC4001")
    make_bad(folder)
    with pytest.raises(PluginError, match=match) as err:
        SleepEDF().prepare(options(tmp_path, n_subjects=2, **opts))
    assert "SC4011" in str(err.value)
    data = SleepEDF().prepare(options(tmp_path, n_subjects=2, skip_bad=True, **opts))
    assert data.recordings == ["SC4001"]
    assert len(data.info["skipped"]) == 1 and "SC4011" in data.info["skipped"][0]["file"]
    return data


def test_truncated_edf(tmp_path):
    def bad(folder):
        psg = write_night(folder, prefix="SC4011")
        blob = psg.read_bytes()
        psg.write_bytes(blob[: len(blob) // 2])

    _one_bad(tmp_path, bad, "truncated EDF")


def test_truncated_hypnogram(tmp_path):
    def bad(folder):
        write_night(folder, prefix="SC4011")
        hyp = folder / "SC4011EC-Hypnogram.edf"
        hyp.write_bytes(hyp.read_bytes()[:-40])

    _one_bad(tmp_path, bad, "SC4011EC-Hypnogram.edf: truncated EDF")


def test_missing_channel(tmp_path):
    _one_bad(tmp_path, lambda f: write_night(f, prefix="SC4011", channel="EEG Pz-Oz"), r"channel 'EEG Fpz-Cz' not found.*EEG Pz-Oz")


def test_flat_signal(tmp_path):
    _one_bad(tmp_path, lambda f: write_night(f, prefix="SC4011", signal=np.full(int(NIGHT_PSG_S * 100), 7.0)), "flat")


def test_labels_longer_than_signal(tmp_path):
    _one_bad(tmp_path, lambda f: write_night(f, prefix="SC4011", seconds=120 * 30), "labels and signal lengths disagree")


def test_unreadable_hypnogram(tmp_path):
    def bad(folder):
        write_psg(folder / "SC4011E0-PSG.edf", NIGHT_PSG_S)
        (folder / "SC4011EC-Hypnogram.edf").write_bytes(b"not an edf at all")

    _one_bad(tmp_path, bad, "SC4011EC-Hypnogram.edf")


def test_other_sampling_rate_is_resampled_with_a_warning_or_refused(tmp_path):
    folder = tmp_path / "data"
    write_night(folder, prefix="SC4001", sfreq=200.0)
    with pytest.warns(UserWarning, match="resampled from 200 Hz to 100 Hz"):
        data = SleepEDF().prepare(options(tmp_path, n_subjects=1))
    assert data.signal.shape[1] == 3000
    x, _ = data.get(data.window_end[:1])
    # the first window is epochs 40-43; each epoch's mean still encodes its index after resampling
    np.testing.assert_allclose(x[0, 0].reshape(4, 3000).mean(axis=1), [40, 41, 42, 43], atol=0.5)
    assert any("resampled" in n for n in data.info["notes"])
    with pytest.raises(PluginError, match="sampled at 200 Hz, expected 100 Hz.*resample=false"):
        SleepEDF().prepare(options(tmp_path, n_subjects=1, extra={"resample": "false"}))


def test_nan_samples_are_rejected():
    with pytest.raises(BadRecording, match="NaN"):
        check_signal(np.array([1.0, np.nan, 2.0]), Path("x.edf"), "EEG Fpz-Cz")


def test_declares_typed_options_with_the_papers_values():
    declared = {o.name: o for o in SleepEDF.options}
    assert list(declared) == ["channel", "resample", "wake_edge_min", "lenient_input"]
    assert (declared["lenient_input"].type, declared["lenient_input"].default, declared["lenient_input"].paper) == (bool, False, NOT_IN_PAPER)
    assert (declared["channel"].type, declared["channel"].default, declared["channel"].paper_value) == (str, "EEG Fpz-Cz", "EEG Fpz-Cz")
    assert (declared["resample"].type, declared["resample"].default, declared["resample"].paper) == (bool, True, NOT_IN_PAPER)
    assert (declared["wake_edge_min"].type, declared["wake_edge_min"].default) == (float, 30.0)
    assert (declared["wake_edge_min"].paper_value, declared["wake_edge_min"].minimum) == (30.0, 0)
    assert all(o.help for o in SleepEDF.options) and not getattr(SleepEDF, "default", False)
    resolved = fill_options(SleepEDF.options, {"wake_edge_min": "10", "resample": "false"}, "sleep-edf")
    assert resolved == {"channel": "EEG Fpz-Cz", "resample": False, "wake_edge_min": 10.0, "lenient_input": False}
    assert deviations(SleepEDF.options, resolved) == ["wake_edge_min: 10.0 (paper: 30.0)"]


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"hours": 6}, r"plugin 'sleep-edf' has no option 'hours'; valid: sleep-edf\.channel, sleep-edf\.resample, sleep-edf\.wake_edge_min, sleep-edf\.lenient_input$"),
        ({"resample": "maybe"}, r"sleep-edf\.resample: expected true or false, got 'maybe'"),
        ({"wake_edge_min": "abc"}, r"sleep-edf\.wake_edge_min: expected a number, got 'abc'"),
        ({"wake_edge_min": -1}, r"sleep-edf\.wake_edge_min: -1\.0 is below the minimum 0"),
        ({"channel": ["EEG"]}, r"sleep-edf\.channel: expected text, got \[\"EEG\"\]"),
    ],
)
def test_bad_options_are_one_line_usage_errors(tmp_path, extra, match):
    with pytest.raises(UsageError, match=match) as err:
        SleepEDF().prepare(options(tmp_path, extra=extra))
    assert "\n" not in str(err.value)


def test_unknown_protocol(tmp_path):
    with pytest.raises(UsageError, match="unknown protocol"):
        SleepEDF().prepare(options(tmp_path, protocol="nope"))


# --------------------------------------------------------------------------- strict input, lenient_input


def _strict_then_lenient(tmp_path, make_bad, match, note, names=("SC4011",)):
    """Night SC4001 good, SC4011 made questionable by ``make_bad(folder)``: a one-line error
    naming the file(s) by default; with lenient_input both nights load and a note says why."""
    folder = tmp_path / "data"
    write_night(folder, prefix="SC4001")
    make_bad(folder)
    with pytest.raises(PluginError, match=match) as err:
        SleepEDF().prepare(options(tmp_path, n_subjects=2))
    message = str(err.value)
    assert "\n" not in message and "lenient_input" in message
    for name in names:
        assert name in message
    data = SleepEDF().prepare(options(tmp_path, n_subjects=2, extra={"lenient_input": True}))
    assert data.recordings == ["SC4001", "SC4011"] and data.info["skipped"] == []
    notes = data.describe()["info"]["notes"]  # what run.json's dataset section shows
    hits = [n for n in notes if re.search(note, n)]
    assert len(hits) == 1 and "\n" not in hits[0] and "lenient_input" in hits[0], notes
    return data


def test_annotation_that_is_not_a_sleep_stage(tmp_path):
    def bad(folder):
        write_psg(folder / "SC4011E0-PSG.edf", NIGHT_PSG_S)
        runs = [("Stage 2" if text == "Sleep stage 2" else text, n) for text, n in NIGHT]
        write_hypnogram(folder / "SC4011EC-Hypnogram.edf", runs + [("Lights on", 1)])

    data = _strict_then_lenient(
        tmp_path, bad, r"SC4011EC-Hypnogram\.edf: unknown annotation 'Stage 2' x2, 'Lights on'",
        r"^SC4011EC-Hypnogram\.edf: ignored annotation 'Stage 2' x2, 'Lights on'",
    )
    # under lenient_input the dropped epochs are unscored: no N2 in SC4011
    n2 = data.labels[data.recording == data.recordings.index("SC4011")] == 2
    assert not n2.any()


def test_real_movement_and_unscored_annotations_are_not_unknown(tmp_path):
    rec = read_sleep_edf_pair(write_night(tmp_path), tmp_path / "SC4001EC-Hypnogram.edf")
    assert rec.notes == []


@pytest.mark.filterwarnings("ignore:.*upsampled:UserWarning")
def test_upsampling_is_refused_unless_lenient(tmp_path):
    data = _strict_then_lenient(
        tmp_path, lambda f: write_night(f, prefix="SC4011", sfreq=1.0),
        r"SC4011E0-PSG\.edf: channel 'EEG Fpz-Cz' is sampled at 1 Hz, below the 100 Hz",
        r"^SC4011E0-PSG\.edf: channel 'EEG Fpz-Cz' resampled from 1 Hz to 100 Hz \(upsampled: lenient_input\)",
    )
    assert data.signal.shape[1] == 3000


def test_two_hypnograms_for_one_night(tmp_path):
    def bad(folder):
        write_night(folder, prefix="SC4011", scorer="H")
        (folder / "other").mkdir()
        write_hypnogram(folder / "other" / "SC4011EJ-Hypnogram.edf", NIGHT)

    _strict_then_lenient(
        tmp_path, bad, r"2 hypnograms for night SC4011: .*SC4011EH-Hypnogram\.edf and .*other/SC4011EJ-Hypnogram\.edf",
        r"^SC4011: 2 hypnograms for one night .*; used SC4011EH-Hypnogram\.edf",
        names=("SC4011EH-Hypnogram.edf", "SC4011EJ-Hypnogram.edf"),
    )


def test_two_psgs_for_one_night_differing_in_case(tmp_path):
    def bad(folder):
        psg = write_night(folder, prefix="SC4011")
        shutil.copy(psg, folder / "SC4011E0-PSG.EDF")

    _strict_then_lenient(tmp_path, bad, r"2 PSG files for night SC4011: .*SC4011E0-PSG\.EDF and .*SC4011E0-PSG\.edf",
                         r"^SC4011: 2 PSG files for one night", names=("SC4011E0-PSG.EDF", "SC4011E0-PSG.edf"))


def test_partial_hypnogram(tmp_path):
    def bad(folder):
        write_psg(folder / "SC4011E0-PSG.edf", NIGHT_PSG_S)
        # scores the first 80 of the PSG's 235 epochs, then stops (no trailing annotation)
        write_hypnogram(folder / "SC4011EC-Hypnogram.edf", [("Sleep stage W", 40), ("Sleep stage 2", 30), ("Sleep stage W", 10)])

    _strict_then_lenient(
        tmp_path, bad, r"SC4011EC-Hypnogram\.edf: partial hypnogram: scores 80 of the 235 epochs of SC4011E0-PSG\.edf \(34%",
        r"^SC4011EC-Hypnogram\.edf: partial hypnogram: scores 80 of the 235 epochs \(?.*34%",
    )


def test_upper_case_extension_is_found(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_hypnogram(folder / "SC4001EC-Hypnogram.EDF", NIGHT)
    write_psg(folder / "SC4001E0-PSG.EDF", NIGHT_PSG_S)
    assert {role: p.name for role, p in find_files(folder)["SC4001"].items()} == {
        "psg": "SC4001E0-PSG.EDF", "hypnogram": "SC4001EC-Hypnogram.EDF"}
    data = SleepEDF().prepare(options(tmp_path, n_subjects=1))
    assert data.recordings == ["SC4001"] and len(data.window_end) == 81 + 7 + 75


def test_hypnogram_start_years_from_the_psg(tmp_path):
    def bad(folder):
        write_psg(folder / "SC4011E0-PSG.edf", NIGHT_PSG_S)
        write_hypnogram(folder / "SC4011EC-Hypnogram.edf", NIGHT, start=START.replace(year=1994))

    data = _strict_then_lenient(
        tmp_path, bad,
        r"SC4011EC-Hypnogram\.edf: header start 1994-04-24 16:13:00 is \d+ h after the start 1989-04-24 16:13:00 of SC4011E0-PSG\.edf",
        r"^SC4011EC-Hypnogram\.edf: header start 1994-04-24 16:13:00 .* taken to start with the PSG",
    )
    # taken to start together: the same epochs as the good night
    assert (data.recording == 0).sum() == (data.recording == 1).sum()


def test_small_start_difference_is_still_realigned(tmp_path):
    write_psg(tmp_path / "SC4001E0-PSG.edf", NIGHT_PSG_S)
    hyp = write_hypnogram(tmp_path / "SC4001EC-Hypnogram.edf", NIGHT, start=START + dt.timedelta(minutes=10))
    rec = read_sleep_edf_pair(tmp_path / "SC4001E0-PSG.edf", hyp)
    assert rec.notes == ["SC4001EC-Hypnogram.edf: starts 20 epochs after the PSG; realigned"]
    # sleep starts at hypnogram epoch 100 = PSG epoch 120; 60 wake epochs are kept before it
    assert rec.epoch_index[0] == 60 and rec.labels[60] == 1


@needs_fixtures
def test_real_hypnograms_pass_every_strict_check():
    for path in sorted(FIXTURES.glob("*-Hypnogram.edf")):
        notes = []
        stage, start = hypnogram_stages(path, notes=notes)  # strict: no unknown annotation
        assert notes == [] and start is not None
        # the PSG ends where the scoring ends (SC4001: 79,500 s): coverage well above the minimum
        n_psg = int(np.flatnonzero(stage != -1)[-1]) + 1
        assert np.mean(stage[:n_psg] != -1) >= 0.7, path.name  # SC4092 has 6.7 h of 'Sleep stage ?': 72%


@needs_fixtures
def test_real_hypnogram_with_a_long_unscored_stretch_loads_strictly(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    hyp = Path(shutil.copy(FIXTURES / "SC4092EC-Hypnogram.edf", data_dir))
    start = dt.datetime(1989, 6, 6, 15, 33, 0)  # the hypnogram's own start
    seconds = 85_740  # where its scoring ends
    psg = write_psg(data_dir / "SC4092E0-PSG.edf", seconds, start=start,
                    signal=np.random.default_rng(1).normal(0, 20, seconds * 100).clip(-400, 400))
    rec = read_sleep_edf_pair(psg, hyp)
    assert rec.notes == [] and len(rec.labels) > 500


@needs_fixtures
def test_upper_case_hypnogram_reads_like_the_lower_case_one(tmp_path):
    for name in ("SC4001EC-Hypnogram.edf", "SC4092EC-Hypnogram.edf"):
        upper = Path(shutil.copy(FIXTURES / name, tmp_path / name.replace(".edf", ".EDF")))
        np.testing.assert_array_equal(hypnogram_stages(upper)[0], hypnogram_stages(FIXTURES / name)[0])
