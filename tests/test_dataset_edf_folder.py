"""The edf-folder dataset: your own recordings with text/CSV or EDF+ hypnograms, subjects from
file names, seeded or file-given splits, a smoke benchmark, and one-line errors on bad input."""

import datetime as dt
import json
import subprocess
import sys

import edfio
import numpy as np
import pytest

from restbench.api import DatasetOptions, PluginError, UsageError
from restbench.data.sleep_data import subject_split
from restbench.plugins.registry import get_registry
from restbench.plugins.testing import check_object
from restbench_builtins.datasets.edf_folder import MOVEMENT, UNSCORED, EdfFolder, stage_code

START = dt.datetime(2024, 3, 1, 22, 30, 0)
CHANNEL = "EEG C4-A1"
PATTERN = r"^(p\d+)"
N_EPOCHS = 40


def signal(n_epochs, sfreq):
    """Each 30-s epoch's mean is 20 uV x its index (so alignment can be checked after resampling)."""
    t = np.arange(int(n_epochs * 30 * sfreq)) / sfreq
    return 20.0 * np.floor(t / 30.0) + 15 * np.sin(2 * np.pi * 7 * t)


def write_edf(path, n_epochs=N_EPOCHS, *, sfreq=200.0, channel=CHANNEL, annotations=(), start=START):
    """An EDF(+) with the EEG channel at ``sfreq`` and an EMG channel at 50 Hz (mixed rates)."""
    signals = [
        edfio.EdfSignal(signal(n_epochs, sfreq), sfreq, label=channel, physical_dimension="uV",
                        physical_range=(-2000, 2000)),
        edfio.EdfSignal(np.random.default_rng(0).normal(0, 5, int(n_epochs * 30 * 50)), 50.0, label="EMG chin",
                        physical_dimension="uV", physical_range=(-100, 100)),
    ]
    notes = [edfio.EdfAnnotation(o, d, t) for o, d, t in annotations]
    edfio.Edf(signals, recording=edfio.Recording(startdate=start.date()), starttime=start.time(),
              data_record_duration=30, annotations=notes).write(path)
    return path


def stage_runs(runs):
    """``(onset s, duration s, text)`` annotations from ``(text, n_epochs)`` runs starting at 0 s."""
    out, onset = [], 0.0
    for text, n in runs:
        out.append((onset, n * 30.0, text))
        onset += n * 30.0
    return out


def write_lines(path, stages, header=None):
    path.write_text((f"{header}\n" if header else "") + "\n".join(stages) + "\n")
    return path


# p01 night 1: R&K in a text file, words and numbers, a movement and an unscored epoch.
P01_N1 = ["W"] * 5 + ["1"] * 3 + ["2"] * 10 + ["3", "4", "4"] + ["MT"] + ["5"] * 10 + ["?"] + ["W"] * 7
P01_N1_LABELS = [0] * 5 + [1] * 3 + [2] * 10 + [3] * 3 + [4] * 10 + [0] * 7
P01_N1_KEPT = [i for i in range(N_EPOCHS) if i not in (21, 32)]
# p02: EDF+ stage annotations inside the recording, plus an arousal that is not a stage.
P02_RUNS = [("Sleep stage W", 5), ("Sleep stage 1", 5), ("Sleep stage 2", 10), ("Sleep stage 4", 5),
            ("Sleep stage R", 10), ("Sleep stage W", 5)]
P02_LABELS = [0] * 5 + [1] * 5 + [2] * 10 + [3] * 5 + [4] * 10 + [0] * 5
# p03: a companion EDF+ hypnogram that runs past the recording's end with "?" (as Sleep-EDF's do).
P03_RUNS = [("Sleep stage W", 10), ("Sleep stage 2", 20), ("Sleep stage R", 10), ("Sleep stage ?", 100)]
P03_LABELS = [0] * 10 + [2] * 20 + [4] * 10
# p04: CSV with a header, the stage in a named column; AASM words.
P04 = ["W"] * 10 + ["N1"] * 5 + ["N2"] * 10 + ["N3"] * 5 + ["REM"] * 10
P04_LABELS = [0] * 10 + [1] * 5 + [2] * 10 + [3] * 5 + [4] * 10


def write_folder(root, *, fif=True):
    """Five subjects, every hypnogram form; p01 has two nights (one subject)."""
    root.mkdir(parents=True, exist_ok=True)
    write_lines(root / "p01_night1.txt", P01_N1)
    write_edf(root / "p01_night1.edf")
    write_lines(root / "p01_night2.txt", ["W"] * 20 + ["2"] * 20)
    write_edf(root / "p01_night2.edf")
    write_edf(root / "p02_night1.edf", annotations=stage_runs(P02_RUNS) + [(100.0, 3.0, "Arousal")])
    write_edf(root / "p03_night1.edf")
    edfio.Edf([], recording=edfio.Recording(startdate=START.date()), starttime=START.time(),
              annotations=[edfio.EdfAnnotation(*a) for a in stage_runs(P03_RUNS)]).write(root / "p03_night1-Hypnogram.edf")
    write_edf(root / "p04_night1.edf")
    (root / "p04_night1.csv").write_text("epoch,stage,confidence\n" + "".join(f"{i},{s},1\n" for i, s in enumerate(P04)))
    if fif:  # not EDF: anything MNE reads, here a FIF file at the target rate
        import mne

        info = mne.create_info([CHANNEL], 100.0, "eeg")
        raw = mne.io.RawArray(signal(N_EPOCHS, 100.0)[None] * 1e-6, info, verbose="error")
        raw.save(root / "p05_night1.fif", verbose="error")
        write_lines(root / "p05_night1.txt", ["0"] * 10 + ["2"] * 20 + ["5"] * 10)
    return root


def options(tmp_path, data_dir, **extra):
    extra = {"channel": CHANNEL, "subject_pattern": PATTERN, **extra}
    return DatasetOptions(data_dir=data_dir, cache_dir=tmp_path / "cache", extra=extra)


def epoch_index(data, recording):
    """Original epoch index of each stored epoch of ``recording`` (from the encoded means)."""
    rows = data.signal[data.recording == data.recordings.index(recording)]
    return np.round(rows.mean(axis=1) / 20.0).astype(int).tolist()


def test_stage_labels_map_rk_to_aasm():
    assert [stage_code(t) for t in ("W", "1", "S2", "3", "4", "S4", "5", "R", "REM", "N3")] == [0, 1, 2, 3, 3, 3, 4, 4, 4, 3]
    assert [stage_code(t) for t in ("?", "MT", "Movement time", "9", "6")] == [UNSCORED, MOVEMENT, MOVEMENT, UNSCORED, MOVEMENT]
    assert stage_code("4", "aasm") == 4 and stage_code("Sleep stage 4", "aasm") == 3  # "stage 4" is R&K
    assert stage_code("Arousal", annotation=True) is None and stage_code("A", annotation=True) is None
    assert stage_code("Sleep stage R", annotation=True) == 4 and stage_code("Lights off") is None


def test_reads_every_hypnogram_form_aligned_and_resampled(tmp_path):
    root = write_folder(tmp_path / "data")
    ds = get_registry().get("datasets", "edf-folder")
    data = ds.prepare(options(tmp_path, root, channel="eeg c4 a1"))  # case and punctuation ignored
    assert data.sfreq == 100.0 and data.n_times == 12_000
    assert data.recordings == ["p01_night1", "p01_night2", "p02_night1", "p03_night1", "p04_night1", "p05_night1"]
    assert data.recording_subject == ["p01", "p01", "p02", "p03", "p04", "p05"]
    labels = {rec: data.labels[data.recording == i].tolist() for i, rec in enumerate(data.recordings)}
    assert labels["p01_night1"] == P01_N1_LABELS
    assert epoch_index(data, "p01_night1") == P01_N1_KEPT  # movement and unscored epochs dropped, not shifted
    assert labels["p02_night1"] == P02_LABELS and epoch_index(data, "p02_night1") == list(range(N_EPOCHS))
    assert labels["p03_night1"] == P03_LABELS
    assert labels["p04_night1"] == P04_LABELS
    assert labels["p05_night1"] == [0] * 10 + [2] * 20 + [4] * 10 and epoch_index(data, "p05_night1") == list(range(40))
    # no window spans the dropped epochs of p01 night 1 (21 and 32)
    rec = data.recordings.index("p01_night1")
    first = int(np.flatnonzero(data.recording == rec)[0])
    original = epoch_index(data, "p01_night1")
    spans = [[original[i - first] for i in range(e - 3, e + 1)] for e in data.window_end if data.recording[e] == rec]
    assert len(spans) == (21 - 3) + (10 - 3) + (7 - 3)
    assert all(span == list(range(span[0], span[0] + 4)) for span in spans)
    assert any("resampled from 200 Hz to 100 Hz with MNE" in n for n in data.info["notes"])
    # subject-wise: both nights of p01 in one split, seeded like every dataset
    assert data.split == subject_split(data.recording_subject, 0)
    assert check_object("datasets", ds) == []  # no data directory: skipped, not failed


def test_split_follows_the_seed_or_a_file(tmp_path):
    root = write_folder(tmp_path / "data", fif=False)
    ds = EdfFolder()
    seeded = ds.prepare(options(tmp_path, root))
    again = ds.prepare(options(tmp_path, root))
    assert seeded.split == again.split and seeded.fingerprint == again.fingerprint
    other = ds.prepare(DatasetOptions(**{**vars(options(tmp_path, root)), "seed": 3}))
    assert other.split == subject_split(seeded.recording_subject, 3)
    wanted = {"train": ["p03", "p04"], "val": ["p01"], "test": ["p02", "p99"]}
    (root / "split.json").write_text(json.dumps(wanted))
    given = ds.prepare(options(tmp_path, root, split_file="split.json"))  # relative: found in the data directory
    assert given.split == {"train": ["p03", "p04"], "val": ["p01"], "test": ["p02"]}
    assert given.info["split_file"] == str(root / "split.json") and given.info["split_seed"] is None
    assert any("p99" in n for n in given.info["notes"])  # listed but not loaded: noted
    (root / "split.json").write_text(json.dumps({"train": ["p03"], "val": ["p01"], "test": ["p02"]}))
    with pytest.raises(UsageError, match=r"does not name subject\(s\) p04"):
        ds.prepare(options(tmp_path, root, split_file=str(root / "split.json")))
    (root / "split.json").write_text(json.dumps({"train": ["p03", "p01"], "val": ["p01"], "test": ["p02"]}))
    with pytest.raises(UsageError, match="p01' is in both train and val"):
        ds.prepare(options(tmp_path, root, split_file=str(root / "split.json")))


def test_smoke_benchmark_on_an_edf_folder(tmp_path):
    root = write_folder(tmp_path / "data", fif=False)
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "restbench.cli", "run", "--dataset", "edf-folder", "--data-dir", str(root),
         "--profile", "smoke", "--methods", "sors", "--corruptions", "gaussian", "--runners", "", "--exporters", "",
         "--set", f"edf-folder.channel={CHANNEL}", "--set", f"edf-folder.subject_pattern={PATTERN}", "-q",
         "--run-dir", str(run_dir)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "complete" and info["config"]["dataset"] == "edf-folder"
    assert info["dataset"]["split"] == subject_split(["p01", "p02", "p03", "p04"], 0)
    assert info["options"]["edf-folder"]["subject_pattern"] == PATTERN
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {(r["method"], r["corruption"]) for r in records if r["record_type"] == "robustness"} >= {
        ("sors", "clean"), ("sors", "gaussian")}


# --------------------------------------------------------------------------- bad input


def one_good(root):
    root.mkdir(parents=True, exist_ok=True)
    write_lines(root / "p01.txt", P04)
    write_edf(root / "p01.edf")
    return root


def prepare_error(tmp_path, root, **extra):
    with pytest.raises(UsageError) as info:
        EdfFolder().prepare(options(tmp_path, root, **extra))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_hypnogram(tmp_path):
    root = one_good(tmp_path / "data")
    write_edf(root / "p02.edf")
    message = prepare_error(tmp_path, root)
    assert "p02.edf: no hypnogram" in message and "p02-hypnogram.edf" in message and "skip_bad" in message


def test_wrong_channel_name(tmp_path):
    root = one_good(tmp_path / "data")
    message = prepare_error(tmp_path, root, channel="EEG Cz")
    assert "p01.edf: channel 'EEG Cz' not found; channels in the file: EEG C4-A1, EMG chin" in message
    assert "--set edf-folder.channel=NAME" in message


def test_unreadable_and_truncated_files(tmp_path):
    root = one_good(tmp_path / "data")
    (root / "p02.edf").write_bytes(b"this is not an EDF file" * 10)
    write_lines(root / "p02.txt", P04)
    message = prepare_error(tmp_path, root)
    assert "p02.edf: not a readable EDF file" in message and "remove it" in message
    full = (root / "p01.edf").read_bytes()
    (root / "p02.edf").write_bytes(full[: len(full) // 2])
    assert "p02.edf: truncated EDF" in prepare_error(tmp_path, root)
    # --skip-bad uses the others and lists the bad one
    data = EdfFolder().prepare(DatasetOptions(**{**vars(options(tmp_path, root)), "skip_bad": True}))
    assert data.recordings == ["p01"] and "p02.edf" in data.info["skipped"][0]["file"]


def test_hypnogram_length_mismatch(tmp_path):
    root = one_good(tmp_path / "data")
    write_lines(root / "p01.txt", P04[:20])
    message = prepare_error(tmp_path, root)
    assert "p01.txt: labels and signal lengths disagree: 20 epochs scored (600 s)" in message
    assert "holds 40 full 30-s epochs" in message
    write_lines(root / "p01.txt", P04 + ["W"])  # one epoch over: within the tolerance, cropped
    assert len(EdfFolder().prepare(options(tmp_path, root)).labels) == 40
    write_lines(root / "p01.txt", P04 + ["W"] * 2)
    assert "lengths disagree" in prepare_error(tmp_path, root)
    assert len(EdfFolder().prepare(options(tmp_path, root, length_tolerance_epochs=2)).labels) == 40


def test_other_bad_hypnograms_and_options(tmp_path):
    root = one_good(tmp_path / "data")
    write_lines(root / "p01.txt", P04[:10] + ["Z"] + P04[11:])
    assert "p01.txt: line 11: 'Z' is not a sleep stage" in prepare_error(tmp_path, root)
    write_lines(root / "p01.txt", P04)
    write_lines(root / "p01.csv", P04)
    assert "2 hypnograms for one recording (p01.csv, p01.txt)" in prepare_error(tmp_path, root)
    (root / "p01.csv").unlink()
    message = prepare_error(tmp_path, root, subject_pattern=r"^(s\d+)")
    assert "p01.edf: its name 'p01' does not match subject_pattern" in message
    assert "not a regular expression" in prepare_error(tmp_path, root, subject_pattern="(")
    with pytest.raises(PluginError, match="no data directory"):
        EdfFolder().prepare(DatasetOptions(cache_dir=tmp_path / "cache"))


def test_a_bad_file_is_one_line_from_the_cli(tmp_path):
    root = one_good(tmp_path / "data")
    write_edf(root / "p02.edf")
    out = subprocess.run(
        [sys.executable, "-m", "restbench.cli", "data", "info", "edf-folder", "--data-dir", str(root),
         "--dataset-option", f"channel={CHANNEL}"], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "p02.edf: no hypnogram" in out.stderr
