"""Sleep-EDF: a hypnogram whose header starts at another time than its PSG is realigned onto
the PSG's epoch grid (both directions, on a real hypnogram too), and ``wake_edge_min`` decides
how much wake is kept around the night, through the reader and through the dataset option."""

import datetime as dt
import shutil

import numpy as np
import pytest

from restbench.api import DatasetOptions
from restbench_builtins.datasets.common import trim_wake
from restbench_builtins.datasets.sleep_edf import SleepEDF
from restbench_builtins.datasets.sleep_edf_format import hypnogram_stages, read_sleep_edf_pair

from conftest import shared_fixture
from test_dataset_sleep_edf import NIGHT, NIGHT_PSG_S, START, write_hypnogram, write_night, write_psg

FIXTURES = shared_fixture("sleep-edf-hypnograms")
SFREQ = 100.0


def indexed_psg(path, n_epochs, start, sfreq=SFREQ):
    """A PSG whose 30-s epoch k has mean ``k % 400`` uV, so kept epochs can be identified."""
    per_epoch = int(30 * sfreq)
    t = np.arange(n_epochs * per_epoch) / sfreq
    signal = np.repeat(np.arange(n_epochs) % 400, per_epoch) + 10 * np.sin(2 * np.pi * 10 * t)
    return write_psg(path, n_epochs * 30.0, sfreq=sfreq, start=start, signal=signal)


def epoch_ids(rec):
    return np.round(rec.signal.reshape(len(rec.labels), -1).mean(axis=1)).astype(int)


def test_hypnogram_starting_later_is_shifted_onto_the_psg_grid(tmp_path):
    psg = indexed_psg(tmp_path / "SC4001E0-PSG.edf", int(NIGHT_PSG_S / 30) + 30, START)
    hyp = write_hypnogram(tmp_path / "SC4001EC-Hypnogram.edf", NIGHT, start=START + dt.timedelta(minutes=15))
    rec = read_sleep_edf_pair(psg, hyp)
    assert rec.notes == ["SC4001EC-Hypnogram.edf: starts 30 epochs after the PSG; realigned"]
    # hypnogram epoch k is PSG epoch k + 30: sleep starts at 130, 60 wake epochs are kept before it
    assert rec.epoch_index[0] == 70 and rec.epoch_index[-1] == 154 + 30 + 60
    np.testing.assert_array_equal(epoch_ids(rec), rec.epoch_index % 400)
    first_sleep = int(np.flatnonzero(rec.labels >= 1)[0])
    assert rec.epoch_index[first_sleep] == 130 and rec.labels[first_sleep] == 1


def test_hypnogram_starting_earlier_is_cropped_onto_the_psg_grid(tmp_path):
    psg = indexed_psg(tmp_path / "SC4001E0-PSG.edf", int(NIGHT_PSG_S / 30) - 20, START)
    hyp = write_hypnogram(tmp_path / "SC4001EC-Hypnogram.edf", NIGHT, start=START - dt.timedelta(minutes=10))
    rec = read_sleep_edf_pair(psg, hyp)
    assert rec.notes == ["SC4001EC-Hypnogram.edf: starts -20 epochs after the PSG; realigned"]
    # hypnogram epoch k is PSG epoch k - 20: sleep starts at 80, wake kept from 20
    assert rec.epoch_index[0] == 20 and rec.epoch_index[-1] == 154 - 20 + 60
    np.testing.assert_array_equal(epoch_ids(rec), rec.epoch_index % 400)
    assert 124 - 20 not in rec.epoch_index, "the movement epoch moves with the grid"


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_real_hypnogram_realigned_to_an_earlier_psg(tmp_path):
    """SC4001's real hypnogram, PSG starting 5 minutes (10 epochs) before it: the same 841
    epochs and labels as with matching starts, each 10 PSG epochs later."""
    hyp = shutil.copy(FIXTURES / "SC4001EC-Hypnogram.edf", tmp_path)
    stage, hyp_start = hypnogram_stages(FIXTURES / "SC4001EC-Hypnogram.edf")
    aligned = read_sleep_edf_pair(indexed_psg(tmp_path / "aligned-PSG.edf", 2650, hyp_start), hyp)
    early = read_sleep_edf_pair(indexed_psg(tmp_path / "early-PSG.edf", 2660, hyp_start - dt.timedelta(minutes=5)), hyp)
    assert len(aligned.labels) == len(early.labels) == 841
    np.testing.assert_array_equal(early.labels, aligned.labels)
    np.testing.assert_array_equal(early.epoch_index, aligned.epoch_index + 10)
    np.testing.assert_array_equal(epoch_ids(early), early.epoch_index % 400)
    assert early.notes == ["SC4001EC-Hypnogram.edf: starts 10 epochs after the PSG; realigned"]


@pytest.mark.parametrize(("minutes", "first", "last", "wake"), [(0, 100, 154, 0), (10, 80, 174, 40), (30, 40, 214, 120)])
def test_wake_edge_min_sets_the_wake_kept_around_sleep(tmp_path, minutes, first, last, wake):
    psg = write_night(tmp_path)
    rec = read_sleep_edf_pair(psg, tmp_path / "SC4001EC-Hypnogram.edf", wake_edge_min=minutes)
    assert (rec.epoch_index[0], rec.epoch_index[-1]) == (first, last)
    assert int(np.sum(rec.labels == 0)) == wake


def test_wake_edge_min_option_reaches_the_reader(tmp_path):
    write_night(tmp_path / "data")

    def prepared(minutes):
        options = DatasetOptions(data_dir=tmp_path / "data", cache_dir=tmp_path / f"cache{minutes}", n_subjects=1,
                                 extra={"wake_edge_min": minutes})
        return SleepEDF().prepare(options)

    ten, thirty = prepared(10.0), prepared(30.0)
    assert ten.stage_counts()["total"]["W"] < thirty.stage_counts()["total"]["W"]
    # kept epochs 80-174 and 40-214, less the movement and two unscored epochs
    assert ten.signal.shape[0] == 95 - 3 and thirty.signal.shape[0] == 175 - 3
    assert len(ten.window_end) == (44 - 3) + (10 - 3) + (38 - 3)  # runs 80-123, 125-134, 137-174
    assert ten.fingerprint != thirty.fingerprint, "the option is part of the cached data's identity"


@pytest.mark.shared_fixture("sleep-edf-hypnograms")
def test_wake_edge_on_a_real_hypnogram():
    stage, _ = hypnogram_stages(FIXTURES / "SC4001EC-Hypnogram.edf")
    stage = stage[:2650]
    sleep = np.flatnonzero(stage >= 1)
    for edge in (0, 20, 60):
        kept = np.flatnonzero(trim_wake(stage, edge) == stage)
        assert (kept.min(), kept.max()) == (sleep[0] - edge, sleep[-1] + edge)
        assert np.array_equal(kept, np.arange(sleep[0] - edge, sleep[-1] + edge + 1)), "one contiguous stretch"
