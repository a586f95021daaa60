"""The shhs dataset: NSRR and Profusion XML, channel variants, subject choice, bad input."""

from pathlib import Path

import edfio
import numpy as np
import pytest

from restbench.api import DatasetOptions, PluginError, UsageError
from restbench.plugins.options import NOT_IN_PAPER, fill_options
from restbench_builtins.datasets.shhs import SHHS, choose_subjects, read_nsrr_stages, read_profusion_stages

EDF_DIR = Path("polysomnography/edfs/shhs1")
NSRR_DIR = Path("polysomnography/annotations-events-nsrr/shhs1")
PROFUSION_DIR = Path("polysomnography/annotations-events-profusion/shhs1")

# (concept, n_epochs): one event may span several epochs, as in NSRR files
STAGES = [
    ("Wake|0", 6),
    ("Stage 1 sleep|1", 2),
    ("Stage 2 sleep|2", 10),
    ("Stage 3 sleep|3", 3),
    ("Stage 4 sleep|4", 3),
    ("Unscored|9", 1),
    ("Stage 2 sleep|2", 5),
    ("Movement|6", 1),
    ("REM sleep|5", 6),
    ("Wake|0", 3),
]
N_EPOCHS = sum(n for _, n in STAGES)  # 40 epochs = 20 min


def nsrr_xml(stages=STAGES):
    events = ['<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept><Start>0</Start><Duration>1200</Duration></ScoredEvent>']
    onset = 0.0
    for concept, n in stages:
        events.append(
            f"<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>{concept}</EventConcept>"
            f"<Start>{onset}</Start><Duration>{n * 30.0}</Duration></ScoredEvent>"
        )
        onset += n * 30.0
    events.append(  # a respiratory event, not a stage: ignored
        "<ScoredEvent><EventType>Respiratory|Respiratory</EventType><EventConcept>Hypopnea|Hypopnea</EventConcept>"
        "<Start>400</Start><Duration>15</Duration></ScoredEvent>"
    )
    return f'<?xml version="1.0"?><PSGAnnotation><EpochLength>30</EpochLength><ScoredEvents>{"".join(events)}</ScoredEvents></PSGAnnotation>'


def profusion_xml(stages=STAGES):
    codes = [int(c.rsplit("|", 1)[1]) for c, n in stages for _ in range(n)]
    body = "".join(f"<SleepStage>{c}</SleepStage>" for c in codes)
    return f'<?xml version="1.0"?><CMPStudyConfig><EpochLength>30</EpochLength><SleepStages>{body}</SleepStages></CMPStudyConfig>'


def write_edf(path, seconds=N_EPOCHS * 30, eeg_hz=125.0, eeg_label="EEG", sec_label="EEG(sec)", flat=False):
    """SHHS-like EDF: EEG (epoch index encoded in its mean), EEG(sec), ECG 250 Hz, SaO2 1 Hz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * eeg_hz)) / eeg_hz
    eeg = np.floor(t / 30.0) + 10 * np.sin(2 * np.pi * 7 * t)
    if flat:
        eeg = np.full_like(t, 3.0)
    signals = [
        edfio.EdfSignal(rng.normal(95, 1, int(seconds)).clip(0, 100), 1, label="SaO2", physical_dimension="%", physical_range=(0, 100)),
        edfio.EdfSignal(eeg, eeg_hz, label=sec_label, physical_dimension="uV", physical_range=(-250, 250)),
        edfio.EdfSignal(rng.normal(0, 0.3, int(seconds * 250)).clip(-2, 2), 250, label="ECG", physical_dimension="mV", physical_range=(-2, 2)),
        edfio.EdfSignal(eeg, eeg_hz, label=eeg_label, physical_dimension="uV", physical_range=(-250, 250)),
    ]
    edfio.Edf(signals, data_record_duration=1).write(path)
    return path


def make_subject(root, sid, *, profusion=False, xml=True, edf=True, **edf_kwargs):
    if edf:
        write_edf(root / EDF_DIR / f"shhs1-{sid}.edf", **edf_kwargs)
    if xml:
        folder, name, text = (PROFUSION_DIR, f"shhs1-{sid}-profusion.xml", profusion_xml()) if profusion else (NSRR_DIR, f"shhs1-{sid}-nsrr.xml", nsrr_xml())
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(text)


def options(tmp_path, **kw):
    kw.setdefault("data_dir", tmp_path / "shhs")
    kw.setdefault("cache_dir", tmp_path / "cache")
    return DatasetOptions(**kw)


def test_nsrr_and_profusion_give_the_same_stages(tmp_path):
    (tmp_path / "a-nsrr.xml").write_text(nsrr_xml())
    (tmp_path / "a-profusion.xml").write_text(profusion_xml())
    nsrr = read_nsrr_stages(tmp_path / "a-nsrr.xml")
    expected = [0] * 6 + [1] * 2 + [2] * 10 + [3] * 6 + [-1] + [2] * 5 + [-1] + [4] * 6 + [0] * 3
    assert nsrr.tolist() == expected
    np.testing.assert_array_equal(read_profusion_stages(tmp_path / "a-profusion.xml"), nsrr)


def test_prepare_windows_labels_and_gaps(tmp_path):
    root = tmp_path / "shhs"
    make_subject(root, "200001")
    make_subject(root, "200002", profusion=True)
    make_subject(root, "200003")
    data = SHHS().prepare(options(tmp_path, n_subjects=3))
    assert data.sfreq == 125.0 and data.n_times == 15_000 and data.samples_per_epoch == 3750
    assert data.recordings == ["shhs1-200001", "shhs1-200002", "shhs1-200003"]
    per_night = np.bincount(data.labels[data.recording == 0], minlength=5)
    assert per_night.tolist() == [9, 2, 15, 6, 6]  # stages 3+4 -> N3; unscored and movement out
    x, y = data.get(data.window_end)
    epoch_ids = np.round(x[:, 0].reshape(len(y), 4, 3750).mean(axis=2)).astype(int)
    assert (np.diff(epoch_ids, axis=1) == 1).all(), "no window spans an excluded epoch"
    assert not np.isin(epoch_ids, [24, 30]).any()
    # per night: runs 0-23 (24), 25-29 (5), 31-39 (9) -> 21 + 2 + 6 windows
    assert len(data.window_end) == 3 * 29
    assert sorted(sum(data.split.values(), [])) == ["200001", "200002", "200003"]


def test_secondary_channel_spellings(tmp_path):
    root = tmp_path / "shhs"
    make_subject(root, "200001", sec_label="EEG 2")
    make_subject(root, "200002", sec_label="EEG sec")
    data = SHHS().prepare(options(tmp_path, n_subjects=2, extra={"channel": "EEG(sec)"}))
    assert data.recordings == ["shhs1-200001", "shhs1-200002"]
    assert data.info["channel"] == "EEG(sec)"


def test_subject_choice_is_seeded_and_deterministic():
    ids = [f"2{k:05d}" for k in range(300)]
    a = choose_subjects(list(reversed(ids)), 100, seed=0)
    assert a == choose_subjects(ids, 100, seed=0), "input order does not matter"
    assert len(a) == 100 and a == sorted(a) and set(a) <= set(ids)
    assert a != choose_subjects(ids, 100, seed=1)
    assert a[:10] != ids[:10], "a random choice, not the first ids"
    assert choose_subjects(ids[:5], 100, seed=0) == ids[:5]


def test_prepare_chooses_n_subjects(tmp_path):
    root = tmp_path / "shhs"
    ids = ["200001", "200002", "200003", "200004"]
    for sid in ids:
        make_subject(root, sid)
    data = SHHS().prepare(options(tmp_path, n_subjects=2))
    chosen = choose_subjects(ids, 2, seed=0)
    assert data.recording_subject == chosen and data.info["chosen_subjects"] == chosen
    assert SHHS().prepare(options(tmp_path, n_subjects=2)).recording_subject == chosen


def test_labels_past_the_end_of_the_signal(tmp_path):
    make_subject(tmp_path / "shhs", "200001", seconds=12 * 30)  # the XML scores 40 epochs
    with pytest.raises(PluginError, match="shhs1-200001-nsrr.xml: labels and signal lengths disagree"):
        SHHS().prepare(options(tmp_path))


def test_missing_pair_members_and_skip_bad(tmp_path):
    root = tmp_path / "shhs"
    make_subject(root, "200001")
    make_subject(root, "200002", edf=False)
    make_subject(root, "200003", xml=False)
    with pytest.raises(PluginError, match="annotations without EDF|EDF without annotations"):
        SHHS().prepare(options(tmp_path))
    data = SHHS().prepare(options(tmp_path, skip_bad=True))
    assert data.recordings == ["shhs1-200001"]
    reasons = sorted(s["reason"].split(" (")[0] for s in data.info["skipped"])
    assert reasons == ["EDF without annotations", "annotations without EDF"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eeg_label": "C4-A1"}, "channel 'EEG' not found"),
        ({"flat": True}, "flat"),
    ],
)
def test_bad_recording_is_named(tmp_path, kwargs, match):
    root = tmp_path / "shhs"
    make_subject(root, "200001")
    make_subject(root, "200002", **kwargs)
    with pytest.raises(PluginError, match=f"shhs1-200002.edf: .*{match}"):
        SHHS().prepare(options(tmp_path))
    assert SHHS().prepare(options(tmp_path, skip_bad=True)).recordings == ["shhs1-200001"]


def test_sampling_rate_other_than_125(tmp_path):
    make_subject(tmp_path / "shhs", "200001", eeg_hz=128.0)
    with pytest.warns(UserWarning, match="resampled from 128 Hz to 125 Hz"):
        data = SHHS().prepare(options(tmp_path))
    assert data.samples_per_epoch == 3750
    with pytest.raises(PluginError, match="sampled at 128 Hz, expected 125 Hz"):
        SHHS().prepare(options(tmp_path, extra={"resample": False}))


def test_malformed_xml(tmp_path):
    root = tmp_path / "shhs"
    make_subject(root, "200001", xml=False)
    (root / NSRR_DIR).mkdir(parents=True)
    (root / NSRR_DIR / "shhs1-200001-nsrr.xml").write_text("<PSGAnnotation><ScoredEvents>")
    with pytest.raises(PluginError, match="cannot parse XML"):
        SHHS().prepare(options(tmp_path))


def test_never_downloads_and_rejects_unknown_options(tmp_path):
    with pytest.raises(PluginError, match="never downloads"):
        SHHS().prepare(DatasetOptions(cache_dir=tmp_path, allow_download=True))
    (tmp_path / "shhs").mkdir()
    with pytest.raises(PluginError, match="no shhs1-"):
        SHHS().prepare(options(tmp_path))
    with pytest.raises(UsageError, match=r"plugin 'shhs' has no option 'hours'; valid: shhs\.channel, shhs\.resample, shhs\.subject_seed, shhs\.wake_edge_min, shhs\.lenient_input$"):
        SHHS().prepare(options(tmp_path, extra={"hours": 1}))


def test_declares_typed_options():
    declared = {o.name: o for o in SHHS.options}
    assert list(declared) == ["channel", "resample", "subject_seed", "wake_edge_min", "lenient_input"]
    assert (declared["channel"].type, declared["channel"].default, declared["channel"].paper_value) == (str, "EEG", "EEG")
    assert (declared["resample"].type, declared["resample"].default, declared["resample"].paper) == (bool, True, NOT_IN_PAPER)
    assert (declared["subject_seed"].type, declared["subject_seed"].default, declared["subject_seed"].minimum) == (int, 0, 0)
    assert (declared["wake_edge_min"].type, declared["wake_edge_min"].default) == (float, None)
    assert declared["wake_edge_min"].nullable and declared["wake_edge_min"].minimum == 0
    assert all(o.help for o in SHHS.options) and not getattr(SHHS, "default", False)
    assert fill_options(SHHS.options, {"wake_edge_min": "15", "subject_seed": "3"}, "shhs") == {
        "channel": "EEG", "resample": True, "subject_seed": 3, "wake_edge_min": 15.0, "lenient_input": False}
    assert fill_options(SHHS.options, {"wake_edge_min": None}, "shhs")["wake_edge_min"] is None


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"subject_seed": "x"}, r"shhs\.subject_seed: expected an integer, got 'x'"),
        ({"subject_seed": -2}, r"shhs\.subject_seed: -2 is below the minimum 0"),
        ({"wake_edge_min": -5}, r"shhs\.wake_edge_min: -5\.0 is below the minimum 0"),
        ({"resample": "sometimes"}, r"shhs\.resample: expected true or false, got 'sometimes'"),
    ],
)
def test_bad_options_are_one_line_usage_errors(tmp_path, extra, match):
    make_subject(tmp_path / "shhs", "200001")
    with pytest.raises(UsageError, match=match) as err:
        SHHS().prepare(options(tmp_path, extra=extra))
    assert "\n" not in str(err.value)


def test_channel_below_125_hz_is_refused_unless_lenient(tmp_path):
    make_subject(tmp_path / "shhs", "200001", eeg_hz=50.0)
    with pytest.raises(PluginError, match=r"shhs1-200001\.edf: channel 'EEG' is sampled at 50 Hz, below the 125 Hz.*lenient_input") as err:
        SHHS().prepare(options(tmp_path))
    assert "\n" not in str(err.value)
    with pytest.warns(UserWarning, match="resampled from 50 Hz to 125 Hz"):
        data = SHHS().prepare(options(tmp_path, extra={"lenient_input": True}))
    assert data.samples_per_epoch == 3750
    assert data.info["notes"] == ["shhs1-200001.edf: channel 'EEG' resampled from 50 Hz to 125 Hz (upsampled: lenient_input)"]


def test_upper_case_file_names_are_found(tmp_path):
    root = tmp_path / "shhs"
    write_edf(root / EDF_DIR / "SHHS1-200001.EDF")
    (root / NSRR_DIR).mkdir(parents=True)
    (root / NSRR_DIR / "shhs1-200001-nsrr.XML").write_text(nsrr_xml())
    assert SHHS().prepare(options(tmp_path)).recordings == ["shhs1-200001"]
